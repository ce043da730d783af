/**
 * The dispatch queue: leased attempts wait here for a slot. It owns the concurrency limits (the
 * runner's batch slots, each instance's own cap, the continuous slots), takes instances in turn so
 * a large backlog does not starve the others, and lets no attempt start before its run is in the
 * store. What starting means (the attempt lifecycle) is the runner's: the queue calls `start`.
 */
import type { Timers } from '../ports/timers.js';
import type { Attempt, InstanceRuntime } from './attempt.js';
import type { Journal } from './journal.js';

/** How soon queued runs the store failed to take are offered to it again. */
const RECORD_RETRY_MS = 250;

export interface DispatchLimits {
  /** Batch attempts running at once, across instances. */
  concurrency: number;
  /** Continuous attempts running at once. */
  maxContinuous: number;
}

export interface DispatchHooks {
  /** An attempt the limits let go: it has left the queue and holds its slot. */
  start(attempt: Attempt): void;
  /** Whether the runner still holds the attempt (one waiting for its commit may have been dropped). */
  holds(attempt: Attempt): boolean;
  /** The runner is stopping: nothing more starts. */
  stopping(): boolean;
  /** An instance's batch queue shrank to one round of its slots (a deferred follow-up may run). */
  queueShrank(runtime: InstanceRuntime): void;
  /** Staged attempts joined their queues and were dispatched. */
  changed(): void;
}

export class DispatchQueue {
  /** Batch attempts running. */
  batchRunning = 0;
  /** Continuous attempts running. */
  continuousRunning = 0;
  /** Attempts queued (staged or in a queue), across instances. */
  queued = 0;
  private rotation: InstanceRuntime[] = [];
  private rotationIndex = 0;
  /** Queued attempts whose run is not in the store yet: they join their queue once it is. */
  private unrecorded: Attempt[] = [];
  private recording = false;

  constructor(
    private readonly journal: Journal,
    private readonly timers: Timers,
    private readonly limits: DispatchLimits,
    private readonly hooks: DispatchHooks,
  ) {}

  addInstance(runtime: InstanceRuntime): void {
    this.rotation.push(runtime);
  }

  removeInstance(runtime: InstanceRuntime): void {
    this.rotation = this.rotation.filter((r) => r !== runtime);
  }

  /** Queues an attempt (its run is written `queued`); it may start once its run is in the store. */
  enqueue(attempt: Attempt): void {
    attempt.state = 'queued';
    this.queued += 1;
    if (attempt.planned.kind !== 'continuous') attempt.instance.batchQueued += 1;
    attempt.run.status = 'queued';
    this.journal.putRun(attempt.run, attempt.lease);
    if (attempt.recorded === attempt.run.id) this.joinQueue(attempt);
    else {
      this.unrecorded.push(attempt);
      this.recordQueued();
    }
  }

  /** Starts queued attempts while limits allow, taking instances in turn. */
  pump(): void {
    if (this.hooks.stopping()) return;
    for (const runtime of this.rotation) {
      const queue = runtime.continuousQueue;
      while (queue.length > 0 && this.continuousRunning < this.limits.maxContinuous) {
        const attempt = queue.shift() as Attempt;
        if (attempt.state === 'queued') this.begin(attempt);
      }
    }
    let progressed = true;
    while (progressed && this.batchRunning < this.limits.concurrency) {
      progressed = false;
      for (let n = 0; n < this.rotation.length && this.batchRunning < this.limits.concurrency; n += 1) {
        this.rotationIndex = (this.rotationIndex + 1) % this.rotation.length;
        const runtime = this.rotation[this.rotationIndex] as InstanceRuntime;
        const limit = runtime.config.concurrency;
        while (runtime.batchQueue.length > 0 && runtime.batchRunning < limit && this.batchRunning < this.limits.concurrency) {
          const attempt = runtime.batchQueue.shift() as Attempt;
          if (attempt.state !== 'queued') continue;
          this.begin(attempt);
          progressed = true;
          // Take one per instance per round, so a large backlog does not starve the others.
          break;
        }
      }
    }
  }

  /**
   * Counts a queued attempt out (it starts, or ends without running). Its entry in the queue, if
   * any, is skipped when reached: its state is no longer `queued`.
   */
  leave(attempt: Attempt): void {
    this.queued -= 1;
    if (attempt.planned.kind === 'continuous') return;
    const runtime = attempt.instance;
    runtime.batchQueued -= 1;
    if (runtime.followupDeferred && runtime.batchQueued <= this.followupRoom(runtime)) this.hooks.queueShrank(runtime);
  }

  /** Gives back the slot of an attempt that ran. */
  vacate(attempt: Attempt): void {
    if (attempt.planned.kind === 'continuous') this.continuousRunning -= 1;
    else {
      this.batchRunning -= 1;
      attempt.instance.batchRunning -= 1;
    }
  }

  /** Whether the limits let a queued attempt start now (else it waits for a running one to end). */
  hasSlotFor(attempt: Attempt): boolean {
    if (attempt.planned.kind === 'continuous') return this.continuousRunning < this.limits.maxContinuous;
    return this.batchRunning < this.limits.concurrency && attempt.instance.batchRunning < attempt.instance.config.concurrency;
  }

  /**
   * How many of an instance's batch tasks may wait while its follow-up plans still run: one round
   * of its slots. Beyond it a plan could only add tasks behind those already waiting, and asking a
   * job that returns all its outstanding work (thousands of specs, each resolved and hashed) after
   * every task would spend the runner's time planning instead of running.
   */
  followupRoom(runtime: InstanceRuntime): number {
    return Math.max(1, Math.min(this.limits.concurrency, runtime.config.concurrency));
  }

  private begin(attempt: Attempt): void {
    this.leave(attempt);
    if (attempt.planned.kind === 'continuous') this.continuousRunning += 1;
    else {
      this.batchRunning += 1;
      attempt.instance.batchRunning += 1;
    }
    this.hooks.start(attempt);
  }

  private joinQueue(attempt: Attempt): void {
    if (attempt.planned.kind === 'continuous') attempt.instance.continuousQueue.push(attempt);
    else attempt.instance.batchQueue.push(attempt);
  }

  /**
   * Commits the runs of newly queued attempts before they may start: a handler never runs before
   * its run is in the store, so a runner killed at any moment leaves a record of every attempt it
   * started (which the next holder or the sweeper ends). The runs of a whole plan go in one
   * commit, at once rather than after the journal's group-commit interval.
   */
  private recordQueued(): void {
    if (this.recording || this.unrecorded.length === 0) return;
    this.recording = true;
    const batch = this.unrecorded;
    this.unrecorded = [];
    this.journal.flush().then(
      () => {
        this.recording = false;
        for (const attempt of batch) {
          attempt.recorded = attempt.run.id;
          if (attempt.state === 'queued' && this.hooks.holds(attempt)) this.joinQueue(attempt);
        }
        this.recordQueued();
        this.pump();
        this.hooks.changed();
      },
      () => {
        // The journal reported the store error and keeps the writes; ask again shortly.
        this.recording = false;
        this.unrecorded = [...batch, ...this.unrecorded];
        this.timers.setTimeout(() => this.recordQueued(), RECORD_RETRY_MS).unref();
      },
    );
  }
}
