/** What a runner counts and the events it emits (shared by the runner and its plan loop). */
import type { ErrorInfo, RunRecord } from '../types.js';

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
