/**
 * What a runner counts, the events it emits, and the parts of it that its pieces (the plan loop,
 * the attempt lifecycle) both reach.
 */
import type { EventEmitter } from 'node:events';
import type { Timers } from '../ports/timers.js';
import type { ErrorInfo, Logger, ObjectStore, RunRecord } from '../types.js';
import type { Attempt } from './attempt.js';
import type { DispatchQueue } from './dispatch.js';
import type { Journal } from './journal.js';

/**
 * A runner's counts: attempts in flight now (`queued`, `running`, `continuous`, `backoff`), and
 * how attempts and plans ended since it started.
 *
 * @example
 * ```ts
 * const stats = await runner.runUntilIdle();
 * if (stats.failed > 0 || stats.planErrors > 0) process.exitCode = 1;
 * ```
 */
export interface RunnerStats {
  queued: number;
  running: number;
  continuous: number;
  backoff: number;
  succeeded: number;
  failed: number;
  skipped: number;
  interrupted: number;
  cancelled: number;
  retried: number;
  /** Attempts queued again because the API said "too many requests" (`RateLimitedError`); not failures. */
  rateLimited: number;
  deduplicated: number;
  takenOver: number;
  planErrors: number;
}

/**
 * The events of a runner and their arguments.
 *
 * @example
 * ```ts
 * runner.on('run', (run) => console.log(run.instanceId, run.task, run.status));
 * runner.on('planError', (instanceId, error) => console.error(instanceId, error.message));
 * ```
 */
export interface RunnerEvents {
  /** A run record changed status. */
  run: [run: RunRecord];
  planned: [instanceId: string, count: number];
  planError: [instanceId: string, error: ErrorInfo];
  deduplicated: [instanceId: string, signature: string, holder: string | null];
  retired: [instanceId: string, reason: string | undefined];
  idle: [];
  storeError: [error: ErrorInfo];
}

/** The parts of a runner that the plan loop and the attempt lifecycle both use. */
export interface RunnerParts {
  readonly journal: Journal;
  readonly dispatch: DispatchQueue;
  readonly timers: Timers;
  readonly log: Logger;
  readonly objects: ObjectStore;
  /** The runner's lease owner id. */
  readonly owner: string;
  /** Attempts by signature: admission adds them, their end drops them. */
  readonly held: Map<string, Attempt>;
  readonly emit: EventEmitter<RunnerEvents>['emit'];
  now(): number;
  nextId(): string;
  stopping(): boolean;
  /** Starts what the dispatch queue lets start, soon. */
  schedulePump(): void;
  /** Something changed: wakes whoever waits for the runner to be idle or settled. */
  checkIdle(): void;
}
