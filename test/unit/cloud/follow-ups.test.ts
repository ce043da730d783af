/**
 * What a follow-up plan reads and asks for: the history it reads shows the runs its request named
 * even while the store's history index does not yet (DynamoDB's indexes are eventually
 * consistent), and only runs that ended for good ask for a plan, once per instance per flush.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../core/adapters/memory/store.js';
import { FollowUpRequests, withEndedRuns } from '../../../core/cloud/follow-ups.js';
import type { FollowUpMessage } from '../../../core/cloud/messages.js';
import type { Store } from '../../../core/ports/store.js';
import { silentTelemetry } from '../../../core/cloud/ports.js';
import { makeRun, seed, T0 } from '../../helpers/records.js';

/** The store as an index that has not caught up: its latest-run queries miss the runs named here. */
function lagging(store: Store, hidden: Set<string>): Store {
  const view = Object.create(store) as Store;
  view.lastRun = async (query) => {
    const runs = await store.listRuns({ ...query, limit: 100 });
    return runs.filter((run) => !hidden.has(run.id)).sort((a, b) => (b.endedAt ?? b.queuedAt) - (a.endedAt ?? a.queuedAt))[0];
  };
  return view;
}

describe('the history of a follow-up plan', () => {
  it('shows a run the request named as ended while the index still shows the one before', async () => {
    // Prepare: an older success, and the newer one the index does not show yet.
    const store = new MemoryStore();
    const older = makeRun('r1', { status: 'succeeded', endedAt: T0 + 10 });
    const newer = makeRun('r2', { status: 'succeeded', queuedAt: T0 + 20, endedAt: T0 + 30 });
    await seed(store, { runs: [older, newer] });
    const index = lagging(store, new Set(['r2']));

    // Act
    const history = withEndedRuns(index, 'collector-a', [{ runId: 'r2', signature: newer.signature, task: 'fetch', status: 'succeeded', endedAt: T0 + 30 }]);

    // Assess
    expect((await index.lastRun({ signature: newer.signature }))?.id).toBe('r1');
    expect((await history.lastRun({ signature: newer.signature }))?.id).toBe('r2');
    expect((await history.lastRun({ instanceId: 'collector-a', task: 'fetch', status: 'succeeded' }))?.id).toBe('r2');
  });

  it('leaves queries the ended runs do not match to the index', async () => {
    const store = new MemoryStore();
    const failed = makeRun('r3', { status: 'failed', endedAt: T0 + 30 });
    await seed(store, { runs: [makeRun('r1', { status: 'succeeded', endedAt: T0 + 10 }), failed] });
    const index = lagging(store, new Set(['r3']));
    let reads = 0;
    const getRun = index.getRun.bind(index);
    index.getRun = (id) => ((reads += 1), getRun(id));
    const history = withEndedRuns(index, 'collector-a', [{ runId: 'r3', signature: failed.signature, task: 'fetch', status: 'failed', endedAt: T0 + 30 }]);

    expect((await history.lastRun({ signature: failed.signature, status: 'succeeded' }))?.id).toBe('r1');
    expect(reads).toBe(0);
    expect((await history.lastRun({ instanceId: 'other', task: 'fetch' }))).toBeUndefined();
    expect((await history.lastRun({ signature: failed.signature }))?.id).toBe('r3');
  });
});

describe('follow-up requests', () => {
  it('asks once per instance for the runs that ended for good, not for attempts that will be retried', async () => {
    const sent: FollowUpMessage[][] = [];
    const requests = new FollowUpRequests({ queue: { send: (messages) => (sent.push(messages), Promise.resolve([])) }, telemetry: silentTelemetry, now: () => T0 + 100 });

    requests.ended(makeRun('a1', { status: 'succeeded', endedAt: T0 + 1 }));
    requests.ended(makeRun('a2', { status: 'failed', endedAt: T0 + 2, nextRunId: 'a3' }));
    requests.ended(makeRun('a4', { status: 'failed', endedAt: T0 + 3, signature: 'collector-a/fetch/y' }));
    requests.ended(makeRun('b1', { instanceId: 'other', status: 'cancelled', endedAt: T0 + 4 }));
    requests.ended(makeRun('c1', { instanceId: 'third', status: 'running' }));
    await requests.flush();
    await requests.flush();

    expect(sent).toHaveLength(1);
    expect(sent[0]?.map((m) => [m.followUp, m.at, m.ended.map((e) => e.runId)])).toEqual([
      ['collector-a', T0 + 100, ['a1', 'a4']],
      ['other', T0 + 100, ['b1']],
    ]);
  });
});
