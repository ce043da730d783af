/**
 * The dispatch queue: leased attempts wait here for a slot. It owns the concurrency limits (the
 * runner's batch slots, each instance's own cap, the continuous slots), takes instances in turn so
 * a large backlog does not starve the others, and lets no attempt start before its run is in the
 * store. What starting means (the attempt lifecycle) is the runner's: the queue calls `start`.
 *
 * Shared limits (issue 15): an attempt that names limits takes them from the store (the
 * {@link LimitGate}) once a slot is free for it, holding that slot only for the call, so that its
 * start follows its token at once (a token taken long before its start would let starts bunch up
 * past the rate). Refused, it gives the slot back and parks behind the bucket that refused it,
 * first come first served; one timer per bucket offers the head of its line again when the store
 * said to ask again (a concurrency bucket also every {@link CONCURRENCY_POLL_MS}, since another
 * process may free a slot sooner, and at once when an attempt of this runner frees one). A head
 * that gets its grant wakes the next in line at once. Parked attempts keep their queued run and
 * hold no slot.
 */
import { bucketId, type LimitGrant, type LimitPermit, type LimitRef, type LimitWaitReason } from '../ports/limits.js';
import type { TimerHandle, Timers } from '../ports/timers.js';
import type { Attempt, InstanceRuntime } from './attempt.js';
import type { Journal } from './journal.js';

/** How soon queued runs the store failed to take are offered to it again. */
const RECORD_RETRY_MS = 250;
/** How often the head waiting for a concurrency slot asks again, for slots other processes free. */
export const CONCURRENCY_POLL_MS = 1_000;
/** How soon an attempt whose limits the store failed to answer for asks again. */
const LIMIT_ERROR_RETRY_MS = 1_000;

/** Takes and gives back an attempt's shared limits (the runner's, over the store's limit store). */
export interface LimitGate {
  acquire(attempt: Attempt): Promise<LimitGrant>;
  release(permit: LimitPermit): void;
  /** The store failed to answer; the attempt waits and asks again. */
  error(attempt: Attempt, error: unknown): void;
  /** The attempt now waits for this bucket (or, `undefined`, no longer waits). */
  waiting(attempt: Attempt, on: (LimitRef & { reason: LimitWaitReason; until: number }) | undefined): void;
}

/** The attempts waiting for one bucket, and the timer that offers the head its turn again. */
interface BucketLine {
  waiting: Attempt[];
  timer: TimerHandle | undefined;
  at: number;
}

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
  /** Attempts waiting for a limit bucket, by bucket. */
  private readonly lines = new Map<string, BucketLine>();
  /** Heads of lines whose turn came: they start before the queues' attempts. */
  private woken: Attempt[] = [];

  constructor(
    private readonly journal: Journal,
    private readonly timers: Timers,
    private readonly limits: DispatchLimits,
    private readonly hooks: DispatchHooks,
    private readonly gate?: LimitGate,
    private readonly now: () => number = Date.now,
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
    // Heads whose turn came, first; one that ended meanwhile hands its turn to the next in line.
    for (let changed = true; changed && this.woken.length > 0; ) {
      changed = false;
      const woken = this.woken;
      this.woken = [];
      for (const attempt of woken) {
        if (attempt.state !== 'queued' || !this.hooks.holds(attempt)) {
          const from = attempt.wokeFrom;
          attempt.wokeFrom = undefined;
          if (from !== undefined) changed = this.wake(from, false) || changed;
        } else if (this.hasSlotFor(attempt)) this.admit(attempt);
        else this.woken.push(attempt);
      }
    }
    for (const runtime of this.rotation) {
      const queue = runtime.continuousQueue;
      while (queue.length > 0 && this.continuousRunning < this.limits.maxContinuous) {
        const attempt = queue.shift() as Attempt;
        if (attempt.state === 'queued') this.admit(attempt);
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
          this.admit(attempt);
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

  /** Gives back the slot of an attempt that ran, and its limits' slots. */
  vacate(attempt: Attempt): void {
    this.unoccupy(attempt);
    const permit = attempt.permit;
    if (permit) {
      attempt.permit = undefined;
      this.gate?.release(permit);
      // Its concurrency slots are free: the next in their lines may have them.
      for (const slot of permit.slots) this.wake(bucketId(slot));
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
    this.occupy(attempt);
    this.hooks.start(attempt);
  }

  private occupy(attempt: Attempt): void {
    if (attempt.planned.kind === 'continuous') this.continuousRunning += 1;
    else {
      this.batchRunning += 1;
      attempt.instance.batchRunning += 1;
    }
  }

  private unoccupy(attempt: Attempt): void {
    if (attempt.planned.kind === 'continuous') this.continuousRunning -= 1;
    else {
      this.batchRunning -= 1;
      attempt.instance.batchRunning -= 1;
    }
  }

  /** Starts an attempt that has a slot: at once, or once the store grants its limits. */
  private admit(attempt: Attempt): void {
    if (!this.gate || !attempt.planned.limits || attempt.planned.limits.length === 0 || attempt.permit) {
      this.begin(attempt);
      return;
    }
    const gate = this.gate;
    // The slot is held for the call only: a grant starts the attempt at once.
    this.occupy(attempt);
    attempt.acquiring = true;
    gate.acquire(attempt).then(
      (grant) => this.acquired(attempt, grant),
      (error: unknown) => {
        gate.error(attempt, error);
        const [first] = attempt.planned.limits ?? [];
        this.acquired(attempt, { granted: false, retryAt: this.now() + LIMIT_ERROR_RETRY_MS, waitingOn: { name: first?.name ?? '', key: first?.key ?? '', reason: 'rate' } });
      },
    );
  }

  private acquired(attempt: Attempt, grant: LimitGrant): void {
    attempt.acquiring = false;
    const wokeFrom = attempt.wokeFrom;
    attempt.wokeFrom = undefined;
    const wanted = attempt.state === 'queued' && this.hooks.holds(attempt) && !this.hooks.stopping();
    if (grant.granted && wanted) {
      attempt.permit = grant.permit;
      if (attempt.limitWait) {
        attempt.limitWait = undefined;
        this.gate?.waiting(attempt, undefined);
      }
      this.leave(attempt);
      this.hooks.start(attempt);
      // A token may be left for the next in the line this attempt was woken from.
      if (wokeFrom !== undefined) this.wake(wokeFrom);
      return;
    }
    this.unoccupy(attempt);
    if (grant.granted) this.gate?.release(grant.permit);
    else if (wanted) this.park(attempt, grant, wokeFrom);
    // The line it was woken from goes on without it, unless it took its place there again.
    if (wokeFrom !== undefined && (!wanted || grant.granted || bucketId(grant.waitingOn) !== wokeFrom)) this.wake(wokeFrom);
    this.pump();
    this.hooks.changed();
  }

  /** Puts a refused attempt in the line of the bucket that refused it (at its head if it came from there). */
  private park(attempt: Attempt, grant: Extract<LimitGrant, { granted: false }>, wokeFrom: string | undefined): void {
    const id = bucketId(grant.waitingOn);
    let line = this.lines.get(id);
    if (!line) {
      line = { waiting: [], timer: undefined, at: Number.POSITIVE_INFINITY };
      this.lines.set(id, line);
    }
    if (wokeFrom === id) line.waiting.unshift(attempt);
    else line.waiting.push(attempt);
    const wait = { name: grant.waitingOn.name, key: grant.waitingOn.key, reason: grant.waitingOn.reason, until: grant.retryAt };
    const before = attempt.limitWait;
    attempt.limitWait = wait;
    if (!before || before.name !== wait.name || before.key !== wait.key || before.reason !== wait.reason) this.gate?.waiting(attempt, wait);
    const at = grant.waitingOn.reason === 'concurrency' ? Math.min(grant.retryAt, this.now() + CONCURRENCY_POLL_MS) : grant.retryAt;
    this.schedule(id, line, at);
  }

  private schedule(id: string, line: BucketLine, at: number): void {
    if (line.timer && line.at <= at) return;
    line.timer?.cancel();
    line.at = at;
    line.timer = this.timers.setTimeout(() => {
      line.timer = undefined;
      line.at = Number.POSITIVE_INFINITY;
      this.wake(id);
    }, Math.max(0, at - this.now()));
    line.timer.unref();
  }

  /**
   * Offers the head of a bucket's line its turn (it starts once a slot is free), then starts what
   * can start (unless `pump` is false: the caller is the pump). Whether a head was woken.
   */
  private wake(id: string, pump = true): boolean {
    const line = this.lines.get(id);
    if (!line) return false;
    let head: Attempt | undefined;
    while ((head = line.waiting.shift()) !== undefined) {
      if (head.state === 'queued' && this.hooks.holds(head)) break;
    }
    if (line.waiting.length === 0) {
      // Nobody else waits here (the head, if refused again, opens the line anew).
      line.timer?.cancel();
      this.lines.delete(id);
    }
    if (!head) return false;
    head.wokeFrom = id;
    this.woken.push(head);
    if (pump) this.pump();
    return true;
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
