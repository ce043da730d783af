/**
 * The runs explorer's queries (issue 14) on the memory store, a real SQLite file and DynamoDB Local: pages by the
 * cursor `before` (queuedAt, id) lose and repeat no run when many share a queue time, an
 * instance's runs across its tasks come merged newest first, `inputContains` matches the stored
 * input's text, and the live statuses are found however old the other runs are.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../core/adapters/memory/store.js';
import type { RunQuery, Store } from '../../core/ports/store.js';
import type { RunRecord, RunStatus } from '../../core/types.js';
import { makeRun, seed, T0 } from '../helpers/records.js';
import { freshDynamoStore, tempSqliteStore } from '../helpers/stores.js';
import { emulatorClientConfig } from '../servers/endpoints.js';

const dynamo = new DynamoDBClient(emulatorClientConfig('dynamodb'));
afterAll(() => dynamo.destroy());

const factories: [string, () => Promise<{ store: Store; cleanup: () => Promise<void> }>][] = [
  ['memory', () => Promise.resolve({ store: new MemoryStore(), cleanup: () => Promise.resolve() })],
  ['sqlite', () => tempSqliteStore('ujr-explorer-')],
  ['dynamodb', () => freshDynamoStore(dynamo)],
];

/** 60 runs of two instances and three tasks; every 4 share a queue time (ties), ids not in queue order. */
function fixtureRuns(): RunRecord[] {
  const statuses: RunStatus[] = ['succeeded', 'failed', 'interrupted', 'cancelled', 'succeeded'];
  return Array.from({ length: 60 }, (_, i) => {
    const instanceId = i % 2 === 0 ? 'collector-a' : 'collector-b';
    const task = ['fetch', 'parse', 'store'][i % 3] ?? 'fetch';
    // ids run backwards inside each tie, so that id order and insertion order differ
    return makeRun(`run-${String(1000 - i).padStart(4, '0')}`, {
      instanceId,
      task,
      signature: `${instanceId}/${task}/${i % 7}`,
      status: i === 59 ? 'running' : (statuses[i % statuses.length] ?? 'succeeded'),
      queuedAt: T0 + Math.floor(i / 4) * 1_000,
      endedAt: i === 59 ? undefined : T0 + Math.floor(i / 4) * 1_000 + 500,
      input: { item: `item-${i}`, page: i % 5 },
    });
  });
}

/** Every run of `query`, read page by page through the cursor. */
async function allPages(store: Store, query: RunQuery, pageSize: number): Promise<string[]> {
  const ids: string[] = [];
  let before: RunQuery['before'];
  for (let pages = 0; pages < 100; pages++) {
    const page = await store.listRuns({ ...query, limit: pageSize, ...(before ? { before } : {}) });
    ids.push(...page.map((r) => r.id));
    const last = page[page.length - 1];
    if (page.length < pageSize || !last) return ids;
    before = { queuedAt: last.queuedAt, id: last.id };
  }
  throw new Error('no end of pages');
}

for (const [name, factory] of factories) {
  describe(`runs explorer queries (${name})`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    const runs = fixtureRuns();
    const newestFirst = (list: RunRecord[]) => [...list].sort((a, b) => b.queuedAt - a.queuedAt || (b.id < a.id ? -1 : 1)).map((r) => r.id);

    beforeEach(async () => {
      ({ store, cleanup } = await factory());
      await seed(store, { runs });
    });

    afterEach(async () => {
      await cleanup();
    });

    it('pages through every run by the (queuedAt, id) cursor: none lost, none repeated across ties', async () => {
      // Act
      const paged = await allPages(store, {}, 7);

      // Assess
      expect(paged).toEqual(newestFirst(runs));
      expect(new Set(paged).size).toBe(60);
    });

    it("pages through one instance's runs across its tasks, merged newest first", async () => {
      // Act
      const paged = await allPages(store, { instanceId: 'collector-b' }, 6);
      const filtered = await allPages(store, { instanceId: 'collector-b', status: 'failed' }, 2);

      // Assess
      expect(paged).toEqual(newestFirst(runs.filter((r) => r.instanceId === 'collector-b')));
      expect(filtered).toEqual(newestFirst(runs.filter((r) => r.instanceId === 'collector-b' && r.status === 'failed')));
      expect(filtered.length).toBeGreaterThan(2);
    });

    it('finds runs whose stored input contains a text, case-sensitively, with the other filters', async () => {
      // Act
      const exact = await store.listRuns({ inputContains: '"item-17"' });
      const byPage = await store.listRuns({ inputContains: '"page":3', instanceId: 'collector-a', limit: 100 });
      const upper = await store.listRuns({ inputContains: 'ITEM-17' });

      // Assess
      expect(exact.map((r) => r.input)).toEqual([{ item: 'item-17', page: 2 }]);
      expect(byPage.map((r) => r.id)).toEqual(newestFirst(runs.filter((r) => r.instanceId === 'collector-a' && JSON.stringify(r.input).includes('"page":3'))));
      expect(byPage.length).toBeGreaterThan(0);
      expect(upper).toEqual([]);
    });

    it('filters by status and time range with the cursor, and finds the one running run', async () => {
      // Act
      const range = await allPages(store, { since: T0 + 3_000, until: T0 + 9_000, status: ['interrupted', 'cancelled'] }, 2);
      const running = await store.listRuns({ status: 'running' });

      // Assess
      expect(range).toEqual(
        newestFirst(runs.filter((r) => r.queuedAt >= T0 + 3_000 && r.queuedAt < T0 + 9_000 && (r.status === 'interrupted' || r.status === 'cancelled'))),
      );
      expect(range.length).toBeGreaterThan(2);
      expect(running.map((r) => r.id)).toEqual(['run-0941']);
    });
  });
}
