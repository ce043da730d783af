/**
 * What the runner holds for each leased signature (an attempt) and for each instance, and how an
 * attempt's outcome becomes its run's final status. The pieces of the runner (plan loop,
 * dispatch queue, lease keeper, attempt lifecycle) share these records; the rules that turn an
 * outcome into a status are pure and tested alone.
 */
import { CancelledError, LeaseLostError, ResultTooLargeError, ShutdownError, isRetryable, toErrorInfo, withCause } from '../errors.js';
import { parseSchedule, type Schedule } from '../schedule.js';
import type { LimitPermit, LimitRef, LimitWaitReason } from '../ports/limits.js';
import type { TimerHandle } from '../ports/timers.js';
import type { InstanceStatus, LeaseRef, Trigger } from '../ports/store.js';
import type { ErrorInfo, InstanceConfig, JobType, Json, PlanContext, RunOrigin, RunRecord, RunStatus } from '../types.js';
import { Deque } from './deque.js';
import { failure, type AttemptHandle, type AttemptOutcome } from './executor.js';
import type { PlannedTask } from './planner.js';

/**
 * `queued`: waiting for a slot (or for its run to be committed); `running`: its handler runs;
 * `backoff`: waiting to retry or restart; `reverting`: its last attempt failed and its task's
 * `revert` runs (the run is final, the slot free, the lease held until the revert ends);
 * `abandoned`: ended, or no longer this runner's.
 */
export type AttemptState = 'queued' | 'running' | 'backoff' | 'reverting' | 'abandoned';

/** One leased signature: the task, its current run and lease, and what the runner tracks of it. */
export interface Attempt {
  planned: PlannedTask;
  instance: InstanceRuntime;
  run: RunRecord;
  lease: LeaseRef;
  state: AttemptState;
  /** While `reverting`: settles when the revert has ended and the lease is let go. */
  reverted?: Promise<void>;
  handle?: AttemptHandle;
  abortReason?: Error;
  timers: TimerHandle[];
  watchdog?: TimerHandle;
  logLines: number;
  lastRenewal: number;
  /** Continuous tasks: the job returned it again since it last ended. */
  wanted: boolean;
  /** The signature's last checkpoint: read with the lease, then kept as this runner writes it. */
  lastCheckpoint: Json | undefined;
  /** Continuous tasks: restarts in a row without a healthy run. */
  restarts: number;
  /** Continuous tasks: the restart backoff is over; waiting for the job to return the task. */
  restartDue: boolean;
  /** The lease moved on (a renewal, a write or a fence check was refused): nothing more is written. */
  lost: boolean;
  trigger?: Trigger;
  /** The id of its run once that run is in the store (a retry is a new run, recorded anew). */
  recorded?: string;
  /** The shared limits it holds while it runs (its concurrency slots), given back when it ends. */
  permit?: LimitPermit;
  /** Its limits are being asked of the store (it holds a slot for the call). */
  acquiring?: boolean;
  /** The bucket whose line it left when its turn came (the dispatch queue's). */
  wokeFrom?: string;
  /** The bucket it waits for, parked: why and until when (as the store last said). */
  limitWait?: LimitRef & { reason: LimitWaitReason; until: number };
}

/** One configured instance as the runner runs it. */
export interface InstanceRuntime {
  config: InstanceConfig;
  job: JobType;
  schedule: Schedule;
  nextDueAt: number;
  status: InstanceStatus | undefined;
  planning: boolean;
  replan: PlanContext<unknown>['reason'] | undefined;
  followupPending: boolean;
  /** Tasks it could not admit for lack of room; it is asked again when room frees. */
  backlogged: boolean;
  batchQueue: Deque<Attempt>;
  continuousQueue: Deque<Attempt>;
  batchRunning: number;
  /** Its held continuous attempts by signature: what a plan reconciles, without walking every held task. */
  continuousHeld: Map<string, Attempt>;
  /** Batch attempts of this instance waiting for a slot (state `queued`). */
  batchQueued: number;
  /**
   * A task ended while this instance had more batch tasks waiting than one round of slots: its
   * follow-up plan waits until they are nearly gone (see the runner's `followUp`).
   */
  followupDeferred: boolean;
  /** Signatures that ended since the last scheduled plan; follow-up plans do not restart them. */
  finishedSinceTick: Set<string>;
  /** Triggers waiting for this instance's next manual plan, which reports to each of them. */
  pendingTriggers: Trigger[];
  /** Plans asked again in a row because a lease was released while they read the history. */
  replansAfterRelease: number;
  /** Such a plan waits for the clock to move past the release (`followupPending` is set too). */
  replanDelayed: boolean;
}

/** How an attempt that ran ended, as its run records it. */
export interface Ending {
  status: RunStatus;
  result?: Json;
  error?: ErrorInfo;
  /** A failed batch attempt with attempts left: the task is tried again after a backoff. */
  retry: boolean;
}

export interface EndingContext {
  kind: 'batch' | 'continuous';
  /** Why the runner stopped the attempt, if it did (timeout, cancel, shutdown, lost lease). */
  abortReason: Error | undefined;
  /** The attempt's lease moved on while it ran. */
  lost: boolean;
  attempt: number;
  maxAttempts: number;
  /** Retries are off: the runner is stopping, or the attempt was abandoned. */
  noRetry: boolean;
  /** The error recorded when the lease was lost without an abort reason. */
  lostError: () => Error;
}

/**
 * The final status of an attempt whose handler ran: a stale holder's result does not count, a
 * continuous task that returned because it was asked to stop did not finish, the runner's reason
 * for stopping an attempt is its error (name, message and its own stack, with what the handler
 * threw or how its process ended appended as `Caused by:`), and a retryable failure with attempts
 * left is retried.
 */
export function endingOf(outcome: AttemptOutcome, context: EndingContext): Ending {
  const reason = context.abortReason;
  if (reason instanceof LeaseLostError || context.lost) {
    return { status: 'interrupted', error: toErrorInfo(reason ?? context.lostError()), retry: false };
  }
  if (outcome.ok) {
    const result = outcome.result !== undefined ? { result: outcome.result } : {};
    if (context.kind === 'continuous' && reason !== undefined) {
      return { status: reason instanceof CancelledError ? 'cancelled' : 'interrupted', ...result, error: toErrorInfo(reason), retry: false };
    }
    return { status: 'succeeded', ...result, retry: false };
  }
  // One error, named alike everywhere: the runner's reason with its own stack, and what the handler
  // threw as it stopped (or how its process ended) kept as its cause.
  const error = reason ? withCause(toErrorInfo(reason), outcome.error) : outcome.error;
  if (reason instanceof ShutdownError) return { status: 'interrupted', error, retry: false };
  if (reason instanceof CancelledError) return { status: 'cancelled', error, retry: false };
  if (outcome.skip && !reason) return { status: 'skipped', error, retry: false };
  const retryable = reason ? isRetryable(reason) : outcome.retryable;
  const retry = context.kind === 'batch' && retryable && context.attempt < context.maxAttempts && !context.noRetry;
  return { status: 'failed', error, retry };
}

/** A successful outcome whose result is over the cap becomes a `ResultTooLargeError` failure. */
export function capResult(outcome: AttemptOutcome, maxResultBytes: number): AttemptOutcome {
  if (!outcome.ok || outcome.result === undefined) return outcome;
  const bytes = Buffer.byteLength(JSON.stringify(outcome.result));
  if (bytes <= maxResultBytes) return outcome;
  return failure(
    new ResultTooLargeError(
      `the result is ${bytes} bytes, over the ${maxResultBytes}-byte cap; write large outputs to the object store (tctx.objects.put) and return their key`,
    ),
  );
}

export function refOf(lease: { signature: string; owner: string | null; token: number }): LeaseRef {
  return { signature: lease.signature, owner: lease.owner ?? '', token: lease.token };
}

/** Whether an instance is planned on its schedule: enabled, and not retired (done). */
export function isActive(runtime: InstanceRuntime): boolean {
  return runtime.config.enabled && runtime.status?.retiredAt === undefined;
}

/** The `queued` run of a new attempt of `task`. */
export function newRun(
  runtime: InstanceRuntime,
  task: PlannedTask,
  fields: { id: string; attempt: number; origin: RunOrigin; token: number; runner: string; queuedAt: number },
): RunRecord {
  return {
    id: fields.id,
    instanceId: runtime.config.id,
    jobType: runtime.job.name,
    task: task.task,
    signature: task.signature,
    kind: task.kind,
    status: 'queued',
    attempt: fields.attempt,
    maxAttempts: task.kind === 'continuous' ? 0 : task.retry.attempts,
    origin: fields.origin,
    runner: fields.runner,
    fencingToken: fields.token,
    queuedAt: fields.queuedAt,
    input: task.input,
  };
}

/** A newly configured instance, due at `now`, holding nothing yet. */
export function newInstanceRuntime(config: InstanceConfig, job: JobType, now: number): InstanceRuntime {
  return {
    config,
    job,
    schedule: parseSchedule(config.schedule),
    nextDueAt: now,
    status: undefined,
    planning: false,
    replan: undefined,
    followupPending: false,
    backlogged: false,
    batchQueue: new Deque(),
    continuousQueue: new Deque(),
    batchRunning: 0,
    continuousHeld: new Map(),
    batchQueued: 0,
    followupDeferred: false,
    finishedSinceTick: new Set(),
    pendingTriggers: [],
    replansAfterRelease: 0,
    replanDelayed: false,
  };
}
