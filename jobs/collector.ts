/**
 * Job type `collector`: one continuous task that samples a source every `intervalMs` and keeps
 * the samples as JSON lines, one object per period: `collected/<instance>/<period start>.jsonl`.
 * Periods are `rolloverMs` long and aligned to the epoch; with `firstRolloverMs`, a collector that
 * starts with nothing open finishes a short first file (keyed by its start) after that long, so that
 * downstream jobs have a file to work on within seconds, then goes on with the aligned periods.
 *
 * Object stores cannot append, so the open period lives in memory and is written whole to
 * `<key>.part` every `flushMs`; at rollover the finished `<key>` is written and the `.part` deleted.
 * A restarted task reads its `.part` files back, so a crash loses at most `flushMs` of samples.
 */
import os from 'node:os';
import { defineJob, defineTask, LeaseLostError, z } from 'ujr';
import type { Json, ObjectStore, TaskContext } from 'ujr';

/** Suffix of a finished period's file, the one downstream jobs read. */
export const FINISHED_SUFFIX = '.jsonl';
/** Suffix of the open period's file, rewritten on every flush. */
export const PART_SUFFIX = '.jsonl.part';

/** Where the collector instance `instanceId` writes its files. */
export function collectedPrefix(instanceId: string): string {
  return `collected/${instanceId}/`;
}

/** The key of the finished file of the period starting at `periodStart` (epoch ms). */
export function periodKey(instanceId: string, periodStart: number): string {
  // Colons are awkward in file names (Windows, some shells), so the ISO time uses "-" instead.
  return `${collectedPrefix(instanceId)}${new Date(periodStart).toISOString().replaceAll(':', '-')}${FINISHED_SUFFIX}`;
}

/** Parameters of a collector instance. */
export const collectorParams = z.object({
  /** Time between two samples. @default 1000 */
  intervalMs: z.number().int().positive().default(1_000),
  /** Length of a period, i.e. of one finished file; periods are aligned to the epoch. @default 60000 */
  rolloverMs: z.number().int().positive().default(60_000),
  /**
   * Length of the first period when the task starts with no open period to resume (its first run,
   * or a restart after its period ended): a short one gives downstream jobs a finished file soon
   * after the start. Later periods are `rolloverMs` long. @default rolloverMs (no short first period)
   */
  firstRolloverMs: z.number().int().positive().optional(),
  /** Time between two writes of the open period's `.part` file. @default 5000 */
  flushMs: z.number().int().positive().default(5_000),
  /** Sample this URL (HTTP GET) instead of the local system metrics. */
  url: z.url().optional(),
  /** Time after which one HTTP request is given up (recorded as an error sample). @default 10000 */
  requestTimeoutMs: z.number().int().positive().default(10_000),
  /** Longest response body kept in a sample, in characters; longer ones are cut. @default 100000 */
  maxBodyChars: z.number().int().nonnegative().default(100_000),
});
export type CollectorParams = z.infer<typeof collectorParams>;

const checkpointSchema = z.object({ period: z.number(), count: z.number() });

/** One sample: `at` (epoch ms) plus source-specific fields, serialised as one JSON line. */
export type Sample = { at: number } & Record<string, Json>;

/** Local system metrics: load averages, free memory and this process's memory use. */
export function sampleSystem(): Sample {
  const [load1 = 0, load5 = 0, load15 = 0] = os.loadavg();
  const memory = process.memoryUsage();
  const at = Date.now();
  return {
    at,
    time: new Date(at).toISOString(),
    load1,
    load5,
    load15,
    freemem: os.freemem(),
    totalmem: os.totalmem(),
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
  };
}

/** An HTTP GET of `url`; a failed request is logged and recorded in the sample, never thrown. */
export async function sampleUrl(url: string, params: CollectorParams, tctx: TaskContext): Promise<Sample> {
  const at = Date.now();
  const base = { at, time: new Date(at).toISOString(), url };
  try {
    const response = await fetch(url, {
      signal: AbortSignal.any([tctx.signal, AbortSignal.timeout(params.requestTimeoutMs)]),
    });
    const body = await response.text();
    return {
      ...base,
      status: response.status,
      ok: response.ok,
      durationMs: Date.now() - at,
      bytes: Buffer.byteLength(body),
      body: body.slice(0, params.maxBodyChars),
      truncated: body.length > params.maxBodyChars,
    };
  } catch (error) {
    if (tctx.signal.aborted) throw error; // stopping: this sample is not taken
    const message = error instanceof Error ? error.message : String(error);
    tctx.log.warn('fetch failed; recording the error in the sample', { url, error: message });
    return { ...base, error: message, durationMs: Date.now() - at };
  }
}

/** The period being collected: its start (the key of its file), its end and the lines gathered so far. */
interface OpenPeriod {
  start: number;
  /** The first sample at or after it opens the next period. */
  end: number;
  lines: string[];
  /** Lines were added since the last flush. */
  dirty: boolean;
}

/**
 * Keeps the open period and writes it: `flush` rewrites the `.part`, `rollIfDue` finishes the open
 * period once it is over and opens the one holding the given time.
 */
class PeriodWriter {
  private open: OpenPeriod;

  constructor(
    private readonly tctx: TaskContext<CollectorParams>,
    open: OpenPeriod,
  ) {
    this.open = open;
  }

  get period(): number {
    return this.open.start;
  }

  get count(): number {
    return this.open.lines.length;
  }

  async append(sample: Sample): Promise<void> {
    await this.rollIfDue(sample.at);
    this.open.lines.push(JSON.stringify(sample));
    this.open.dirty = true;
  }

  /** Writes the open period's `.part` (when it changed) and checkpoints its position. */
  async flush(): Promise<void> {
    if (!this.open.dirty) return;
    const key = periodKey(this.tctx.instanceId, this.open.start);
    await this.tctx.objects.put(`${key}.part`, linesToText(this.open.lines));
    this.open.dirty = false;
    await this.tctx.checkpoint({ period: this.open.start, count: this.open.lines.length });
    this.tctx.progress(this.open.lines.length, undefined, `period ${new Date(this.open.start).toISOString()}`);
  }

  /**
   * When the open period is over at `at`: finishes it (when it has lines) and opens the aligned
   * period holding `at`. A clock that steps back never reopens a period.
   */
  async rollIfDue(at: number): Promise<void> {
    if (at < this.open.end) return;
    if (this.open.lines.length > 0) {
      await finishPeriod(this.tctx.objects, periodKey(this.tctx.instanceId, this.open.start), this.open.lines);
      this.tctx.log.info('period finished', { period: new Date(this.open.start).toISOString(), count: this.count });
    }
    const { rolloverMs } = this.tctx.params;
    const period = periodOf(at, rolloverMs);
    this.open = { start: period, end: period + rolloverMs, lines: [], dirty: false };
    await this.tctx.checkpoint({ period, count: 0 });
  }
}

/** The start of the period holding `at`: periods are aligned to the epoch. */
export function periodOf(at: number, rolloverMs: number): number {
  return Math.floor(at / rolloverMs) * rolloverMs;
}

function linesToText(lines: readonly string[]): string {
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function textToLines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

/** Writes a period's finished file, then removes its `.part`. */
async function finishPeriod(objects: ObjectStore, key: string, lines: readonly string[]): Promise<void> {
  await objects.put(key, linesToText(lines));
  await objects.delete(`${key}.part`);
}

/**
 * Reads back what an earlier attempt left: `.part` files of past periods are finished now, the
 * current period's `.part` is reopened. Warns when fewer lines are found than the checkpoint says.
 */
async function recover(tctx: TaskContext<CollectorParams>, currentPeriod: number): Promise<OpenPeriod> {
  const currentPartKey = `${periodKey(tctx.instanceId, currentPeriod)}.part`;
  const open: OpenPeriod = { start: currentPeriod, end: currentPeriod + tctx.params.rolloverMs, lines: [], dirty: false };
  const parts = (await tctx.objects.list(collectedPrefix(tctx.instanceId))).filter((o) => o.key.endsWith(PART_SUFFIX));
  for (const part of parts) {
    const lines = textToLines((await tctx.objects.getText(part.key)) ?? '');
    if (part.key === currentPartKey) {
      open.lines = lines;
      continue;
    }
    const finishedKey = part.key.slice(0, -'.part'.length);
    if (await tctx.objects.stat(finishedKey)) {
      await tctx.objects.delete(part.key); // finished before the crash; the .part is a leftover
    } else {
      await finishPeriod(tctx.objects, finishedKey, lines);
    }
    tctx.log.info('finished the period an earlier attempt left open', { key: finishedKey, count: lines.length });
  }
  warnOnLostLines(tctx, currentPeriod, open.lines.length);
  return open;
}

function warnOnLostLines(tctx: TaskContext<CollectorParams>, currentPeriod: number, found: number): void {
  const checkpoint = checkpointSchema.safeParse(tctx.lastCheckpoint);
  if (!checkpoint.success || checkpoint.data.period !== currentPeriod || checkpoint.data.count <= found) return;
  tctx.log.warn('the open period has fewer lines than the last checkpoint; some samples were lost', {
    checkpointCount: checkpoint.data.count,
    found,
  });
}

/**
 * The period to start with: the recovered one, or, when it holds nothing and `firstRolloverMs` is
 * set, a short one from now, keyed by now. It must end before the aligned period does, and now
 * must not be that period's start, whose key the rest of the aligned period keeps.
 */
function firstPeriod(recovered: OpenPeriod, now: number, params: Pick<CollectorParams, 'firstRolloverMs'>): OpenPeriod {
  const { firstRolloverMs } = params;
  if (firstRolloverMs === undefined || recovered.lines.length > 0) return recovered;
  if (now <= recovered.start || now + firstRolloverMs >= recovered.end) return recovered;
  return { start: now, end: now + firstRolloverMs, lines: [], dirty: false };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

async function takeSample(tctx: TaskContext<CollectorParams>): Promise<Sample | undefined> {
  const { url } = tctx.params;
  if (url === undefined) return sampleSystem();
  try {
    return await sampleUrl(url, tctx.params, tctx);
  } catch (error) {
    if (tctx.signal.aborted) return undefined;
    throw error;
  }
}

/**
 * The `collect` task: samples until `tctx.signal` aborts, then flushes (unless the lease was lost)
 * and returns where it stopped.
 */
async function collect(tctx: TaskContext<CollectorParams>): Promise<{ period: number; count: number }> {
  const { intervalMs, flushMs, rolloverMs } = tctx.params;
  const startedAt = Date.now();
  const periods = new PeriodWriter(tctx, firstPeriod(await recover(tctx, periodOf(startedAt, rolloverMs)), startedAt, tctx.params));
  let lastFlush = Date.now();
  while (!tctx.signal.aborted) {
    const started = Date.now();
    await periods.rollIfDue(started);
    const sample = await takeSample(tctx);
    if (sample === undefined) break;
    await periods.append(sample);
    tctx.heartbeat();
    if (Date.now() - lastFlush >= flushMs) {
      await periods.flush();
      lastFlush = Date.now();
    }
    await pause(Math.max(0, started + intervalMs - Date.now()), tctx.signal);
  }
  if (isLeaseLost(tctx.signal.reason)) {
    // Another runner owns the collection now; flushing would overwrite its newer .part.
    tctx.log.warn('lease lost; not flushing the open period', { unflushed: periods.count });
  } else {
    await periods.flush();
  }
  return { period: periods.period, count: periods.count };
}

/** Matched by name as well: the reason may have crossed a process boundary as plain data. */
function isLeaseLost(reason: unknown): boolean {
  return reason instanceof LeaseLostError || (reason instanceof Error && reason.name === 'LeaseLostError');
}

/**
 * Samples local system metrics (or `url`) into per-period JSON-lines files.
 *
 * @example
 * ```json
 * { "id": "metrics", "job": "collector", "params": { "intervalMs": 1000, "rolloverMs": 60000 } }
 * ```
 */
export const collector = defineJob({
  name: 'collector',
  params: collectorParams,
  schedule: 'rate(1 minute)',
  getRunnableTasks: () => [{ task: 'collect', input: {} }],
  tasks: {
    collect: defineTask<CollectorParams, Record<string, never>, { period: number; count: number }>({
      kind: 'continuous',
      input: z.strictObject({}),
      run: (_input, tctx) => collect(tctx),
    }),
  },
});
