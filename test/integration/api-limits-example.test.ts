/**
 * The example of issue 15: `api-pages` (jobs/api-pages.ts), a poll instance and a backfill
 * instance sharing one API key, against jobs/quota-api.ts (10 requests per second per key, 429
 * beyond). With a shared limit under the quota the API answers no 429; without one it answers
 * many, and the runner still ends every page succeeded, none failed, because a 429 queues the
 * attempt again after its Retry-After instead of failing it. A real SQLite store on a temp file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryObjectStore } from '../../core/adapters/fs/objects.js';
import { SqliteStore } from '../../core/adapters/sqlite/store.js';
import { parseInstances } from '../../core/config.js';
import { Runner } from '../../core/engine/runner.js';
import type { LimitDefinition } from '../../core/ports/limits.js';
import jobTypes from '../../jobs/index.js';
import { startQuotaApi, type QuotaApi } from '../../jobs/quota-api.js';
import { until } from '../helpers/runner.js';

let dir: string;
let api: QuotaApi;
let store: SqliteStore;
let runner: Runner | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ujr-api-limits-'));
  api = await startQuotaApi({ quota: 10, perMs: 1_000 });
  store = SqliteStore.open(join(dir, 'ujr.db'));
});

afterEach(async () => {
  await runner?.stop(1_000);
  runner = undefined;
  await store.close();
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs a poll and a 20-page backfill on one API key until every page and one poll succeeded. */
async function collect(limit: LimitDefinition | undefined) {
  const params = { url: api.url, credential: 'key-1', ...(limit ? { limit: limit.name } : {}) };
  // As the instances file would have them, with the job type's defaults filled in.
  const { instances, problems } = parseInstances(
    {
      instances: [
        // One poll period for the whole test (the epoch to year 33658), whenever it runs.
        { id: 'api-poll', job: 'api-pages', params: { ...params, mode: 'poll', pollEveryMs: 1e15 }, schedule: 'rate(1 hour)' },
        { id: 'api-backfill', job: 'api-pages', params: { ...params, mode: 'backfill', pages: 20 }, schedule: 'rate(1 hour)' },
      ],
    },
    jobTypes,
  );
  expect(problems).toStrictEqual([]);
  runner = new Runner({
    store,
    objects: new DirectoryObjectStore(join(dir, 'data')),
    jobs: jobTypes,
    instances,
    ...(limit ? { limits: new Map([[limit.name, limit]]) } : {}),
    concurrency: 16,
  });
  await runner.start();
  await until(async () => (await store.listRuns({ status: 'succeeded', limit: 100 })).length >= 21, 30_000, 'every page and one poll to succeed', 50);
  const stats = runner.stats();
  const runs = await store.listRuns({ limit: 1000 });
  return { stats, runs, counts: api.counts().get('key-1') ?? { ok: 0, limited: 0 } };
}

describe('api-pages: a poll and a backfill sharing one API key', () => {
  it('get no 429 from the API when they share a limit under its quota, and every page succeeds on its first attempt', async () => {
    const { stats, runs, counts } = await collect({ name: 'feed-api', rate: { count: 8, perMs: 1_000, burst: 1 } });

    expect(counts).toStrictEqual({ ok: 21, limited: 0 });
    expect(runs).toHaveLength(21);
    expect(runs.every((run) => run.status === 'succeeded' && run.attempt === 1)).toBe(true);
    expect(stats).toMatchObject({ failed: 0, retried: 0, rateLimited: 0 });
    expect(new Set(runs.map((run) => run.instanceId))).toStrictEqual(new Set(['api-poll', 'api-backfill']));
  }, 60_000);

  it('get many 429s without the limit, and still end every page succeeded: each 429 queues its attempt again, not a failure', async () => {
    const { stats, runs, counts } = await collect(undefined);

    expect(counts.limited).toBeGreaterThanOrEqual(5);
    expect(counts.ok).toBe(21);
    expect(stats).toMatchObject({ failed: 0, retried: 0, rateLimited: counts.limited });
    expect(runs).toHaveLength(21);
    expect(runs.every((run) => run.status === 'succeeded' && run.attempt === 1)).toBe(true);
    const logs = await Promise.all(runs.map((run) => store.getLogs(run.id)));
    expect(logs.flat().filter((line) => line.message.startsWith('rate limited (RateLimitedError:')).length).toBe(counts.limited);
  }, 60_000);
});
