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

const jobs: JobType[] = [benchFanout];
export default jobs;
