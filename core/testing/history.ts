/**
 * Run history for a test: partial run records, completed the way the runner would have written
 * them, and recorded in a store through its ordinary writes (a lease, a fenced commit, a release).
 */
import { canonicalJson, defaultSignature } from '../signature.js';
import { inputAsRun } from '../engine/planner.js';
import { mergeRetry } from '../retry.js';
import type { Store } from '../ports/store.js';
import { TERMINAL_STATUSES, type JobType, type RunRecord } from '../types.js';

/**
 * A run record with only `task` required. The rest is filled in: `instanceId` (the instance
 * planned), `input` (`{}`), `signature` (the default one of instance, task and input), `status`
 * (`succeeded`), and times one second apart before `now`, in the order given (the last is the
 * newest) unless set; `startedAt` and `queuedAt` default to `endedAt`.
 *
 * @example
 * ```ts
 * const history: HistoryRun[] = [
 *   { task: 'greet', input: { name: 'ada' } },                              // succeeded a second before now
 *   { task: 'fetch', status: 'failed', endedAt: Date.UTC(2026, 0, 1) },     // failed then
 *   { task: 'process', signature: 'process:collected/a/1.jsonl' },          // an explicit signature
 * ];
 * ```
 */
export type HistoryRun = Partial<Omit<RunRecord, 'task'>> & { task: string };

const HISTORY_RUNNER = 'ujr/testing';

/** Completes partial run records. */
export function completeHistory(runs: readonly HistoryRun[], context: { job: JobType; instanceId: string; now: number }): RunRecord[] {
  return runs.map((run, index) => {
    const instanceId = run.instanceId ?? context.instanceId;
    // As the task ran with it: through its input schema, for this instance's own tasks.
    const given = run.input ?? {};
    const input = instanceId === context.instanceId ? inputAsRun(context.job, run.task, given) : given;
    const status = run.status ?? 'succeeded';
    const definition = Object.hasOwn(context.job.tasks, run.task) ? context.job.tasks[run.task] : undefined;
    const defaultAt = context.now - (runs.length - index) * 1_000;
    const endedAt = TERMINAL_STATUSES.has(status) ? (run.endedAt ?? run.startedAt ?? run.queuedAt ?? defaultAt) : run.endedAt;
    const startedAt = run.startedAt ?? (status === 'queued' || status === 'retrying' ? undefined : (endedAt ?? run.queuedAt ?? defaultAt));
    const record: RunRecord = {
      id: `history-${String(index + 1).padStart(6, '0')}`,
      jobType: context.job.name,
      kind: definition?.kind ?? 'batch',
      attempt: 1,
      maxAttempts: mergeRetry(definition?.retry).attempts,
      origin: 'schedule',
      runner: HISTORY_RUNNER,
      fencingToken: 1,
      ...run,
      instanceId,
      input,
      status,
      signature: run.signature ?? defaultSignature(instanceId, run.task, canonicalJson(input, `history[${index}].input`)),
      queuedAt: run.queuedAt ?? startedAt ?? endedAt ?? defaultAt,
    };
    if (startedAt !== undefined) record.startedAt = startedAt;
    if (endedAt !== undefined) record.endedAt = endedAt;
    return record;
  });
}

/** Writes the records to the store as a runner would: each under a lease of its own signature, then released. */
export async function recordHistory(store: Store, runs: readonly RunRecord[], now: number): Promise<void> {
  for (const run of runs) {
    const [grant] = await store.acquireLeases(
      [{ signature: run.signature, owner: HISTORY_RUNNER, ttlMs: 60_000, runId: run.id, instanceId: run.instanceId, task: run.task }],
      now,
    );
    if (!grant?.granted) throw new TypeError(`history: run ${run.id} could not be recorded under its signature ${run.signature}`);
    const fence = { signature: run.signature, owner: HISTORY_RUNNER, token: grant.lease.token };
    await store.commit({ fenced: [{ fence, runs: [run], release: true }], at: run.endedAt ?? now });
  }
}
