/**
 * Job type `processor`: turns each finished file of a collector instance into per-file
 * statistics, `processed/<source>/<name>.json`, once per file (even across processor instances,
 * through the explicit signature `process:<file>`).
 */
import { posix } from 'node:path';
import { defineJob, defineTask, NonRetryableError, SkipError, z } from 'ujr';
import type { ObjectInfo, ObjectReader, PlanContext, TaskContext, TaskSpec } from 'ujr';
import { collectedPrefix, FINISHED_SUFFIX } from './collector.js';

/** An instance id used as a key segment: letters, digits, `_`, `.` and `-`, no `/`. */
export const sourceId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'give the id of a collector instance (letters, digits, "_", "." and "-")');

/** Parameters of a processor instance. */
export const processorParams = z.object({
  /** The id of the collector instance whose files are processed. */
  source: sourceId,
});
export type ProcessorParams = z.infer<typeof processorParams>;

/** The signature of processing `file`, shared by all processor instances (and read by the archiver). */
export function processSignature(file: string): string {
  return `process:${file}`;
}

/** Where the statistics of `source`'s files go. */
export function processedPrefix(source: string): string {
  return `processed/${source}/`;
}

/** The key of the statistics of the collected `file`. */
export function processedKey(source: string, file: string): string {
  return `${processedPrefix(source)}${posix.basename(file, FINISHED_SUFFIX)}.json`;
}

/** The finished files of collector instance `source` (open periods' `.part` files excluded). */
export async function listFinishedFiles(objects: ObjectReader, source: string): Promise<ObjectInfo[]> {
  const prefix = collectedPrefix(source);
  return (await objects.list(prefix)).filter(
    (info) => info.key.endsWith(FINISHED_SUFFIX) && !info.key.slice(prefix.length).includes('/'),
  );
}

const fieldStatsSchema = z.object({ count: z.number(), min: z.number(), mean: z.number(), max: z.number() });
/** Statistics of one numeric field over the samples of a file. */
export type FieldStats = z.infer<typeof fieldStatsSchema>;

/** What the processor writes per file; the summary job reads it back with this schema. */
export const fileStatsSchema = z.object({
  source: z.string(),
  file: z.string(),
  count: z.number(),
  malformed: z.number(),
  firstAt: z.number(),
  lastAt: z.number(),
  fields: z.record(z.string(), fieldStatsSchema),
});
export type FileStats = z.infer<typeof fileStatsSchema>;

/** A sample line as the processor accepts it: a timestamp `at` (epoch ms) and any other fields. */
const sampleLineSchema = z.looseObject({ at: z.number() });

function parseSampleLine(line: string): z.infer<typeof sampleLineSchema> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  const parsed = sampleLineSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/** Accumulates min, max and sum per numeric field. */
class FieldAccumulator {
  private readonly fields = new Map<string, { count: number; min: number; max: number; sum: number }>();

  add(name: string, value: number): void {
    const field = this.fields.get(name);
    if (!field) {
      this.fields.set(name, { count: 1, min: value, max: value, sum: value });
      return;
    }
    field.count += 1;
    field.min = Math.min(field.min, value);
    field.max = Math.max(field.max, value);
    field.sum += value;
  }

  result(): Record<string, FieldStats> {
    const result: Record<string, FieldStats> = {};
    for (const [name, { count, min, max, sum }] of [...this.fields].sort(([a], [b]) => (a < b ? -1 : 1))) {
      result[name] = { count, min, mean: sum / count, max };
    }
    return result;
  }
}

/** Statistics of the JSON lines in `text`; malformed lines are counted (and reported by line number). */
export function computeFileStats(
  text: string,
  identity: { source: string; file: string },
): { stats: FileStats | undefined; malformedLines: number[] } {
  const fields = new FieldAccumulator();
  const malformedLines: number[] = [];
  let count = 0;
  let firstAt = Infinity;
  let lastAt = -Infinity;
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    const sample = parseSampleLine(line);
    if (!sample) {
      malformedLines.push(index + 1);
      return;
    }
    count += 1;
    firstAt = Math.min(firstAt, sample.at);
    lastAt = Math.max(lastAt, sample.at);
    for (const [name, value] of Object.entries(sample)) {
      if (name !== 'at' && typeof value === 'number' && Number.isFinite(value)) fields.add(name, value);
    }
  });
  if (count === 0) return { stats: undefined, malformedLines };
  const stats = { ...identity, count, malformed: malformedLines.length, firstAt, lastAt, fields: fields.result() };
  return { stats, malformedLines };
}

/** Processing `file` already ended for good: it succeeded, or it was skipped (an empty file). */
async function alreadyProcessed(ctx: PlanContext<ProcessorParams>, file: string): Promise<boolean> {
  const signature = processSignature(file);
  if (await ctx.history.lastSuccess({ signature })) return true;
  return (await ctx.history.lastRun({ signature }))?.status === 'skipped';
}

async function planProcessing(ctx: PlanContext<ProcessorParams>): Promise<TaskSpec[]> {
  const specs: TaskSpec[] = [];
  for (const { key: file } of await listFinishedFiles(ctx.objects, ctx.params.source)) {
    if (await alreadyProcessed(ctx, file)) continue;
    specs.push({ task: 'process', input: { file }, signature: processSignature(file) });
  }
  return specs;
}

/** What a `process` run returns. */
export interface ProcessResult {
  file: string;
  output: string;
  count: number;
  malformed: number;
}

/** Refuses a `file` that is not a finished file of `source` (a hand-written manual trigger, say). */
export function assertCollectedFile(source: string, file: string): void {
  const prefix = collectedPrefix(source);
  const name = file.slice(prefix.length);
  if (!file.startsWith(prefix) || name.includes('/') || !name.endsWith(FINISHED_SUFFIX)) {
    throw new NonRetryableError(
      `${JSON.stringify(file)} is not a finished file of collector "${source}"; ` +
        `give a key like ${prefix}<period>${FINISHED_SUFFIX}`,
    );
  }
}

async function processFile(input: { file: string }, tctx: TaskContext<ProcessorParams>): Promise<ProcessResult> {
  const { source } = tctx.params;
  const { file } = input;
  assertCollectedFile(source, file);
  const text = await tctx.objects.getText(file);
  if (text === undefined) throw new SkipError(`${file} no longer exists; nothing to process`);
  const { stats, malformedLines } = computeFileStats(text, { source, file });
  if (malformedLines.length > 0) {
    tctx.log.warn('skipped malformed lines (not JSON, or no numeric "at")', {
      file,
      malformed: malformedLines.length,
      lines: malformedLines.slice(0, 20),
    });
  }
  if (!stats) throw new SkipError(`${file} holds no samples; nothing to process`);
  const output = processedKey(source, file);
  await tctx.objects.put(output, `${JSON.stringify(stats, null, 2)}\n`);
  return { file, output, count: stats.count, malformed: stats.malformed };
}

/**
 * Computes statistics of each finished file of the collector instance `source`.
 *
 * @example
 * ```json
 * { "id": "metrics-processor", "job": "processor", "params": { "source": "metrics" }, "schedule": "10s" }
 * ```
 */
export const processor = defineJob({
  name: 'processor',
  params: processorParams,
  schedule: 'rate(1 minute)',
  getRunnableTasks: planProcessing,
  tasks: {
    process: defineTask<ProcessorParams, { file: string }, ProcessResult>({
      input: z.object({ file: z.string().min(1) }),
      run: processFile,
    }),
  },
});
