/**
 * The attempt lifecycle: what happens to an attempt once the dispatch queue lets it start. Its
 * run is marked running and its handler starts (inline or in a child process) with its clocks
 * (timeout, heartbeat watchdog); when it ends, its outcome becomes the run's final status and
 * decides what follows: a retry after a backoff (a new run, linked to this one), a restart of a
 * continuous task if its job still returns it, a revert after the last failed attempt, or the end
 * (the signature is dropped and its lease released after the final record). Cancellation, lost
 * leases and refused writes end attempts here too. Every record goes through the journal, under
 * the attempt's lease.
 */
import { CancelledError, LeaseLostError, TaskProcessError, TaskTimeoutError, toErrorInfo } from '../errors.js';
import { backoffDelay } from '../retry.js';
import { canonicalJson } from '../signature.js';
import type { LimitStore } from '../ports/limits.js';
import type { LeaseRef } from '../ports/store.js';
import type { ErrorInfo, LogLevel, Logger, PlanContext, RetryPolicy, RunOrigin, RunStatus } from '../types.js';
import { capResult, endingOf, isActive, newRun, type Attempt, type InstanceRuntime } from './attempt.js';
import { failure, type AttemptOutcome, type Executor, type RateLimitRequest } from './executor.js';
import type { LeaseKeeper } from './lease-keeper.js';
import { clockTime } from './limit-messages.js';
import type { RunnerParts, RunnerStats } from './runner-events.js';
import { withTimeout } from './with-timeout.js';

/** A continuous task that ran this long before it stopped restarts from the first backoff step. */
const CONTINUOUS_HEALTHY_MS = 60_000;
/** How long a task's child process may take to load the job types and start the handler. */
const BOOT_DEADLINE_MS = 60_000;
const MAX_LOG_MESSAGE = 8_192;

/** What the attempt lifecycle needs of the runner it works for. */
export interface LifecycleHost extends RunnerParts {
  readonly leases: LeaseKeeper;
  /** Runs plain batch tasks (in this process). */
  readonly inline: Executor;
  /** Runs continuous and isolated tasks (child processes), if this runner has one. */
  readonly processExecutor: Executor | undefined;
  readonly options: { readonly graceMs: number; readonly maxLogLinesPerRun: number; readonly maxResultBytes: number };
  readonly continuousRestart: RetryPolicy;
  readonly counters: Omit<RunnerStats, 'queued' | 'running' | 'continuous'>;
  /** The store's shared limits, for `tctx.limits.backoff` and `RateLimitedError` (none: not kept). */
  readonly limits: LimitStore | undefined;
  random(): number;
  /** Asks the job again now that one of its tasks ended (the plan loop's follow-up). */
  followUp(runtime: InstanceRuntime): void;
  requestPlan(runtime: InstanceRuntime, reason: PlanContext<unknown>['reason']): void;
}

export class AttemptLifecycle {
  constructor(private readonly host: LifecycleHost) {}

  /** An attempt the dispatch queue let go (it holds a slot): its run is marked running and its handler starts. */
  start(attempt: Attempt): void {
    attempt.state = 'running';
    const { run } = attempt;
    run.status = 'running';
    run.startedAt = this.host.now();
    this.host.journal.putRun(run, attempt.lease);
    this.host.emit('run', run);
    void this.launch(attempt);
  }

  private async launch(attempt: Attempt): Promise<void> {
    const { planned, run, instance } = attempt;
    const executor = planned.isolate ? this.host.processExecutor : this.host.inline;
    if (!executor) {
      this.finish(
        attempt,
        failure(
          new TaskProcessError(
            `task "${planned.task}" runs in a child process (continuous or isolate), but this runner has no process executor; run it with "ujr run"`,
          ),
        ),
      );
      return;
    }
    let handlerStarted = false;
    const handle = executor.start(
      instance.job,
      planned.definition,
      {
        runId: run.id,
        instanceId: run.instanceId,
        jobType: run.jobType,
        task: run.task,
        signature: run.signature,
        attempt: run.attempt,
        input: run.input,
        params: instance.config.params,
        fencingToken: run.fencingToken,
        lastCheckpoint: attempt.lastCheckpoint,
      },
      {
        log: (level, message) => this.appendLog(attempt, level, message),
        progress: (current, total, message) => {
          run.progress = { current, updatedAt: this.host.now() };
          if (total !== undefined) run.progress.total = total;
          if (message !== undefined) run.progress.message = message;
          this.host.journal.putRun(run, attempt.lease);
        },
        started: () => {
          handlerStarted = true;
          this.armClocks(attempt);
        },
        heartbeat: () => this.onHeartbeat(attempt),
        checkpoint: async (value) => {
          canonicalJson(value, 'checkpoint');
          if (attempt.lost) throw this.lostError(attempt, 'the checkpoint was not stored');
          // Fenced: stored only while this attempt's lease is current, in the same transaction.
          this.host.journal.checkpoint({ signature: run.signature, value, runId: run.id, at: this.host.now() }, attempt.lease);
          await this.host.journal.flush();
          if (attempt.lost) throw this.lostError(attempt, 'the checkpoint was not stored');
          attempt.lastCheckpoint = value;
        },
        fence: async () => {
          await this.host.leases.check(attempt);
          if (attempt.lost) throw this.lostError(attempt, 'the write was refused');
        },
        backoff: (name, retryAfterMs) => this.backOffLimit(attempt, name, retryAfterMs),
      },
    );
    attempt.handle = handle;
    if (!handlerStarted) {
      // A child process boots first (job types load through tsx); its clocks start with the handler.
      attempt.timers.push(
        this.host.timers.setTimeout(
          () => this.abortAttempt(attempt, new TaskProcessError(`the task process did not start its handler within ${BOOT_DEADLINE_MS} ms`)),
          BOOT_DEADLINE_MS,
        ),
      );
    }
    const outcome = await handle.done;
    if (attempt.state === 'abandoned') {
      this.forget(attempt, true);
      return;
    }
    if (attempt.state === 'running') this.finish(attempt, outcome);
  }

  /** Starts the attempt's timeout and heartbeat watchdog, once its handler runs. */
  private armClocks(attempt: Attempt): void {
    const { planned } = attempt;
    if (attempt.abortReason) return;
    for (const timer of attempt.timers) timer.cancel();
    attempt.timers = [];
    if (planned.timeoutMs !== undefined) {
      const timeoutMs = planned.timeoutMs;
      attempt.timers.push(this.host.timers.setTimeout(() => this.abortAttempt(attempt, new TaskTimeoutError(timeoutMs)), timeoutMs));
    }
    const watchdogMs = planned.definition.heartbeatTimeoutMs;
    if (watchdogMs !== undefined) {
      attempt.watchdog = this.host.timers.setTimeout(
        () => this.abortAttempt(attempt, new TaskProcessError(`no heartbeat for ${watchdogMs} ms; the task is considered hung and is stopped`)),
        watchdogMs,
      );
    }
  }

  private onHeartbeat(attempt: Attempt): void {
    attempt.watchdog?.refresh();
    this.host.leases.heartbeat(attempt);
  }

  /** Aborts a running attempt for `reason`; stops it hard after the grace period. */
  private abortAttempt(attempt: Attempt, reason: Error): void {
    if (attempt.state !== 'running' || !attempt.handle) return;
    if (attempt.abortReason) return;
    attempt.abortReason = reason;
    attempt.handle.abort(reason);
    attempt.timers.push(
      this.host.timers.setTimeout(() => {
        if (attempt.state !== 'running' || !attempt.handle) return;
        if (attempt.handle.kill()) return;
        // An inline handler ignoring its signal cannot be killed: record the attempt as over, but
        // keep holding the signature until the handler really returns.
        this.host.log.warn(
          `task "${attempt.planned.task}" (run ${attempt.run.id}) ignored its abort signal for ${this.host.options.graceMs} ms; it is abandoned and its signature stays leased until it returns. Set isolate: true on tasks that may hang.`,
        );
        this.finish(attempt, failure(reason), true);
      }, this.host.options.graceMs),
    );
  }

  /** Records how an attempt ended and decides what follows: done, retry, or restart. */
  finish(attempt: Attempt, raw: AttemptOutcome, abandon = false): void {
    if (attempt.state !== 'running') return;
    this.clearTimers(attempt);
    this.host.dispatch.vacate(attempt);
    const { planned, run } = attempt;
    const outcome = capResult(raw, this.host.options.maxResultBytes);
    const reason = attempt.abortReason;
    if (!outcome.ok && outcome.rateLimited && reason === undefined && !attempt.lost && !abandon && !this.host.stopping()) {
      this.requeueRateLimited(attempt, outcome.rateLimited, outcome.error);
      this.host.schedulePump();
      return;
    }
    run.endedAt = this.host.now();
    const ending = endingOf(outcome, {
      kind: planned.kind,
      abortReason: reason,
      lost: attempt.lost,
      attempt: run.attempt,
      maxAttempts: run.maxAttempts,
      noRetry: abandon || this.host.stopping(),
      lostError: () => this.lostError(attempt, 'its result is not recorded'),
    });
    const { status, retry } = ending;
    if (ending.result !== undefined) run.result = ending.result;
    if (ending.error !== undefined) run.error = ending.error;
    if (abandon) {
      attempt.state = 'abandoned';
      run.status = status;
      this.count(run.status);
      this.host.journal.putRun(run, attempt.lease);
      this.host.emit('run', run);
      this.host.schedulePump();
      return;
    }
    run.status = status;
    // A failed attempt that is retried ends `failed`, linked to the next attempt (which waits as `retrying`).
    const nextRunId = retry ? this.host.nextId() : undefined;
    if (nextRunId !== undefined) run.nextRunId = nextRunId;
    else this.count(status);
    this.host.journal.putRun(run, attempt.lease);
    this.host.emit('run', run);

    if (nextRunId !== undefined) {
      this.retryLater(attempt, nextRunId);
    } else if (planned.kind === 'continuous' && status === 'failed' && !this.host.stopping()) {
      this.restartLater(attempt);
    } else if (status === 'failed' && planned.definition.revert) {
      attempt.state = 'reverting';
      attempt.reverted = this.revertThenRelease(attempt);
    } else {
      this.forget(attempt, !(reason instanceof LeaseLostError) && !attempt.lost);
    }
    this.host.schedulePump();
  }

  /**
   * `tctx.limits.backoff(name, ms)`: no task taking the attempt's buckets of limit `name` starts
   * before now + `retryAfterMs`, in any runner on the store.
   * @throws {Error} naming the limits the task takes, when it does not take `name`.
   */
  private async backOffLimit(attempt: Attempt, name: string, retryAfterMs: number): Promise<void> {
    const limits = this.host.limits;
    const buckets = (attempt.planned.limits ?? []).filter((limit) => limit.name === name);
    if (!limits || buckets.length === 0) {
      const taken = [...new Set((attempt.planned.limits ?? []).map((limit) => `"${limit.name}"`))];
      throw new Error(
        `tctx.limits.backoff: task "${attempt.planned.task}" does not take limit "${name}" (it takes ${taken.length > 0 ? taken.join(', ') : 'none'}); add it to the task's limits`,
      );
    }
    const now = this.host.now();
    await Promise.all(buckets.map((bucket) => limits.backoffLimit(bucket.name, bucket.key, now + retryAfterMs, now)));
  }

  /**
   * The handler threw `RateLimitedError`: its limits of that name (all its rate limits, unnamed)
   * are drained for the time the API asked, and the same run waits that long, `queued`, then
   * queues again. Not a failure: the attempt number stays.
   */
  private requeueRateLimited(attempt: Attempt, request: RateLimitRequest, error: ErrorInfo): void {
    const { run, planned } = attempt;
    const now = this.host.now();
    const until = now + request.retryAfterMs;
    const buckets = (planned.limits ?? []).filter((limit) => (request.limit === undefined ? limit.rate !== undefined : limit.name === request.limit));
    const limits = this.host.limits;
    if (limits) {
      for (const bucket of buckets) limits.backoffLimit(bucket.name, bucket.key, until, now).catch((failed: unknown) => this.host.log.error(`could not back off limit "${bucket.name}": ${toErrorInfo(failed).message}`));
    }
    const drained = buckets.length > 0 ? `; limit ${[...new Set(buckets.map((bucket) => `"${bucket.name}"`))].join(', ')} backs off until then for every task that takes it` : '';
    this.appendLog(attempt, 'warn', `rate limited (${error.name}: ${error.message}): queued again in ${request.retryAfterMs} ms, not counted as a failure${drained}`);
    this.host.counters.rateLimited += 1;
    delete run.startedAt;
    run.status = 'queued';
    run.progress = { current: 0, message: `rate limited by the API: queued again at ${clockTime(until)}`, updatedAt: now };
    this.host.journal.putRun(run, attempt.lease);
    this.host.emit('run', run);
    this.waitThen(attempt, request.retryAfterMs, () => {
      delete run.progress;
      this.host.dispatch.enqueue(attempt);
      this.host.dispatch.pump();
    });
  }

  private retryLater(attempt: Attempt, nextRunId: string): void {
    const { planned, run } = attempt;
    const delay = backoffDelay(planned.retry, run.attempt, () => this.host.random());
    this.host.counters.retried += 1;
    this.appendLog(attempt, 'warn', `attempt ${run.attempt} of ${run.maxAttempts} failed: ${describeError(run.error)}; retrying in ${delay} ms as run ${nextRunId}`);
    this.backOff(attempt, 'retry', delay, () => {
      this.host.dispatch.enqueue(attempt);
      this.host.dispatch.pump();
    }, nextRunId);
    // The next attempt is visible at once, as `retrying` until its backoff is over.
    attempt.run.status = 'retrying';
    this.host.journal.putRun(attempt.run, attempt.lease);
    this.host.emit('run', attempt.run);
  }

  /** A continuous task ended badly: restart it after a backoff if its job still returns it. */
  private restartLater(attempt: Attempt): void {
    const { planned, run, instance } = attempt;
    const healthy = run.startedAt !== undefined && this.host.now() - run.startedAt >= CONTINUOUS_HEALTHY_MS;
    attempt.restarts = healthy ? 1 : attempt.restarts + 1;
    const delay = backoffDelay(this.host.continuousRestart, attempt.restarts, () => this.host.random());
    this.host.log.warn(
      `continuous task "${planned.task}" of "${instance.config.id}" stopped (${describeError(run.error)}); restarting in ${delay} ms if its job still returns it`,
    );
    attempt.wanted = false;
    this.backOff(attempt, 'restart', delay, () => {
      if (!isActive(instance)) {
        this.cancel(attempt, `instance "${instance.config.id}" is no longer active`);
      } else if (attempt.wanted) {
        this.host.dispatch.enqueue(attempt);
        this.host.dispatch.pump();
      } else {
        // The job has not answered yet (its plan is slow or failed): the next plan that returns
        // the task restarts it, one that does not cancels it.
        attempt.restartDue = true;
      }
    });
    // Ask the job now, so the restart knows whether the task is still wanted.
    this.host.requestPlan(instance, 'restart');
  }

  /** Moves a held signature on to its next attempt, due after `delay`; the lease stays held. */
  private backOff(attempt: Attempt, origin: RunOrigin, delay: number, onDue: () => void, nextRunId = this.host.nextId()): void {
    const { planned, run, instance } = attempt;
    attempt.run = newRun(instance, planned, {
      id: nextRunId,
      attempt: run.attempt + 1,
      origin,
      token: attempt.lease.token,
      runner: this.host.owner,
      queuedAt: this.host.now(),
    });
    attempt.run.previousRunId = run.id;
    if (run.triggerId !== undefined) attempt.run.triggerId = run.triggerId;
    attempt.logLines = 0;
    this.waitThen(attempt, delay, onDue);
  }

  /** Puts the attempt in `backoff` (no slot, counted) for `delay`, then calls `onDue`. */
  private waitThen(attempt: Attempt, delay: number, onDue: () => void): void {
    attempt.state = 'backoff';
    delete attempt.abortReason;
    delete attempt.handle;
    this.host.counters.backoff += 1;
    attempt.timers.push(
      this.host.timers.setTimeout(() => {
        this.host.counters.backoff -= 1;
        attempt.timers = [];
        onDue();
      }, delay),
    );
  }

  private async revertThenRelease(attempt: Attempt): Promise<void> {
    const { planned, run, instance } = attempt;
    const definition = planned.definition;
    const log: Logger = {
      debug: (m) => this.appendLog(attempt, 'debug', m),
      info: (m) => this.appendLog(attempt, 'info', m),
      warn: (m) => this.appendLog(attempt, 'warn', m),
      error: (m) => this.appendLog(attempt, 'error', m),
    };
    const revertMs = planned.timeoutMs ?? this.host.options.graceMs;
    const error = await withTimeout(
      Promise.resolve().then(() =>
        definition.revert?.(run.input, run.error ?? { name: 'Error', message: 'failed' }, {
          instanceId: instance.config.id,
          params: instance.config.params,
          log,
          objects: this.host.objects,
        }),
      ),
      revertMs,
      this.host.timers,
      () => new TaskTimeoutError(revertMs, ` (revert of task "${planned.task}" did not finish in time)`),
    ).then(
      () => undefined,
      (failed: unknown) => failed,
    );
    if (error === undefined) this.appendLog(attempt, 'info', 'reverted after the last attempt failed');
    else this.appendLog(attempt, 'error', `revert failed: ${toErrorInfo(error).message}`);
    this.forget(attempt, true);
  }

  /** Ends a queued or backing-off attempt that never started. */
  endWithoutRunning(attempt: Attempt, status: RunStatus, error: ErrorInfo): void {
    if (attempt.state === 'queued') this.host.dispatch.leave(attempt);
    if (attempt.state === 'backoff' && attempt.timers.length > 0) this.host.counters.backoff -= 1;
    this.clearTimers(attempt);
    attempt.state = 'abandoned';
    const { run } = attempt;
    run.status = status;
    run.endedAt = this.host.now();
    run.error = error;
    this.count(status);
    this.host.journal.putRun(run, attempt.lease);
    this.host.emit('run', run);
    this.forget(attempt, true);
  }

  /** Cancels a queued, backing-off or running attempt; one that is reverting is let finish (its run is final). */
  cancel(attempt: Attempt, why: string): void {
    const error = new CancelledError(why);
    if (attempt.state === 'running') this.abortAttempt(attempt, error);
    else if (attempt.state === 'queued' || attempt.state === 'backoff') this.endWithoutRunning(attempt, 'cancelled', toErrorInfo(error));
  }

  cancelInstanceWork(runtime: InstanceRuntime, why: string, only?: 'continuous'): void {
    for (const attempt of [...this.host.held.values()]) {
      if (attempt.instance !== runtime) continue;
      if (only === 'continuous' && attempt.planned.kind !== 'continuous') continue;
      this.cancel(attempt, why);
    }
  }

  /** Drops the signature; releases its lease (after its final record) unless it was lost. */
  forget(attempt: Attempt, release: boolean): void {
    this.clearTimers(attempt);
    const current = this.host.held.get(attempt.planned.signature);
    if (current === attempt) this.host.held.delete(attempt.planned.signature);
    if (attempt.instance.continuousHeld.get(attempt.planned.signature) === attempt) attempt.instance.continuousHeld.delete(attempt.planned.signature);
    if (release && !attempt.lost) this.host.journal.release(attempt.lease);
    if (attempt.trigger && attempt.run.status === 'interrupted' && !attempt.lost) {
      // An ad-hoc run cut short by shutdown is asked for again on the next start.
      this.host.journal.addTrigger({ ...attempt.trigger, id: this.host.nextId() });
    }
    attempt.state = 'abandoned';
    const runtime = attempt.instance;
    runtime.finishedSinceTick.add(attempt.planned.signature);
    this.host.followUp(runtime);
    this.host.checkIdle();
  }

  leaseLost(attempt: Attempt): void {
    attempt.lost = true;
    if (this.host.held.get(attempt.planned.signature) !== attempt) return;
    const error = this.lostError(attempt, 'it stops and writes nothing more');
    this.host.log.warn(error.message);
    // A revert goes on (its run is final); what it logs is refused, and its lease is not released.
    if (attempt.state === 'reverting') return;
    if (attempt.state === 'running') this.abortAttempt(attempt, error);
    else if (attempt.state === 'abandoned') this.forget(attempt, false);
    else {
      // Queued or backing off: its record is ended by whoever holds the lease now, or the sweeper.
      if (attempt.state === 'queued') this.host.dispatch.leave(attempt);
      if (attempt.state === 'backoff' && attempt.timers.length > 0) this.host.counters.backoff -= 1;
      this.clearTimers(attempt);
      attempt.state = 'abandoned';
      attempt.run.status = 'interrupted';
      attempt.run.endedAt = this.host.now();
      attempt.run.error = toErrorInfo(error);
      this.count('interrupted');
      this.host.emit('run', attempt.run);
      this.forget(attempt, false);
    }
  }

  private lostError(attempt: Attempt, consequence: string): LeaseLostError {
    return new LeaseLostError(
      `the lease on ${attempt.planned.signature} (token ${attempt.lease.token}) was lost: this runner missed its renewals (it was stopped, hung or cut off from its store) and another runner or the sweeper moved it on; ${consequence}`,
    );
  }

  /** The store refused writes made under these leases: their attempts are stale. */
  writesRefused(refused: LeaseRef[]): void {
    for (const ref of refused) {
      const attempt = this.host.held.get(ref.signature);
      if (attempt && attempt.lease.token === ref.token && attempt.lease.owner === ref.owner) this.leaseLost(attempt);
    }
  }

  private appendLog(attempt: Attempt, level: LogLevel, message: string): void {
    const max = this.host.options.maxLogLinesPerRun;
    if (attempt.logLines > max) return;
    attempt.logLines += 1;
    const text =
      attempt.logLines > max
        ? `log truncated: more than ${max} lines in this run`
        : message.length > MAX_LOG_MESSAGE
          ? `${message.slice(0, MAX_LOG_MESSAGE)}… (${message.length - MAX_LOG_MESSAGE} more characters)`
          : message;
    this.host.journal.log({ runId: attempt.run.id, seq: attempt.logLines, at: this.host.now(), level, message: text }, attempt.lease);
  }

  private count(status: RunStatus): void {
    if (status === 'succeeded' || status === 'failed' || status === 'skipped' || status === 'interrupted' || status === 'cancelled') {
      this.host.counters[status] += 1;
    }
  }

  private clearTimers(attempt: Attempt): void {
    for (const timer of attempt.timers) timer.cancel();
    attempt.timers = [];
    attempt.watchdog?.cancel();
    delete attempt.watchdog;
  }
}

/** A run's error as log lines name it: `Name: message`, the first line of its stack. */
function describeError(error: ErrorInfo | undefined): string {
  return error === undefined ? 'failed' : `${error.name}: ${error.message}`;
}
