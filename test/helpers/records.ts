/** Run records for tests that write them to a store directly. */
import type { RunRecord } from '../../core/types.js';

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
