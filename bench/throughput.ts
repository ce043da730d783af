/**
 * Throughput benchmark of the embedded runtime (not a test): trivial tasks end to end through
 * the Runner and the SQLite store on a temp file (WAL), as `ujr run` uses it.
 *
 *   npm run bench            # 10,000 tasks, 1,000 follow-up links
 *   npm run bench -- --tasks 20000 --chain 2000 --concurrency 64
 *
 * Reports tasks/s, dispatch latency (planned → handler start, in the store's ms records) p50/p99
 * for a burst of N tasks (mostly queue wait) and for a chain without backlog, and the follow-up
 * latency (a task's end → the start of the task its job returns next, performance.now()) p50/p99.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { DirectoryObjectStore } from '../core/adapters/fs/objects.js';
import { SqliteStore } from '../core/adapters/sqlite/store.js';
import { defineJob } from '../core/define.js';
import { Runner } from '../core/engine/runner.js';
import type { InstanceConfig, TaskSpec } from '../core/types.js';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '10000' },
    chain: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
  },
});
const TASKS = Number(values.tasks);
const CHAIN = Number(values.chain);
const CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function instance(id: string, job: string): InstanceConfig {
  return { id, job, params: {}, enabled: true, schedule: 'rate(1 hour)', concurrency: Number.POSITIVE_INFINITY };
}

async function withRunner<T>(jobs: Parameters<typeof defineJob>[0][], instances: InstanceConfig[], body: (runner: Runner, store: SqliteStore) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'ujr-bench-'));
  const store = SqliteStore.open(join(dir, 'ujr.db'));
  const runner = new Runner({
    store,
    objects: new DirectoryObjectStore(join(dir, 'data')),
    jobs: jobs.map((j) => defineJob(j)),
    instances,
    concurrency: CONCURRENCY,
    once: true,
  });
  try {
    return await body(runner, store);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** N independent trivial tasks, all returned by the first plan. */
async function fanOut(): Promise<{ seconds: number; dispatch: number[] }> {
  let planned = false;
  const startedAt = new Map<string, number>();
  const job = {
    name: 'fanout',
    params: z.object({}),
    getRunnableTasks(): TaskSpec[] {
      if (planned) return [];
      planned = true;
      return Array.from({ length: TASKS }, (_, i) => ({ task: 'noop', input: { i } }));
    },
    tasks: {
      noop: {
        run(_input: unknown, tctx: { runId: string }) {
          startedAt.set(tctx.runId, Date.now());
        },
      },
    },
  };
  return withRunner([job], [instance('fanout', 'fanout')], async (runner, store) => {
    const t0 = performance.now();
    const stats = await runner.runOnce();
    const seconds = (performance.now() - t0) / 1000;
    if (stats.succeeded !== TASKS) throw new Error(`expected ${TASKS} successes, got ${JSON.stringify(stats)}`);
    const runs = await store.listRuns({ status: 'succeeded', limit: TASKS });
    if (runs.length !== TASKS) throw new Error(`store holds ${runs.length} succeeded runs, expected ${TASKS}`);
    const dispatch = runs.map((r) => (r.startedAt ?? 0) - r.queuedAt).sort((a, b) => a - b);
    return { seconds, dispatch };
  });
}

/** A chain: the job returns step i+1 only once step i succeeded (run history), as pipelines do. */
async function chain(): Promise<{ gaps: number[]; dispatch: number[] }> {
  const ends: number[] = [];
  const starts: number[] = [];
  const job = {
    name: 'chain',
    params: z.object({}),
    async getRunnableTasks(ctx: { history: { lastSuccess(q: { task: string }): Promise<{ result?: unknown } | undefined> } }) {
      const last = await ctx.history.lastSuccess({ task: 'step' });
      const next = last === undefined ? 0 : Number(last.result) + 1;
      return next < CHAIN ? [{ task: 'step', input: { i: next } }] : [];
    },
    tasks: {
      step: {
        run(input: { i: number }) {
          starts[input.i] = performance.now();
          ends[input.i] = performance.now();
          return input.i;
        },
      },
    },
  };
  return withRunner([job], [instance('chain', 'chain')], async (runner, store) => {
    const stats = await runner.runOnce();
    if (stats.succeeded !== CHAIN) throw new Error(`chain ran ${stats.succeeded} of ${CHAIN} steps`);
    const gaps: number[] = [];
    for (let i = 1; i < CHAIN; i += 1) gaps.push((starts[i] as number) - (ends[i - 1] as number));
    const runs = await store.listRuns({ limit: CHAIN });
    const dispatch = runs.map((r) => (r.startedAt ?? 0) - r.queuedAt).sort((a, b) => a - b);
    return { gaps: gaps.sort((a, b) => a - b), dispatch };
  });
}

const results = [];
for (let round = 1; round <= ROUNDS; round += 1) {
  const fan = await fanOut();
  const { gaps, dispatch: idleDispatch } = await chain();
  const row = {
    round,
    tasks: TASKS,
    tasksPerSecond: Math.round(TASKS / fan.seconds),
    dispatchP50ms: percentile(fan.dispatch, 50),
    dispatchP99ms: percentile(fan.dispatch, 99),
    idleDispatchP50ms: percentile(idleDispatch, 50),
    idleDispatchP99ms: percentile(idleDispatch, 99),
    followupP50ms: Number(percentile(gaps, 50).toFixed(3)),
    followupP99ms: Number(percentile(gaps, 99).toFixed(3)),
    rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
  };
  results.push(row);
  console.log(JSON.stringify(row));
}
const best = results.reduce((a, b) => (b.tasksPerSecond > a.tasksPerSecond ? b : a));
console.log(
  `\n${TASKS} tasks, concurrency ${CONCURRENCY}, SQLite WAL file, Node ${process.version}: best of ${ROUNDS} rounds ${best.tasksPerSecond} tasks/s; ` +
    `dispatch p50 ${best.dispatchP50ms} ms, p99 ${best.dispatchP99ms} ms (all ${TASKS} queued at once); ` +
    `dispatch without backlog p50 ${best.idleDispatchP50ms} ms, p99 ${best.idleDispatchP99ms} ms; ` +
    `follow-up start p50 ${best.followupP50ms} ms, p99 ${best.followupP99ms} ms`,
);
