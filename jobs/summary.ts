/**
 * Job type `summary`: keeps `reports/<source>/summary.json` and `summary.md` up to date with the
 * per-file statistics in `processed/<source>/`. The report is outdated when an input changed after
 * the last successful `report` run ended, or when there is none yet (or its output went missing).
 */
import { defineJob, defineTask, SkipError, z } from 'ujr';
import type { ObjectInfo, ObjectReader, PlanContext, TaskContext, TaskSpec } from 'ujr';
import { fileStatsSchema, processedPrefix, sourceId, type FieldStats, type FileStats } from './processor.js';

/** Parameters of a summary instance. */
export const summaryParams = z.object({
  /** The id of the collector instance whose processed statistics are summarised. */
  source: sourceId,
});
export type SummaryParams = z.infer<typeof summaryParams>;

/** Where the reports of `source` go. */
export function reportKeys(source: string): { json: string; markdown: string } {
  return { json: `reports/${source}/summary.json`, markdown: `reports/${source}/summary.md` };
}

/** The per-file statistics of `source` (the summary's inputs). */
export async function listProcessedFiles(objects: ObjectReader, source: string): Promise<ObjectInfo[]> {
  const prefix = processedPrefix(source);
  return (await objects.list(prefix)).filter(
    (info) => info.key.endsWith('.json') && !info.key.slice(prefix.length).includes('/'),
  );
}

/** Whether the report must be rebuilt from `inputs`. */
async function isOutdated(ctx: PlanContext<SummaryParams>, inputs: readonly ObjectInfo[]): Promise<boolean> {
  if (inputs.length === 0) return false;
  const last = await ctx.history.lastSuccess({ task: 'report' });
  // The report read its inputs after it started: anything written since then is newer than it.
  const builtAt = last?.startedAt ?? last?.endedAt;
  if (builtAt === undefined) return true;
  if (inputs.some((input) => input.modifiedAt > builtAt)) return true;
  return (await ctx.objects.stat(reportKeys(ctx.params.source).json)) === undefined;
}

async function planReport(ctx: PlanContext<SummaryParams>): Promise<TaskSpec[]> {
  const inputs = await listProcessedFiles(ctx.objects, ctx.params.source);
  return (await isOutdated(ctx, inputs)) ? [{ task: 'report', input: {} }] : [];
}

/** The content of `summary.json`. */
export interface Summary {
  source: string;
  generatedAt: number;
  files: number;
  samples: number;
  malformed: number;
  firstAt: number;
  lastAt: number;
  fields: Record<string, FieldStats>;
  /** Inputs that could not be read as statistics (left out of the totals). */
  invalidInputs: string[];
}

function mergeField(into: FieldStats | undefined, add: FieldStats): FieldStats {
  if (!into) return { ...add };
  const count = into.count + add.count;
  return {
    count,
    min: Math.min(into.min, add.min),
    max: Math.max(into.max, add.max),
    mean: (into.mean * into.count + add.mean * add.count) / count,
  };
}

/** Combines per-file statistics: sums of counts, extremes of extremes, sample-weighted means. */
export function summarize(source: string, perFile: readonly FileStats[], generatedAt: number): Summary {
  const summary: Summary = {
    source,
    generatedAt,
    files: perFile.length,
    samples: 0,
    malformed: 0,
    firstAt: Infinity,
    lastAt: -Infinity,
    fields: {},
    invalidInputs: [],
  };
  for (const stats of perFile) {
    summary.samples += stats.count;
    summary.malformed += stats.malformed;
    summary.firstAt = Math.min(summary.firstAt, stats.firstAt);
    summary.lastAt = Math.max(summary.lastAt, stats.lastAt);
    for (const [name, field] of Object.entries(stats.fields)) {
      summary.fields[name] = mergeField(summary.fields[name], field);
    }
  }
  return summary;
}

function formatNumber(value: number): string {
  return value.toLocaleString('en-US', { maximumFractionDigits: 3 });
}

function tableRow(name: string, { count, min, mean, max }: FieldStats): string {
  return `| ${name} | ${count} | ${formatNumber(min)} | ${formatNumber(mean)} | ${formatNumber(max)} |`;
}

/** The human-readable report. */
export function renderMarkdown(summary: Summary): string {
  const lines = [
    `# Summary of \`${summary.source}\``,
    '',
    `Generated ${new Date(summary.generatedAt).toISOString()} from ${summary.files} processed files: ` +
      `${formatNumber(summary.samples)} samples, ${formatNumber(summary.malformed)} malformed lines, ` +
      `from ${new Date(summary.firstAt).toISOString()} to ${new Date(summary.lastAt).toISOString()}.`,
    '',
    '| field | samples | min | mean | max |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...Object.entries(summary.fields)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, field]) => tableRow(name, field)),
  ];
  if (summary.invalidInputs.length > 0) {
    lines.push('', `Left out (not valid statistics): ${summary.invalidInputs.map((key) => `\`${key}\``).join(', ')}.`);
  }
  return `${lines.join('\n')}\n`;
}

async function readFileStats(objects: ObjectReader, key: string): Promise<FileStats | undefined> {
  const text = await objects.getText(key);
  if (text === undefined) return undefined;
  try {
    const parsed = fileStatsSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** What a `report` run returns. */
export interface ReportResult {
  files: number;
  samples: number;
  invalidInputs: number;
  outputs: string[];
}

async function buildReport(tctx: TaskContext<SummaryParams>): Promise<ReportResult> {
  const { source } = tctx.params;
  const perFile: FileStats[] = [];
  const invalidInputs: string[] = [];
  for (const { key } of await listProcessedFiles(tctx.objects, source)) {
    const stats = await readFileStats(tctx.objects, key);
    if (stats) perFile.push(stats);
    else invalidInputs.push(key);
  }
  if (invalidInputs.length > 0) tctx.log.warn('left out inputs that are not valid statistics', { invalidInputs });
  if (perFile.length === 0) {
    throw new SkipError(`no valid statistics under ${processedPrefix(source)}; nothing to report`);
  }
  const summary = { ...summarize(source, perFile, Date.now()), invalidInputs };
  const keys = reportKeys(source);
  await tctx.objects.put(keys.json, `${JSON.stringify(summary, null, 2)}\n`);
  await tctx.objects.put(keys.markdown, renderMarkdown(summary));
  return {
    files: summary.files,
    samples: summary.samples,
    invalidInputs: invalidInputs.length,
    outputs: [keys.json, keys.markdown],
  };
}

/**
 * Rebuilds the report of the collector instance `source` whenever its processed statistics change.
 *
 * @example
 * ```json
 * { "id": "metrics-summary", "job": "summary", "params": { "source": "metrics" }, "schedule": "30s" }
 * ```
 */
export const summary = defineJob({
  name: 'summary',
  params: summaryParams,
  schedule: 'rate(1 minute)',
  getRunnableTasks: planReport,
  tasks: {
    report: defineTask<SummaryParams, Record<string, never>, ReportResult>({
      input: z.strictObject({}),
      run: (_input, tctx) => buildReport(tctx),
    }),
  },
});
