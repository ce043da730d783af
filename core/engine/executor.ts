/**
 * Executors start one attempt of a task somewhere: in this process (inline) or in a child
 * process (continuous and isolated tasks). The runner owns everything else (leases, records,
 * timeouts, retries); an executor only runs the handler and relays what it reports.
 */
import { isRetryable, isSkip, rateLimitOf, toErrorInfo } from '../errors.js';
import { canonicalJson } from '../signature.js';
import type { ErrorInfo, Json, JobType, LogLevel, ObjectStore, TaskContext, TaskDefinition } from '../types.js';

/** Everything an attempt needs to run, as plain data (it crosses process boundaries). */
export interface AttemptRequest {
  runId: string;
  instanceId: string;
  jobType: string;
  task: string;
  signature: string;
  attempt: number;
  input: Json;
  params: unknown;
  fencingToken: number;
  lastCheckpoint: Json | undefined;
}

/** What a running attempt reports back to the runner. */
export interface AttemptHooks {
  /** The handler is about to run (a child process has booted); timeouts count from here. */
  started(): void;
  log(level: LogLevel, message: string): void;
  progress(current: number, total: number | undefined, message: string | undefined): void;
  heartbeat(): void;
  /** Stores a checkpoint under the attempt's lease; rejects with `LeaseLostError` when the lease moved on. */
  checkpoint(value: Json): Promise<void>;
  /** Confirms the attempt's lease is still current; rejects with `LeaseLostError` when it is not. */
  fence(): Promise<void>;
  /**
   * Drains the attempt's shared limits named `name` for `retryAfterMs` (`tctx.limits.backoff`);
   * rejects when the task does not take that limit. A runtime without shared limits has none.
   */
  backoff?(name: string, retryAfterMs: number): Promise<void>;
}

/** What a handler's `RateLimitedError` asked for: back off (that limit, or all the task's) and queue again. */
export interface RateLimitRequest {
  retryAfterMs: number;
  limit?: string;
}

export type AttemptOutcome =
  | { ok: true; result: Json | undefined }
  | { ok: false; error: ErrorInfo; retryable: boolean; skip: boolean; rateLimited?: RateLimitRequest };

export interface AttemptHandle {
  /** Settles when the handler returned or threw, or its process ended. Never rejects. */
  readonly done: Promise<AttemptOutcome>;
  /** Asks the handler to stop (its AbortSignal fires with `reason`). */
  abort(reason: Error): void;
  /** Stops it for sure, if this executor can; returns whether it could. */
  kill(): boolean;
}

export interface Executor {
  start(job: JobType, definition: TaskDefinition, request: AttemptRequest, hooks: AttemptHooks): AttemptHandle;
  /** Stops whatever it still runs (used at shutdown after the grace period). */
  close(): Promise<void>;
}

/**
 * Builds the task context over hooks and runs the handler; shared by the inline executor and the
 * child-process host so a handler sees the same context in both.
 */
export function runHandler(
  definition: TaskDefinition,
  request: AttemptRequest,
  hooks: AttemptHooks,
  objects: ObjectStore,
  signal: AbortSignal,
): Promise<AttemptOutcome> {
  const log = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) =>
    hooks.log(level, fields === undefined ? message : `${message} ${safeFields(fields)}`);
  const tctx: TaskContext = {
    runId: request.runId,
    instanceId: request.instanceId,
    task: request.task,
    signature: request.signature,
    attempt: request.attempt,
    params: request.params,
    signal,
    log: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    progress: (current, total, message) => hooks.progress(current, total, message),
    heartbeat: () => hooks.heartbeat(),
    checkpoint: async (value) => {
      // Checked here, in whichever process runs the handler, so that the call rejects naming the value.
      canonicalJson(value, 'checkpoint');
      return hooks.checkpoint(value);
    },
    lastCheckpoint: request.lastCheckpoint,
    fencingToken: request.fencingToken,
    objects: fencedObjects(objects, () => hooks.fence()),
    limits: {
      backoff: async (name, retryAfterMs) => {
        if (typeof name !== 'string' || !(Number.isFinite(retryAfterMs) && retryAfterMs >= 0)) {
          throw new TypeError(`tctx.limits.backoff(name, retryAfterMs) needs a limit name and a non-negative number of ms, got (${JSON.stringify(name)}, ${String(retryAfterMs)})`);
        }
        if (!hooks.backoff) throw new Error(`tctx.limits.backoff: shared limits are not kept by this runtime (task "${request.task}")`);
        return hooks.backoff(name, retryAfterMs);
      },
    },
  };
  hooks.started();
  return settle(() => definition.run(request.input, tctx));
}

/** Turns a handler call into an outcome; the result must be JSON. */
export async function settle(call: () => unknown): Promise<AttemptOutcome> {
  let value: unknown;
  try {
    value = await call();
  } catch (error) {
    return failure(error);
  }
  if (value === undefined) return { ok: true, result: undefined };
  try {
    canonicalJson(value, 'result');
  } catch (error) {
    return { ok: false, error: toErrorInfo(error), retryable: false, skip: false };
  }
  return { ok: true, result: value as Json };
}

export function failure(error: unknown): AttemptOutcome {
  const rateLimited = rateLimitOf(error);
  return { ok: false, error: toErrorInfo(error), retryable: isRetryable(error), skip: isSkip(error), ...(rateLimited ? { rateLimited } : {}) };
}

/**
 * The task's view of the object store: every write (`put`, `delete`) first confirms that the
 * attempt's lease is still current, so a stale holder (one whose lease was taken over while it
 * was stopped or hung) gets `LeaseLostError` instead of overwriting the new holder's objects.
 * Reads are not fenced.
 */
export function fencedObjects(objects: ObjectStore, fence: () => Promise<void>): ObjectStore {
  return {
    get: (key) => objects.get(key),
    getText: (key) => objects.getText(key),
    stat: (key) => objects.stat(key),
    list: (prefix) => objects.list(prefix),
    async put(key, body) {
      await fence();
      await objects.put(key, body);
    },
    async delete(key) {
      await fence();
      await objects.delete(key);
    },
  };
}

function safeFields(fields: Record<string, unknown>): string {
  try {
    return JSON.stringify(fields);
  } catch {
    return '[unserializable fields]';
  }
}

/** Runs handlers in this process: the fastest path, for batch tasks that honour their AbortSignal. */
export class InlineExecutor implements Executor {
  constructor(private readonly objects: ObjectStore) {}

  start(_job: JobType, definition: TaskDefinition, request: AttemptRequest, hooks: AttemptHooks): AttemptHandle {
    const controller = new AbortController();
    const done = runHandler(definition, request, hooks, this.objects, controller.signal);
    return {
      done,
      abort: (reason) => controller.abort(reason),
      kill: () => false,
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
