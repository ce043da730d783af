/**
 * The instance configuration a deployment is seeded with: read (a file, or entries given in code),
 * validated against the job types that go into the bundles (in a child process that loads the
 * user's jobs module: ./jobs-check.ts), and rendered as the DynamoDB
 * `UpdateItem` that `DynamoStore.putInstanceEntry` sends (core/adapters/aws/dynamo/instances.ts): the
 * entry goes into the `config` attribute of the `(instanceId, 'config')` item and the `overrides`
 * attribute is created empty only when missing. Run-time overrides (the status page's switches, the
 * CLI) therefore survive every redeploy; only the repository's configuration is replaced.
 *
 * The shared limits (issue 15), from `JobRunner`'s `limits` prop or the file's `"limits"` (one
 * or the other), are validated limit by limit (core/limit-config.ts) and written whole into the
 * `(limits, limits)` item the runtime reads with the instances (core/adapters/aws/dynamo/instances.ts);
 * neither given leaves the item as it is.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { CONFIG_KIND } from '../core/adapters/aws/dynamo-items.js';
import { LIMITS_ATTRIBUTE, LIMITS_ITEM } from '../core/adapters/aws/dynamo/instances.js';
import { parseLimits, type LimitsConfig } from '../core/limit-config.js';
import { INSTANCES_TABLE } from '../core/adapters/aws/tables.js';
import { formatProblem, instanceEntrySchema, instancesFileSchema, parseInstances } from '../core/config.js';
import { parseInstancesJson } from '../core/config-file.js';
import type { JobType, Json } from '../core/types.js';
import { InstanceSeedError } from './errors.js';

/** One instance entry, as written in an instances file. */
export type InstanceEntry = z.input<typeof instanceEntrySchema>;

/** The attributes of a config item that `putInstanceEntry` writes and `setInstanceOverride` patches. */
export const CONFIG_ATTRIBUTE = 'config';
export const OVERRIDES_ATTRIBUTE = 'overrides';

/** A validated entry, as the JSON object stored in the `config` attribute. */
export interface SeedEntry {
  readonly id: string;
  readonly config: { readonly [key: string]: Json };
}

/** A DynamoDB attribute value in the low-level wire format (what an `AwsCustomResource` call sends). */
export type AttributeValue =
  | { NULL: true }
  | { BOOL: boolean }
  | { N: string }
  | { S: string }
  | { L: AttributeValue[] }
  | { M: { [key: string]: AttributeValue } };

/** The instance configuration as given, before validation: what it is called in messages, and its JSON. */
export interface InstancesSource {
  /** The file's path as given, or `the instances prop`. */
  readonly name: string;
  /** The parsed file, or `{ instances: <entries> }`, as JSON (what is not JSON in given entries is dropped). */
  readonly raw: Json;
}

/**
 * Reads the instance configuration `source`: a file (absolute, or relative to the working
 * directory) or the entries themselves. Throws an {@link InstanceSeedError} naming a file that
 * cannot be read or is not JSON.
 */
export function readInstances(source: readonly InstanceEntry[] | string): InstancesSource {
  if (typeof source !== 'string') {
    let text: string | undefined;
    try {
      text = JSON.stringify({ instances: source });
    } catch (error) {
      throw new InstanceSeedError(`the instances prop is not JSON (${(error as Error).message}); give entries of plain JSON values`, { cause: error });
    }
    return { name: 'the instances prop', raw: JSON.parse(text ?? 'null') as Json };
  }
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (error) {
    throw new InstanceSeedError(`cannot read the instances file ${source} (${(error as Error).message}); pass an existing file or the entries themselves as the instances prop`, { cause: error });
  }
  // Comments and trailing commas are allowed, as locally (core/config.ts).
  const parsed = parseInstancesJson(text);
  if (!parsed.ok) throw new InstanceSeedError(`the instances file ${source} is ${parsed.message}; fix its syntax`);
  return { name: source, raw: toJson(parsed.raw, `the instances file ${source}`) };
}

/** A JSON copy of `value`: what DynamoDB will hold, and proof that it is JSON. */
function toJson(value: unknown, what: string): Json {
  const text = JSON.stringify(value);
  if (text === undefined) throw new InstanceSeedError(`${what} is not JSON`);
  return JSON.parse(text) as Json;
}

/**
 * The entries to seed, validated as the runtime validates them (core/config.ts) against `jobs`.
 * A deployment refuses to synthesize with an invalid entry rather than let its instance fail on
 * every tick; every problem is named with its instance and field.
 *
 * @example
 * ```ts
 * loadSeedEntries('jobs/instances.json', jobs); // [{ id: 'metrics', config: { id: 'metrics', job: 'collector', ... } }, ...]
 * ```
 */
export function loadSeedEntries(source: readonly InstanceEntry[] | string, jobs: readonly JobType[]): SeedEntry[] {
  return validateSeedEntries(readInstances(source), jobs);
}

/** {@link loadSeedEntries} of a source already read (the child process of ./jobs-check.ts gets it so). */
export function validateSeedEntries(source: InstancesSource, jobs: readonly JobType[]): SeedEntry[] {
  const { raw, name } = source;
  const parsed = parseInstances(raw, jobs);
  if (parsed.problems.length > 0) {
    const problems = parsed.problems.map((problem) => formatProblem(name, problem));
    throw new InstanceSeedError(`the instance configuration to deploy has ${problems.length} problem(s): ${problems.join('; ')}`);
  }
  const file = instancesFileSchema.parse(raw);
  return file.instances.map((entry, index) => {
    const config = toJson(entry, `instance entry #${index} of ${name}`);
    const id = instanceEntrySchema.parse(entry).id;
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new InstanceSeedError(`instance "${id}" must be a JSON object`);
    return { id, config };
  });
}

/** `value` in DynamoDB's attribute-value format, as the SDK's document client marshals plain JSON. */
export function toAttributeValue(value: Json): AttributeValue {
  if (value === null) return { NULL: true };
  if (typeof value === 'boolean') return { BOOL: value };
  if (typeof value === 'number') return { N: String(value) };
  if (typeof value === 'string') return { S: value };
  if (Array.isArray(value)) return { L: value.map(toAttributeValue) };
  return { M: Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, toAttributeValue(inner)])) };
}

/**
 * The `UpdateItem` parameters that write `entry` into the instances table `tableName` the way
 * `putInstanceEntry` does: `SET config = :config, overrides = if_not_exists(overrides, {})`.
 */
export function seedUpdateItem(tableName: string, entry: SeedEntry) {
  return {
    TableName: tableName,
    Key: {
      [INSTANCES_TABLE.partitionKey.name]: { S: entry.id },
      [INSTANCES_TABLE.sortKey.name]: { S: CONFIG_KIND },
    },
    UpdateExpression: 'SET #config = :config, #overrides = if_not_exists(#overrides, :none)',
    ExpressionAttributeNames: { '#config': CONFIG_ATTRIBUTE, '#overrides': OVERRIDES_ATTRIBUTE },
    ExpressionAttributeValues: { ':config': toAttributeValue(entry.config), ':none': { M: {} } },
  };
}

/** The `DeleteItem` parameters that remove an instance's config item (when its entry leaves the seed). */
export function seedDeleteItem(tableName: string, id: string) {
  return {
    TableName: tableName,
    Key: {
      [INSTANCES_TABLE.partitionKey.name]: { S: id },
      [INSTANCES_TABLE.sortKey.name]: { S: CONFIG_KIND },
    },
  };
}

/** What messages call the `limits` prop of `JobRunner`. */
const LIMITS_PROP = 'the limits prop';

/**
 * The shared limits to seed, as written, once every limit validates: the `limits` prop of
 * `JobRunner` (`prop`) or the instances file's `"limits"`; `undefined` when neither gives any (the
 * deployment then leaves the limits item alone).
 *
 * @throws {InstanceSeedError} naming each malformed limit and its field, so `cdk synth` fails;
 * and when both the prop and the file give limits, naming both.
 * @example
 * ```ts
 * loadSeedLimits(readInstances('jobs/instances.json')); // { "feed-api": { rate: 300, per: "15m" } }
 * loadSeedLimits(readInstances(entries), { 'archive-host': { concurrency: 3 } }); // { "archive-host": { concurrency: 3 } }
 * ```
 */
export function loadSeedLimits(source: InstancesSource, prop?: LimitsConfig): { [name: string]: Json } | undefined {
  const { raw, name } = source;
  const inSource = typeof raw === 'object' && raw !== null && !Array.isArray(raw) && Object.hasOwn(raw, 'limits');
  if (prop !== undefined && inSource) {
    throw new InstanceSeedError(`the shared limits are given twice, as ${LIMITS_PROP} and as "limits" in ${name}; keep one of them`);
  }
  if (prop !== undefined) return validateSeedLimits(toJson(prop, LIMITS_PROP), LIMITS_PROP, LIMITS_PROP);
  if (!inSource) return undefined;
  return validateSeedLimits(raw['limits'], name, `"limits" of ${name}`);
}

/** `limits` once every limit validates; problems are reported as `<name>: limits.<limit>.<field>: …`, to fix in `where`. */
function validateSeedLimits(limits: Json | undefined, name: string, where: string): { [name: string]: Json } {
  const { problems } = parseLimits(limits);
  if (problems.length > 0) {
    const lines = problems.map((problem) => `${name}: ${problem.field}: ${problem.message}`);
    throw new InstanceSeedError(`the shared limits to deploy have ${problems.length} problem(s): ${lines.join('; ')}; fix them in ${where}`);
  }
  if (typeof limits !== 'object' || limits === null || Array.isArray(limits)) throw new InstanceSeedError(`${where} must be an object of limits by name`);
  return limits;
}

/**
 * The `UpdateItem` parameters that write the limits' definitions into the instances table
 * `tableName`, replacing the ones stored (as `DynamoStore.putLimits` does).
 */
export function seedLimitsUpdateItem(tableName: string, limits: { [name: string]: Json }) {
  return {
    TableName: tableName,
    Key: {
      [INSTANCES_TABLE.partitionKey.name]: { S: LIMITS_ITEM.instanceId },
      [INSTANCES_TABLE.sortKey.name]: { S: LIMITS_ITEM.kind },
    },
    UpdateExpression: 'SET #limits = :limits',
    ExpressionAttributeNames: { '#limits': LIMITS_ATTRIBUTE },
    ExpressionAttributeValues: { ':limits': toAttributeValue(limits) },
  };
}
