/**
 * The job type of the AWS benchmark (bench/aws.ts): a plan that returns `count` trivial tasks,
 * built from its params alone. It asks no run history per task, so what the benchmark counts is
 * the runtime's own cost per task (plan, post, claim, run record, release), not the plan's.
 */
import { z } from 'zod';
import { defineJob } from '../core/define.js';
import type { JobType } from '../core/types.js';

export const benchFanout = defineJob({
  name: 'bench-fanout',
  params: z.object({ count: z.number().int().nonnegative() }),
  getRunnableTasks: (ctx) => Array.from({ length: ctx.params.count }, (_, i) => ({ task: 'noop', input: { i } })),
  tasks: {
    noop: {
      input: z.object({ i: z.number().int() }),
      run: () => undefined,
    },
  },
});

/** bench-fanout's tasks, each taking the shared limit `bench-api` (phase 5: what a limit adds per task). */
export const benchLimited = defineJob({
  name: 'bench-limited',
  params: z.object({ count: z.number().int().nonnegative() }),
  getRunnableTasks: (ctx) => Array.from({ length: ctx.params.count }, (_, i) => ({ task: 'noop', input: { i }, limits: ['bench-api'] })),
  tasks: {
    noop: {
      input: z.object({ i: z.number().int() }),
      run: () => undefined,
    },
  },
});

/** Time spent in bench-stages' own plans (its history reads, mostly), so that phase 4 can tell it from the planner's. */
export const stagesPlanTime = { ms: 0 };

/**
 * A three-stage pipeline for the follow-up benchmark (and test/integration/aws/follow-ups.test.ts):
 * each of `items` goes through stages a, b
 * and c, a stage returned once the one before it succeeded (read from the run history), as a
 * research pipeline's collect → process → archive does.
 */
export const benchStages = defineJob({
  name: 'bench-stages',
  params: z.object({ items: z.number().int().positive() }),
  async getRunnableTasks(ctx) {
    const started = performance.now();
    const tasks: { task: 'a' | 'b' | 'c'; input: { i: number } }[] = [];
    for (let i = 0; i < ctx.params.items; i += 1) {
      for (const task of ['a', 'b', 'c'] as const) {
        if (await ctx.history.lastSuccess({ task, input: { i } })) continue;
        tasks.push({ task, input: { i } });
        break;
      }
    }
    stagesPlanTime.ms += performance.now() - started;
    return tasks;
  },
  tasks: {
    a: { input: z.object({ i: z.number().int() }), run: () => undefined },
    b: { input: z.object({ i: z.number().int() }), run: () => undefined },
    c: { input: z.object({ i: z.number().int() }), run: () => undefined },
  },
});

const jobs: JobType[] = [benchFanout, benchStages, benchLimited];
export default jobs;
