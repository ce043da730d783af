/**
 * Timeouts and results: the abort signal, the grace period of handlers that ignore it, and what a
 * result may be (MemoryStore, inline tasks).
 */
import { describe, expect, it } from 'vitest';
import { defineJob } from '../../../core/define.js';
import { TaskTimeoutError } from '../../../core/errors.js';
import type { TaskDefinition } from '../../../core/types.js';
import { aborted, Executions, instance, noParams, until, useHarnesses, waitForPlan, waitForRun } from '../../helpers/runner.js';

const { harness, gate } = useHarnesses();

function jobWith(name: string, task: TaskDefinition) {
  return defineJob({
    name,
    params: noParams,
    getRunnableTasks: () => [{ task: 'work', input: { job: name } }],
    tasks: { work: task },
  });
}

describe('timeouts', () => {
  it('fires the AbortSignal with a TaskTimeoutError when a task exceeds timeoutMs, and fails the run with it', async () => {
    const reasons: unknown[] = [];
    const job = jobWith('slow', {
      timeoutMs: 50,
      retry: { attempts: 1 },
      run: async (_input, tctx) => {
        try {
          return await aborted(tctx.signal);
        } finally {
          reasons.push(tctx.signal.reason);
        }
      },
    });
    const h = harness({ jobs: [job], instances: [instance('slow-1', 'slow')], graceMs: 1_000 });

    await h.runner.runOnce();

    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(TaskTimeoutError);
    const [record] = await h.store.listRuns({ instanceId: 'slow-1' });
    expect(record?.status).toBe('failed');
    expect(record?.error?.name).toBe('TaskTimeoutError');
    expect(record?.error?.message).toContain('timed out after 50 ms');
    expect((record?.endedAt ?? 0) - (record?.startedAt ?? 0)).toBeGreaterThanOrEqual(49);
  });

  it('abandons a handler that ignores its signal after graceMs: the run fails, the signature stays leased until the handler returns', async () => {
    const executions = new Executions();
    const hung = gate();
    const job = jobWith('stubborn', {
      timeoutMs: 50,
      retry: { attempts: 1 },
      run: () => executions.around('work', () => hung.opened),
    });
    const h = harness({ jobs: [job], instances: [instance('stubborn-1', 'stubborn')], graceMs: 100, tickMs: 10 });
    const failed = waitForRun(h.runner, (r) => r.status === 'failed');
    await h.runner.start();
    const run = await failed;

    expect(run.error?.name).toBe('TaskTimeoutError');
    expect((run.endedAt ?? 0) - (run.startedAt ?? 0)).toBeGreaterThanOrEqual(149);
    expect(executions.running).toBe(1);
    await until(async () => (await h.store.getRun(run.id))?.status === 'failed', 2_000, 'the failed record');
    expect((await h.store.getLease(run.signature))?.owner).toBe(h.runner.owner);

    // Asked again while the abandoned handler still runs, the runner does not start a second one.
    const planned = waitForPlan(h.runner, 'stubborn-1');
    await h.runner.trigger('stubborn-1');
    await planned;
    expect(executions.started).toHaveLength(1);
    expect((await h.store.getLease(run.signature))?.owner).toBe(h.runner.owner);

    hung.open();
    await until(async () => (await h.store.getLease(run.signature))?.owner === null, 2_000, 'the lease to be released');
    expect(executions.running).toBe(0);
    expect((await h.store.getRun(run.id))?.status).toBe('failed');
  });

  it('fails a run whose result is over maxResultBytes with a ResultTooLargeError', async () => {
    const job = jobWith('big', { retry: { attempts: 3, backoffMs: 5 }, run: () => ({ rows: 'x'.repeat(500) }) });
    const h = harness({ jobs: [job], instances: [instance('big-1', 'big')], maxResultBytes: 256 });

    await h.runner.runOnce();

    const records = await h.store.listRuns({ instanceId: 'big-1' });
    expect(records).toHaveLength(1);
    expect(records[0]?.status).toBe('failed');
    expect(records[0]?.error?.name).toBe('ResultTooLargeError');
    expect(records[0]?.error?.message).toContain('over the 256-byte cap');
    expect(records[0]?.result).toBeUndefined();
  });

  it('stores a result right at maxResultBytes', async () => {
    const rows = 'x'.repeat(256 - JSON.stringify({ rows: '' }).length);
    const job = jobWith('exact', { run: () => ({ rows }) });
    const h = harness({ jobs: [job], instances: [instance('exact-1', 'exact')], maxResultBytes: 256 });

    await h.runner.runOnce();

    const [record] = await h.store.listRuns({ instanceId: 'exact-1' });
    expect(record?.status).toBe('succeeded');
    expect(record?.result).toEqual({ rows });
  });

  it.each([
    ['a Date', () => ({ at: new Date(0) }), 'result.at is a Date'],
    ['NaN', () => ({ ratio: Number.NaN }), 'result.ratio is NaN'],
    ['a function', () => [1, () => 2], 'result[1] is a function'],
  ])('fails a run whose result holds %s, which is not JSON', async (_what, result, message) => {
    const job = jobWith('odd', { retry: { attempts: 3, backoffMs: 5 }, run: result });
    const h = harness({ jobs: [job], instances: [instance('odd-1', 'odd')] });

    await h.runner.runOnce();

    const records = await h.store.listRuns({ instanceId: 'odd-1' });
    expect(records.map((r) => [r.status, r.error?.name])).toEqual([['failed', 'NotJsonError']]);
    expect(records[0]?.error?.message).toContain(message);
  });
});
