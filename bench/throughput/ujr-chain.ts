/**
 * The follow-up chain (a child process of bench/throughput.ts): a job whose plan returns step
 * i+1 only once step i succeeded (it asks the run history, as pipelines do), through the Runner
 * and a SqliteStore file as in ujr-run.ts. Measured with performance.now() from the end of step
 * i's handler to the start of step i+1's: committing step i's record and releasing its lease, the
 * follow-up plan with its history query, leasing step i+1 and dispatching it.
 *
 * With `load` > 0, a second instance first starts `load` tasks that stay running (each awaits
 * the end of the chain) with concurrency for all of them; the chain's first plan waits until all
 * of them run, so that every step is measured while they are held, leased and renewed.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { DirectoryObjectStore } from '../../core/adapters/fs/objects.js';
import { defineJob } from '../../core/define.js';
import { Runner } from '../../core/engine/runner.js';
import type { InstanceConfig } from '../../core/types.js';
import { peakRssMiB, percentile } from './measure.js';
import { chainRequestSchema, runChild, type ChainRequest, type ChainResult } from './protocol.js';
import { CLI_DEFAULTS, openBenchStore, stderrLog } from './ujr-harness.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function instance(id: string): InstanceConfig {
  return { id, job: id, params: {}, enabled: true, schedule: 'rate(1 hour)', concurrency: Number.POSITIVE_INFINITY };
}

async function measure(request: ChainRequest): Promise<ChainResult> {
  const bench = openBenchStore(request.durability);
  const chainOver = deferred();
  const loadRunning = deferred();
  if (request.load === 0) loadRunning.resolve();
  try {
    const starts: number[] = [];
    /** Fewest other tasks seen running at the start of a step. */
    let othersRunningMin = Number.POSITIVE_INFINITY;
    let othersEnded = 0;
    const ends: number[] = [];
    const chain = defineJob({
      name: 'chain',
      params: z.object({}),
      async getRunnableTasks(ctx) {
        await loadRunning.promise;
        const last = await ctx.history.lastSuccess({ task: 'step' });
        const next = last === undefined ? 0 : z.number().int().parse(last.result) + 1;
        return next < request.steps ? [{ task: 'step', input: { i: next } }] : [];
      },
      tasks: {
        step: {
          run(input: { i: number }) {
            starts[input.i] = performance.now();
            othersRunningMin = Math.min(othersRunningMin, started - othersEnded);
            if (input.i === request.steps - 1) chainOver.resolve();
            ends[input.i] = performance.now();
            return input.i;
          },
        },
      },
    });

    let started = 0;
    const loadDone = new Uint8Array(request.load);
    const load = defineJob({
      name: 'load',
      params: z.object({}),
      getRunnableTasks: () => {
        const specs = [];
        for (let i = 0; i < request.load; i += 1) if (loadDone[i] === 0) specs.push({ task: 'wait', input: { i } });
        return specs;
      },
      tasks: {
        wait: {
          async run(input: { i: number }) {
            started += 1;
            if (started === request.load) loadRunning.resolve();
            await chainOver.promise;
            loadDone[input.i] = 1;
            othersEnded += 1;
          },
        },
      },
    });

    const runner = new Runner({
      store: bench.store,
      objects: new DirectoryObjectStore(join(bench.dir, 'data')),
      jobs: request.load > 0 ? [chain, load] : [chain],
      instances: request.load > 0 ? [instance('chain'), instance('load')] : [instance('chain')],
      concurrency: request.load + 16,
      once: true,
      log: stderrLog,
      ...CLI_DEFAULTS,
    });
    const t0 = performance.now();
    const stats = await runner.runOnce();
    const seconds = (performance.now() - t0) / 1000;
    if (stats.succeeded !== request.steps + request.load) {
      throw new Error(`expected ${request.steps} steps and ${request.load} other tasks to succeed, got ${JSON.stringify(stats)}`);
    }
    const gaps: number[] = [];
    for (let i = 1; i < request.steps; i += 1) gaps.push((starts[i] as number) - (ends[i - 1] as number));
    gaps.sort((a, b) => a - b);
    const round = (ms: number) => Number(ms.toFixed(3));
    return {
      steps: request.steps,
      load: request.load,
      durability: `synchronous=${bench.durability.toUpperCase()}`,
      p50Ms: round(percentile(gaps, 50)),
      p99Ms: round(percentile(gaps, 99)),
      maxMs: round(gaps[gaps.length - 1] ?? Number.NaN),
      othersRunningMin,
      seconds,
      peakRssMiB: peakRssMiB(),
    };
  } finally {
    chainOver.resolve();
    await bench.dispose();
  }
}

runChild(chainRequestSchema, measure);
