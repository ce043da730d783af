// The example of docs/context.md, kept verbatim below: test/unit/docs.test.ts checks that the page shows
// this file's text, and tsc and eslint check the file like any other of the repository.

import { defineJob, NonRetryableError, z } from 'ujr';

export const sizes = defineJob({
  name: 'sizes',
  params: z.object({ prefix: z.string() }),
  async getRunnableTasks(ctx) {                       // ctx: PlanContext
    const files = await ctx.objects.list(ctx.params.prefix);
    const due = [];
    for (const file of files) {
      if (!(await ctx.history.lastSuccess({ task: 'measure', input: { key: file.key } }))) {
        due.push({ task: 'measure', input: { key: file.key } });
      }
    }
    return due;
  },
  tasks: {
    measure: {
      async run(input: { key: string }, tctx) {       // tctx: TaskContext
        const body = await tctx.objects.get(input.key);
        if (!body) throw new NonRetryableError(`${input.key} is gone`);
        tctx.progress(1, 1, input.key);
        return { key: input.key, bytes: body.byteLength };
      },
    },
  },
});
