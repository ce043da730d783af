/**
 * The status page's runs explorer on a large SQLite store (not a test; run by hand, issue 14):
 *
 *   node --import tsx bench/explorer.ts                 # 1,000,000 runs in a temp file
 *   node --import tsx bench/explorer.ts --runs 200000 --keep /tmp/explorer.db
 *
 * Method: a new SQLite file is filled through `SqliteStore` as runners write it (leases taken,
 * fenced commits of whole run records, leases released), 2,000 runs per commit: 20 instances
 * (one of them rare: 0.01% of the runs), 3 tasks each, 10 runs per signature, queue times spread
 * over 30 days with ties (4 runs per millisecond), statuses as a collector sees them (90%
 * succeeded, 5% failed, 2% skipped, 2% interrupted, 1% cancelled, a few running). Then each
 * query the explorer sends (`listRuns` with its filters, 50 runs a page; `getRun` for a run id)
 * is timed over `--reps` repetitions after one warm-up, and the median and worst are printed,
 * with the number of runs returned. The store is closed and opened again before timing, so no
 * statement or page is warm from the fill except what the OS caches.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { SqliteStore } from '../core/adapters/sqlite/store.js';
import type { FencedWrites, RunQuery } from '../core/ports/store.js';
import type { RunRecord, RunStatus } from '../core/types.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000000' },
    reps: { type: 'string', default: '20' },
    keep: { type: 'string' },
  },
});
const TOTAL = Number(values.runs);
const REPS = Number(values.reps);
const PER_COMMIT = 2_000;
const PER_SIGNATURE = 10;
const DAY = 86_400_000;
const END = Date.UTC(2026, 10, 1);
const START = END - 30 * DAY;
const TASKS = ['fetch', 'parse', 'store'];

const dir = values.keep === undefined ? mkdtempSync(join(tmpdir(), 'ujr-explorer-')) : undefined;
const file = values.keep ?? join(dir ?? '', 'explorer.db');

function statusOf(i: number): RunStatus {
  const r = (i * 7919) % 1000;
  if (r < 900) return 'succeeded';
  if (r < 950) return 'failed';
  if (r < 970) return 'skipped';
  if (r < 990) return 'interrupted';
  return 'cancelled';
}

function instanceOf(i: number): string {
  if (i % 10_000 === 3) return 'rare';
  return `collector-${String(i % 19).padStart(2, '0')}`;
}

function runOf(i: number): RunRecord {
  const instanceId = instanceOf(i);
  const task = TASKS[Math.floor(i / 19) % TASKS.length] ?? 'fetch';
  const queuedAt = START + Math.floor(((i - (i % 4)) / TOTAL) * 30 * DAY);
  const status: RunStatus = i >= TOTAL - 10 ? 'running' : statusOf(i);
  const ended = status !== 'running';
  const run: RunRecord = {
    id: `01RUN${String(i).padStart(10, '0')}`,
    instanceId,
    jobType: 'collector',
    task,
    signature: `sig-${instanceId}-${task}-${Math.floor(i / (19 * PER_SIGNATURE))}`,
    kind: 'batch',
    status,
    attempt: 1,
    maxAttempts: 3,
    origin: 'schedule',
    runner: 'bench',
    fencingToken: 1,
    queuedAt,
    startedAt: queuedAt + 5,
    input: { item: `item-${i}`, page: i % 100 },
  };
  if (ended) run.endedAt = queuedAt + 50 + (i % 300);
  if (status === 'failed') run.error = { name: 'FetchError', message: `HTTP 503 for item-${i}` };
  if (status === 'succeeded') run.result = { rows: i % 50 };
  return run;
}

async function fill(): Promise<number> {
  const store = SqliteStore.open(file);
  const started = performance.now();
  for (let from = 0; from < TOTAL; from += PER_COMMIT) {
    const groups = new Map<string, RunRecord[]>();
    for (let i = from; i < Math.min(TOTAL, from + PER_COMMIT); i++) {
      const run = runOf(i);
      const group = groups.get(run.signature) ?? [];
      group.push(run);
      groups.set(run.signature, group);
    }
    const entries = [...groups.entries()];
    const at = END + from;
    const grants = await store.acquireLeases(
      entries.map(([signature, runs]) => ({ signature, owner: 'bench', ttlMs: 60_000, runId: runs[0]?.id ?? '', instanceId: runs[0]?.instanceId ?? '', task: runs[0]?.task ?? '' })),
      at,
    );
    const fenced: FencedWrites[] = entries.map(([signature, runs], i) => {
      const grant = grants[i];
      if (!grant?.granted) throw new Error(`lease of ${signature} not granted`);
      return { fence: { signature, owner: 'bench', token: grant.lease.token }, runs, release: true };
    });
    const { refused } = await store.commit({ fenced, at });
    if (refused.length > 0) throw new Error('commit refused');
  }
  await store.close();
  return performance.now() - started;
}

async function time(store: SqliteStore, name: string, query: () => Promise<unknown>): Promise<void> {
  await query();
  const samples: number[] = [];
  let count = 0;
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    const out = await query();
    samples.push(performance.now() - t0);
    count = Array.isArray(out) ? out.length : out === undefined ? 0 : 1;
  }
  samples.sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)] ?? 0;
  const worst = samples[samples.length - 1] ?? 0;
  console.log(`${name.padEnd(58)} ${median.toFixed(2).padStart(9)} ms median ${worst.toFixed(2).padStart(9)} ms worst  ${String(count).padStart(3)} runs`);
}

async function main(): Promise<void> {
  console.log(`filling ${file} with ${TOTAL.toLocaleString('en')} runs…`);
  const fillMs = await fill();
  console.log(`filled in ${(fillMs / 1000).toFixed(1)} s; file ${(statSync(file).size / 1e6).toFixed(0)} MB`);
  const store = SqliteStore.open(file);
  const page = (query: RunQuery) => () => store.listRuns({ limit: 50, ...query });
  const mid = START + 15 * DAY;
  const deep = runOf(Math.floor(TOTAL / 2));
  const cursor = { queuedAt: deep.queuedAt, id: deep.id };
  try {
    await time(store, 'first page, no filter', page({}));
    await time(store, 'a page from a cursor half way back', page({ before: cursor }));
    await time(store, 'instance (5% of runs)', page({ instanceId: 'collector-07' }));
    await time(store, 'instance, from a cursor half way back', page({ instanceId: 'collector-07', before: cursor }));
    await time(store, 'instance + task', page({ instanceId: 'collector-07', task: 'parse' }));
    await time(store, 'rare instance (0.01% of runs)', page({ instanceId: 'rare' }));
    await time(store, 'status failed (5%)', page({ status: 'failed' }));
    await time(store, 'status cancelled (1%)', page({ status: 'cancelled' }));
    await time(store, 'status running (10 runs, all newest)', page({ status: 'running' }));
    await time(store, 'instance + status failed', page({ instanceId: 'collector-07', status: 'failed' }));
    await time(store, 'time range: one hour, 15 days back', page({ since: mid, until: mid + 3_600_000 }));
    await time(store, 'time range + status failed', page({ since: mid, until: mid + 3_600_000, status: 'failed' }));
    await time(store, 'run id (getRun)', () => store.getRun(deep.id));
    await time(store, 'signature', page({ signature: deep.signature }));
    await time(store, 'input contains, a recent item', page({ inputContains: `"item-${TOTAL - 100}"` }));
    await time(store, 'input contains, an item half way back', page({ inputContains: `"item-${Math.floor(TOTAL / 2)}"` }));
    await time(store, 'input contains, within one instance', page({ instanceId: 'collector-07', inputContains: '"page":42' }));
    await time(store, 'input contains, no match (whole table)', page({ inputContains: 'no-such-item' }));
  } finally {
    await store.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
