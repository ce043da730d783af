/**
 * The runner: its options and instances, start and stop, events, stats, and when it is idle or
 * settled. The work is done by its pieces, one per step of a task's life: the plan loop
 * (plan-loop.ts) asks due instances for tasks and admits them under their leases, the dispatch
 * queue (dispatch.ts) decides when a queued attempt may start, the attempt lifecycle
 * (lifecycle.ts) runs it and decides what follows its end, the lease keeper (lease-keeper.ts)
 * keeps the leases alive, the journal (journal.ts) group-commits every write, and attempt.ts
 * holds the records they share and the rules from outcome to final status. It only talks to
 * ports (store, object store, executors), so the same engine runs on SQLite, in memory, or on
 * DynamoDB.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { monotonicFactory } from 'ulid';
import { ShutdownError, toErrorInfo } from '../errors.js';
import { MAX_RESULT_BYTES } from '../limits.js';
import { mergeRetry } from '../retry.js';
import { parseSchedule } from '../schedule.js';
import { canonicalJson } from '../signature.js';
import { realTimers, type TimerHandle, type Timers } from '../ports/timers.js';
import { checkLimitRequest, InvalidLimitError, type LimitDefinition, type LimitGrant, type LimitPermit, type LimitRequest } from '../ports/limits.js';
import type { InstanceStatus, Store, Trigger } from '../ports/store.js';
import type { InstanceConfig, JobType, Json, Logger, ObjectStore, RetryPolicy } from '../types.js';
import { isActive, newInstanceRuntime, type Attempt, type InstanceRuntime } from './attempt.js';
import { DispatchQueue, type LimitGate } from './dispatch.js';
import { failure, InlineExecutor, type Executor } from './executor.js';
import { Journal } from './journal.js';
import { LeaseKeeper } from './lease-keeper.js';
import { waitingMessage } from './limit-messages.js';
import { AttemptLifecycle } from './lifecycle.js';
import { PlanLoop } from './plan-loop.js';
import type { RunnerEvents, RunnerParts, RunnerStats } from './runner-events.js';

export interface RunnerOptions {
  store: Store;
  objects: ObjectStore;
  jobs: JobType[];
  instances?: InstanceConfig[];
  /**
   * The shared limits tasks may name (issue 15), by name; `setLimits` replaces them. Taking them
   * needs a store with a limit store (`store.limits`: SQLite, memory).
   */
  limits?: ReadonlyMap<string, LimitDefinition>;
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

/** See RunnerOptions.commitIntervalMs. */
const DEFAULT_COMMIT_INTERVAL_MS = 10;

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
  /** The shared limits tasks may name, by name (`setLimits`). */
  private limitDefinitions = new Map<string, LimitDefinition>();
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
    rateLimited: 0,
    deduplicated: 0,
    takenOver: 0,
    planErrors: 0,
  };
  private readonly dispatch: DispatchQueue;
  private readonly leases: LeaseKeeper;
  private readonly planLoop: PlanLoop;
  private readonly lifecycle: AttemptLifecycle;
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
      onRefused: (refused) => this.lifecycle.writesRefused(refused),
      now: () => this.now(),
      commitIntervalMs: options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS,
    });
    this.dispatch = new DispatchQueue(this.journal, this.timers, this.options, {
      start: (attempt) => this.lifecycle.start(attempt),
      holds: (attempt) => this.held.get(attempt.planned.signature) === attempt,
      stopping: () => this.stopping,
      queueShrank: (runtime) => {
        runtime.followupDeferred = false;
        this.planLoop.followUp(runtime);
      },
      changed: () => this.checkIdle(),
    }, this.limitGate(), () => this.now());
    this.leases = new LeaseKeeper(this.store, this.options.leaseTtlMs, () => this.now(), {
      held: () => this.held.values(),
      lost: (attempt) => this.lifecycle.leaseLost(attempt),
      storeError: (error) => this.reportStoreError(error),
      permitLost: (attempt) =>
        this.log.warn(`task "${attempt.planned.task}" (run ${attempt.run.id}) lost a shared-limit slot it held (not renewed in time); the limit may be exceeded until it ends`),
    });
    const parts: RunnerParts = {
      journal: this.journal,
      dispatch: this.dispatch,
      timers: this.timers,
      log: this.log,
      objects: this.objects,
      owner: this.owner,
      held: this.held,
      emit: (event, ...args) => this.emit(event, ...args),
      now: () => this.now(),
      nextId: () => this.nextId(),
      stopping: () => this.stopping,
      schedulePump: () => this.schedulePump(),
      checkIdle: () => this.checkIdle(),
    };
    this.lifecycle = new AttemptLifecycle({
      ...parts,
      limits: this.store.limits,
      leases: this.leases,
      inline: this.inline,
      processExecutor: this.processExecutor,
      options: this.options,
      continuousRestart: this.continuousRestart,
      counters: this.counters,
      random: () => this.random(),
      followUp: (runtime) => this.planLoop.followUp(runtime),
      requestPlan: (runtime, reason) => this.planLoop.requestPlan(runtime, reason),
    });
    this.planLoop = new PlanLoop({
      ...parts,
      store: this.store,
      options: this.options,
      instances: this.instances,
      counters: this.counters,
      reportStoreError: (error) => this.reportStoreError(error),
      cancel: (attempt, why) => this.lifecycle.cancel(attempt, why),
      cancelInstanceWork: (runtime, why, only) => this.lifecycle.cancelInstanceWork(runtime, why, only),
      limitDefinitions: () => this.limitDefinitions,
      hasLimitStore: this.store.limits !== undefined,
    });
    for (const job of options.jobs) {
      if (this.jobs.has(job.name)) throw new TypeError(`two job types are named "${job.name}"; job type names must be unique`);
      this.jobs.set(job.name, job);
    }
    this.setInstances(options.instances ?? []);
    if (options.limits) this.setLimits(options.limits);
  }

  /**
   * The dispatch queue's way to the store's shared limits: a grant's concurrency slots belong to
   * the attempt's run and last a lease period, renewed with its lease (the lease keeper).
   */
  private limitGate(): LimitGate | undefined {
    const limits = this.store.limits;
    if (!limits) return undefined;
    // The attempts a pump starts together ask in one call (one transaction where the store has
    // them), and the permits given back in one turn of the event loop go back together.
    const asking: { request: LimitRequest; resolve: (grant: LimitGrant) => void; reject: (error: unknown) => void }[] = [];
    const releasing: LimitPermit[] = [];
    const ask = (): void => {
      const batch = asking.splice(0);
      const requests = batch.map((one) => one.request);
      const answered = limits.acquireMany ? limits.acquireMany(requests, this.now()) : Promise.all(requests.map((request) => limits.acquireLimits(request, this.now())));
      answered.then(
        (grants) => batch.forEach((one, i) => one.resolve(grants[i] as LimitGrant)),
        (error: unknown) => batch.forEach((one) => one.reject(error)),
      );
    };
    const giveBack = (): void => {
      const permits = releasing.splice(0);
      const done = limits.releaseMany ? limits.releaseMany(permits, this.now()) : Promise.all(permits.map((permit) => limits.releaseLimits(permit, this.now())));
      done.catch((error: unknown) => this.reportStoreError(error));
    };
    return {
      acquire: (attempt) =>
        new Promise<LimitGrant>((resolve, reject) => {
          asking.push({ request: { holder: attempt.run.id, ttlMs: this.options.leaseTtlMs, limits: attempt.planned.limits ?? [] }, resolve, reject });
          if (asking.length === 1) queueMicrotask(ask);
        }),
      release: (permit) => {
        releasing.push(permit);
        if (releasing.length === 1) queueMicrotask(giveBack);
      },
      error: (_attempt, error) => this.reportStoreError(error),
      waiting: (attempt, on) => {
        // The queued run says what it waits for, where status and the page show progress.
        if (on) attempt.run.progress = { current: 0, message: waitingMessage(on), updatedAt: this.now() };
        else delete attempt.run.progress;
        this.journal.putRun(attempt.run, attempt.lease);
      },
    };
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
   * Replaces the shared limits tasks may name (the configuration's `limits`). Tasks planned from
   * now on take their buckets from these definitions; tasks already queued keep what they were
   * planned with.
   * @throws {InvalidLimitError} naming a malformed definition (then none is replaced).
   */
  setLimits(definitions: ReadonlyMap<string, LimitDefinition>): void {
    for (const [name, definition] of definitions) {
      // What the store would refuse at every acquire is refused here, once, naming the limit.
      if (definition.name !== name) throw new InvalidLimitError(`limit "${name}" is defined with the name "${definition.name}"; use the same name`);
      checkLimitRequest({ holder: 'check', ttlMs: 1, limits: [{ ...definition, key: '' }] });
    }
    this.limitDefinitions = new Map(definitions);
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
        const runtime = newInstanceRuntime(config, job, this.now());
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
        this.lifecycle.cancelInstanceWork(existing, `instance "${config.id}" was disabled`);
      } else if (config.enabled && !before.enabled) {
        existing.nextDueAt = this.now();
      } else if (canonicalJson(before.params, 'params') !== canonicalJson(config.params, 'params') || before.job !== config.job) {
        this.lifecycle.cancelInstanceWork(existing, `instance "${config.id}" changed its configuration`, 'continuous');
        existing.nextDueAt = this.now();
      }
    }
    for (const runtime of [...this.instances.values()]) {
      if (seen.has(runtime.config.id)) continue;
      this.lifecycle.cancelInstanceWork(runtime, `instance "${runtime.config.id}" was removed from the configuration`);
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
   * `interrupted` (planned again next start) and releases every lease. `signal`: the signal that
   * stopped the process (`SIGINT` for Ctrl-C), named in the runs' `ShutdownError`.
   */
  stop(graceMs = this.options.graceMs, signal?: string): Promise<void> {
    this.stopped ??= this.shutdown(graceMs, signal);
    return this.stopped;
  }

  private async shutdown(graceMs: number, signal?: string): Promise<void> {
    this.stopping = true;
    for (const timer of this.intervals) timer.cancel();
    this.intervals = [];
    const heartbeat = this.timers.setInterval(() => this.leases.renewAll(), this.leases.renewEveryMs);
    try {
      const shutdown = new ShutdownError(signal);
      const running: Promise<unknown>[] = [];
      for (const attempt of [...this.held.values()]) {
        if (attempt.state === 'running' && attempt.handle) {
          attempt.abortReason ??= shutdown;
          attempt.handle.abort(attempt.abortReason);
          running.push(attempt.handle.done);
        } else if (attempt.state === 'reverting' && attempt.reverted) {
          running.push(attempt.reverted);
        } else if (attempt.state === 'abandoned') {
          this.lifecycle.forget(attempt, true);
        } else {
          this.lifecycle.endWithoutRunning(attempt, 'interrupted', toErrorInfo(shutdown));
        }
      }
      await waitAll(running, graceMs);
      for (const attempt of [...this.held.values()]) {
        if (attempt.handle && attempt.handle.kill()) continue;
        this.lifecycle.finish(attempt, failure(attempt.abortReason ?? shutdown));
      }
      await waitAll(
        [...this.held.values()].flatMap((a) => (a.handle ? [a.handle.done] : [])),
        graceMs,
      );
      for (const attempt of [...this.held.values()]) this.lifecycle.forget(attempt, true);
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

  // ---- sweeping (the attempt lifecycle is in lifecycle.ts) ----------------------------------

  /** Ends runs (of any runner on this store) whose lease expired without a final record. */
  private async sweep(): Promise<void> {
    for (const { run } of await this.leases.sweep()) {
      this.log.warn(`run ${run.id} of ${run.instanceId}/${run.task} was left unfinished by runner ${run.runner}, whose lease expired; recorded interrupted`);
      this.emit('run', run);
    }
  }


  // ---- leases, logs, housekeeping ------------------------------------------------------------

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
      if (attempt.acquiring) return false;
      // One waiting for a limit bucket waits for the clock (its bucket's timer).
      if (attempt.state === 'queued' && attempt.limitWait === undefined && this.dispatch.hasSlotFor(attempt)) return false;
      const handlerRuns =
        (attempt.state === 'running' && attempt.planned.kind === 'batch') || attempt.state === 'reverting' || attempt.state === 'abandoned';
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
