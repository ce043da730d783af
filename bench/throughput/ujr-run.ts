/**
 * One ujr measurement (a child process of bench/throughput.ts): N tasks of one shape through the
 * real Runner over a real SqliteStore file, as `ujr run --once` runs them (same runner options
 * as the CLI's defaults, tasks in process).
 *
 * The job behaves like a real one: each time it is asked (first plan, follow-ups, plans asked
 * again once a backlog shrinks) it returns every task not yet done, from an in-memory done-set
 * that the handler marks. The runner takes what fits under its `maxQueued` and asks again.
 *
 * Timed from `runOnce()` (the runner starting) until it resolves: every task succeeded and the
 * runner's last commit returned, so every record is in the store. Then the store is read back
 * to check that it holds exactly N runs, all succeeded, one per task.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { DirectoryObjectStore } from '../../core/adapters/fs/objects.js';
import { defineJob } from '../../core/define.js';
import { Runner } from '../../core/engine/runner.js';
import type { LimitDefinition } from '../../core/ports/limits.js';
import type { TaskSpec } from '../../core/types.js';
import { ioDelta, peakRssMiB, readIo, rssMiB } from './measure.js';
import { runChild, ujrRunRequestSchema, type BenchLimit, type RunResult, type UjrRunRequest } from './protocol.js';
import { handlerOf } from './shapes.js';
import { CLI_DEFAULTS, openBenchStore, stderrLog } from './ujr-harness.js';

/** Tasks 0..n-1 and which are done; `specs()` returns the ones not done, fresh each time. */
class DoneSet {
  private readonly done: Uint8Array;
  private pending: number[];
  count = 0;

  constructor(n: number) {
    this.done = new Uint8Array(n);
    this.pending = Array.from({ length: n }, (_, i) => i);
  }

  mark(i: number): void {
    if (this.done[i] === 1) throw new Error(`task ${i} ran twice`);
    this.done[i] = 1;
    this.count += 1;
  }

  specs(): TaskSpec[] {
    this.pending = this.pending.filter((i) => this.done[i] === 0);
    return this.pending.map((i) => ({ task: 'work', input: { i } }));
  }
}

const runInputSchema = z.object({ i: z.number().int() });

/** A limit every task takes that never makes one wait: the cost of taking it, not of waiting. */
function benchLimit(kind: Exclude<BenchLimit, 'none'>): LimitDefinition {
  const rate = { count: 1e9, perMs: 1_000, burst: 1e9 };
  const concurrency = 1e6;
  if (kind === 'rate') return { name: 'bench', rate };
  if (kind === 'concurrency') return { name: 'bench', concurrency };
  return { name: 'bench', rate, concurrency };
}

async function measure(request: UjrRunRequest): Promise<RunResult> {
  const bench = openBenchStore(request.durability);
  try {
    const done = new DoneSet(request.tasks);
    const job = defineJob({
      name: 'bench',
      params: z.object({}),
      getRunnableTasks: () => done.specs(),
      tasks: { work: { run: handlerOf(request.shape, (i) => done.mark(i)), limits: request.limit === 'none' ? [] : ['bench'] } },
    });
    const runner = new Runner({
      store: bench.store,
      objects: new DirectoryObjectStore(join(bench.dir, 'data')),
      jobs: [job],
      instances: [{ id: 'bench', job: 'bench', params: {}, enabled: true, schedule: 'rate(1 hour)', concurrency: Number.POSITIVE_INFINITY }],
      concurrency: request.concurrency,
      ...(request.limit === 'none' ? {} : { limits: new Map([['bench', benchLimit(request.limit)]]) }),
      once: true,
      log: stderrLog,
      ...CLI_DEFAULTS,
    });

    const baseRss = rssMiB();
    const ioBefore = readIo();
    const t0 = performance.now();
    const stats = await runner.runOnce();
    const seconds = (performance.now() - t0) / 1000;
    const peakRss = peakRssMiB();
    const fileBytes = bench.fileBytes();
    if (stats.succeeded !== request.tasks || done.count !== request.tasks) {
      throw new Error(`expected ${request.tasks} successes, the runner counted ${JSON.stringify(stats)} and ${done.count} handlers ended`);
    }

    // Read back: exactly N runs, all succeeded, one per task.
    const runs = await bench.sqlite.listRuns({ limit: request.tasks + 1 });
    const seen = new Set<number>();
    for (const run of runs) {
      if (run.status !== 'succeeded') throw new Error(`run ${run.id} is ${run.status} in the store`);
      seen.add(runInputSchema.parse(run.input).i);
    }
    if (runs.length !== request.tasks || seen.size !== request.tasks) {
      throw new Error(`the store holds ${runs.length} runs for ${seen.size} distinct tasks, expected ${request.tasks}`);
    }

    // The writes include closing the store (its WAL checkpointed into the db file).
    await bench.sqlite.close();
    const ioAfter = readIo();
    const io = ioBefore && ioAfter ? ioDelta(ioBefore, ioAfter) : undefined;
    return {
      system: 'ujr',
      shape: request.shape,
      tasks: request.tasks,
      concurrency: request.concurrency,
      durability: `synchronous=${bench.durability.toUpperCase()}`,
      seconds,
      tasksPerSecond: Math.round(request.tasks / seconds),
      commits: bench.counts.commits,
      leaseCalls: bench.counts.leaseCalls,
      runWrites: bench.counts.runWrites,
      diskWriteBytes: io?.writeBytes ?? null,
      writeCallBytes: io?.writeCallBytes ?? null,
      bytesPerTask: io ? Math.round(io.writeBytes / request.tasks) : null,
      fileBytes,
      walBytes: null,
      peakRssMiB: peakRss,
      baseRssMiB: baseRss,
      verified: `store holds ${runs.length} runs, all succeeded, ${seen.size} distinct tasks`,
      notes: io ? bench.notes : [...bench.notes, '/proc/self/io is not readable: no write counts'],
    };
  } finally {
    await bench.dispose();
  }
}

runChild(ujrRunRequestSchema, measure);
