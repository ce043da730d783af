/**
 * The journal batches the engine's writes: run records (the latest version of each run wins
 * within a batch), log lines, checkpoints and lease releases go to the store in one `commit`
 * per turn of the event loop. This is what lets one SQLite file take tens of thousands of task
 * transitions per second: one transaction carries many of them.
 */
import type { Checkpoint, LeaseRef, Store, Trigger, WriteBatch } from '../ports/store.js';
import type { LogLine, RunRecord } from '../types.js';

const RETRY_DELAY_MS = 250;

export class Journal {
  private runs = new Map<string, RunRecord>();
  private logs: LogLine[] = [];
  private checkpoints = new Map<string, Checkpoint>();
  private releases: LeaseRef[] = [];
  private triggers: Trigger[] = [];
  private scheduled = false;
  private flushing: Promise<void> | undefined;
  private waiters: { resolve(): void; reject(error: unknown): void }[] = [];

  constructor(
    private readonly store: Store,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Records the current version of a run (a snapshot is taken). */
  putRun(run: RunRecord): void {
    this.runs.set(run.id, { ...run });
    this.schedule();
  }

  log(line: LogLine): void {
    this.logs.push(line);
    this.schedule();
  }

  checkpoint(checkpoint: Checkpoint): void {
    this.checkpoints.set(checkpoint.signature, checkpoint);
    this.schedule();
  }

  /** Releases a lease after the writes queued before it (its run's final record above all). */
  release(ref: LeaseRef): void {
    this.releases.push(ref);
    this.schedule();
  }

  addTrigger(trigger: Trigger): void {
    this.triggers.push(trigger);
    this.schedule();
  }

  /** Resolves once everything queued so far is in the store. */
  flush(): Promise<void> {
    if (this.isEmpty() && !this.flushing) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  private isEmpty(): boolean {
    return (
      this.runs.size === 0 &&
      this.logs.length === 0 &&
      this.checkpoints.size === 0 &&
      this.releases.length === 0 &&
      this.triggers.length === 0
    );
  }

  private schedule(): void {
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
    const batch: Required<WriteBatch> = {
      runs: [...this.runs.values()],
      logs: this.logs,
      checkpoints: [...this.checkpoints.values()],
      releases: this.releases,
      triggers: this.triggers,
    };
    this.runs = new Map();
    this.logs = [];
    this.checkpoints = new Map();
    this.releases = [];
    this.triggers = [];
    this.flushing = this.store.commit(batch);
    try {
      await this.flushing;
      for (const waiter of waiters) waiter.resolve();
    } catch (error) {
      this.requeue(batch);
      this.onError(error);
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
  private requeue(batch: Required<WriteBatch>): void {
    for (const run of batch.runs) if (!this.runs.has(run.id)) this.runs.set(run.id, run);
    for (const checkpoint of batch.checkpoints) {
      if (!this.checkpoints.has(checkpoint.signature)) this.checkpoints.set(checkpoint.signature, checkpoint);
    }
    this.logs = [...batch.logs, ...this.logs];
    this.releases = [...batch.releases, ...this.releases];
    this.triggers = [...batch.triggers, ...this.triggers];
  }
}
