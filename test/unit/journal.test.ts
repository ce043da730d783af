import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../core/adapters/memory/store.js';
import { Journal } from '../../core/engine/journal.js';
import type { WriteBatch } from '../../core/ports/store.js';
import type { RunRecord } from '../../core/types.js';
import { makeRun } from '../helpers/records.js';

function run(id: string, status: RunRecord['status']): RunRecord {
  return makeRun(id, { signature: `sig-${id}`, status });
}

describe('journal', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes many changes in one commit, the latest version of each run winning', async () => {
    const store = new MemoryStore();
    const commits: WriteBatch[] = [];
    const commit = store.commit.bind(store);
    store.commit = (batch) => {
      commits.push(batch);
      return commit(batch);
    };
    const journal = new Journal(store, () => undefined);

    journal.putRun(run('a', 'queued'));
    journal.putRun(run('a', 'running'));
    journal.putRun(run('b', 'queued'));
    journal.log({ runId: 'a', seq: 1, at: 1, level: 'info', message: 'hi' });
    journal.putRun(run('a', 'succeeded'));
    await journal.flush();

    expect(commits).toHaveLength(1);
    expect(commits[0]?.runs?.map((r) => [r.id, r.status])).toEqual([
      ['a', 'succeeded'],
      ['b', 'queued'],
    ]);
    expect((await store.getRun('a'))?.status).toBe('succeeded');
    expect(await store.getLogs('a')).toHaveLength(1);
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
    const journal = new Journal(store, (error) => errors.push(error));

    journal.putRun(run('a', 'succeeded'));
    journal.release({ signature: 'sig-a', owner: 'r', token: 1 });
    await expect(journal.flush()).rejects.toThrow('database is locked');
    journal.putRun(run('b', 'queued'));
    await vi.advanceTimersByTimeAsync(1_000);
    await journal.flush();

    expect(errors).toHaveLength(1);
    expect((await store.getRun('a'))?.status).toBe('succeeded');
    expect((await store.getRun('b'))?.status).toBe('queued');
  });
});
