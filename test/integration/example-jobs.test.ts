/**
 * The example jobs, run directly (no engine): a real DirectoryObjectStore on a temp dir, and plan
 * and task contexts whose state and history the tests control. Last, the example pipeline as
 * `npm start` runs it (`ujr run` on jobs/instances.json), for how soon it shows finished runs.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { DirectoryObjectStore } from '../../core/adapters/fs/objects.js';
import { SqliteStore } from '../../core/adapters/sqlite/store.js';
import { LeaseLostError, NonRetryableError, SkipError } from '../../core/errors.js';
import type {
  HistoryQuery,
  JobType,
  Json,
  Logger,
  LogLevel,
  PlanContext,
  RunStatus,
  RunSummary,
  TaskContext,
  TaskDefinition,
  TaskSpec,
} from '../../core/types.js';
import { archiveKey, archiver, archiverParams } from '../../jobs/archiver.js';
import { collectedPrefix, collector, collectorParams, periodKey, periodOf } from '../../jobs/collector.js';
import jobTypes from '../../jobs/index.js';
import { fileStatsSchema, processor, processorParams, type FileStats } from '../../jobs/processor.js';
import { reportKeys, summary, summaryParams } from '../../jobs/summary.js';
import { REPO_ROOT, UJR_BIN } from '../fixtures/cli/sandbox.js';
import { pollFor } from '../helpers/runner.js';

// ---------------------------------------------------------------------------------------------
// Fakes: history, logger, plan and task contexts

interface RecordedRun {
  instanceId: string;
  task: string;
  signature: string;
  status: RunStatus;
  endedAt: number;
}

/** Run history the test writes; queried the way the planner does (input → default signature). */
class FakeHistory {
  private readonly runs: RecordedRun[] = [];

  static defaultSignature(instanceId: string, task: string, input: Json = {}): string {
    return `${instanceId}/${task}/${JSON.stringify(input)}`;
  }

  record(run: Omit<RecordedRun, 'endedAt'> & { endedAt?: number }): void {
    this.runs.push({ endedAt: Date.now(), ...run });
  }

  succeeded(instanceId: string, task: string, signature: string, endedAt?: number): void {
    this.record({ instanceId, task, signature, status: 'succeeded', ...(endedAt === undefined ? {} : { endedAt }) });
  }

  last(query: HistoryQuery, ownInstanceId: string, onlySucceeded: boolean): RunSummary | undefined {
    const matches = this.runs.filter((run) => {
      if (onlySucceeded && run.status !== 'succeeded') return false;
      if ('signature' in query) return run.signature === query.signature;
      const instanceId = query.instanceId ?? ownInstanceId;
      if (query.input !== undefined) {
        return run.signature === FakeHistory.defaultSignature(instanceId, query.task, query.input);
      }
      return run.instanceId === instanceId && run.task === query.task;
    });
    const latest = matches.sort((a, b) => a.endedAt - b.endedAt).at(-1);
    return latest && { id: `run-${latest.signature}`, attempt: 1, startedAt: latest.endedAt, ...latest };
  }
}

interface LoggedLine {
  level: LogLevel;
  message: string;
  fields: Record<string, unknown> | undefined;
}

function captureLogger(lines: LoggedLine[]): Logger {
  const at = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message, fields });
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function planContext<P>(
  params: P,
  options: { instanceId: string; history?: FakeHistory; now?: number },
): PlanContext<P> {
  const state = new Map<string, Json>();
  const history = options.history ?? new FakeHistory();
  const own = options.instanceId;
  return {
    instanceId: own,
    params,
    reason: 'schedule',
    now: () => options.now ?? Date.now(),
    state: {
      get: <T extends Json = Json>(key: string) => Promise.resolve(state.get(key) as T | undefined),
      set: (key, value) => Promise.resolve(void state.set(key, value)),
      delete: (key) => Promise.resolve(void state.delete(key)),
    },
    history: {
      lastSuccess: (query) => Promise.resolve(history.last(query, own, true)),
      lastRun: (query) => Promise.resolve(history.last(query, own, false)),
    },
    signatureOf: (task, input) => FakeHistory.defaultSignature(own, task, input),
    objects,
    log: captureLogger([]),
    done: () => undefined,
  };
}

/** A task context plus what the task did with it. */
interface TaskProbe<P> {
  tctx: TaskContext<P>;
  logs: LoggedLine[];
  checkpoints: Json[];
  heartbeats: () => number;
}

function taskContext<P>(
  params: P,
  options: { instanceId: string; task: string; signal?: AbortSignal; lastCheckpoint?: Json },
): TaskProbe<P> {
  const logs: LoggedLine[] = [];
  const checkpoints: Json[] = [];
  let heartbeats = 0;
  const tctx: TaskContext<P> = {
    runId: 'run-1',
    instanceId: options.instanceId,
    task: options.task,
    signature: `${options.instanceId}/${options.task}`,
    attempt: 1,
    params,
    signal: options.signal ?? new AbortController().signal,
    log: captureLogger(logs),
    progress: () => undefined,
    heartbeat: () => {
      heartbeats += 1;
    },
    checkpoint: (state) => {
      checkpoints.push(state);
      return Promise.resolve();
    },
    lastCheckpoint: options.lastCheckpoint,
    fencingToken: 1,
    objects,
    limits: { backoff: () => Promise.resolve() },
  };
  return { tctx, logs, checkpoints, heartbeats: () => heartbeats };
}

function taskOf<P>(job: JobType<P>, name: string): TaskDefinition<P> {
  const task = job.tasks[name];
  if (!task) throw new Error(`job type ${job.name} has no task ${name}`);
  return task;
}

async function plan<P>(job: JobType<P>, ctx: PlanContext<P>): Promise<TaskSpec[]> {
  return job.getRunnableTasks(ctx);
}

const sampleSchema = z.looseObject({ at: z.number(), load1: z.number(), freemem: z.number() });

/** The period start a collected file's key names, as an ISO time. */
function periodKeyTime(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1, -'.jsonl'.length);
  return name.replace(/T(\d\d)-(\d\d)-/, 'T$1:$2:');
}

function linesOf(text: string | undefined): string[] {
  return (text ?? '').split('\n').filter((line) => line !== '');
}

// ---------------------------------------------------------------------------------------------

let root: string;
let objects: DirectoryObjectStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'ujr-jobs-'));
  objects = new DirectoryObjectStore(join(root, 'data'));
});

afterEach(async () => {
  vi.useRealTimers();
  await rm(root, { recursive: true, force: true });
});

const FILE_1 = 'collected/metrics/2026-01-01T00-00-00.000Z.jsonl';
const FILE_2 = 'collected/metrics/2026-01-01T00-01-00.000Z.jsonl';

describe('jobs/index', () => {
  it('exports the five example job types by name', () => {
    expect(jobTypes.map((job) => job.name)).toEqual(['collector', 'processor', 'archiver', 'summary', 'api-pages']);
  });
});

describe('processor', () => {
  const params = processorParams.parse({ source: 'metrics' });

  it('plans one process task per finished file, with a signature shared by all processors', async () => {
    await objects.put(FILE_1, '{"at":1}\n');
    await objects.put(FILE_2, '{"at":2}\n');
    await objects.put('collected/metrics/2026-01-01T00-02-00.000Z.jsonl.part', '{"at":3}\n');
    await objects.put('collected/metrics-other/2026-01-01T00-00-00.000Z.jsonl', '{"at":4}\n');

    const specs = await plan(processor, planContext(params, { instanceId: 'metrics-processor' }));

    expect(specs).toEqual([
      { task: 'process', input: { file: FILE_1 }, signature: `process:${FILE_1}` },
      { task: 'process', input: { file: FILE_2 }, signature: `process:${FILE_2}` },
    ]);
  });

  it('does not plan files another processor instance already processed, or skipped as empty', async () => {
    await objects.put(FILE_1, '{"at":1}\n');
    await objects.put(FILE_2, '\n');
    await objects.put('collected/metrics/2026-01-01T00-02-00.000Z.jsonl', '{"at":3}\n');
    const history = new FakeHistory();
    history.succeeded('other-processor', 'process', `process:${FILE_1}`);
    const skipped = `process:${FILE_2}`;
    history.record({ instanceId: 'other-processor', task: 'process', signature: skipped, status: 'skipped' });
    history.record({
      instanceId: 'metrics-processor',
      task: 'process',
      signature: 'process:collected/metrics/2026-01-01T00-02-00.000Z.jsonl',
      status: 'failed',
    });

    const specs = await plan(processor, planContext(params, { instanceId: 'metrics-processor', history }));

    expect(specs.map((spec) => spec.input)).toEqual([{ file: 'collected/metrics/2026-01-01T00-02-00.000Z.jsonl' }]);
  });

  it('writes per-file statistics and counts malformed lines without failing', async () => {
    await objects.put(
      FILE_1,
      [
        '{"at":3000,"time":"c","load1":3,"freemem":300}',
        'not json',
        '{"at":1000,"time":"a","load1":1,"freemem":100}',
        '{"no_at":true,"load1":99}',
        '',
        '{"at":2000,"time":"b","load1":2,"freemem":200,"url":"x"}',
        '',
      ].join('\n'),
    );
    const { tctx, logs } = taskContext(params, { instanceId: 'metrics-processor', task: 'process' });

    const result = await taskOf(processor, 'process').run({ file: FILE_1 }, tctx);

    const output = 'processed/metrics/2026-01-01T00-00-00.000Z.json';
    expect(result).toEqual({ file: FILE_1, output, count: 3, malformed: 2 });
    const stats = fileStatsSchema.parse(JSON.parse((await objects.getText(output)) ?? ''));
    expect(stats).toEqual({
      source: 'metrics',
      file: FILE_1,
      count: 3,
      malformed: 2,
      firstAt: 1000,
      lastAt: 3000,
      fields: {
        freemem: { count: 3, min: 100, mean: 200, max: 300 },
        load1: { count: 3, min: 1, mean: 2, max: 3 },
      },
    });
    const warning = logs.find((line) => line.level === 'warn');
    expect(warning?.fields).toMatchObject({ file: FILE_1, malformed: 2, lines: [2, 4] });
  });

  it('skips an empty file', async () => {
    await objects.put(FILE_1, '\n\n');
    const { tctx } = taskContext(params, { instanceId: 'metrics-processor', task: 'process' });

    await expect(taskOf(processor, 'process').run({ file: FILE_1 }, tctx)).rejects.toBeInstanceOf(SkipError);
    expect(await objects.list('processed/')).toEqual([]);
  });

  it('refuses a file that is not a finished file of its source', async () => {
    const { tctx } = taskContext(params, { instanceId: 'metrics-processor', task: 'process' });

    await expect(
      taskOf(processor, 'process').run({ file: 'collected/other/2026.jsonl' }, tctx),
    ).rejects.toBeInstanceOf(NonRetryableError);
  });
});

describe('archiver', () => {
  const params = archiverParams.parse({ source: 'metrics' });
  const CONTENT = '{"at":1,"load1":0.5}\n{"at":2,"load1":0.7}\n';

  it('plans only files whose processing succeeded, whichever processor ran it', async () => {
    await objects.put(FILE_1, CONTENT);
    await objects.put(FILE_2, CONTENT);
    await objects.put(`${FILE_2}.part`, CONTENT);
    const history = new FakeHistory();
    history.succeeded('some-processor', 'process', `process:${FILE_1}`);
    history.record({ instanceId: 'some-processor', task: 'process', signature: `process:${FILE_2}`, status: 'failed' });

    const specs = await plan(archiver, planContext(params, { instanceId: 'metrics-archiver', history }));

    expect(specs).toEqual([{ task: 'archive', input: { file: FILE_1 }, signature: `archive:${FILE_1}` }]);
  });

  it('waits until files are olderThanMs old', async () => {
    await objects.put(FILE_1, CONTENT);
    const history = new FakeHistory();
    history.succeeded('p', 'process', `process:${FILE_1}`);
    const hourly = archiverParams.parse({ source: 'metrics', olderThanMs: 3_600_000 });

    const now = Date.now();
    const early = await plan(archiver, planContext(hourly, { instanceId: 'a', history, now }));
    const later = await plan(archiver, planContext(hourly, { instanceId: 'a', history, now: now + 3_600_000 + 1_000 }));

    expect(early).toEqual([]);
    expect(later).toHaveLength(1);
  });

  it('writes a valid gzip of the file and removes the original', async () => {
    await objects.put(FILE_1, CONTENT);
    const { tctx } = taskContext(params, { instanceId: 'metrics-archiver', task: 'archive' });

    const result = await taskOf(archiver, 'archive').run({ file: FILE_1 }, tctx);

    const archive = 'archive/metrics/2026-01-01T00-00-00.000Z.jsonl.gz';
    expect(archiveKey('metrics', FILE_1)).toBe(archive);
    expect(result).toMatchObject({ file: FILE_1, archive, bytes: CONTENT.length, reused: false });
    const gz = await objects.get(archive);
    expect(gz).toBeDefined();
    expect(gunzipSync(gz ?? new Uint8Array()).toString('utf8')).toBe(CONTENT);
    expect(await objects.stat(FILE_1)).toBeUndefined();
  });

  it('does not re-archive: an existing archive of the same bytes only gets the original removed', async () => {
    await objects.put(FILE_1, CONTENT);
    const archive = archiveKey('metrics', FILE_1);
    await objects.put(archive, gzipSync(CONTENT));
    const before = await objects.stat(archive);
    const { tctx } = taskContext(params, { instanceId: 'metrics-archiver', task: 'archive' });

    const result = await taskOf(archiver, 'archive').run({ file: FILE_1 }, tctx);

    expect(result).toMatchObject({ reused: true });
    expect(await objects.stat(archive)).toEqual(before);
    expect(await objects.stat(FILE_1)).toBeUndefined();
  });

  it('keeps the original and fails for good when a different archive is in the way', async () => {
    await objects.put(FILE_1, CONTENT);
    await objects.put(archiveKey('metrics', FILE_1), gzipSync('something else\n'));
    const { tctx } = taskContext(params, { instanceId: 'metrics-archiver', task: 'archive' });

    await expect(taskOf(archiver, 'archive').run({ file: FILE_1 }, tctx)).rejects.toBeInstanceOf(NonRetryableError);
    expect(await objects.getText(FILE_1)).toBe(CONTENT);
  });
});

describe('summary', () => {
  const params = summaryParams.parse({ source: 'metrics' });

  function fileStats(
    file: string,
    count: number,
    load1: { min: number; mean: number; max: number },
    at: [number, number],
  ): FileStats {
    return {
      source: 'metrics',
      file,
      count,
      malformed: 1,
      firstAt: at[0],
      lastAt: at[1],
      fields: { load1: { count, ...load1 } },
    };
  }

  async function putProcessed(name: string, stats: FileStats): Promise<void> {
    await objects.put(`processed/metrics/${name}.json`, JSON.stringify(stats));
  }

  async function newestInput(): Promise<number> {
    return Math.max(...(await objects.list('processed/metrics/')).map((info) => info.modifiedAt));
  }

  it('is not outdated without inputs', async () => {
    expect(await plan(summary, planContext(params, { instanceId: 'metrics-summary' }))).toEqual([]);
  });

  it('is outdated when inputs exist and no report ever succeeded', async () => {
    await putProcessed('a', fileStats(FILE_1, 2, { min: 1, mean: 1.5, max: 2 }, [1000, 2000]));

    const specs = await plan(summary, planContext(params, { instanceId: 'metrics-summary' }));

    expect(specs).toEqual([{ task: 'report', input: {} }]);
  });

  it('is outdated only when an input is newer than the end of the last successful report', async () => {
    await putProcessed('a', fileStats(FILE_1, 2, { min: 1, mean: 1.5, max: 2 }, [1000, 2000]));
    await objects.put(reportKeys('metrics').json, '{}');
    const newest = await newestInput();
    const upToDate = new FakeHistory();
    upToDate.succeeded('metrics-summary', 'report', 'metrics-summary/report/{}', newest);
    upToDate.record({
      instanceId: 'metrics-summary',
      task: 'report',
      signature: 'metrics-summary/report/{}',
      status: 'failed',
      endedAt: newest - 10,
    });
    const stale = new FakeHistory();
    stale.succeeded('metrics-summary', 'report', 'metrics-summary/report/{}', newest - 1);
    const otherInstance = new FakeHistory();
    otherInstance.succeeded('other-summary', 'report', 'other-summary/report/{}', newest + 1);

    const planWith = (history: FakeHistory) =>
      plan(summary, planContext(params, { instanceId: 'metrics-summary', history }));

    const whenUpToDate = await planWith(upToDate);
    const whenStale = await planWith(stale);
    const whenOnlyOthersReported = await planWith(otherInstance);

    expect(whenUpToDate).toEqual([]);
    expect(whenStale).toEqual([{ task: 'report', input: {} }]);
    expect(whenOnlyOthersReported).toEqual([{ task: 'report', input: {} }]);
  });

  it('is outdated when the report itself went missing', async () => {
    await putProcessed('a', fileStats(FILE_1, 2, { min: 1, mean: 1.5, max: 2 }, [1000, 2000]));
    const history = new FakeHistory();
    history.succeeded('metrics-summary', 'report', 'metrics-summary/report/{}', (await newestInput()) + 1_000);

    expect(await plan(summary, planContext(params, { instanceId: 'metrics-summary', history }))).toHaveLength(1);
  });

  it('combines all processed files into summary.json and summary.md', async () => {
    await putProcessed('a', fileStats(FILE_1, 2, { min: 1, mean: 1.5, max: 2 }, [1000, 2000]));
    await putProcessed('b', fileStats(FILE_2, 6, { min: 0.5, mean: 3.5, max: 9 }, [3000, 9000]));
    await objects.put('processed/metrics/broken.json', '{"count":');
    const { tctx, logs } = taskContext(params, { instanceId: 'metrics-summary', task: 'report' });

    const result = await taskOf(summary, 'report').run({}, tctx);

    const keys = reportKeys('metrics');
    expect(result).toEqual({ files: 2, samples: 8, invalidInputs: 1, outputs: [keys.json, keys.markdown] });
    const written: unknown = JSON.parse((await objects.getText(keys.json)) ?? '');
    expect(written).toMatchObject({
      source: 'metrics',
      files: 2,
      samples: 8,
      malformed: 2,
      firstAt: 1000,
      lastAt: 9000,
      fields: { load1: { count: 8, min: 0.5, mean: 3, max: 9 } },
      invalidInputs: ['processed/metrics/broken.json'],
    });
    const markdown = await objects.getText(keys.markdown);
    expect(markdown).toContain('# Summary of `metrics`');
    expect(markdown).toContain('| load1 | 8 | 0.5 | 3 | 9 |');
    expect(logs).toContainEqual(expect.objectContaining({ level: 'warn' }));
  });
});

describe('collector', () => {
  const PREFIX = collectedPrefix('metrics');

  async function finishedFiles(): Promise<string[]> {
    return (await objects.list(PREFIX)).map((info) => info.key).filter((key) => key.endsWith('.jsonl'));
  }

  async function partLines(period: number): Promise<string[]> {
    return linesOf(await objects.getText(`${periodKey('metrics', period)}.part`));
  }

  it('always plans its one continuous collect task', async () => {
    const specs = await plan(collector, planContext(collectorParams.parse({}), { instanceId: 'metrics' }));

    expect(specs).toEqual([{ task: 'collect', input: {} }]);
    expect(taskOf(collector, 'collect').kind).toBe('continuous');
  });

  it('rolls samples into per-period JSON-lines files and flushes the open period when stopped', async () => {
    // flushMs beyond the test's length: the open period's lines reach the store only at the stop.
    const params = collectorParams.parse({ intervalMs: 5, rolloverMs: 60, flushMs: 60_000 });
    const stop = new AbortController();
    const { tctx, checkpoints, heartbeats } = taskContext(params, {
      instanceId: 'metrics',
      task: 'collect',
      signal: stop.signal,
    });

    const running = taskOf(collector, 'collect').run({}, tctx);
    await pollFor(async () => ((await finishedFiles()).length >= 3 ? true : undefined), 10_000, 'three finished files');
    stop.abort(new Error('test over'));
    const result = await running;

    let total = 0;
    for (const info of await objects.list(PREFIX)) {
      const lines = linesOf(await objects.getText(info.key));
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) {
        const sample = sampleSchema.parse(JSON.parse(line));
        const period = periodOf(sample.at, params.rolloverMs);
        const expectedKey = periodKey('metrics', period);
        expect(info.key === expectedKey || info.key === `${expectedKey}.part`).toBe(true);
      }
      total += lines.length;
    }
    expect(total).toBe(heartbeats()); // one heartbeat per sample, and no sample lost at the stop
    expect(result).toEqual(checkpoints.at(-1));
  });

  it('finishes a period an earlier attempt left as .part, keeping its lines', async () => {
    const old = ['{"at":1,"load1":1,"freemem":1}', '{"at":2,"load1":2,"freemem":2}', '{"at":3,"load1":3,"freemem":3}'];
    await objects.put(`${periodKey('metrics', 0)}.part`, `${old.join('\n')}\n`);
    const params = collectorParams.parse({ intervalMs: 5, rolloverMs: 60_000, flushMs: 10 });
    const stop = new AbortController();
    const { tctx } = taskContext(params, {
      instanceId: 'metrics',
      task: 'collect',
      signal: stop.signal,
      lastCheckpoint: { period: 0, count: 3 },
    });

    const running = taskOf(collector, 'collect').run({}, tctx);
    await pollFor(() => objects.stat(periodKey('metrics', 0)), 10_000, 'the old period finished');
    stop.abort();
    await running;

    expect(linesOf(await objects.getText(periodKey('metrics', 0)))).toEqual(old);
    expect(await objects.stat(`${periodKey('metrics', 0)}.part`)).toBeUndefined();
  });

  it('resumes the open period from its .part and checkpoint without losing lines', async () => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.parse('2026-03-01T12:00:01.000Z') });
    const params = collectorParams.parse({ intervalMs: 5, rolloverMs: 60_000, flushMs: 10 });
    const period = Date.parse('2026-03-01T12:00:00.000Z');

    const first = new AbortController();
    const run1 = taskContext(params, { instanceId: 'metrics', task: 'collect', signal: first.signal });
    const running1 = taskOf(collector, 'collect').run({}, run1.tctx);
    await pollFor(async () => ((await partLines(period)).length >= 5 ? true : undefined), 10_000, 'five flushed lines');
    first.abort();
    await running1;
    const linesOfRun1 = await partLines(period);

    const second = new AbortController();
    const run2 = taskContext(params, {
      instanceId: 'metrics',
      task: 'collect',
      signal: second.signal,
      lastCheckpoint: run1.checkpoints.at(-1),
    });
    const running2 = taskOf(collector, 'collect').run({}, run2.tctx);
    const target = linesOfRun1.length + 5;
    await pollFor(async () => ((await partLines(period)).length >= target ? true : undefined), 10_000, 'five more lines');
    second.abort();
    await running2;

    const linesAfter = await partLines(period);
    expect(run1.checkpoints.at(-1)).toEqual({ period, count: linesOfRun1.length });
    expect(linesAfter.slice(0, linesOfRun1.length)).toEqual(linesOfRun1);
    expect(linesAfter).toHaveLength(run1.heartbeats() + run2.heartbeats());
    expect(run2.checkpoints.at(-1)).toEqual({ period, count: linesAfter.length });
    expect(await finishedFiles()).toEqual([]);
    expect(run2.logs.filter((line) => line.level === 'warn')).toEqual([]);
  });

  it('finishes a short first file after firstRolloverMs, keyed by its start, then fills the rest of the aligned period', async () => {
    // Prepare: one second into an aligned minute, with nothing to resume.
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.parse('2026-03-01T12:00:01.000Z') });
    const aligned = Date.parse('2026-03-01T12:00:00.000Z');
    const params = collectorParams.parse({ intervalMs: 5, firstRolloverMs: 100, rolloverMs: 60_000, flushMs: 60_000 });
    const stop = new AbortController();
    const { tctx, heartbeats } = taskContext(params, { instanceId: 'metrics', task: 'collect', signal: stop.signal });

    // Act
    const startedAt = Date.now();
    const running = taskOf(collector, 'collect').run({}, tctx);
    const [first] = await pollFor(async () => ((await finishedFiles()).length > 0 ? finishedFiles() : undefined), 10_000, 'the first file');
    await pollFor(() => (heartbeats() >= 40 ? true : undefined), 10_000, 'samples after the first file');
    stop.abort();
    const result = await running;

    // Assess: the first file holds the first 100 ms (and is keyed by when they began), the rest of
    // the minute goes to the aligned period's file, and no sample is lost or written twice.
    const firstAts = linesOf(await objects.getText(first ?? '')).map((line) => sampleSchema.parse(JSON.parse(line)).at);
    const firstStart = Date.parse(periodKeyTime(first ?? ''));
    expect(firstStart).toBeGreaterThanOrEqual(startedAt);
    expect(firstStart).toBeLessThan(startedAt + 100);
    expect(firstAts.every((at) => at >= firstStart && at < firstStart + 100)).toBe(true);
    expect(await finishedFiles()).toEqual([first]);
    const restAts = (await partLines(aligned)).map((line) => sampleSchema.parse(JSON.parse(line)).at);
    expect(restAts.every((at) => at >= firstStart + 100)).toBe(true);
    expect(firstAts.length + restAts.length).toBe(heartbeats());
    expect(result).toEqual({ period: aligned, count: restAts.length });
  });

  it('starts with no short first file when it resumes an open period, or when the aligned period ends first', async () => {
    // Prepare: a .part of the current minute left by an earlier attempt; and, apart, a start 50 ms
    // before the end of a minute.
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.parse('2026-03-01T12:00:01.000Z') });
    const period = Date.parse('2026-03-01T12:00:00.000Z');
    const params = collectorParams.parse({ intervalMs: 5, firstRolloverMs: 100, rolloverMs: 60_000, flushMs: 10 });
    await objects.put(`${periodKey('metrics', period)}.part`, '{"at":1,"load1":1,"freemem":1}\n');
    const stop = new AbortController();
    const resumed = taskContext(params, { instanceId: 'metrics', task: 'collect', signal: stop.signal, lastCheckpoint: { period, count: 1 } });

    // Act
    const running = taskOf(collector, 'collect').run({}, resumed.tctx);
    await pollFor(() => (resumed.heartbeats() >= 40 ? true : undefined), 10_000, 'samples past firstRolloverMs');
    stop.abort();
    await running;
    vi.setSystemTime(Date.parse('2026-03-01T12:00:59.950Z'));
    const late = new AbortController();
    const lateStart = taskContext(params, { instanceId: 'metrics-late', task: 'collect', signal: late.signal });
    const runningLate = taskOf(collector, 'collect').run({}, lateStart.tctx);
    const lateFiles = async () => (await objects.list(collectedPrefix('metrics-late'))).map((info) => info.key).filter((key) => key.endsWith('.jsonl'));
    await pollFor(async () => ((await lateFiles()).length > 0 ? true : undefined), 10_000, 'the late collector to roll over');
    late.abort();
    await runningLate;

    // Assess
    expect(await finishedFiles()).toEqual([]);
    expect((await partLines(period)).length).toBe(1 + resumed.heartbeats());
    expect(await lateFiles()).toEqual([periodKey('metrics-late', period)]);
  });

  it('warns when the open period has fewer lines than the checkpoint says', async () => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.parse('2026-03-01T12:00:01.000Z') });
    const params = collectorParams.parse({ intervalMs: 5, rolloverMs: 60_000, flushMs: 10 });
    const period = Date.parse('2026-03-01T12:00:00.000Z');
    await objects.put(`${periodKey('metrics', period)}.part`, '{"at":1,"load1":1,"freemem":1}\n');
    const stop = new AbortController();
    stop.abort();
    const { tctx, logs } = taskContext(params, {
      instanceId: 'metrics',
      task: 'collect',
      signal: stop.signal,
      lastCheckpoint: { period, count: 10 },
    });

    await taskOf(collector, 'collect').run({}, tctx);

    expect(logs).toContainEqual(expect.objectContaining({ level: 'warn', fields: { checkpointCount: 10, found: 1 } }));
  });

  it('does not flush over the new owner when stopped for a lost lease', async () => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.parse('2026-03-01T12:00:01.000Z') });
    const params = collectorParams.parse({ intervalMs: 5, rolloverMs: 3_600_000, flushMs: 60_000 });
    const stop = new AbortController();
    const { tctx, heartbeats, logs } = taskContext(params, {
      instanceId: 'metrics',
      task: 'collect',
      signal: stop.signal,
    });

    const running = taskOf(collector, 'collect').run({}, tctx);
    await pollFor(() => (heartbeats() >= 3 ? true : undefined), 10_000, 'a few samples');
    stop.abort(new LeaseLostError('another runner took the lease over'));
    await running;

    expect(await objects.list(PREFIX)).toEqual([]);
    expect(logs.find((line) => line.level === 'warn')?.message).toMatch(/lease lost/);
  });

  describe('with a url', () => {
    let server: Server | undefined;

    afterEach(async () => {
      const open = server;
      server = undefined;
      if (open) await new Promise((resolve) => open.close(resolve));
    });

    async function listen(): Promise<string> {
      const started = createServer((_request, response) => {
        response.setHeader('content-type', 'application/json');
        response.end('{"value":42}');
      });
      server = started;
      await new Promise<void>((resolve) => started.listen(0, '127.0.0.1', resolve));
      const address = started.address();
      if (address === null || typeof address === 'string') throw new Error('the test server has no TCP address');
      return `http://127.0.0.1:${address.port}/feed`;
    }

    async function collectFromUrl(url: string, samples: number): Promise<{ lines: unknown[]; logs: LoggedLine[] }> {
      vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true, now: Date.parse('2026-03-01T12:00:01.000Z') });
      const params = collectorParams.parse({ url, intervalMs: 5, rolloverMs: 3_600_000, flushMs: 5 });
      const stop = new AbortController();
      const { tctx, logs } = taskContext(params, { instanceId: 'metrics', task: 'collect', signal: stop.signal });
      const running = taskOf(collector, 'collect').run({}, tctx);
      const parts = async () => (await objects.list(PREFIX)).filter((info) => info.key.endsWith('.part'));
      const lines = await pollFor(
        async () => {
          const [part] = await parts();
          const found = part ? linesOf(await objects.getText(part.key)) : [];
          return found.length >= samples ? found : undefined;
        },
        10_000,
        `${samples} samples`,
      );
      stop.abort();
      await running;
      return { lines: lines.map((line): unknown => JSON.parse(line)), logs };
    }

    it('records the HTTP response of each sample', async () => {
      const url = await listen();

      const { lines } = await collectFromUrl(url, 2);

      for (const line of lines) {
        expect(line).toMatchObject({ url, status: 200, ok: true, body: '{"value":42}', bytes: 12, truncated: false });
      }
    });

    it('logs a failed request and records the error instead of stopping', async () => {
      const url = await listen();
      await new Promise((resolve) => server?.close(resolve));
      server = undefined;

      const { lines, logs } = await collectFromUrl(url, 2);

      for (const line of lines) {
        expect(line).toMatchObject({ url });
        expect(z.object({ error: z.string().min(1) }).safeParse(line).success).toBe(true);
      }
      expect(logs.find((line) => line.level === 'warn')?.fields).toMatchObject({ url });
    });
  });
});

describe('the example pipeline of jobs/instances.json, as npm start runs it', () => {
  /**
   * `npm start` must show finished runs within 10 s. The runner and the collector's task process
   * take one to two seconds to start (tsx compiles the jobs); what the configuration decides is
   * the rest: the collector's short first file, then the processor's and the summary's next plans.
   */
  const BUDGET_AFTER_COLLECTOR_START_MS = 8_000;

  it('processes the collector’s first file and reports on it within seconds of the collector’s start, then goes on collecting', async () => {
    // Prepare
    const home = join(root, 'home');
    const args = ['--home', home, '--jobs', join(REPO_ROOT, 'jobs', 'index.ts'), '--instances', join(REPO_ROOT, 'jobs', 'instances.json'), 'run', '--quiet'];
    const child = spawn(process.execPath, [UJR_BIN, ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    let store: SqliteStore | undefined;
    try {
      // Act
      const runs = await pollFor(
        async () => {
          store ??= await pollFor(() => openStore(join(home, 'ujr.db')), 20_000, 'the runner to create its store', 100);
          const all = await store.listRuns({ limit: 1_000 });
          return all.some((run) => run.task === 'report' && run.status === 'succeeded') ? all : undefined;
        },
        30_000,
        'a succeeded report run',
        200,
      );

      // Assess
      const collect = runs.find((run) => run.task === 'collect');
      const endOf = (task: string) => Math.min(...runs.filter((run) => run.task === task && run.status === 'succeeded').map((run) => run.endedAt ?? Infinity));
      const startedAt = collect?.startedAt ?? Infinity;
      expect(collect?.status, stderr).toBe('running');
      expect(endOf('process') - startedAt).toBeLessThan(BUDGET_AFTER_COLLECTOR_START_MS);
      expect(endOf('report') - startedAt).toBeLessThan(BUDGET_AFTER_COLLECTOR_START_MS);
      expect(runs.filter((run) => run.status === 'failed')).toEqual([]);
    } finally {
      child.kill('SIGTERM');
      expect(await exited, stderr).toBe(0);
      await store?.close();
    }
  }, 60_000);
});

/** The SQLite store at `file`, or undefined while the runner has not created it yet. */
function openStore(file: string): SqliteStore | undefined {
  try {
    return SqliteStore.open(file);
  } catch {
    return undefined;
  }
}
