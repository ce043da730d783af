/** Run records for tests that write them to a store directly. */
import type { Checkpoint, FencedWrites, LeaseRef, Store } from '../../core/ports/store.js';
import type { LogLine, RunRecord } from '../../core/types.js';

/** A fixed epoch for records made by tests. */
export const T0 = 1_700_000_000_000;

/** A queued batch run of `collector-a/fetch`; `overrides` set the fields a test is about. */
export function makeRun(id: string, overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    id,
    instanceId: 'collector-a',
    jobType: 'collector',
    task: 'fetch',
    signature: 'collector-a/fetch/x',
    kind: 'batch',
    status: 'queued',
    attempt: 1,
    maxAttempts: 3,
    origin: 'schedule',
    runner: 'runner-1',
    fencingToken: 1,
    queuedAt: T0,
    input: { query: 'q' },
    ...overrides,
  };
}

/** Records to write as a runner would (see {@link seed}). */
export interface SeedRecords {
  runs?: RunRecord[];
  logs?: LogLine[];
  checkpoints?: Checkpoint[];
}

/**
 * Writes records the way a runner does, under a lease: for each signature a lease is taken (by
 * the run's runner, or `runner-1`), the records are committed fenced by it, and it is released
 * in the same batch. Log lines go under their run's signature, or `log/<runId>` without a run.
 * Runs keep the fencing token they carry (a store does not compare it with the fence).
 */
export async function seed(store: Store, records: SeedRecords, now = T0): Promise<void> {
  const groups = new Map<string, { owner: string; runs: RunRecord[]; logs: LogLine[]; checkpoint?: Checkpoint }>();
  const groupOf = (signature: string, owner = 'runner-1') => {
    let group = groups.get(signature);
    if (!group) {
      group = { owner, runs: [], logs: [] };
      groups.set(signature, group);
    }
    return group;
  };
  const runs = records.runs ?? [];
  for (const run of runs) groupOf(run.signature, run.runner).runs.push(run);
  for (const line of records.logs ?? []) {
    const run = runs.find((r) => r.id === line.runId);
    groupOf(run ? run.signature : `log/${line.runId}`, run?.runner).logs.push(line);
  }
  for (const checkpoint of records.checkpoints ?? []) groupOf(checkpoint.signature).checkpoint = checkpoint;
  const entries = [...groups.entries()];
  const grants = await store.acquireLeases(
    entries.map(([signature, group]) => ({ signature, owner: group.owner, ttlMs: 60_000, runId: `seed-${signature}`, instanceId: 'seed', task: 'seed' })),
    now,
  );
  const fenced: FencedWrites[] = entries.map(([signature, group], i) => {
    const grant = grants[i];
    if (!grant?.granted) throw new Error(`seed: the lease of ${signature} is held by ${grant?.holder.owner ?? '?'}; seed before taking leases in the test`);
    const writes: FencedWrites = { fence: { signature, owner: group.owner, token: grant.lease.token }, release: true };
    if (group.runs.length > 0) writes.runs = group.runs;
    if (group.logs.length > 0) writes.logs = group.logs;
    if (group.checkpoint) writes.checkpoint = group.checkpoint;
    return writes;
  });
  const { refused } = await store.commit({ fenced, at: now });
  if (refused.length > 0) throw new Error(`seed: the store refused writes under ${refused.map((r) => r.signature).join(', ')}`);
}

/** Releases a lease as a runner does when its task ends. */
export async function release(store: Store, fence: LeaseRef, at = T0): Promise<void> {
  await store.commit({ fenced: [{ fence, release: true }], at });
}
