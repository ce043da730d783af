/** `runTask()`: runs one task's handler with the task context the runner builds, in this process. */
import { capResult } from '../engine/attempt.js';
import { InlineExecutor, failure, type AttemptOutcome } from '../engine/executor.js';
import { resolveSpecs } from '../engine/planner.js';
import { isRetryable, TaskTimeoutError, toErrorInfo } from '../errors.js';
import { MAX_RESULT_BYTES } from '../limits.js';
import type { ErrorInfo, JobType, Json, ObjectStore, TaskKind } from '../types.js';
import { epochOf } from './clock.js';
import { testInstance, type LogEntry } from './context.js';
import { objectStoreOf, type ObjectSeed } from './objects.js';

/**
 * What `runTask()` takes; everything is optional.
 *
 * @example
 * ```ts
 * const options: RunTaskOptions = { params: { source: 'metrics' }, objects: { 'in/a.txt': 'A' }, timeoutMs: 1_000 };
 * ```
 */
export interface RunTaskOptions {
  /** The instance's params (`tctx.params`), validated by the job type's schema. @default {} */
  params?: unknown;
  /** The instance's id. @default the job type's name */
  instanceId?: string;
  /** What `tctx.objects` holds: key → text or bytes, or an object store. @default {} */
  objects?: ObjectStore | ObjectSeed;
  /** `tctx.lastCheckpoint`: what an earlier attempt stored. */
  checkpoint?: Json;
  /** `tctx.attempt`. @default 1 */
  attempt?: number;
  /** The time objects are written at (their `modifiedAt`) and progress is stamped with. @default the current time */
  now?: Date | number;
  /** Aborts the handler's signal with a `TaskTimeoutError` after this long (real time). @default the task's timeout */
  timeoutMs?: number;
  /** Aborting it aborts the handler's signal with its reason, as a runner shutting down does. */
  signal?: AbortSignal;
  /** After an abort, how long the handler gets to return before it is given up on (real time). @default 5000 */
  graceMs?: number;
}

/**
 * One progress report of the handler (`tctx.progress`).
 *
 * @example
 * ```ts
 * (await runTask(job, 'copy', { file: 'a' })).progress; // [{ current: 1, total: 2, message: 'read' }]
 * ```
 */
export interface ProgressUpdate {
  current: number;
  total?: number;
  message?: string;
}

/**
 * How the attempt ended, as the runner would record it, and what the handler did meanwhile.
 *
 * @example
 * ```ts
 * const run = await runTask(job, 'copy', { file: 'a' });
 * if (run.status === 'failed') console.log(run.error?.message, run.retryable);
 * ```
 */
export interface TaskRun {
  /**
   * `succeeded`; `failed` (it threw, timed out, returned a non-JSON or too large result);
   * `skipped` (it threw `SkipError`); `interrupted` (aborted by `signal`, as at shutdown).
   */
  status: 'succeeded' | 'failed' | 'skipped' | 'interrupted';
  /** What the handler returned. */
  result: Json | undefined;
  /** The error as recorded: name, message and stack (the abort reason's name and message after an abort). */
  error: ErrorInfo | undefined;
  /** Whether the runner would try a failed attempt again (attempts left permitting): false after `NonRetryableError`. */
  retryable: boolean;
  /** The task's kind and its input after the input schema parsed it. */
  kind: TaskKind;
  input: Json;
  logs: LogEntry[];
  progress: ProgressUpdate[];
  /** Every value passed to `tctx.checkpoint`, in order. */
  checkpoints: Json[];
  /** How many times it called `tctx.heartbeat()`. */
  heartbeats: number;
  /** The object store the task used: read what it wrote. */
  objects: ObjectStore;
}

const DEFAULT_GRACE_MS = 5_000;

/**
 * Runs the handler of `job`'s task `taskName` once, in this process, with the task context the
 * runner gives it (logger, progress, heartbeat, checkpoints, abort signal, fenced objects). The
 * input is checked as the runner checks a plan's task input; the outcome is classified as the
 * runner classifies it. Nothing is retried: `retryable` says whether the runner would.
 *
 * @throws {InvalidInstancesError} when `params` do not validate.
 * @throws {InvalidTaskSpecError} when the job type has no such task or `input` does not validate.
 * @example
 * ```ts
 * import { runTask } from 'ujr/testing';
 * import { processor } from '../jobs/processor.js';
 *
 * const run = await runTask(processor, 'process', { file: 'collected/metrics/a.jsonl' }, {
 *   params: { source: 'metrics' },
 *   objects: { 'collected/metrics/a.jsonl': '{"at":1,"load":0.5}\n' },
 * });
 * run.status; // 'succeeded'
 * await run.objects.getText('processed/metrics/a.json');
 * ```
 */
export async function runTask(job: JobType, taskName: string, input?: Json, options: RunTaskOptions = {}): Promise<TaskRun> {
  const instance = testInstance(job, options);
  const { tasks, rejected } = resolveSpecs(job, instance.id, [{ task: taskName, input: input ?? {} }]);
  const planned = tasks[0];
  if (!planned) throw rejected[0] ?? new TypeError(`task "${taskName}" of job type "${job.name}" could not be resolved`);
  const now = epochOf(options.now ?? Date.now());
  const objects = objectStoreOf(options.objects, () => now);
  const run: TaskRun = {
    status: 'succeeded',
    result: undefined,
    error: undefined,
    retryable: false,
    kind: planned.kind,
    input: planned.input,
    logs: [],
    progress: [],
    checkpoints: [],
    heartbeats: 0,
    objects,
  };
  const handle = new InlineExecutor(objects).start(
    job,
    planned.definition,
    {
      runId: `test-${taskName}`,
      instanceId: instance.id,
      jobType: job.name,
      task: taskName,
      signature: planned.signature,
      attempt: options.attempt ?? 1,
      input: planned.input,
      params: instance.params,
      fencingToken: 1,
      lastCheckpoint: options.checkpoint,
    },
    {
      started: () => undefined,
      log: (level, message) => void run.logs.push({ level, message }),
      progress: (current, total, message) => {
        const update: ProgressUpdate = { current };
        if (total !== undefined) update.total = total;
        if (message !== undefined) update.message = message;
        run.progress.push(update);
      },
      heartbeat: () => {
        run.heartbeats += 1;
      },
      checkpoint: (value) => {
        run.checkpoints.push(value);
        return Promise.resolve();
      },
      fence: () => Promise.resolve(),
    },
  );

  // Aborts: the caller's signal (as a shutdown: interrupted) or the timeout (failed, retryable).
  let abortReason: Error | undefined;
  let interrupted = false;
  let giveUp: () => void = () => undefined;
  const gaveUp = new Promise<'gave up'>((resolve) => {
    giveUp = () => resolve('gave up');
  });
  const timers: NodeJS.Timeout[] = [];
  const abort = (reason: Error, byCaller: boolean) => {
    if (abortReason) return;
    abortReason = reason;
    interrupted = byCaller;
    handle.abort(reason);
    const grace = setTimeout(giveUp, options.graceMs ?? DEFAULT_GRACE_MS);
    grace.unref();
    timers.push(grace);
  };
  const onCallerAbort = () => abort(asError(options.signal?.reason), true);
  if (options.signal?.aborted) onCallerAbort();
  else options.signal?.addEventListener('abort', onCallerAbort, { once: true });
  const timeoutMs = options.timeoutMs ?? planned.timeoutMs;
  if (timeoutMs !== undefined) {
    const timeout = setTimeout(() => abort(new TaskTimeoutError(timeoutMs), false), timeoutMs);
    timeout.unref();
    timers.push(timeout);
  }
  let outcome: AttemptOutcome;
  try {
    const ended = await Promise.race([handle.done, gaveUp]);
    // A handler that ignores its abort signal is recorded failed, as the runner records it after its grace period.
    outcome = ended === 'gave up' ? failure(abortReason) : capResult(ended, MAX_RESULT_BYTES);
  } finally {
    for (const timer of timers) clearTimeout(timer);
    options.signal?.removeEventListener('abort', onCallerAbort);
  }
  return classify(run, outcome, abortReason, interrupted);
}

/** The runner's classification of an attempt's end (see Runner.finish). */
function classify(run: TaskRun, outcome: AttemptOutcome, reason: Error | undefined, interrupted: boolean): TaskRun {
  if (outcome.ok) {
    run.result = outcome.result;
    // A continuous task that returned because it was asked to stop did not finish its work.
    if (run.kind === 'continuous' && reason) {
      run.status = 'interrupted';
      run.error = toErrorInfo(reason);
    }
    return run;
  }
  // When the attempt was aborted, its reason is the error, with the handler's stack.
  run.error = reason ? { ...toErrorInfo(reason), ...(outcome.error.stack ? { stack: outcome.error.stack } : {}) } : outcome.error;
  if (interrupted) run.status = 'interrupted';
  else if (outcome.skip && !reason) run.status = 'skipped';
  else {
    run.status = 'failed';
    run.retryable = reason ? isRetryable(reason) : outcome.retryable;
  }
  return run;
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(typeof reason === 'string' ? reason : 'aborted');
}
