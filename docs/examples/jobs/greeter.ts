// The example of README.md, kept verbatim below: test/unit/docs.test.ts checks that the page shows
// this file's text, and tsc and eslint check the file like any other of the repository.

// jobs/greeter.ts
import { defineJob, z } from 'ujr';

export const greeter = defineJob({
  name: 'greeter',                                  // the job type
  params: z.object({ names: z.array(z.string()) }), // each instance's params, validated
  async getRunnableTasks(ctx) {                     // asked on schedule and after each of its tasks ends
    const due = [];
    for (const name of ctx.params.names) {
      if (!(await ctx.history.lastSuccess({ task: 'greet', input: { name } }))) {
        due.push({ task: 'greet', input: { name } });
      }
    }
    return due;                                     // any tasks: there is no DAG engine
  },
  tasks: {
    greet: {
      retry: { attempts: 5, backoffMs: 2_000 },
      async run(input: { name: string }, tctx) {
        tctx.log.info(`hello ${input.name}`);       // stored with the run: ujr logs <runId>
        await tctx.objects.put(`greetings/${input.name}.txt`, 'hello');
        return { greeted: input.name };             // the run's result (JSON)
      },
    },
  },
});
