/**
 * Job type `period-report`: one report per period (an hour, say) once the period has ended. The
 * plan asks the run history which of the last few periods have no report yet and returns a `report`
 * task for each; the task writes its report into the object store (`.ujr/data/` locally, an S3
 * bucket on AWS). Runs of one period share a signature, so a period is never reported twice at once.
 */
import { defineJob, defineTask, z } from 'ujr';

const params = z.object({
  /** The length of a period in seconds: 3600 reports every hour, 86400 every day. */
  periodSeconds: z.number().int().positive().default(3600),
  /** How many ended periods, counting back from now, get a report when they have none. */
  lookback: z.number().int().min(1).max(100).default(3),
});
type Params = z.infer<typeof params>;

const reportInput = z.object({ start: z.iso.datetime() });
type ReportInput = z.infer<typeof reportInput>;

/** What a `report` run returns (and `ujr runs --json` shows). */
export interface ReportResult {
  key: string;
  mean: number;
}

/** Stands in for your own work: read an API, a file or an instrument for the period starting at `ms`. */
export function measure(ms: number): number {
  return Math.round(500 + 400 * Math.sin(ms / 3_600_000));
}

export const periodReport = defineJob({
  name: 'period-report',
  params,
  schedule: 'rate(1 hour)',
  async getRunnableTasks(ctx) {
    const periodMs = ctx.params.periodSeconds * 1000;
    const current = Math.floor(ctx.now() / periodMs) * periodMs; // the start of the period still running
    const due = [];
    for (let back = ctx.params.lookback; back >= 1; back--) {
      const input = { start: new Date(current - back * periodMs).toISOString() };
      if (!(await ctx.history.lastSuccess({ task: 'report', input }))) due.push({ task: 'report', input });
    }
    return due;
  },
  tasks: {
    report: defineTask<Params, ReportInput, ReportResult>({
      input: reportInput,
      retry: { attempts: 3, backoffMs: 1_000 },
      async run({ start }, tctx) {
        const from = Date.parse(start);
        const step = (tctx.params.periodSeconds * 1000) / 4;
        const samples: number[] = [];
        for (let i = 0; i < 4; i++) {
          samples.push(measure(from + i * step));
          tctx.progress(i + 1, 4, `sample ${i + 1} of 4`);
        }
        const mean = samples.reduce((sum, value) => sum + value, 0) / samples.length;
        const key = `reports/${tctx.instanceId}/${start.replaceAll(':', '-')}.json`;
        await tctx.objects.put(key, `${JSON.stringify({ start, samples, mean }, null, 2)}\n`);
        tctx.log.info(`report of the period from ${start}: mean ${mean}`, { key });
        return { key, mean };
      },
    }),
  },
});
