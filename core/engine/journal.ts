/**
 * The journal batches the engine's writes: run records (the latest version of each run wins
 * within a batch), log lines, checkpoints and lease releases go to the store in one `commit`
 * at most every `commitIntervalMs` (group commit), or at once when someone waits for them
 * (`flush`: a plan that must see how its tasks ended, a shutdown). This is what lets one SQLite
 * file take tens of thousands of task transitions per second: one transaction carries many of
 * them, and a page that many of them touch is written once, not once per transition.
 *
 * Every write made under a lease is queued with that lease (its fence): the store applies a
 * lease's writes only while the lease is current, and the journal reports the leases whose
 * writes were refused (`onRefused`), so that the runner stops the stale attempt.
 */
import type { Checkpoint, FencedWrites, LeaseRef, Store, Trigger, TriggerResult, WriteBatch } from '../ports/store.js';
import type { LogLine, RunRecord } from '../types.js';

const RETRY_DELAY_MS = 250;

/** The writes queued under one lease. */
interface Group {
  fence: LeaseRef;
  runs: Map<string, RunRecord>;
  logs: LogLine[];
  checkpoint?: Checkpoint;
  release: boolean;
}

export interface JournalHooks {
  /** A store write failed (the batch is kept and tried again). */
  onError(error: unknown): void;
  /** The store refused these leases' writes: their holder is stale. Called before flush waiters resolve. */
  onRefused(refused: LeaseRef[]): void;
  /** The clock recorded as release time. */
  now(): number;
  /**
   * How long writes may wait to be committed with later ones when nobody waits for them.
   * 0 commits once per turn of the event loop.
   */
  commitIntervalMs?: number;
}

export class Journal {
  private groups = new Map<string, Group>();
  private triggers: Trigger[] = [];
  private triggerResults: TriggerResult[] = [];
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<unknown> | undefined;
  private waiters: { resolve(): void; reject(error: unknown): void }[] = [];

  constructor(
    private readonly store: Store,
    private readonly hooks: JournalHooks,
  ) {}

  /** Records the current version of a run (a snapshot is taken), under the lease it was made under. */
  putRun(run: RunRecord, fence: LeaseRef): void {
    this.group(fence).runs.set(run.id, { ...run });
    this.schedule();
  }

  log(line: LogLine, fence: LeaseRef): void {
    this.group(fence).logs.push(line);
    this.schedule();
  }

  checkpoint(checkpoint: Checkpoint, fence: LeaseRef): void {
    this.group(fence).checkpoint = checkpoint;
    this.schedule();
  }

  /** Releases a lease after the writes queued before it under it (its run's final record above all). */
  release(fence: LeaseRef): void {
    this.group(fence).release = true;
    this.schedule();
  }

  addTrigger(trigger: Trigger): void {
    this.triggers.push(trigger);
    this.schedule();
  }

  triggerResult(result: TriggerResult): void {
    this.triggerResults.push(result);
    this.schedule();
  }

  /** Resolves once everything queued so far is in the store (or refused by it). */
  flush(): Promise<void> {
    if (this.isEmpty() && !this.flushing) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  private group(fence: LeaseRef): Group {
    const key = `${fence.signature}\u0000${fence.token}\u0000${fence.owner}`;
    let group = this.groups.get(key);
    if (!group) {
      group = { fence, runs: new Map(), logs: [], release: false };
      this.groups.set(key, group);
    }
    return group;
  }

  private isEmpty(): boolean {
    return this.groups.size === 0 && this.triggers.length === 0 && this.triggerResults.length === 0;
  }

  private schedule(): void {
    const interval = this.hooks.commitIntervalMs ?? 0;
    if (interval > 0 && this.waiters.length === 0) {
      // Group commit: the first write of a batch starts the clock.
      if (!this.scheduled && !this.timer) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.drainSoon();
        }, interval);
      }
      return;
    }
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.drainSoon();
  }

  private drainSoon(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    // One commit at a time; whoever finishes the current one schedules the next.
    if (this.flushing) return;
    const waiters = this.waiters;
    this.waiters = [];
    if (this.isEmpty()) {
      for (const waiter of waiters) waiter.resolve();
      return;
    }
    const groups = this.groups;
    const triggers = this.triggers;
    const triggerResults = this.triggerResults;
    this.groups = new Map();
    this.triggers = [];
    this.triggerResults = [];
    const batch: WriteBatch = { fenced: [...groups.values()].map(toFencedWrites), at: this.hooks.now() };
    if (triggers.length > 0) batch.triggers = triggers;
    if (triggerResults.length > 0) batch.triggerResults = triggerResults;
    const flushing = this.store.commit(batch);
    this.flushing = flushing;
    try {
      const { refused } = await flushing;
      if (refused.length > 0) this.hooks.onRefused(refused);
      for (const waiter of waiters) waiter.resolve();
    } catch (error) {
      this.requeue(groups, triggers, triggerResults);
      this.hooks.onError(error);
      for (const waiter of waiters) waiter.reject(error);
      this.flushing = undefined;
      // Keep the data and try again shortly, without spinning on a broken store.
      setTimeout(() => this.schedule(), RETRY_DELAY_MS).unref();
      return;
    }
    this.flushing = undefined;
    if (!this.isEmpty() || this.waiters.length > 0) this.schedule();
  }

  /** Puts a failed batch back in front of what was queued since, newer run versions winning. */
  private requeue(groups: Map<string, Group>, triggers: Trigger[], triggerResults: TriggerResult[]): void {
    const newer = this.groups;
    this.groups = groups;
    for (const group of newer.values()) {
      const target = this.group(group.fence);
      for (const [id, run] of group.runs) target.runs.set(id, run);
      target.logs.push(...group.logs);
      if (group.checkpoint) target.checkpoint = group.checkpoint;
      target.release ||= group.release;
    }
    this.triggers = [...triggers, ...this.triggers];
    this.triggerResults = [...triggerResults, ...this.triggerResults];
  }
}

function toFencedWrites(group: Group): FencedWrites {
  const writes: FencedWrites = { fence: group.fence };
  if (group.runs.size > 0) writes.runs = [...group.runs.values()];
  if (group.logs.length > 0) writes.logs = group.logs;
  if (group.checkpoint) writes.checkpoint = group.checkpoint;
  if (group.release) writes.release = true;
  return writes;
}
