/**
 * How the DynamoDB store lays records out in items, and reads them back: key formats, the items
 * of each table, and zod schemas for everything read (an item is untrusted input until parsed).
 *
 * JSON values (inputs, results, checkpoint values, state, errors, progress) are stored as JSON
 * strings, so any JSON round-trips exactly: DynamoDB numbers stop at 38 digits and 10^126, and
 * a JSON text keeps every value as written. Instance entries are the exception (maps, so that
 * overrides can be set field by field).
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { NativeAttributeValue } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import type { BoardEntry, BoardTask } from '../../cloud/board.js';
import { StoreError } from '../../errors.js';
import type { Checkpoint, InstanceStatus, Lease, Trigger, TriggerResult } from '../../ports/store.js';
import { parseRunId, taskHash } from '../../run-ids.js';
import { parseJson } from '../../signature.js';
import { LIVE_STATUSES, RUN_STATUSES, type Json, type LogLine, type RunRecord } from '../../types.js';
import { isIndexedRoute } from './tables.js';

export type Item = Record<string, NativeAttributeValue>;

// ---------------------------------------------------------------------------------------------
// Keys

/** Digits of every time or sequence number in a key: epoch ms stay below 10^15 until year 33658. */
const KEY_DIGITS = 15;
const MAX_KEY_NUMBER = 10 ** KEY_DIGITS - 1;

/** A non-negative integer as a fixed-width decimal string, so that keys sort as numbers. */
export function numberKey(value: number, what: string): string {
  if (!Number.isFinite(value) || value < 0 || value > MAX_KEY_NUMBER) {
    throw new StoreError(`${what} must be a number from 0 to ${MAX_KEY_NUMBER} to be stored in DynamoDB; got ${value}`);
  }
  return String(Math.floor(value)).padStart(KEY_DIGITS, '0');
}

/**
 * Partition of a run's log lines and, for a run whose id does not locate its record
 * (core/run-ids.ts), its locator item (`run#<id>` / {@link RUN_SK}).
 */
export function runPk(runId: string): string {
  return `run#${runId}`;
}

/** Sort key of a run's locator item, in the partition of its log lines. */
export const RUN_SK = 'run';

/** Partition of an instance's task's run records (a hash of both: see core/run-ids.ts). */
export function taskPk(hash: string): string {
  return `task#${hash}`;
}

/** Run record sort keys lie between `run#` and `run$`: `run#<queuedAt, 15 digits>#<id>`, in queue order. */
export const RUN_SK_PREFIX = 'run#';
export const RUN_SK_END = 'run$';

export function runSk(queuedAt: number, id: string): string {
  return `${RUN_SK_PREFIX}${numberKey(queuedAt, 'a run’s queuedAt')}#${id}`;
}

/** The key of a run's record: its task's partition, in queue order. */
export function runKey(run: Pick<RunRecord, 'id' | 'instanceId' | 'task' | 'queuedAt'>): { pk: string; sk: string } {
  return { pk: taskPk(taskHash(run.instanceId, run.task)), sk: runSk(run.queuedAt, run.id) };
}

/** The key of a run's record as its id says it (core/run-ids.ts); `undefined` when the id does not say. */
export function runKeyOfId(id: string): { pk: string; sk: string } | undefined {
  const parsed = parseRunId(id);
  return parsed && { pk: taskPk(parsed.taskHash), sk: runSk(parsed.queuedAt, id) };
}

/** The item that points from a run id to its record, for runs whose id does not locate it. */
export function locatorItem(run: Pick<RunRecord, 'id' | 'instanceId' | 'task' | 'queuedAt'>): Item {
  const { pk, sk } = runKey(run);
  return { pk: runPk(run.id), sk: RUN_SK, recordPk: pk, recordSk: sk };
}

const locatorSchema = z.object({ recordPk: z.string(), recordSk: z.string() });

export function locatorOf(item: unknown, table: string): { pk: string; sk: string } {
  const { recordPk, recordSk } = parse(locatorSchema, item, `a run locator item of table ${table}`);
  return { pk: recordPk, sk: recordSk };
}

export const TRIGGER_PK = 'trigger';

/** Partition key of what became of a trigger (its result item). */
export function triggerResultPk(id: string): string {
  return `trigger#${id}`;
}

export const TRIGGER_RESULT_SK = 'result';

/**
 * `liveKey` of a run item while its status is live (queued, running, retrying): the one partition
 * of the sparse `byLive` index, which the sweeper reads. A final record has no `liveKey`, so it
 * leaves the index and costs it no write.
 */
export const LIVE_KEY = 'live';

export function logSk(seq: number): string {
  return `log#${numberKey(seq, 'a log line seq')}`;
}

/** Log line sort keys lie between `log#` and `log$` (`$` follows `#`). */
export const LOG_SK_END = 'log$';

// ---------------------------------------------------------------------------------------------
// Shared schemas

const jsonText = z.string().transform((text, ctx): Json => {
  try {
    return parseJson(text);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not JSON text' });
    return z.NEVER;
  }
});

const errorInfoSchema = z.object({ name: z.string(), message: z.string(), stack: z.string().optional() });
const progressSchema = z.object({
  current: z.number(),
  total: z.number().optional(),
  message: z.string().optional(),
  updatedAt: z.number(),
});
const retrySchema = z.object({
  attempts: z.number(),
  backoffMs: z.number(),
  factor: z.number(),
  maxBackoffMs: z.number(),
  jitter: z.number(),
});
const kindSchema = z.enum(['batch', 'continuous']);
const originSchema = z.enum(['schedule', 'followup', 'manual', 'retry', 'restart', 'takeover']);
const routeSchema = z.enum(['queue', 'conductor', 'fargate']);

/** A JSON text holding a value of `schema`. */
function jsonOf<T extends z.ZodType>(schema: T) {
  return jsonText.transform((value, ctx): z.output<T> => {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    ctx.addIssue({ code: 'custom', message: z.prettifyError(result.error) });
    return z.NEVER;
  });
}

/** Parses an item read back, or fails naming the table and what was expected. */
function parse<T extends z.ZodType>(schema: T, item: unknown, what: string): z.output<T> {
  const result = schema.safeParse(item);
  if (result.success) return result.data;
  throw new StoreError(
    `${what} does not have the shape this adapter writes (${z.prettifyError(result.error).replace(/\n/g, '; ')}); was it written by another program or an incompatible ujr version?`,
  );
}

/** Copies `source` without its `undefined` values (DynamoDB has no `undefined`). */
export function defined<T extends Record<string, unknown>>(source: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source)) if (value !== undefined) out[key] = value;
  return out as { [K in keyof T]: Exclude<T[K], undefined> };
}

// ---------------------------------------------------------------------------------------------
// Leases table

/** Attributes of a lease item that make the `Lease` (and that release keeps, but `owner`). */
export const LEASE_ATTRIBUTES = ['signature', 'owner', 'expiresAt', 'token', 'runId', 'instanceId', 'task'] as const;

/** Attributes written with the lease while a task is on the board; release removes them. */
export const TASK_ATTRIBUTES = [
  'route',
  'routeKey',
  'jobType',
  'kind',
  'input',
  'attempt',
  'maxAttempts',
  'origin',
  'queuedAt',
  'timeoutMs',
  'retry',
  'startedAt',
  'progress',
  'stopRequested',
  'previousRunId',
  'limits',
  'notBefore',
] as const;

const checkpointAttributeSchema = z.object({ value: jsonText, runId: z.string(), at: z.number() });

const leaseItemSchema = z.object({
  signature: z.string(),
  token: z.number().optional(),
  owner: z.string().optional(),
  expiresAt: z.number().optional(),
  runId: z.string().optional(),
  instanceId: z.string().optional(),
  task: z.string().optional(),
  /** The entry's route; `routeKey`, the `byRoute` index key, is set only for the indexed routes (../tables.ts). */
  route: routeSchema.optional(),
  routeKey: z.string().optional(),
  jobType: z.string().optional(),
  kind: kindSchema.optional(),
  input: jsonText.optional(),
  attempt: z.number().optional(),
  maxAttempts: z.number().optional(),
  origin: originSchema.optional(),
  queuedAt: z.number().optional(),
  timeoutMs: z.number().optional(),
  retry: jsonOf(retrySchema).optional(),
  startedAt: z.number().optional(),
  progress: jsonOf(progressSchema).optional(),
  stopRequested: z.boolean().optional(),
  previousRunId: z.string().optional(),
  limits: jsonOf(z.array(z.object({ name: z.string(), key: z.string() }))).optional(),
  notBefore: z.number().optional(),
  checkpoint: checkpointAttributeSchema.optional(),
  /** When the lease was last released (the scheduler's guard against stale plans). */
  releasedAt: z.number().optional(),
  /** The run whose end the last release recorded: its final record is written just after the release. */
  endedRunId: z.string().optional(),
  /** Pointers to the signature's runs (./dynamo/run-pointers.ts). */
  lastRunId: z.string().optional(),
  lastRunAt: z.number().optional(),
  lastSuccessId: z.string().optional(),
  lastSuccessAt: z.number().optional(),
  headRunId: z.string().optional(),
  headPriorRunId: z.string().optional(),
});
type LeaseItem = z.output<typeof leaseItemSchema>;

/** A lease item read back; `undefined` for no item. */
export function parseLeaseItem(item: unknown, table: string): LeaseItem | undefined {
  if (item === undefined) return undefined;
  return parse(leaseItemSchema, item, `an item of leases table ${table}`);
}

/** The `Lease` of an item; `undefined` when the signature was never leased (no token yet). */
export function leaseOf(item: LeaseItem | undefined, table: string): Lease | undefined {
  if (item?.token === undefined) return undefined;
  if (item.instanceId === undefined || item.task === undefined) {
    throw new StoreError(`lease ${item.signature} in table ${table} has a token but no instanceId or task; it was not written by this adapter`);
  }
  return {
    signature: item.signature,
    owner: item.owner ?? null,
    expiresAt: item.expiresAt ?? 0,
    token: item.token,
    runId: item.runId ?? null,
    instanceId: item.instanceId,
    task: item.task,
  };
}

/** The checkpoint kept in a lease item, if any. */
export function checkpointOf(item: LeaseItem | undefined): Checkpoint | undefined {
  if (!item?.checkpoint) return undefined;
  return { signature: item.signature, value: item.checkpoint.value, runId: item.checkpoint.runId, at: item.checkpoint.at };
}

export function checkpointAttribute(checkpoint: Checkpoint): Item {
  return { value: JSON.stringify(checkpoint.value), runId: checkpoint.runId, at: checkpoint.at };
}

/**
 * The board entry of an item: `undefined` unless it is leased with a task on a route (a lease
 * taken through `acquireLeases` has none). `withCheckpoint`: include the checkpoint if stored.
 */
export function entryOf(item: LeaseItem | undefined, table: string, withCheckpoint = true): BoardEntry | undefined {
  const lease = leaseOf(item, table);
  if (!item || !lease || lease.owner === null || lease.runId === null) return undefined;
  const { route, jobType, kind, input, attempt, maxAttempts, origin, queuedAt } = item;
  if (route === undefined || jobType === undefined || kind === undefined || input === undefined) return undefined;
  if (attempt === undefined || maxAttempts === undefined || origin === undefined || queuedAt === undefined) return undefined;
  const entry: BoardEntry = {
    signature: lease.signature,
    owner: lease.owner,
    token: lease.token,
    expiresAt: lease.expiresAt,
    runId: lease.runId,
    instanceId: lease.instanceId,
    jobType,
    task: lease.task,
    kind,
    route,
    input,
    attempt,
    maxAttempts,
    origin,
    queuedAt,
  };
  if (item.timeoutMs !== undefined) entry.timeoutMs = item.timeoutMs;
  if (item.retry !== undefined) entry.retry = item.retry;
  if (item.startedAt !== undefined) entry.startedAt = item.startedAt;
  if (item.progress !== undefined) entry.progress = item.progress;
  if (item.stopRequested === true) entry.stopRequested = true;
  if (item.previousRunId !== undefined) entry.previousRunId = item.previousRunId;
  if (item.limits !== undefined && item.limits.length > 0) entry.limits = item.limits;
  if (item.notBefore !== undefined) entry.notBefore = item.notBefore;
  const checkpoint = withCheckpoint ? checkpointOf(item) : undefined;
  if (checkpoint) entry.checkpoint = checkpoint;
  return entry;
}

/** The attributes `post` writes for a task (those it leaves out are removed). */
export function taskAttributes(task: BoardTask): Item {
  return defined({
    route: task.route,
    routeKey: isIndexedRoute(task.route) ? task.route : undefined,
    jobType: task.jobType,
    kind: task.kind,
    input: JSON.stringify(task.input),
    attempt: task.attempt,
    maxAttempts: task.maxAttempts,
    origin: task.origin,
    queuedAt: task.queuedAt,
    timeoutMs: task.timeoutMs,
    retry: task.retry === undefined ? undefined : JSON.stringify(task.retry),
    previousRunId: task.previousRunId,
    limits: task.limits === undefined || task.limits.length === 0 ? undefined : JSON.stringify(task.limits.map(({ name, key }) => ({ name, key }))),
    notBefore: task.notBefore,
  });
}

// ---------------------------------------------------------------------------------------------
// Runs table: runs, log lines, triggers

/**
 * The item of a run record, with the attributes its index is keyed on, and `priorRunId`, the
 * run of its signature written before it (./dynamo/run-pointers.ts) when given.
 */
export function runItem(run: RunRecord, priorRunId?: string): Item {
  return defined({
    ...runKey(run),
    id: run.id,
    instanceId: run.instanceId,
    jobType: run.jobType,
    task: run.task,
    signature: run.signature,
    kind: run.kind,
    status: run.status,
    attempt: run.attempt,
    maxAttempts: run.maxAttempts,
    origin: run.origin,
    runner: run.runner,
    fencingToken: run.fencingToken,
    queuedAt: run.queuedAt,
    startedAt: run.startedAt,
    endedAt: run.endedAt,
    input: JSON.stringify(run.input),
    result: run.result === undefined ? undefined : JSON.stringify(run.result),
    error: run.error === undefined ? undefined : JSON.stringify(run.error),
    progress: run.progress === undefined ? undefined : JSON.stringify(run.progress),
    previousRunId: run.previousRunId,
    nextRunId: run.nextRunId,
    triggerId: run.triggerId,
    priorRunId,
    liveKey: LIVE_STATUSES.includes(run.status) ? LIVE_KEY : undefined,
    queuedKey: `${numberKey(run.queuedAt, 'a run’s queuedAt')}#${run.id}`,
  });
}

const runItemSchema = z.object({
  id: z.string(),
  instanceId: z.string(),
  jobType: z.string(),
  task: z.string(),
  signature: z.string(),
  kind: kindSchema,
  status: z.enum(RUN_STATUSES),
  attempt: z.number(),
  maxAttempts: z.number(),
  origin: originSchema,
  runner: z.string(),
  fencingToken: z.number(),
  queuedAt: z.number(),
  startedAt: z.number().optional(),
  endedAt: z.number().optional(),
  input: jsonText,
  result: jsonText.optional(),
  error: jsonOf(errorInfoSchema).optional(),
  progress: jsonOf(progressSchema).optional(),
  previousRunId: z.string().optional(),
  nextRunId: z.string().optional(),
  triggerId: z.string().optional(),
});

export function runOf(item: unknown, table: string): RunRecord {
  const parsed = parse(runItemSchema, item, `a run item of table ${table}`);
  const run: RunRecord = {
    id: parsed.id,
    instanceId: parsed.instanceId,
    jobType: parsed.jobType,
    task: parsed.task,
    signature: parsed.signature,
    kind: parsed.kind,
    status: parsed.status,
    attempt: parsed.attempt,
    maxAttempts: parsed.maxAttempts,
    origin: parsed.origin,
    runner: parsed.runner,
    fencingToken: parsed.fencingToken,
    queuedAt: parsed.queuedAt,
    input: parsed.input,
  };
  if (parsed.startedAt !== undefined) run.startedAt = parsed.startedAt;
  if (parsed.endedAt !== undefined) run.endedAt = parsed.endedAt;
  if (parsed.result !== undefined) run.result = parsed.result;
  if (parsed.error !== undefined) run.error = defined(parsed.error);
  if (parsed.progress !== undefined) run.progress = defined(parsed.progress);
  if (parsed.previousRunId !== undefined) run.previousRunId = parsed.previousRunId;
  if (parsed.nextRunId !== undefined) run.nextRunId = parsed.nextRunId;
  if (parsed.triggerId !== undefined) run.triggerId = parsed.triggerId;
  return run;
}

/**
 * Attributes of a run item that a version of the record may lack (its update removes them), all
 * but `priorRunId`, which is set once.
 */
export const OPTIONAL_RUN_ATTRIBUTES = ['startedAt', 'endedAt', 'result', 'error', 'progress', 'previousRunId', 'nextRunId', 'triggerId', 'liveKey'] as const;

const runLinkSchema = z.object({ priorRunId: z.string().optional() });

/** The run of its signature written before this one, as its item names it. */
export function priorOf(item: unknown, table: string): string | undefined {
  return parse(runLinkSchema, item, `a run item of table ${table}`).priorRunId;
}

/** What `pruneRuns` reads of each run. */
const runBriefSchema = z.object({
  id: z.string(),
  instanceId: z.string(),
  task: z.string(),
  signature: z.string(),
  status: z.enum(RUN_STATUSES),
  queuedAt: z.number(),
  endedAt: z.number().optional(),
  priorRunId: z.string().optional(),
});
export type RunBrief = z.output<typeof runBriefSchema>;
export const RUN_BRIEF_ATTRIBUTES = ['id', 'instanceId', 'task', 'signature', 'status', 'queuedAt', 'endedAt', 'priorRunId'] as const;

export function runBriefOf(item: unknown, table: string): RunBrief {
  return parse(runBriefSchema, item, `a run item of table ${table}`);
}

export function logItem(line: LogLine): Item {
  return { pk: runPk(line.runId), sk: logSk(line.seq), runId: line.runId, seq: line.seq, at: line.at, level: line.level, message: line.message };
}

const logItemSchema = z.object({
  runId: z.string(),
  seq: z.number(),
  at: z.number(),
  level: z.enum(['debug', 'info', 'warn', 'error']),
  message: z.string(),
});

export function logOf(item: unknown, table: string): LogLine {
  return parse(logItemSchema, item, `a log item of table ${table}`);
}

/**
 * A trigger's item. The sort key orders triggers by `at`, then by `order` (a monotonic ULID made
 * when it was added), so that triggers of the same time go out in the order they came in.
 */
export function triggerItem(trigger: Trigger, order: string): Item {
  return defined({
    pk: TRIGGER_PK,
    sk: `${numberKey(trigger.at, 'a trigger’s at')}#${order}`,
    id: trigger.id,
    instanceId: trigger.instanceId,
    task: trigger.task,
    input: trigger.input === undefined ? undefined : JSON.stringify(trigger.input),
    cancelRunId: trigger.cancelRunId,
    at: trigger.at,
  });
}

const triggerItemSchema = z.object({
  sk: z.string(),
  id: z.string(),
  instanceId: z.string(),
  task: z.string().optional(),
  input: jsonText.optional(),
  cancelRunId: z.string().optional(),
  at: z.number(),
});

export function triggerOf(item: unknown, table: string): { sk: string; trigger: Trigger } {
  const parsed = parse(triggerItemSchema, item, `a trigger item of table ${table}`);
  const trigger: Trigger = { id: parsed.id, instanceId: parsed.instanceId, at: parsed.at };
  if (parsed.task !== undefined) trigger.task = parsed.task;
  if (parsed.input !== undefined) trigger.input = parsed.input;
  if (parsed.cancelRunId !== undefined) trigger.cancelRunId = parsed.cancelRunId;
  return { sk: parsed.sk, trigger };
}

export function triggerResultItem(result: TriggerResult): Item {
  return defined({
    pk: triggerResultPk(result.id),
    sk: TRIGGER_RESULT_SK,
    id: result.id,
    instanceId: result.instanceId,
    at: result.at,
    runIds: JSON.stringify(result.runIds),
    note: result.note,
  });
}

const triggerResultItemSchema = z.object({
  id: z.string(),
  instanceId: z.string(),
  at: z.number(),
  runIds: jsonOf(z.array(z.string())),
  note: z.string().optional(),
});

export function triggerResultOf(item: unknown, table: string): TriggerResult {
  const parsed = parse(triggerResultItemSchema, item, `a trigger result item of table ${table}`);
  const result: TriggerResult = { id: parsed.id, instanceId: parsed.instanceId, at: parsed.at, runIds: parsed.runIds };
  if (parsed.note !== undefined) result.note = parsed.note;
  return result;
}

// ---------------------------------------------------------------------------------------------
// Instances table

export const CONFIG_KIND = 'config';
export const STATUS_KIND = 'status';
/** The follow-up gate of an instance (./dynamo/follow-ups.ts). */
export const FOLLOWUP_KIND = 'followup';
/** The note that an instance has run records (./dynamo/run-instances.ts). */
export const RUNS_KIND = 'runs';

export function stateKind(key: string): string {
  return `state#${key}`;
}

export function statusItem(status: InstanceStatus): Item {
  return defined({
    instanceId: status.instanceId,
    kind: STATUS_KIND,
    retiredAt: status.retiredAt,
    retiredReason: status.retiredReason,
    planError: status.planError === undefined ? undefined : JSON.stringify(status.planError),
    lastPlannedAt: status.lastPlannedAt,
  });
}

const statusItemSchema = z.object({
  instanceId: z.string(),
  retiredAt: z.number().optional(),
  retiredReason: z.string().optional(),
  planError: jsonOf(errorInfoSchema.extend({ at: z.number() })).optional(),
  lastPlannedAt: z.number().optional(),
});

export function statusOf(item: unknown, table: string): InstanceStatus {
  const parsed = parse(statusItemSchema, item, `a status item of table ${table}`);
  const status: InstanceStatus = { instanceId: parsed.instanceId };
  if (parsed.retiredAt !== undefined) status.retiredAt = parsed.retiredAt;
  if (parsed.retiredReason !== undefined) status.retiredReason = parsed.retiredReason;
  if (parsed.planError !== undefined) status.planError = defined(parsed.planError);
  if (parsed.lastPlannedAt !== undefined) status.lastPlannedAt = parsed.lastPlannedAt;
  return status;
}

const stateItemSchema = z.object({ value: jsonText });

export function stateOf(item: unknown, table: string): Json {
  return parse(stateItemSchema, item, `a state item of table ${table}`).value;
}

const jsonObjectSchema = z.record(z.string(), z.unknown());

const configItemSchema = z.object({
  kind: z.literal(CONFIG_KIND),
  config: jsonObjectSchema.optional(),
  overrides: jsonObjectSchema.optional(),
});

/** The effective entry of a config item (`{ ...config, ...overrides }`); `undefined` without a config. */
export function entryOfConfigItem(item: unknown, table: string): Record<string, unknown> | undefined {
  const parsed = parse(configItemSchema, item, `a config item of table ${table}`);
  if (!parsed.config) return undefined;
  return { ...parsed.config, ...parsed.overrides };
}

// ---------------------------------------------------------------------------------------------
// Raw attribute values

/**
 * The plain value of a raw attribute value, for the one place the SDK hands items back
 * unconverted: the `Item` of a `ConditionalCheckFailedException`. Covers the types this adapter
 * writes; the caller parses the result with the schemas above.
 */
export function plainOf(value: AttributeValue): unknown {
  if (value.S !== undefined) return value.S;
  if (value.N !== undefined) return Number(value.N);
  if (value.BOOL !== undefined) return value.BOOL;
  if (value.NULL !== undefined) return null;
  if (value.M !== undefined) return plainItem(value.M);
  if (value.L !== undefined) return value.L.map(plainOf);
  if (value.SS !== undefined) return new Set(value.SS);
  if (value.NS !== undefined) return new Set(value.NS.map(Number));
  return undefined;
}

export function plainItem(item: Record<string, AttributeValue>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(item)) out[key] = plainOf(value);
  return out;
}
