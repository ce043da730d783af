/**
 * Runs one claimed board entry's handler: the part the worker Lambda, the conductor and the
 * long-task container share. It builds the task context over the board (heartbeats renew the
 * lease and carry progress, checkpoints are fenced writes into the entry), enforces the time
 * budget, notices a lost lease or a stop request, and returns the finished run record. What
 * happens next (release, retry, dead-letter, restart) is up to the caller.
 */
import { CancelledError, LeaseLostError, ResultTooLargeError, TaskProcessError, TaskTimeoutError, withCause } from '../errors.js';
import { failure, runHandler, type AttemptOutcome, type Executor } from '../engine/executor.js';
import type { LeaseRef } from '../ports/store.js';
import type { ErrorInfo, JobType, LogLevel, ObjectStore, Progress, RunRecord, RunStatus, TaskDefinition } from '../types.js';
import type { Board, BoardEntry } from './board.js';
import type { LogFields, Telemetry } from './ports.js';

export interface AttemptDeps {
  board: Board;
  objects: ObjectStore;
  telemetry: Telemetry;
  now: () => number;
}

export interface AttemptRequest {
  entry: BoardEntry;
  job: JobType;
  definition: TaskDefinition;
  params: unknown;
  /** The claimer (the entry's owner now). */
  owner: string;
  /** The handler's time budget; past it the handler is aborted with a timeout. */
  budgetMs: number | undefined;
  /** Lease lifetime used by renewals. */
  leaseTtlMs: number;
  /** Renew the lease this often, heartbeat or not (conductors). Default: only on heartbeat(). */
  renewEveryMs?: number;
  /** After an abort, how long the handler gets to return before it is abandoned. */
  graceMs: number;
  /** Stops the attempt from outside (shutdown); its reason becomes the abort reason. */
  signal?: AbortSignal;
  maxResultBytes: number;
  /**
   * Where the handler runs: the conductor passes a ProcessExecutor, so that a handler that blocks
   * its event loop cannot hold up the renewals of the caller's other leases; once an aborted
   * handler's grace period is over, its process is killed. Default: in this process.
   */
  executor?: Executor;
  /** Called after each renewal that found the lease still held (the worker renews the task's limit slots with it). */
  onRenewed?: () => void;
  /** `tctx.limits.backoff(name, retryAfterMs)`; without it the handler's call is refused (no shared limits here). */
  backoff?: (name: string, retryAfterMs: number) => Promise<void>;
}

export interface AttemptResult {
  /** The run record as it ended (final; a `failed` one the caller may link to its next attempt). */
  run: RunRecord;
  outcome: AttemptOutcome;
  /** Why the attempt was aborted, if it was. */
  abortReason?: Error;
  ref: LeaseRef;
}

/** Log fields every line about this entry carries. */
export function entryFields(entry: Pick<BoardEntry, 'instanceId' | 'jobType' | 'task' | 'signature' | 'runId'>): LogFields {
  return { instanceId: entry.instanceId, jobType: entry.jobType, task: entry.task, signature: entry.signature, runId: entry.runId };
}

/** The run record of a board entry, as `running` (or `queued` while nobody started it). */
export function baseRun(entry: BoardEntry, owner: string, startedAt: number | undefined): RunRecord {
  const run: RunRecord = {
    id: entry.runId,
    instanceId: entry.instanceId,
    jobType: entry.jobType,
    task: entry.task,
    signature: entry.signature,
    kind: entry.kind,
    status: startedAt === undefined ? 'queued' : 'running',
    attempt: entry.attempt,
    maxAttempts: entry.maxAttempts,
    origin: entry.origin,
    runner: owner,
    fencingToken: entry.token,
    queuedAt: entry.queuedAt,
    input: entry.input,
  };
  if (startedAt !== undefined) run.startedAt = startedAt;
  if (entry.previousRunId !== undefined) run.previousRunId = entry.previousRunId;
  return run;
}

/** The record of an attempt that ended without its handler running (called off, unusable, taken over). */
export function endedRun(entry: BoardEntry, owner: string, at: number, status: RunStatus, error: ErrorInfo, startedAt = at): RunRecord {
  return { ...baseRun(entry, owner, startedAt), status, endedAt: at, error };
}

export async function runAttempt(deps: AttemptDeps, request: AttemptRequest): Promise<AttemptResult> {
  const { board, telemetry, now } = deps;
  const { entry } = request;
  const ref: LeaseRef = { signature: entry.signature, owner: request.owner, token: entry.token };
  const fields = entryFields(entry);
  const run = baseRun(entry, request.owner, now());
  const controller = new AbortController();
  let abortReason: Error | undefined;
  const abort = (reason: Error) => {
    if (controller.signal.aborted) return;
    abortReason = reason;
    controller.abort(reason);
  };
  let progress: Progress | undefined;
  let renewing: Promise<void> | undefined;
  let lastRenewal = now();

  const renew = (): Promise<void> => {
    renewing ??= (async () => {
      try {
        const result = await board.heartbeat(ref, request.leaseTtlMs, now(), progress);
        lastRenewal = now();
        if (!result.held) abort(new LeaseLostError(`the lease of "${entry.signature}" was taken over (token ${entry.token} is no longer current); this attempt stops and writes nothing more`));
        else request.onRenewed?.();
        if (result.held && result.stopRequested) abort(new CancelledError(`task "${entry.task}" of instance "${entry.instanceId}" was asked to stop: the job no longer returns it, or its instance was disabled or retired`));
      } catch (error) {
        telemetry.log('warn', 'could not renew the lease; will try again', { ...fields, error: (error as Error).message });
      } finally {
        renewing = undefined;
      }
    })();
    return renewing;
  };

  const timers: NodeJS.Timeout[] = [];
  if (request.budgetMs !== undefined) {
    const budget = request.budgetMs;
    timers.push(setTimeout(() => abort(new TaskTimeoutError(budget)), budget));
  }
  if (request.renewEveryMs !== undefined) {
    timers.push(setInterval(() => void renew(), request.renewEveryMs));
  }
  // The watchdog, as locally: renewals on a timer keep a hung handler's lease alive, so a task
  // that says how often it heartbeats is stopped when it stops doing so.
  const watchdogMs = request.definition.heartbeatTimeoutMs;
  const watchdog =
    watchdogMs === undefined ? undefined : setTimeout(() => abort(new TaskProcessError(`no heartbeat for ${watchdogMs} ms; the task is considered hung and is stopped`)), watchdogMs);
  if (watchdog) timers.push(watchdog);
  const onExternalAbort = () => abort(request.signal?.reason instanceof Error ? request.signal.reason : new CancelledError('stopped'));
  if (request.signal?.aborted) onExternalAbort();
  request.signal?.addEventListener('abort', onExternalAbort, { once: true });

  const executor = request.executor ?? inThisProcess(deps.objects, controller.signal);
  const handle = executor.start(
    request.job,
    request.definition,
    {
      runId: entry.runId,
      instanceId: entry.instanceId,
      jobType: entry.jobType,
      task: entry.task,
      signature: entry.signature,
      attempt: entry.attempt,
      input: entry.input,
      params: request.params,
      fencingToken: entry.token,
      lastCheckpoint: entry.checkpoint?.value,
    },
    {
      started() {},
      log(level: LogLevel, message: string) {
        telemetry.log(level, message, fields);
      },
      progress(current, total, message) {
        progress = { current, updatedAt: now() };
        if (total !== undefined) progress.total = total;
        if (message !== undefined) progress.message = message;
      },
      heartbeat() {
        watchdog?.refresh();
        // At most one renewal per tenth of the lease: handlers may call heartbeat() in tight loops.
        if (now() - lastRenewal >= request.leaseTtlMs / 10) void renew();
      },
      async fence() {
        // A consistent read of the lease item: the attempt's writes to the object store go ahead
        // only while its owner and token are still the lease's.
        const lease = await board.getLease(entry.signature);
        if (lease?.owner !== ref.owner || lease.token !== ref.token) {
          const error = new LeaseLostError(`the lease of "${entry.signature}" moved on (token ${entry.token} is no longer current); the write was not made`);
          abort(error);
          throw error;
        }
      },
      ...(request.backoff ? { backoff: request.backoff } : {}),
      async checkpoint(value) {
        const held = await board.saveCheckpoint(ref, { signature: entry.signature, value, runId: entry.runId, at: now() });
        if (!held) {
          const error = new LeaseLostError(`the lease of "${entry.signature}" was taken over; the checkpoint was not stored`);
          abort(error);
          throw error;
        }
      },
    },
  );
  const relayAbort = () => handle.abort(controller.signal.reason instanceof Error ? controller.signal.reason : new CancelledError('stopped'));
  if (controller.signal.aborted) relayAbort();
  else controller.signal.addEventListener('abort', relayAbort, { once: true });

  let outcome: AttemptOutcome;
  try {
    outcome = await abandonAfterAbort(handle.done, controller.signal, request.graceMs);
  } finally {
    // A handler abandoned after its grace period: killed if it runs in a process of its own.
    handle.kill();
    for (const timer of timers) clearTimeout(timer);
    request.signal?.removeEventListener('abort', onExternalAbort);
    await renewing;
  }
  outcome = checkResultSize(outcome, request.maxResultBytes);
  run.endedAt = now();
  if (progress) run.progress = progress;
  const reason = abortReason;
  if (reason !== undefined) {
    // Status from the abort reason first: a handler that returns ok after its lease was lost (or
    // it timed out, or was stopped) did not succeed as far as the store is concerned.
    const handled = outcome;
    outcome = failure(reason);
    run.status = statusFor(reason);
    const error = outcome.ok ? { name: 'Error', message: 'aborted' } : outcome.error;
    // One error, the reason's, with what the handler threw (or how its process ended) as its cause, as locally.
    run.error = handled.ok ? error : withCause(error, handled.error);
  } else if (outcome.ok) {
    run.status = 'succeeded';
    if (outcome.result !== undefined) run.result = outcome.result;
  } else {
    run.status = outcome.skip ? 'skipped' : 'failed';
    run.error = outcome.error;
  }
  return reason === undefined ? { run, outcome, ref } : { run, outcome, ref, abortReason: reason };
}

/** Runs the handler in this process, on the attempt's own signal (nothing to relay, nothing to kill). */
function inThisProcess(objects: ObjectStore, signal: AbortSignal): Executor {
  return {
    start: (_job, definition, request, hooks) => ({ done: runHandler(definition, request, hooks, objects, signal), abort: () => undefined, kill: () => false }),
    close: () => Promise.resolve(),
  };
}

/** Why an attempt was aborted decides how its run ends; a failure is `failed` until the caller retries it. */
function statusFor(reason: Error | undefined): RunStatus {
  if (reason instanceof LeaseLostError) return 'interrupted';
  if (reason instanceof CancelledError) return 'cancelled';
  if (reason && reason.name === 'ShutdownError') return 'interrupted';
  return 'failed';
}

/** Waits for the handler; once aborted, waits at most `graceMs` more (an inline handler cannot be killed). */
function abandonAfterAbort(done: Promise<AttemptOutcome>, signal: AbortSignal, graceMs: number): Promise<AttemptOutcome> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      timer = setTimeout(() => resolve(failure(signal.reason)), graceMs);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    void done.then((outcome) => {
      if (timer) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(outcome);
    });
  });
}

function checkResultSize(outcome: AttemptOutcome, maxBytes: number): AttemptOutcome {
  if (!outcome.ok || outcome.result === undefined) return outcome;
  const bytes = Buffer.byteLength(JSON.stringify(outcome.result));
  if (bytes <= maxBytes) return outcome;
  return failure(
    new ResultTooLargeError(`the task's result is ${bytes} bytes, over the ${maxBytes}-byte limit of a run record; write large results to the object store (ctx.objects) and return their key`),
  );
}
