/**
 * Job instance configuration, validated instance by instance (the instances file's text is read by
 * ./config-file.ts, the instances table's items by the AWS runtime). A bad instance is reported with its id and field, and its last good
 * version keeps running; the other instances take their edits.
 */
import { z } from 'zod';
import { parseSchedule } from './schedule.js';
import { parseLimits } from './limit-config.js';
import type { LimitDefinition } from './ports/limits.js';
import type { InstanceConfig, JobType } from './types.js';

/** The schedule of an instance whose entry and job type name none. */
export const DEFAULT_SCHEDULE = 'rate(1 minute)';

/** One instance entry as written in the file. */
export const instanceEntrySchema = z
  .object({
    id: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'use letters, digits, "_", "." and "-" (at most 128), starting with a letter or digit'),
    job: z.string().min(1),
    params: z.unknown().optional(),
    enabled: z.boolean().default(true),
    schedule: z.string().optional(),
    concurrency: z.number().int().positive().optional(),
  })
  .strict();

export const instancesFileSchema = z.object({ instances: z.array(z.unknown()) }).passthrough();

export interface ConfigProblem {
  /** The instance at fault, when one is. */
  instanceId?: string;
  /** The limit at fault (of the file's `limits`), when one is. */
  limit?: string;
  /** The field at fault, as a dotted path (`params.intervalMs`, `limits.api.per`). */
  field?: string;
  message: string;
}

export interface ParsedConfig {
  instances: InstanceConfig[];
  problems: ConfigProblem[];
  /** The file's shared limits, by name; broken ones are left out (see `mergeLimitsWithLastGood`). */
  limits: Map<string, LimitDefinition>;
  /** Broken entries that say `"enabled": false`: their last good version stops too. */
  disabledBroken?: string[];
}

export function formatProblem(source: string, problem: ConfigProblem): string {
  const where = [source, problem.instanceId && `instance "${problem.instanceId}"`, problem.field].filter(Boolean).join(': ');
  return `${where}: ${problem.message}`;
}

export function parseInstances(raw: unknown, jobs: readonly JobType[]): ParsedConfig {
  const file = instancesFileSchema.safeParse(raw);
  if (!file.success) {
    return { instances: [], limits: new Map(), problems: [{ field: 'instances', message: 'the file must be an object { "instances": [ ... ] }' }] };
  }
  const byName = new Map(jobs.map((job) => [job.name, job]));
  const limits = parseLimits(file.data['limits']);
  const result: ParsedConfig = { instances: [], limits: limits.limits, problems: [...limits.problems] };
  const ids = new Set<string>();
  file.data.instances.forEach((entry, index) => {
    const fallbackId = entryId(entry) ?? `#${index}`;
    const problemsBefore = result.problems.length;
    parseEntry(entry, fallbackId);
    if (result.problems.length > problemsBefore && isDisabledEntry(entry)) {
      (result.disabledBroken ??= []).push(fallbackId);
    }
  });
  return result;

  function parseEntry(entry: unknown, fallbackId: string): void {
    const parsed = instanceEntrySchema.safeParse(entry);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        result.problems.push({ instanceId: fallbackId, field: issue.path.join('.') || undefined, message: issue.message });
      }
      return;
    }
    const { id, job: jobName, enabled, concurrency } = parsed.data;
    if (ids.has(id)) {
      result.problems.push({ instanceId: id, field: 'id', message: 'this id is used by another instance; ids must be unique' });
      return;
    }
    ids.add(id);
    const job = byName.get(jobName);
    if (!job) {
      result.problems.push({
        instanceId: id,
        field: 'job',
        message: `no job type is named "${jobName}"; known job types: ${[...byName.keys()].join(', ') || '(none loaded)'}`,
      });
      return;
    }
    const params = strictParams(job.params).safeParse(parsed.data.params ?? {});
    if (!params.success) {
      for (const issue of params.error.issues) {
        const field = ['params', ...issue.path].join('.');
        if (issue.code === 'unrecognized_keys') {
          const keys = issue.keys.map((key) => `"${key}"`).join(', ');
          const known = job.params instanceof z.ZodObject ? Object.keys(job.params.shape).join(', ') || '(none)' : '';
          const message = `unknown param${issue.keys.length > 1 ? 's' : ''} ${keys} for job type "${jobName}"${known ? ` (it takes: ${known})` : ''}; remove or rename ${issue.keys.length > 1 ? 'them' : 'it'}, or let the job accept other keys with z.looseObject`;
          result.problems.push({ instanceId: id, field, message });
          continue;
        }
        result.problems.push({ instanceId: id, field, message: issue.message });
      }
      return;
    }
    const schedule = parsed.data.schedule ?? job.schedule ?? DEFAULT_SCHEDULE;
    try {
      parseSchedule(schedule);
    } catch (error) {
      result.problems.push({ instanceId: id, field: 'schedule', message: (error as Error).message });
      return;
    }
    result.instances.push({
      id,
      job: jobName,
      params: params.data,
      enabled,
      schedule,
      concurrency: concurrency ?? Number.POSITIVE_INFINITY,
    });
  }
}

/**
 * The params schema as instances are checked against it: an object schema that does not say what
 * to do with unknown keys (a plain `z.object`, which would drop them silently) refuses them, so a
 * misspelt param is an error naming the key. A job that takes other keys says so in its schema
 * (`z.looseObject({...})` or `.loose()`/`.passthrough()` keep them, `.catchall(...)` types them).
 * Only the top level is checked this way; nested objects are validated as written.
 */
export function strictParams(schema: z.ZodType): z.ZodType {
  return schema instanceof z.ZodObject && schema.def.catchall === undefined ? schema.strict() : schema;
}

/** 1-based line and column of `offset` in `text`. */
/** Keeps the last good version of every instance that is broken in `next`. */
export function mergeWithLastGood(lastGood: readonly InstanceConfig[], next: ParsedConfig, wholeFileBroken: boolean): InstanceConfig[] {
  if (wholeFileBroken) return [...lastGood];
  const broken = new Set(next.problems.map((p) => p.instanceId).filter((id): id is string => id !== undefined));
  const disabled = new Set(next.disabledBroken);
  const merged = [...next.instances];
  for (const previous of lastGood) {
    if (!broken.has(previous.id) || merged.some((i) => i.id === previous.id)) continue;
    merged.push(disabled.has(previous.id) ? { ...previous, enabled: false } : previous);
  }
  return merged;
}

/** Whether the problems concern the whole file rather than single instances or limits. */
export function isWholeFileBroken(parsed: ParsedConfig): boolean {
  return parsed.problems.some((p) => p.instanceId === undefined && p.limit === undefined && p.field !== 'limits');
}

function isDisabledEntry(entry: unknown): boolean {
  return typeof entry === 'object' && entry !== null && 'enabled' in entry && entry.enabled === false;
}

function entryId(entry: unknown): string | undefined {
  if (entry && typeof entry === 'object' && 'id' in entry && typeof entry.id === 'string') return entry.id;
  return undefined;
}
