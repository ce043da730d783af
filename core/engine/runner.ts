/**
 * The runner: its options, instances, start and stop, events and stats, and every attempt's life
 * once admitted: start, finish, retry with backoff, restart of continuous tasks, revert, cancel,
 * with a record of each. The plan loop (plan-loop.ts) asks due instances for tasks and admits
 * them under their leases, the dispatch queue (dispatch.ts) decides when a queued attempt may
 * start, the lease keeper (lease-keeper.ts) keeps the leases alive, and attempt.ts holds the
 * rules from outcome to final status. It only talks to ports (store, object store, executors), so
 * the same engine runs on SQLite, in memory, or on DynamoDB.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { monotonicFactory } from 'ulid';
import {
  CancelledError,
  LeaseLostError,
  ShutdownError,
  TaskProcessError,
  TaskTimeoutError,
  toErrorInfo,
} from '../errors.js';
import { MAX_RESULT_BYTES } from '../limits.js';
import { backoffDelay, mergeRetry } from '../retry.js';
import { parseSchedule } from '../schedule.js';
import { canonicalJson } from '../signature.js';
import { realTimers, type TimerHandle, type Timers } from '../ports/timers.js';
import type { InstanceStatus, LeaseRef, Store, Trigger } from '../ports/store.js';
import type {
  ErrorInfo,
  InstanceConfig,
  JobType,
  Json,
  LogLevel,
  Logger,
  ObjectStore,
  RetryPolicy,
  RunOrigin,
  RunStatus,
} from '../types.js';
import { capResult, endingOf, isActive, newRun, type Attempt, type InstanceRuntime } from './attempt.js';
import { Deque } from './deque.js';
import { DispatchQueue } from './dispatch.js';
import { failure, InlineExecutor, type AttemptOutcome, type Executor } from './executor.js';
import { Journal } from './journal.js';
import { LeaseKeeper } from './lease-keeper.js';
import { PlanLoop } from './plan-loop.js';
import type { RunnerEvents, RunnerStats } from './runner-events.js';
import { withTimeout } from './with-timeout.js';

export interface RunnerOptions {
  store: Store;
  objects: ObjectStore;
  jobs: JobType[];
  instances?: InstanceConfig[];
  /** Runs continuous and isolated tasks (child processes locally). */
  processExecutor?: Executor;
  /** Runs plain batch tasks. Default: in this process. */
  inlineExecutor?: Executor;
  /** Lease owner id. Default: host, pid and a random suffix. */
  owner?: string;
  /** Batch tasks running at once, across instances. Default 16. */
  concurrency?: number;
  /** Continuous tasks running at once. Default 32. */
  maxContinuous?: number;
  /** Tasks leased and waiting for a slot; beyond it, instances are asked again as slots free. Default 10,000. */
  maxQueued?: number;
  /** Lease lifetime; leases are renewed every third of it. Default 30 s. */
  leaseTtlMs?: number;
  /** How often schedules and triggers are looked at. Default 500 ms. */
  tickMs?: number;
  /** After an abort (timeout, shutdown, cancel), how long a task gets before the hard stop. Default 5 s. */
  graceMs?: number;
  /** Largest JSON result stored with a run. Default `MAX_RESULT_BYTES` (128 KiB, as on AWS). */
  maxResultBytes?: number;
  /** A plan (getRunnableTasks) taking longer fails. Default 60 s. */
  planTimeoutMs?: number;
  /** Ended runs older than this are pruned (the latest success per signature stays). Default 30 days. */
  retentionMs?: number;
  /** Restart backoff of continuous tasks. */
  continuousRestart?: Partial<RetryPolicy>;
  /** Log lines kept per run; further lines are dropped with a note. Default 10,000. */
  maxLogLinesPerRun?: number;
  /**
   * Group commit: how long the runner's writes (run records, log lines, checkpoints, releases) may
   * wait to be committed together when nothing waits for them. Default 10 ms. A plan, a follow-up
   * and a shutdown commit at once whatever it is.
   */
  commitIntervalMs?: number;
  /** Plan once, run until idle, then stop; continuous tasks are not started. */
  once?: boolean;
  /** The clock (epoch ms). */
  now?: () => number;
  /**
   * The timers the runner waits with (ticks, renewals, backoffs, timeouts), measured on `now`.
   * Default: Node's. `ujr/testing` passes a virtual clock's. The shutdown's grace period is
   * always real time: it waits for handlers, which run in real time.
   */
  timers?: Timers;
  random?: () => number;
  /** Where the runner's own messages go (plan errors, takeovers, store trouble). */
  log?: Logger;
}

export type { RunnerEvents, RunnerStats } from './runner-events.js';

const CONTINUOUS_HEALTHY_MS = 60_000;
/** See RunnerOptions.commitIntervalMs. */
const DEFAULT_COMMIT_INTERVAL_MS = 10;
/** How long a task's child process may take to load the job types and start the handler. */
const BOOT_DEADLINE_MS = 60_000;
const MAX_LOG_MESSAGE = 8_192;

const silentLog: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export class Runner extends EventEmitter<RunnerEvents> {
  readonly owner: string;
  private readonly store: Store;
  private readonly objects: ObjectStore;
  private readonly journal: Journal;
  private readonly inline: Executor;
  private readonly processExecutor: Executor | undefined;
  private readonly jobs = new Map<string, JobType>();
  private readonly instances = new Map<string, InstanceRuntime>();
  private readonly held = new Map<string, Attempt>();
  private readonly nextId = monotonicFactory();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly options: Required<
    Pick<
      RunnerOptions,
      | 'concurrency'
      | 'maxContinuous'
      | 'maxQueued'
      | 'leaseTtlMs'
      | 'tickMs'
      | 'graceMs'
      | 'maxResultBytes'
      | 'planTimeoutMs'
      | 'retentionMs'
      | 'maxLogLinesPerRun'
      | 'once'
    >
  >;
  private readonly continuousRestart: RetryPolicy;
  /** Counts since start; what is in flight now is kept apart (see `stats()`). */
  private readonly counters: Omit<RunnerStats, 'queued' | 'running' | 'continuous'> = {
    backoff: 0,
    succeeded: 0,
    failed: 0,
    skipped: 0,
    interrupted: 0,
    cancelled: 0,
    retried: 0,
    deduplicated: 0,
    takenOver: 0,
    planErrors: 0,
  };
  private readonly dispatch: DispatchQueue;
  private readonly leases: LeaseKeeper;
  private readonly planLoop: PlanLoop;
  private readonly timers: Timers;
  private intervals: TimerHandle[] = [];
  private started = false;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];
  private settleWaiters: { ignoreRunning: boolean; resolve: () => void }[] = [];

  constructor(options: RunnerOptions) {
    super();
    this.store = options.store;
    this.objects = options.objects;
    this.inline = options.inlineExecutor ?? new InlineExecutor(options.objects);
    this.processExecutor = options.processExecutor;
    this.owner = options.owner ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.now = options.now ?? Date.now;
    this.timers = options.timers ?? realTimers;
    this.random = options.random ?? Math.random;
    this.log = options.log ?? silentLog;
    this.options = {
      concurrency: options.concurrency ?? 16,
      maxContinuous: options.maxContinuous ?? 32,
      maxQueued: options.maxQueued ?? 10_000,
      leaseTtlMs: options.leaseTtlMs ?? 30_000,
      tickMs: options.tickMs ?? 500,
      graceMs: options.graceMs ?? 5_000,
      maxResultBytes: options.maxResultBytes ?? MAX_RESULT_BYTES,
      planTimeoutMs: options.planTimeoutMs ?? 60_000,
      retentionMs: options.retentionMs ?? 30 * 86_400_000,
      maxLogLinesPerRun: options.maxLogLinesPerRun ?? 10_000,
      once: options.once ?? false,
    };
    this.continuousRestart = mergeRetry({ attempts: Number.MAX_SAFE_INTEGER }, options.continuousRestart);
    this.journal = new Journal(this.store, {
      onError: (error) => this.reportStoreError(error),
      onRefused: (refused) => this.writesRefused(refused),
      now: () => this.now(),
      commitIntervalMs: options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS,
    });
    this.dispatch = new DispatchQueue(this.journal, this.timers, this.options, {
      start: (attempt) => this.startAttempt(attempt),
      holds: (attempt) => this.held.get(attempt.planned.signature) === attempt,
      stopping: () => this.stopping,
      queueShrank: (runtime) => {
        runtime.followupDeferred = false;
        this.planLoop.followUp(runtime);
      },
      changed: () => this.checkIdle(),
    });
    this.leases = new LeaseKeeper(this.store, this.options.leaseTtlMs, () => this.now(), {
      held: () => this.held.values(),
      lost: (attempt) => this.leaseLost(attempt),
      storeError: (error) => this.reportStoreError(error),
    });
    this.planLoop = new PlanLoop({
      store: this.store,
      objects: this.objects,
      journal: this.journal,
      dispatch: this.dispatch,
      timers: this.timers,
      log: this.log,
      owner: this.owner,
      options: this.options,
      instances: this.instances,
      held: this.held,
      counters: this.counters,
      emit: (event, ...args) => this.emit(event, ...args),
      now: () => this.now(),
      nextId: () => this.nextId(),
      stopping: () => this.stopping,
      reportStoreError: (error) => this.reportStoreError(error),
      cancel: (attempt, why) => this.cancel(attempt, why),
      cancelInstanceWork: (runtime, why, only) => this.cancelInstanceWork(runtime, why, only),
      schedulePump: () => this.schedulePump(),
      checkIdle: () => this.checkIdle(),
    });
    for (const job of options.jobs) {
      if (this.jobs.has(job.name)) throw new TypeError(`two job types are named "${job.name}"; job type names must be unique`);
      this.jobs.set(job.name, job);
    }
    this.setInstances(options.instances ?? []);
  }

  /** Counts since start, and what is in flight now. */
  stats(): RunnerStats {
    return {
      ...this.counters,
      queued: this.dispatch.queued,
      running: this.dispatch.batchRunning,
      continuous: this.dispatch.continuousRunning,
    };
  }

  /** The instances this runner knows, with their retirement status. */
  listInstances(): { config: InstanceConfig; status: InstanceStatus | undefined; nextDueAt: number }[] {
    return [...this.instances.values()].map((i) => ({ config: i.config, status: i.status, nextDueAt: i.nextDueAt }));
  }

  /**
   * Applies a new instance configuration while running: new instances are planned at once,
   * disabled or removed ones stop all their work (running tasks are aborted and recorded
   * `cancelled`, queued and retrying ones too), and changed params restart their continuous tasks.
   */
  setInstances(configs: InstanceConfig[]): void {
    const seen = new Set<string>();
    for (const config of configs) {
      seen.add(config.id);
      const job = this.jobs.get(config.job);
      if (!job) {
        throw new TypeError(
          `instance "${config.id}" names job type "${config.job}", which is not loaded; known job types: ${[...this.jobs.keys()].join(', ')}`,
        );
      }
      const existing = this.instances.get(config.id);
      if (!existing) {
        const runtime: InstanceRuntime = {
          config,
          job,
          schedule: parseSchedule(config.schedule),
          nextDueAt: this.now(),
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
        this.instances.set(config.id, runtime);
        this.dispatch.addInstance(runtime);
        continue;
      }
      const before = existing.config;
      existing.config = config;
      if (this.started && !sameInstanceConfig(before, config)) void this.refreshStatus(existing);
      existing.job = job;
      if (before.schedule !== config.schedule) {
        existing.schedule = parseSchedule(config.schedule);
        existing.nextDueAt = this.now();
      }
      if (!config.enabled && before.enabled) {
        this.cancelInstanceWork(existing, `instance "${config.id}" was disabled`);
      } else if (config.enabled && !before.enabled) {
        existing.nextDueAt = this.now();
      } else if (canonicalJson(before.params, 'params') !== canonicalJson(config.params, 'params') || before.job !== config.job) {
        this.cancelInstanceWork(existing, `instance "${config.id}" changed its configuration`, 'continuous');
        existing.nextDueAt = this.now();
      }
    }
    for (const runtime of [...this.instances.values()]) {
      if (seen.has(runtime.config.id)) continue;
      this.cancelInstanceWork(runtime, `instance "${runtime.config.id}" was removed from the configuration`);
      this.instances.delete(runtime.config.id);
      this.dispatch.removeInstance(runtime);
    }
    if (this.started) this.planLoop.tick();
  }

  /** Starts planning and running until `stop()`. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const statuses = await this.store.listInstanceStatus();
    for (const status of statuses) {
      const runtime = this.instances.get(status.instanceId);
      if (runtime) runtime.status = status;
    }
    this.every(this.leases.renewEveryMs, () => this.leases.renewAll());
    // Runs whose holder died (or hung past its lease) are ended now and once per lease period.
    await this.sweep();
    if (!this.options.once) this.every(this.options.leaseTtlMs, () => void this.sweep());
    if (!this.options.once) {
      this.every(this.options.tickMs, () => this.planLoop.tick());
      this.every(3_600_000, () => void this.prune());
      void this.prune();
    }
    this.planLoop.tick();
  }

  /**
   * Plans every enabled instance once, runs until nothing is left (follow-ups included), stops,
   * and returns the stats. Continuous tasks are not started in this mode.
   */
  async runOnce(): Promise<RunnerStats> {
    await this.start();
    await this.whenIdle();
    await this.stop();
    return this.stats();
  }

  /** Resolves when nothing is queued, running, backing off or being planned. */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Resolves once the runner waits for nothing but the clock, and its writes are in the store:
   * nothing is being planned or taking triggers, no task waits for a free slot, and no batch
   * handler runs. Attempts waiting out a retry or restart backoff, plans asked again once the
   * clock moves, and continuous tasks (they run until stopped) are left as they are. With
   * `ignoreRunning`, running handlers are left too (one may itself wait for the clock: its
   * timeout). For drivers of a virtual clock (`ujr/testing`).
   */
  async whenSettled(options: { ignoreRunning?: boolean } = {}): Promise<void> {
    const ignoreRunning = options.ignoreRunning ?? false;
    for (;;) {
      if (this.stopped) return this.stopped;
      if (!this.isSettled(ignoreRunning)) {
        await new Promise<void>((resolve) => this.settleWaiters.push({ ignoreRunning, resolve }));
      }
      // The writes of what just happened go out, and whatever follows them (a follow-up plan) starts.
      await this.journal.flush().catch(() => undefined);
      if (this.isSettled(ignoreRunning)) return;
    }
  }

  /** Records an ad-hoc run request; the next tick (of any runner on this store) takes it. */
  async trigger(instanceId: string, task?: string, input?: Json): Promise<Trigger> {
    const trigger: Trigger = { id: this.nextId(), instanceId, at: this.now() };
    if (task !== undefined) trigger.task = task;
    if (input !== undefined) trigger.input = input;
    await this.store.addTrigger(trigger);
    if (this.started && !this.stopping) void this.planLoop.takeTriggers();
    return trigger;
  }

  /**
   * Stops planning, aborts running tasks, waits up to `graceMs` for them, records them
   * `interrupted` (planned again next start) and releases every lease.
   */
  stop(graceMs = this.options.graceMs): Promise<void> {
    this.stopped ??= this.shutdown(graceMs);
    return this.stopped;
  }

  private async shutdown(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const timer of this.intervals) timer.cancel();
    this.intervals = [];
    const heartbeat = this.timers.setInterval(() => this.leases.renewAll(), this.leases.renewEveryMs);
    try {
      const shutdown = new ShutdownError();
      const running: Promise<unknown>[] = [];
      for (const attempt of [...this.held.values()]) {
        if (attempt.state === 'running' && attempt.handle) {
          attempt.abortReason ??= shutdown;
          attempt.handle.abort(attempt.abortReason);
          running.push(attempt.handle.done);
        } else if (attempt.state === 'abandoned') {
          this.forget(attempt, true);
        } else {
          this.endWithoutRunning(attempt, 'interrupted', toErrorInfo(shutdown));
        }
      }
      await waitAll(running, graceMs);
      for (const attempt of [...this.held.values()]) {
        if (attempt.handle && attempt.handle.kill()) continue;
        this.finish(attempt, failure(attempt.abortReason ?? shutdown));
      }
      await waitAll(
        [...this.held.values()].flatMap((a) => (a.handle ? [a.handle.done] : [])),
        graceMs,
      );
      for (const attempt of [...this.held.values()]) this.forget(attempt, true);
      await Promise.all([this.inline.close(), this.processExecutor?.close()]);
      await this.journal.flush().catch(() => undefined);
    } finally {
      heartbeat.cancel();
      this.resolveIdle();
      for (const waiter of this.settleWaiters.splice(0)) waiter.resolve();
    }
  }

  // ---- instance status (the plan loop, plan-loop.ts, asks instances for tasks) --------------

  /** Re-reads an instance's status (a CLI may have un-retired it). */
  private async refreshStatus(runtime: InstanceRuntime): Promise<void> {
    try {
      runtime.status = await this.store.getInstanceStatus(runtime.config.id);
    } catch (error) {
      this.reportStoreError(error);
    }
  }

  // ---- dispatch ------------------------------------------------------------------------------

  /** An attempt the dispatch queue let go (it holds a slot): its run is marked running and its handler starts. */
  private startAttempt(attempt: Attempt): void {
    attempt.state = 'running';
    const { run } = attempt;
    run.status = 'running';
    run.startedAt = this.now();
    this.journal.putRun(run, attempt.lease);
    this.emit('run', run);
    void this.launch(attempt);
  }

  private async launch(attempt: Attempt): Promise<void> {
    const { planned, run, instance } = attempt;
    const executor = planned.isolate ? this.processExecutor : this.inline;
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
          run.progress = { current, updatedAt: this.now() };
          if (total !== undefined) run.progress.total = total;
          if (message !== undefined) run.progress.message = message;
          this.journal.putRun(run, attempt.lease);
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
          this.journal.checkpoint({ signature: run.signature, value, runId: run.id, at: this.now() }, attempt.lease);
          await this.journal.flush();
          if (attempt.lost) throw this.lostError(attempt, 'the checkpoint was not stored');
          attempt.lastCheckpoint = value;
        },
        fence: async () => {
          await this.leases.check(attempt);
          if (attempt.lost) throw this.lostError(attempt, 'the write was refused');
        },
      },
    );
    attempt.handle = handle;
    if (!handlerStarted) {
      // A child process boots first (job types load through tsx); its clocks start with the handler.
      attempt.timers.push(
        this.timers.setTimeout(
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
      attempt.timers.push(this.timers.setTimeout(() => this.abortAttempt(attempt, new TaskTimeoutError(timeoutMs)), timeoutMs));
    }
    const watchdogMs = planned.definition.heartbeatTimeoutMs;
    if (watchdogMs !== undefined) {
      attempt.watchdog = this.timers.setTimeout(
        () => this.abortAttempt(attempt, new TaskProcessError(`no heartbeat for ${watchdogMs} ms; the task is considered hung and is stopped`)),
        watchdogMs,
      );
    }
  }

  private onHeartbeat(attempt: Attempt): void {
    attempt.watchdog?.refresh();
    this.leases.heartbeat(attempt);
  }

  /** Aborts a running attempt for `reason`; stops it hard after the grace period. */
  private abortAttempt(attempt: Attempt, reason: Error): void {
    if (attempt.state !== 'running' || !attempt.handle) return;
    if (attempt.abortReason) return;
    attempt.abortReason = reason;
    attempt.handle.abort(reason);
    attempt.timers.push(
      this.timers.setTimeout(() => {
        if (attempt.state !== 'running' || !attempt.handle) return;
        if (attempt.handle.kill()) return;
        // An inline handler ignoring its signal cannot be killed: record the attempt as over, but
        // keep holding the signature until the handler really returns.
        this.log.warn(
          `task "${attempt.planned.task}" (run ${attempt.run.id}) ignored its abort signal for ${this.options.graceMs} ms; it is abandoned and its signature stays leased until it returns. Set isolate: true on tasks that may hang.`,
        );
        this.finish(attempt, failure(reason), true);
      }, this.options.graceMs),
    );
  }

  // ---- endings -------------------------------------------------------------------------------

  /** Records how an attempt ended and decides what follows: done, retry, or restart. */
  private finish(attempt: Attempt, raw: AttemptOutcome, abandon = false): void {
    if (attempt.state !== 'running') return;
    this.clearTimers(attempt);
    this.dispatch.vacate(attempt);
    const { planned, run } = attempt;
    const outcome = capResult(raw, this.options.maxResultBytes);
    const reason = attempt.abortReason;
    run.endedAt = this.now();
    const ending = endingOf(outcome, {
      kind: planned.kind,
      abortReason: reason,
      lost: attempt.lost,
      attempt: run.attempt,
      maxAttempts: run.maxAttempts,
      noRetry: abandon || this.stopping,
      lostError: () => this.lostError(attempt, 'its result is not recorded'),
    });
    const { status, retry } = ending;
    if (ending.result !== undefined) run.result = ending.result;
    if (ending.error !== undefined) run.error = ending.error;
    if (abandon) {
      attempt.state = 'abandoned';
      run.status = status;
      this.count(run.status);
      this.journal.putRun(run, attempt.lease);
      this.emit('run', run);
      this.schedulePump();
      return;
    }
    run.status = status;
    // A failed attempt that is retried ends `failed`, linked to the next attempt (which waits as `retrying`).
    const nextRunId = retry ? this.nextId() : undefined;
    if (nextRunId !== undefined) run.nextRunId = nextRunId;
    else this.count(status);
    this.journal.putRun(run, attempt.lease);
    this.emit('run', run);

    if (nextRunId !== undefined) this.retryLater(attempt, nextRunId);
    else if (planned.kind === 'continuous' && status === 'failed' && !this.stopping) this.restartLater(attempt, outcome);
    else if (status === 'failed' && planned.definition.revert) void this.revertThenRelease(attempt);
    else this.forget(attempt, !(reason instanceof LeaseLostError) && !attempt.lost);
    this.schedulePump();
  }

  private retryLater(attempt: Attempt, nextRunId: string): void {
    const { planned, run } = attempt;
    const delay = backoffDelay(planned.retry, run.attempt, this.random);
    this.counters.retried += 1;
    this.appendLog(attempt, 'warn', `attempt ${run.attempt} of ${run.maxAttempts} failed: ${run.error?.message ?? ''}; retrying in ${delay} ms as run ${nextRunId}`);
    this.backOff(attempt, 'retry', delay, () => {
      this.dispatch.enqueue(attempt);
      this.dispatch.pump();
    }, nextRunId);
    // The next attempt is visible at once, as `retrying` until its backoff is over.
    attempt.run.status = 'retrying';
    this.journal.putRun(attempt.run, attempt.lease);
    this.emit('run', attempt.run);
  }

  /** A continuous task ended badly: restart it after a backoff if its job still returns it. */
  private restartLater(attempt: Attempt, outcome: AttemptOutcome): void {
    const { planned, run, instance } = attempt;
    const healthy = run.startedAt !== undefined && this.now() - run.startedAt >= CONTINUOUS_HEALTHY_MS;
    attempt.restarts = healthy ? 1 : attempt.restarts + 1;
    const delay = backoffDelay(this.continuousRestart, attempt.restarts, this.random);
    this.log.warn(
      `continuous task "${planned.task}" of "${instance.config.id}" stopped (${outcome.ok ? 'returned' : (run.error?.message ?? 'failed')}); restarting in ${delay} ms if its job still returns it`,
    );
    attempt.wanted = false;
    this.backOff(attempt, 'restart', delay, () => {
      if (!isActive(instance)) {
        this.cancel(attempt, `instance "${instance.config.id}" is no longer active`);
      } else if (attempt.wanted) {
        this.dispatch.enqueue(attempt);
        this.dispatch.pump();
      } else {
        // The job has not answered yet (its plan is slow or failed): the next plan that returns
        // the task restarts it, one that does not cancels it.
        attempt.restartDue = true;
      }
    });
    // Ask the job now, so the restart knows whether the task is still wanted.
    this.planLoop.requestPlan(instance, 'restart');
  }

  /** Moves a held signature on to its next attempt, due after `delay`; the lease stays held. */
  private backOff(attempt: Attempt, origin: RunOrigin, delay: number, onDue: () => void, nextRunId = this.nextId()): void {
    const { planned, run, instance } = attempt;
    attempt.run = newRun(instance, planned, {
      id: nextRunId,
      attempt: run.attempt + 1,
      origin,
      token: attempt.lease.token,
      runner: this.owner,
      queuedAt: this.now(),
    });
    attempt.run.previousRunId = run.id;
    if (run.triggerId !== undefined) attempt.run.triggerId = run.triggerId;
    attempt.logLines = 0;
    attempt.state = 'backoff';
    delete attempt.abortReason;
    delete attempt.handle;
    this.counters.backoff += 1;
    attempt.timers.push(
      this.timers.setTimeout(() => {
        this.counters.backoff -= 1;
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
    const error = await withTimeout(
      Promise.resolve().then(() =>
        definition.revert?.(run.input, run.error ?? { name: 'Error', message: 'failed' }, {
          instanceId: instance.config.id,
          params: instance.config.params,
          log,
          objects: this.objects,
        }),
      ),
      planned.timeoutMs ?? this.options.graceMs,
      `revert of task "${planned.task}" did not finish in time`,
      this.timers,
    ).then(
      () => undefined,
      (failed: unknown) => failed,
    );
    if (error === undefined) this.appendLog(attempt, 'info', 'reverted after the last attempt failed');
    else this.appendLog(attempt, 'error', `revert failed: ${toErrorInfo(error).message}`);
    this.forget(attempt, true);
  }

  /** Ends a queued or backing-off attempt that never started. */
  private endWithoutRunning(attempt: Attempt, status: RunStatus, error: ErrorInfo): void {
    if (attempt.state === 'queued') this.dispatch.leave(attempt);
    if (attempt.state === 'backoff' && attempt.timers.length > 0) this.counters.backoff -= 1;
    this.clearTimers(attempt);
    attempt.state = 'abandoned';
    const { run } = attempt;
    run.status = status;
    run.endedAt = this.now();
    run.error = error;
    this.count(status);
    this.journal.putRun(run, attempt.lease);
    this.emit('run', run);
    this.forget(attempt, true);
  }

  private cancel(attempt: Attempt, why: string): void {
    const error = new CancelledError(why);
    if (attempt.state === 'running') this.abortAttempt(attempt, error);
    else if (attempt.state === 'queued' || attempt.state === 'backoff') this.endWithoutRunning(attempt, 'cancelled', toErrorInfo(error));
  }

  private cancelInstanceWork(runtime: InstanceRuntime, why: string, only?: 'continuous'): void {
    for (const attempt of [...this.held.values()]) {
      if (attempt.instance !== runtime) continue;
      if (only === 'continuous' && attempt.planned.kind !== 'continuous') continue;
      this.cancel(attempt, why);
    }
  }

  /** Drops the signature; releases its lease (after its final record) unless it was lost. */
  private forget(attempt: Attempt, release: boolean): void {
    this.clearTimers(attempt);
    const current = this.held.get(attempt.planned.signature);
    if (current === attempt) this.held.delete(attempt.planned.signature);
    if (attempt.instance.continuousHeld.get(attempt.planned.signature) === attempt) attempt.instance.continuousHeld.delete(attempt.planned.signature);
    if (release && !attempt.lost) this.journal.release(attempt.lease);
    if (attempt.trigger && attempt.run.status === 'interrupted' && !attempt.lost) {
      // An ad-hoc run cut short by shutdown is asked for again on the next start.
      this.journal.addTrigger({ ...attempt.trigger, id: this.nextId() });
    }
    attempt.state = 'abandoned';
    const runtime = attempt.instance;
    runtime.finishedSinceTick.add(attempt.planned.signature);
    this.planLoop.followUp(runtime);
    this.checkIdle();
  }

  private leaseLost(attempt: Attempt): void {
    attempt.lost = true;
    if (this.held.get(attempt.planned.signature) !== attempt) return;
    const error = this.lostError(attempt, 'it stops and writes nothing more');
    this.log.warn(error.message);
    if (attempt.state === 'running') this.abortAttempt(attempt, error);
    else if (attempt.state === 'abandoned') this.forget(attempt, false);
    else {
      // Queued or backing off: its record is ended by whoever holds the lease now, or the sweeper.
      if (attempt.state === 'queued') this.dispatch.leave(attempt);
      if (attempt.state === 'backoff' && attempt.timers.length > 0) this.counters.backoff -= 1;
      this.clearTimers(attempt);
      attempt.state = 'abandoned';
      attempt.run.status = 'interrupted';
      attempt.run.endedAt = this.now();
      attempt.run.error = toErrorInfo(error);
      this.count('interrupted');
      this.emit('run', attempt.run);
      this.forget(attempt, false);
    }
  }

  private lostError(attempt: Attempt, consequence: string): LeaseLostError {
    return new LeaseLostError(
      `the lease on ${attempt.planned.signature} (token ${attempt.lease.token}) was lost: this runner missed its renewals (it was stopped, hung or cut off from its store) and another runner or the sweeper moved it on; ${consequence}`,
    );
  }

  /** The store refused writes made under these leases: their attempts are stale. */
  private writesRefused(refused: LeaseRef[]): void {
    for (const ref of refused) {
      const attempt = this.held.get(ref.signature);
      if (attempt && attempt.lease.token === ref.token && attempt.lease.owner === ref.owner) this.leaseLost(attempt);
    }
  }

  /** Ends runs (of any runner on this store) whose lease expired without a final record. */
  private async sweep(): Promise<void> {
    for (const { run } of await this.leases.sweep()) {
      this.log.warn(`run ${run.id} of ${run.instanceId}/${run.task} was left unfinished by runner ${run.runner}, whose lease expired; recorded interrupted`);
      this.emit('run', run);
    }
  }


  // ---- leases, logs, housekeeping ------------------------------------------------------------

  private appendLog(attempt: Attempt, level: LogLevel, message: string): void {
    const max = this.options.maxLogLinesPerRun;
    if (attempt.logLines > max) return;
    attempt.logLines += 1;
    const text =
      attempt.logLines > max
        ? `log truncated: more than ${max} lines in this run`
        : message.length > MAX_LOG_MESSAGE
          ? `${message.slice(0, MAX_LOG_MESSAGE)}… (${message.length - MAX_LOG_MESSAGE} more characters)`
          : message;
    this.journal.log({ runId: attempt.run.id, seq: attempt.logLines, at: this.now(), level, message: text }, attempt.lease);
  }

  private async prune(): Promise<void> {
    try {
      const removed = await this.store.pruneRuns(this.now() - this.options.retentionMs);
      if (removed > 0) this.log.info(`pruned ${removed} runs older than the retention period`);
    } catch (error) {
      this.reportStoreError(error);
    }
  }

  private reportStoreError(error: unknown): void {
    const info = toErrorInfo(error);
    this.log.error(`store error: ${info.message}`);
    this.emit('storeError', info);
  }

  private count(status: RunStatus): void {
    if (status === 'succeeded' || status === 'failed' || status === 'skipped' || status === 'interrupted' || status === 'cancelled') {
      this.counters[status] += 1;
    }
  }

  private clearTimers(attempt: Attempt): void {
    for (const timer of attempt.timers) timer.cancel();
    attempt.timers = [];
    attempt.watchdog?.cancel();
    delete attempt.watchdog;
  }

  private pumpScheduled = false;

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.dispatch.pump();
      this.checkIdle();
    });
  }

  private every(ms: number, fn: () => void): void {
    this.intervals.push(this.timers.setInterval(fn, ms));
  }

  private isIdle(): boolean {
    if (this.held.size > 0 || this.planLoop.takingTriggers) return false;
    for (const runtime of this.instances.values()) {
      if (runtime.planning || runtime.followupPending) return false;
      if (this.options.once && runtime.nextDueAt !== Number.POSITIVE_INFINITY && isActive(runtime)) return false;
    }
    return true;
  }

  /** Whether only the clock (or, with `ignoreRunning`, running handlers) can move things on; see whenSettled. */
  private isSettled(ignoreRunning: boolean): boolean {
    if (this.planLoop.takingTriggers) return false;
    for (const attempt of this.held.values()) {
      if (attempt.state === 'queued' && this.dispatch.hasSlotFor(attempt)) return false;
      const handlerRuns = (attempt.state === 'running' && attempt.planned.kind === 'batch') || attempt.state === 'abandoned';
      if (handlerRuns && !ignoreRunning) return false;
    }
    for (const runtime of this.instances.values()) {
      if (runtime.planning || (runtime.followupPending && !runtime.replanDelayed)) return false;
      if (this.options.once && runtime.nextDueAt !== Number.POSITIVE_INFINITY && isActive(runtime)) return false;
    }
    return true;
  }

  /** Called after every change of state: asks backlogged instances again, then wakes idle waiters. */
  private checkIdle(): void {
    this.planLoop.replanBacklogged();
    if (this.settleWaiters.length > 0) {
      const waiting = this.settleWaiters;
      this.settleWaiters = [];
      for (const waiter of waiting) {
        if (this.isSettled(waiter.ignoreRunning)) waiter.resolve();
        else this.settleWaiters.push(waiter);
      }
    }
    if (this.idleWaiters.length === 0 || !this.isIdle()) return;
    this.resolveIdle();
    this.emit('idle');
  }

  private resolveIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/**
 * Whether two instance configurations are equal. `concurrency` is compared apart: its default,
 * Infinity, is not JSON and would make canonicalJson throw.
 */
function sameInstanceConfig(a: InstanceConfig, b: InstanceConfig): boolean {
  const { concurrency: ca, ...restA } = a;
  const { concurrency: cb, ...restB } = b;
  return ca === cb && canonicalJson(restA, 'config') === canonicalJson(restB, 'config');
}

async function waitAll(promises: Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(promises),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
