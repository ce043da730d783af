/**
 * Tests of the period-report job type with ujr/testing: what its plan returns for a run history,
 * what its task writes, and the whole job on the real engine in memory, on a clock the test moves.
 * No process, store or waiting is involved; `npm test` runs them.
 */
import { createTestRunner, plan, runTask } from 'ujr/testing';
import { describe, expect, it } from 'vitest';
import { measure, periodReport } from './period-report.js';

const params = { periodSeconds: 3600, lookback: 3 };
const now = Date.parse('2026-03-01T12:30:00Z');

describe('period-report', () => {
  it('plans a report for each of the last three ended hours', async () => {
    const { tasks } = await plan(periodReport, { params, now });

    expect(tasks.map(({ task, input }) => ({ task, input }))).toEqual([
      { task: 'report', input: { start: '2026-03-01T09:00:00.000Z' } },
      { task: 'report', input: { start: '2026-03-01T10:00:00.000Z' } },
      { task: 'report', input: { start: '2026-03-01T11:00:00.000Z' } },
    ]);
  });

  it('plans again an hour whose report failed, not one whose report succeeded', async () => {
    const history = [
      { task: 'report', input: { start: '2026-03-01T10:00:00.000Z' } },
      { task: 'report', input: { start: '2026-03-01T11:00:00.000Z' }, status: 'failed' as const },
    ];

    const { tasks } = await plan(periodReport, { params, history, now });

    expect(tasks.map((task) => task.input)).toEqual([{ start: '2026-03-01T09:00:00.000Z' }, { start: '2026-03-01T11:00:00.000Z' }]);
  });

  it('writes the report of an hour into the object store, with progress and a log line', async () => {
    const start = '2026-03-01T11:00:00.000Z';

    const run = await runTask(periodReport, 'report', { start }, { params, instanceId: 'lab', now });

    expect(run.status).toBe('succeeded');
    const key = 'reports/lab/2026-03-01T11-00-00.000Z.json';
    const samples = [0, 1, 2, 3].map((i) => measure(Date.parse(start) + i * 900_000));
    const mean = samples.reduce((sum, value) => sum + value, 0) / 4;
    expect(run.result).toEqual({ key, mean });
    expect(JSON.parse((await run.objects.getText(key)) ?? 'null')).toEqual({ start, samples, mean });
    expect(run.progress.at(-1)).toMatchObject({ current: 4, total: 4 });
    expect(run.logs).toContainEqual({ level: 'info', message: `report of the period from ${start}: mean ${mean} {"key":"${key}"}` });
  });

  it('reports each hour once as time goes by', async () => {
    const runner = await createTestRunner({ jobs: [periodReport], instances: [{ id: 'lab', job: 'period-report', params }], now });
    try {
      await runner.runUntilIdle();
      await runner.clock.advance(3_600_000); // an hour later: the hour that just ended is due
      await runner.runUntilIdle();

      const runs = await runner.runs();
      expect(runs.map((run) => [run.input, run.status])).toEqual([
        [{ start: '2026-03-01T09:00:00.000Z' }, 'succeeded'],
        [{ start: '2026-03-01T10:00:00.000Z' }, 'succeeded'],
        [{ start: '2026-03-01T11:00:00.000Z' }, 'succeeded'],
        [{ start: '2026-03-01T12:00:00.000Z' }, 'succeeded'],
      ]);
      expect((await runner.objects.list('reports/lab/')).length).toBe(4);
    } finally {
      await runner.close();
    }
  });
});
