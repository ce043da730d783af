/**
 * The instances table: per instance, its configuration entry (`config`, with the status page's
 * overrides in `overrides`, the effective entry being `{ ...config, ...overrides }`), its status
 * (`status`) and its state keys (`state#<key>`). `loadInstancesAndStatus` reads entries and
 * statuses in one paginated Scan (the scheduler's every tick). Entries are stored as maps, so
 * that overrides can be set field by field; state values as JSON text.
 *
 * The shared limits' definitions (issue 15: the instances file's `"limits"`, as written there)
 * are one more item, `(limits, limits)`, whose `limits` attribute holds the whole object; the
 * same Scan reads it, so the runtime sees an edit of it as it sees an edit of an instance.
 */
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand, type ScanCommandInput } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { StoreError } from '../../../errors.js';
import type { InstanceStatus } from '../../../ports/store.js';
import { parseJson } from '../../../signature.js';
import type { Json } from '../../../types.js';
import { CONFIG_KIND, STATUS_KIND, defined, entryOfConfigItem, stateKind, stateOf, statusItem, statusOf } from '../dynamo-items.js';
import { Expr, updateExpression } from './expressions.js';
import type { TableCalls } from './table-calls.js';

/** The configuration overrides of an instance: a value replaces the entry's field, `undefined` drops the override. */
export type InstanceOverride = Record<string, Json | undefined>;

const entryIdSchema = z.looseObject({ id: z.string().min(1) });

/** The key of the item holding the limits' definitions (`instanceId`, `kind`): no instance's config or status item has this kind. */
export const LIMITS_ITEM = { instanceId: 'limits', kind: 'limits' } as const;
/** The attribute of that item holding the `"limits"` object as written in the instances file. */
export const LIMITS_ATTRIBUTE = 'limits';

/** Entries, overrides, statuses and state of the instances table. */
export class Instances {
  constructor(private readonly calls: TableCalls) {}

  async getState(instanceId: string, key: string): Promise<Json | undefined> {
    const { doc, tables } = this.calls;
    const output = await this.calls.call('instances', 'GetItem (read instance state)', () =>
      doc.send(new GetCommand({ TableName: tables.instances, Key: { instanceId, kind: stateKind(key) }, ConsistentRead: true })),
    );
    return output.Item === undefined ? undefined : stateOf(output.Item, tables.instances);
  }

  async setState(instanceId: string, key: string, value: Json | undefined): Promise<void> {
    const { doc, tables } = this.calls;
    const Key = { instanceId, kind: stateKind(key) };
    if (value === undefined) {
      await this.calls.call('instances', 'DeleteItem (delete instance state)', () => doc.send(new DeleteCommand({ TableName: tables.instances, Key })));
      return;
    }
    await this.calls.call('instances', 'PutItem (write instance state)', () =>
      doc.send(new PutCommand({ TableName: tables.instances, Item: { ...Key, value: JSON.stringify(value) } })),
    );
  }

  async getInstanceStatus(instanceId: string): Promise<InstanceStatus | undefined> {
    const { doc, tables } = this.calls;
    const output = await this.calls.call('instances', 'GetItem (read an instance status)', () =>
      doc.send(new GetCommand({ TableName: tables.instances, Key: { instanceId, kind: STATUS_KIND }, ConsistentRead: true })),
    );
    return output.Item === undefined ? undefined : statusOf(output.Item, tables.instances);
  }

  async listInstanceStatus(): Promise<InstanceStatus[]> {
    return (await this.scanInstances([STATUS_KIND])).statuses;
  }

  async setInstanceStatus(instanceId: string, status: InstanceStatus | undefined): Promise<void> {
    const { doc, tables } = this.calls;
    if (status === undefined) {
      await this.calls.call('instances', 'DeleteItem (clear an instance status)', () =>
        doc.send(new DeleteCommand({ TableName: tables.instances, Key: { instanceId, kind: STATUS_KIND } })),
      );
      return;
    }
    await this.calls.call('instances', 'PutItem (write an instance status)', () =>
      doc.send(new PutCommand({ TableName: tables.instances, Item: statusItem({ ...status, instanceId }) })),
    );
  }

  /**
   * Writes an instance's configuration entry (a JSON object with a string `id`), replacing the
   * one stored and keeping the instance's overrides.
   */
  async putInstanceEntry(entry: unknown): Promise<void> {
    const { doc, tables } = this.calls;
    const parsed = entryIdSchema.safeParse(entry);
    if (!parsed.success) {
      throw new StoreError(`an instance entry must be an object with a non-empty string "id"; got ${describe(entry)}`);
    }
    const config = toJsonObject(parsed.data, `instance entry "${parsed.data.id}"`);
    const e = new Expr();
    await this.calls.call('instances', 'UpdateItem (write an instance entry)', () =>
      doc.send(
        new UpdateCommand({
          TableName: tables.instances,
          Key: { instanceId: parsed.data.id, kind: CONFIG_KIND },
          UpdateExpression: `SET ${e.n('config')} = ${e.v(config)}, ${e.n('overrides')} = if_not_exists(${e.n('overrides')}, ${e.v({})})`,
          ...e.params(),
        }),
      ),
    );
  }

  /**
   * Overrides fields of an instance's entry (the status page's switches): the effective entry is
   * `{ ...config, ...overrides }`. A field set to `undefined` drops its override.
   */
  async setInstanceOverride(instanceId: string, patch: InstanceOverride): Promise<void> {
    const { doc, tables } = this.calls;
    const entries = Object.entries(patch);
    if (entries.length === 0) return;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      // Into the overrides map, when there is one.
      const e = new Expr();
      const sets: string[] = [];
      const removes: string[] = [];
      for (const [field, value] of entries) {
        const path = `${e.n('overrides')}.${e.n(field)}`;
        if (value === undefined) removes.push(path);
        else sets.push(`${path} = ${e.v(toJsonValue(value, `override "${field}" of instance "${instanceId}"`))}`);
      }
      const merged = await this.calls.conditional('instances', 'UpdateItem (override instance fields)', () =>
        doc.send(
          new UpdateCommand({
            TableName: tables.instances,
            Key: { instanceId, kind: CONFIG_KIND },
            UpdateExpression: updateExpression(sets, removes),
            ConditionExpression: `attribute_exists(${e.n('config')}) AND attribute_exists(${e.n('overrides')})`,
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            ...e.params(),
          }),
        ),
      );
      if (merged.ok) return;
      if (merged.item?.config === undefined) {
        throw new StoreError(`instance "${instanceId}" has no entry in table ${tables.instances}; write its entry (putInstanceEntry) before overriding its fields`);
      }
      // An entry written by other code, without an overrides map yet: create it whole.
      const c = new Expr();
      const created = await this.calls.conditional('instances', 'UpdateItem (override instance fields)', () =>
        doc.send(
          new UpdateCommand({
            TableName: tables.instances,
            Key: { instanceId, kind: CONFIG_KIND },
            UpdateExpression: `SET ${c.n('overrides')} = ${c.v(defined(toJsonObject(patch, `overrides of instance "${instanceId}"`)))}`,
            ConditionExpression: `attribute_exists(${c.n('config')}) AND attribute_not_exists(${c.n('overrides')})`,
            ...c.params(),
          }),
        ),
      );
      if (created.ok) return;
    }
    throw new StoreError(`could not override fields of instance "${instanceId}": its entry kept changing; try again`);
  }

  /** Every instance's effective entry (`{ ...config, ...overrides }`), unvalidated. */
  async listInstanceEntries(): Promise<Record<string, unknown>[]> {
    return (await this.scanInstances([CONFIG_KIND])).entries;
  }

  /**
   * Entries and statuses of every instance, and the limits' definitions (unvalidated; `undefined`
   * when the table has none), in one paginated Scan (the scheduler's every tick).
   */
  async loadInstancesAndStatus(): Promise<{ entries: Record<string, unknown>[]; statuses: InstanceStatus[]; limits?: unknown }> {
    return this.scanInstances([CONFIG_KIND, STATUS_KIND, LIMITS_ITEM.kind]);
  }

  /**
   * Replaces the limits' definitions with `limits`, the `"limits"` object of an instances file
   * (validated by whoever reads it: core/limit-config.ts), as the deployment's seeding does.
   */
  async putLimits(limits: Record<string, Json>): Promise<void> {
    const { doc, tables } = this.calls;
    const value = toJsonObject(limits, 'the limits');
    await this.calls.call('instances', 'PutItem (write the limits)', () =>
      doc.send(new PutCommand({ TableName: tables.instances, Item: { ...LIMITS_ITEM, [LIMITS_ATTRIBUTE]: value } })),
    );
  }

  private async scanInstances(kinds: readonly string[]): Promise<{ entries: Record<string, unknown>[]; statuses: InstanceStatus[]; limits?: unknown }> {
    const { tables } = this.calls;
    const e = new Expr();
    const input: ScanCommandInput = {
      TableName: tables.instances,
      FilterExpression: `${e.n('kind')} IN (${kinds.map((kind) => e.v(kind)).join(', ')})`,
      ConsistentRead: true,
      ...e.params(),
    };
    const entries: Record<string, unknown>[] = [];
    const statuses: InstanceStatus[] = [];
    let limits: unknown;
    for await (const item of this.calls.scanItems('instances', 'Scan (instance entries and statuses)', input)) {
      if (item.kind === STATUS_KIND) statuses.push(statusOf(item, tables.instances));
      else if (item.kind === LIMITS_ITEM.kind && item.instanceId === LIMITS_ITEM.instanceId) limits = item[LIMITS_ATTRIBUTE];
      else if (item.kind === CONFIG_KIND) {
        const entry = entryOfConfigItem(item, tables.instances);
        if (entry) entries.push(entry);
      }
    }
    return limits === undefined ? { entries, statuses } : { entries, statuses, limits };
  }
}

/** A JSON object copy of `value` (undefined fields and functions dropped, as JSON does). */
function toJsonObject(value: object, what: string): Record<string, Json> {
  const json = toJsonValue(value, what);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new StoreError(`${what} must be a JSON object`);
  return json;
}

function toJsonValue(value: unknown, what: string): Json {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new StoreError(`${what} cannot be stored: it is not JSON (${(error as Error).message})`, { cause: error });
  }
  if (text === undefined) throw new StoreError(`${what} cannot be stored: it is not JSON`);
  return parseJson(text);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object without a string "id"' : `a ${typeof value}`;
}
