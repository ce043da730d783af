/**
 * The example jobs tested as a user tests theirs, with `ujr/testing`: a job's plan over a given
 * history, one task's handler over given objects, and a pipeline of jobs on the test runner's
 * virtual clock. No processes, no files, no waiting.
 */
import { readFileSync } from 'node:fs';
import { createTestRunner, plan, runTask, type InstanceEntry } from 'ujr/testing';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { periodKey } from '../../jobs/collector.js';
import { fileStatsSchema, processedKey, processor, processSignature } from '../../jobs/processor.js';
import { reportKeys, summary } from '../../jobs/summary.js';

const START = Date.UTC(2026, 0, 1);
const fileA = periodKey('metrics', START - 120_000);
const fileB = periodKey('metrics', START - 60_000);
const samples = (...loads: number[]) => loads.map((load, i) => JSON.stringify({ at: START + i, load1: load })).join('\n') + '\n';

describe('processor', () => {
  it('plans each finished file once: not one already processed (or skipped as empty), nor an open .part', async () => {
    const { tasks } = await plan(processor, {
      params: { source: 'metrics' },
      objects: { [fileA]: samples(1), [fileB]: samples(2), [`${fileB}.part`]: samples(3), [periodKey('metrics', START)]: '' },
      history: [
        { task: 'process', signature: processSignature(fileA) },
        { task: 'process', signature: processSignature(periodKey('metrics', START)), status: 'skipped' },
      ],
    });

    expect(tasks).toEqual([expect.objectContaining({ task: 'process', input: { file: fileB }, signature: processSignature(fileB) })]);
  });

  it('processes a file into statistics, skipping malformed lines with a warning', async () => {
    const run = await runTask(processor, 'process', { file: fileA }, {
      params: { source: 'metrics' },
      objects: { [fileA]: `${samples(0.5, 1.5)}not json\n` },
    });

    expect(run.status).toBe('succeeded');
    expect(run.result).toEqual({ file: fileA, output: processedKey('metrics', fileA), count: 2, malformed: 1 });
    expect(run.logs.map((l) => l.level)).toEqual(['warn']);
    const stats = fileStatsSchema.parse(JSON.parse((await run.objects.getText(processedKey('metrics', fileA))) ?? ''));
    expect(stats.fields.load1).toEqual({ count: 2, min: 0.5, mean: 1, max: 1.5 });
  });

  it('skips an empty file, and refuses for good a key that is not a collected file', async () => {
    const empty = await runTask(processor, 'process', { file: fileA }, { params: { source: 'metrics' }, objects: { [fileA]: '' } });
    const foreign = await runTask(processor, 'process', { file: 'etc/passwd' }, { params: { source: 'metrics' } });

    expect(empty.status).toBe('skipped');
    expect(foreign).toMatchObject({ status: 'failed', retryable: false, error: { name: 'NonRetryableError' } });
  });
});

describe('processor and summary together, on the test runner', () => {
  it('processes the files at start, then a file written later at the next tick, and rebuilds the report after it', async () => {
    const t = await createTestRunner({
      jobs: [processor, summary],
      instances: [
        { id: 'metrics-processor', job: 'processor', params: { source: 'metrics' }, schedule: '10s' },
        { id: 'metrics-summary', job: 'summary', params: { source: 'metrics' }, schedule: '30s' },
      ],
      objects: { [fileA]: samples(1, 2) },
      now: START,
    });
    try {
      await t.runUntilIdle();
      await t.clock.advance(30_000); // the summary's next tick sees what the processor wrote
      const first = JSON.parse((await t.objects.getText(reportKeys('metrics').json)) ?? '{}') as { samples: number };

      await t.objects.put(fileB, samples(3, 4, 5));
      await t.clock.advance(30_000);
      const second = JSON.parse((await t.objects.getText(reportKeys('metrics').json)) ?? '{}') as { samples: number; files: number };
      const runs = await t.runs();

      expect(first.samples).toBe(2);
      expect(second).toMatchObject({ files: 2, samples: 5 });
      expect(runs.filter((r) => r.task === 'process').map((r) => [r.input, r.status])).toEqual([
        [{ file: fileA }, 'succeeded'],
        [{ file: fileB }, 'succeeded'],
      ]);
      expect(runs.filter((r) => r.task === 'report').map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    } finally {
      await t.close();
    }
  });
});

describe('the example configuration (jobs/instances.json)', () => {
  const file = z
    .object({ instances: z.array(z.looseObject({ id: z.string(), job: z.string() })) })
    .parse(JSON.parse(readFileSync(new URL('../../jobs/instances.json', import.meta.url), 'utf8')));
  const entry = (id: string): InstanceEntry => {
    const found = file.instances.find((instance) => instance.id === id);
    if (!found) throw new Error(`jobs/instances.json has no instance "${id}"`);
    return found;
  };

  it('has the collector finish its first file within 3 s, and the processor and summary act on it within 2 s more', async () => {
    // Prepare: the pipeline as configured, started before the collector's first file exists.
    const collectorParams = z.object({ firstRolloverMs: z.number() }).parse(entry('metrics').params);
    const t = await createTestRunner({
      jobs: [processor, summary],
      instances: [entry('metrics-processor'), entry('metrics-summary')],
      now: START,
    });
    try {
      await t.runUntilIdle();

      // Act: the first file appears once the collector's short first period is over.
      await t.clock.advance(collectorParams.firstRolloverMs);
      await t.objects.put(periodKey('metrics', START), samples(1, 2, 3));
      await t.clock.advance(2_000);

      // Assess
      const runs = await t.runs();
      expect(collectorParams.firstRolloverMs).toBeLessThanOrEqual(3_000);
      expect(runs.filter((r) => r.status === 'succeeded').map((r) => r.task).sort()).toEqual(['process', 'report']);
      expect(JSON.parse((await t.objects.getText(reportKeys('metrics').json)) ?? '{}')).toMatchObject({ files: 1, samples: 3 });
    } finally {
      await t.close();
    }
  });
});
