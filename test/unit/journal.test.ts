import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../core/adapters/memory/store.js';
import { Journal, type JournalHooks } from '../../core/engine/journal.js';
import type { LeaseRef, WriteBatch } from '../../core/ports/store.js';
import type { RunRecord } from '../../core/types.js';
import { makeRun } from '../helpers/records.js';

function run(id: string, status: RunRecord['status']): RunRecord {
  return makeRun(id, { signature: `sig-${id}`, status });
}

/** The lease `run(id)` is written under, taken in `store`. */
async function leaseOf(store: MemoryStore, id: string): Promise<LeaseRef> {
  const [grant] = await store.acquireLeases([{ signature: `sig-${id}`, owner: 'r', ttlMs: 60_000, runId: id, instanceId: 'i', task: 't' }], Date.now());
  if (!grant?.granted) throw new Error('expected a grant');
  return { signature: `sig-${id}`, owner: 'r', token: grant.lease.token };
}

/** A memory store that keeps every batch committed to it. */
function recordingStore(): { store: MemoryStore; commits: WriteBatch[] } {
  const store = new MemoryStore();
  const commits: WriteBatch[] = [];
  const commit = store.commit.bind(store);
  store.commit = (batch) => {
    commits.push(batch);
    return commit(batch);
  };
  return { store, commits };
}

function hooks(overrides: Partial<JournalHooks> = {}): JournalHooks {
  return { onError: () => undefined, onRefused: () => undefined, now: () => Date.now(), ...overrides };
}

describe('journal', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes many changes in one commit, the latest version of each run winning', async () => {
    const { store, commits } = recordingStore();
    const journal = new Journal(store, hooks());
    const a = await leaseOf(store, 'a');
    const b = await leaseOf(store, 'b');

    journal.putRun(run('a', 'queued'), a);
    journal.putRun(run('a', 'running'), a);
    journal.putRun(run('b', 'queued'), b);
    journal.log({ runId: 'a', seq: 1, at: 1, level: 'info', message: 'hi' }, a);
    journal.putRun(run('a', 'succeeded'), a);
    await journal.flush();

    expect(commits).toHaveLength(1);
    expect(commits[0]?.fenced?.map((g) => [g.fence.signature, g.runs?.map((r) => r.status)])).toEqual([
      ['sig-a', ['succeeded']],
      ['sig-b', ['queued']],
    ]);
    expect((await store.getRun('a'))?.status).toBe('succeeded');
    expect(await store.getLogs('a')).toHaveLength(1);
  });

  it('with a commit interval, commits writes made across turns of the event loop together, and at once when flushed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const { store, commits } = recordingStore();
    const journal = new Journal(store, hooks({ commitIntervalMs: 5 }));
    const a = await leaseOf(store, 'a');
    const b = await leaseOf(store, 'b');
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

    journal.putRun(run('a', 'queued'), a);
    await turn();
    journal.putRun(run('b', 'queued'), b);
    await turn();
    expect(commits).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(5);
    await turn();
    expect(commits.map((batch) => batch.fenced?.map((group) => group.fence.signature))).toEqual([['sig-a', 'sig-b']]);

    // Someone waiting: no interval.
    journal.putRun(run('a', 'running'), a);
    await journal.flush();
    expect(commits).toHaveLength(2);
    expect((await store.getRun('a'))?.status).toBe('running');
  });

  it('keeps a batch the store refused and writes it with the next one, losing nothing', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    const store = new MemoryStore();
    const commit = store.commit.bind(store);
    let failures = 1;
    store.commit = (batch) => {
      if (failures > 0) {
        failures -= 1;
        return Promise.reject(new Error('database is locked'));
      }
      return commit(batch);
    };
    const errors: unknown[] = [];
    const journal = new Journal(store, hooks({ onError: (error) => errors.push(error) }));
    const a = await leaseOf(store, 'a');
    const b = await leaseOf(store, 'b');

    journal.putRun(run('a', 'succeeded'), a);
    journal.release(a);
    await expect(journal.flush()).rejects.toThrow('database is locked');
    journal.putRun(run('b', 'queued'), b);
    await vi.advanceTimersByTimeAsync(1_000);
    await journal.flush();

    expect(errors).toHaveLength(1);
    expect((await store.getRun('a'))?.status).toBe('succeeded');
    expect((await store.getRun('b'))?.status).toBe('queued');
    expect((await store.getLease('sig-a'))?.owner).toBeNull();
  });

  it('reports the leases whose writes the store refused before flush resolves, and keeps the others', async () => {
    const store = new MemoryStore();
    const a = await leaseOf(store, 'a');
    const b = await leaseOf(store, 'b');
    await store.acquireLeases([{ signature: 'sig-a', owner: 'other', ttlMs: 1, runId: 'x', instanceId: 'i', task: 't' }], Number.MAX_SAFE_INTEGER - 10);
    const refused: LeaseRef[] = [];
    const journal = new Journal(store, hooks({ onRefused: (refs) => refused.push(...refs) }));

    journal.putRun(run('a', 'succeeded'), a);
    journal.putRun(run('b', 'succeeded'), b);
    await journal.flush();

    expect(refused).toStrictEqual([a]);
    expect(await store.getRun('a')).toBeUndefined();
    expect((await store.getRun('b'))?.status).toBe('succeeded');
  });
});
