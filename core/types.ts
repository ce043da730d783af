/**
 * The words of ujr, used the same way everywhere in the code, tests and docs.
 *
 * - **Job type**: code (`defineJob`) that decides, each time it is asked, which tasks are ready to
 *   run (`getRunnableTasks`). It owns a set of named task handlers.
 * - **Job instance**: configuration `{ id, job, params, enabled, schedule }`; one job type can have
 *   many instances (two collectors with different queries).
 * - **Plan**: one call of an instance's `getRunnableTasks`; it happens on the instance's schedule
 *   (a **tick**), as soon as one of its tasks finishes (a **follow-up**), or on a manual trigger.
 * - **Task**: one unit of work returned by a plan: a handler name, a JSON input, a kind (`batch`
 *   runs to completion, `continuous` runs until stopped, in a supervised child process).
 * - **Signature**: the unit of deduplication. Derived from instance id, task name and the
 *   canonical JSON of the input, or given explicitly (and then shareable across instances).
 *   One signature never runs twice at the same time.
 * - **Lease**: the lock on a signature: an owner (a runner), an expiry, renewed by heartbeats and
 *   taken over by another runner once expired. Each acquisition gets a **fencing token**,
 *   monotonic per signature, which tasks can use to fence their own writes.
 * - **Run**: the record of one attempt at a task: status, times, result, error, progress, logs.
 * - **Runner**: the process that plans, takes leases, dispatches attempts, retries and records.
 * - **Conductor** (AWS): a long-lived container that runs continuous tasks from the lease board.
 */
import type { z } from 'zod';

/** A JSON value: what task inputs, results, checkpoints and state are made of. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type TaskKind = 'batch' | 'continuous';

export const RUN_STATUSES = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'skipped',
  'retrying',
  'interrupted',
  'cancelled',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/**
 * Statuses after which an attempt never changes again. The others are live: `queued` (leased,
 * waiting for a slot), `running`, and `retrying` (the next attempt of a failed task, waiting out
 * its backoff with the lease held); each is backed by a live lease or is ended by the sweeper.
 */
export const TERMINAL_STATUSES: ReadonlySet<RunStatus> = new Set([
  'succeeded',
  'failed',
  'skipped',
  'interrupted',
  'cancelled',
]);

/** Statuses of attempts in flight: they hold their signature's lease. */
export const LIVE_STATUSES: readonly RunStatus[] = ['queued', 'running', 'retrying'];

/** Why a run was started. */
export type RunOrigin = 'schedule' | 'followup' | 'manual' | 'retry' | 'restart' | 'takeover';

export interface RetryPolicy {
  /** Total attempts including the first. 1 means no retry. */
  attempts: number;
  /** Delay before the second attempt. */
  backoffMs: number;
  /** Growth of the delay per attempt. */
  factor: number;
  /** Upper bound of one delay. */
  maxBackoffMs: number;
  /** Random share of each delay, 0..1 ("full jitter" at 1). */
  jitter: number;
}

/** What `getRunnableTasks` returns: one task to run now. */
export interface TaskSpec<I extends Json = Json> {
  /** Name of a handler in the job type's `tasks`. */
  task: string;
  /** JSON input handed to the handler. Default `{}`. */
  input?: I;
  /** Overrides the handler's kind. */
  kind?: TaskKind;
  /** Explicit signature; default: a hash of instance id, task name and canonical input. */
  signature?: string;
  /** Overrides the handler's timeout (batch tasks). */
  timeoutMs?: number;
  /** Overrides parts of the handler's retry policy. */
  retry?: Partial<RetryPolicy>;
  /**
   * Replaces the handler's `limits` for this task: limit names, or a name with the key of the
   * bucket to take from (`{ name: 'api', key: 'credential-2' }`).
   */
  limits?: ReadonlyArray<string | { name: string; key?: string }>;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** An object's metadata in the object store. */
export interface ObjectInfo {
  key: string;
  size: number;
  modifiedAt: number;
}

/**
 * Where jobs keep their data (collected files, outputs, reports): a local directory by default,
 * an S3 bucket on AWS. Keys are `/`-separated relative paths such as `collected/a/2026-01-01.jsonl`.
 */
export interface ObjectStore {
  put(key: string, body: string | Uint8Array): Promise<void>;
  /** The object's bytes, or `undefined` when there is none. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** The object as UTF-8 text, or `undefined`. */
  getText(key: string): Promise<string | undefined>;
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Objects whose key starts with `prefix`, sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  delete(key: string): Promise<void>;
}

/** The reading half of an {@link ObjectStore}: what a plan may do with objects. */
export type ObjectReader = Pick<ObjectStore, 'get' | 'getText' | 'stat' | 'list'>;

export interface ErrorInfo {
  name: string;
  message: string;
  stack?: string;
}

export interface Progress {
  current: number;
  total?: number;
  message?: string;
  updatedAt: number;
}

/** One attempt at a task. */
export interface RunRecord {
  id: string;
  instanceId: string;
  jobType: string;
  task: string;
  signature: string;
  kind: TaskKind;
  status: RunStatus;
  attempt: number;
  maxAttempts: number;
  origin: RunOrigin;
  /** The runner (lease owner) that ran it. */
  runner: string;
  fencingToken: number;
  queuedAt: number;
  startedAt?: number;
  endedAt?: number;
  input: Json;
  result?: Json;
  error?: ErrorInfo;
  progress?: Progress;
  /** The attempt before this one, when this one is a retry of it. */
  previousRunId?: string;
  /** The next attempt, when this one failed and the task was retried. */
  nextRunId?: string;
  /** The ad-hoc trigger (`ujr trigger`) whose plan or request created this run. */
  triggerId?: string;
}

export interface LogLine {
  runId: string;
  seq: number;
  at: number;
  level: LogLevel;
  message: string;
}

/** What run-history queries return about one run. */
export type RunSummary = Pick<
  RunRecord,
  'id' | 'instanceId' | 'task' | 'signature' | 'status' | 'attempt' | 'startedAt' | 'endedAt' | 'result'
>;

/**
 * Selects runs in history queries: by task (and input) of an instance, or by signature.
 * `input` is matched through the default signature it derives; for tasks given an explicit
 * signature, query `{ signature }`.
 */
export type HistoryQuery =
  | { task: string; input?: Json; instanceId?: string }
  | { signature: string };

/** What `getRunnableTasks` can see. */
export interface PlanContext<P> {
  instanceId: string;
  params: P;
  /** Why this plan happens. */
  reason: 'schedule' | 'followup' | 'manual' | 'restart';
  /** The runner's clock in epoch milliseconds (fake in tests). */
  now(): number;
  /** A small key/value state of this instance, kept in the store. */
  state: {
    get<T extends Json = Json>(key: string): Promise<T | undefined>;
    set(key: string, value: Json): Promise<void>;
    delete(key: string): Promise<void>;
  };
  /** Run history. `input` is matched through the signature it derives. */
  history: {
    lastSuccess(query: HistoryQuery): Promise<RunSummary | undefined>;
    lastRun(query: HistoryQuery): Promise<RunSummary | undefined>;
  };
  /** The default signature this instance would give `task` with `input`. */
  signatureOf(task: string, input?: Json): string;
  /**
   * The object store, read only: a plan looks at what is there, its tasks write. (On AWS the
   * scheduler may only read the data bucket.)
   */
  objects: ObjectReader;
  log: Logger;
  /** Says the job is finished: the instance is retired, reported, and not planned again. */
  done(reason?: string): void;
}

/** What a running task can see and do. */
export interface TaskContext<P = unknown> {
  runId: string;
  instanceId: string;
  task: string;
  signature: string;
  attempt: number;
  params: P;
  /** Aborted on timeout, shutdown, cancellation or a lost lease; `signal.reason` says which. */
  signal: AbortSignal;
  /** Lines are stored with the run (`ujr logs <runId>`). */
  log: Logger;
  progress(current: number, total?: number, message?: string): void;
  /** Renews the lease now and tells the watchdog the task is alive. */
  heartbeat(): void;
  /** Stores a resumable position; a restarted task gets it back as `lastCheckpoint`. */
  checkpoint(state: Json): Promise<void>;
  /** The shared limits the task takes (its `limits`). */
  limits: {
    /**
     * The API said to slow down (a 429's Retry-After): no task taking limit `name` (the buckets of
     * it this task takes) starts for `retryAfterMs`. Throw `RateLimitedError` instead to also queue
     * this attempt again without counting it as a failure.
     */
    backoff(name: string, retryAfterMs: number): Promise<void>;
  };
  /** The last checkpoint stored under this signature, by any earlier attempt. */
  lastCheckpoint: Json | undefined;
  /** The lease's fencing token: monotonic per signature; pass it along to fence your writes. */
  fencingToken: number;
  objects: ObjectStore;
}

export interface RevertContext<P = unknown> {
  instanceId: string;
  params: P;
  log: Logger;
  objects: ObjectStore;
}

/** A named handler of a job type. */
export interface TaskDefinition<P = unknown, I = any, R = unknown> {
  /** Default `batch`. */
  kind?: TaskKind;
  /** Validates the input at plan time; a bad input is reported, never run. */
  input?: z.ZodType<I>;
  /** Batch default 15 minutes; continuous tasks have none unless set. */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /**
   * Run a batch task in its own child process, so its hard stop kills it for sure and a crash
   * cannot reach the runner. Continuous tasks always are.
   */
  isolate?: boolean;
  /** A task that does not call `heartbeat()` for this long is considered hung and stopped. */
  heartbeatTimeoutMs?: number;
  /**
   * Shared limits (the configuration's `limits`) this task takes from before it starts: a name
   * takes the limit's one bucket; `key` splits it, one bucket per key (a credential, a host).
   * A task waits for every one of them without holding a worker slot.
   */
  limits?: ReadonlyArray<TaskLimit<P, I>>;
  run(input: I, tctx: TaskContext<P>): Promise<R> | R;
  /** Runs once when the task fails for good (after its last attempt). */
  revert?(input: I, error: ErrorInfo, rctx: RevertContext<P>): Promise<void> | void;
}

/** A limit a task takes from: its name, or its name and how to derive the bucket's key. */
export type TaskLimit<P = unknown, I = any> =
  | string
  | {
      name: string;
      /** The bucket's key: one bucket of the limit per key (method syntax, so job types stay assignable). */
      key?(this: void, input: I, params: P): string;
    };

/** A job type, as returned by `defineJob`. */
export interface JobType<P = any> {
  name: string;
  /** Parses instance params into `P`. */
  params: z.ZodType;
  /** The default schedule of its instances. */
  schedule?: string;
  getRunnableTasks(ctx: PlanContext<P>): TaskSpec[] | Promise<TaskSpec[]>;
  tasks: Record<string, TaskDefinition<P>>;
}

/** A validated job instance. */
export interface InstanceConfig {
  id: string;
  job: string;
  params: unknown;
  enabled: boolean;
  schedule: string;
  /** Most tasks of this instance in flight at once (queued tasks wait). */
  concurrency: number;
}
