/**
 * Shutdown: what stop() does to running, queued and triggered work, and that the next runner on
 * the same store finds it again (MemoryStore, inline tasks).
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../core/adapters/memory/store.js';
import { defineJob } from '../../../core/define.js';
import { ShutdownError } from '../../../core/errors.js';
import { aborted, Executions, instance, noParams, until, useHarnesses, waitForRun, withStatus } from '../../helpers/runner.js';

const { harness } = useHarnesses();

/**
 * A job returning its three tasks until each succeeded once; while `hold` is set, tasks wait for
 * their abort signal.
 */
function resumableJob(executions: Executions, mode: { hold: boolean }, count = 3) {
  return defineJob({
    name: 'resumable',
    params: noParams,
    async getRunnableTasks(ctx) {
      const specs = [];
      for (let n = 0; n < count; n += 1) {
        if (!(await ctx.history.lastSuccess({ task: 'work', input: { n } }))) specs.push({ task: 'work', input: { n } });
      }
      return specs;
    },
    tasks: {
      work: {
        run: (input: { n: number }, tctx) =>
          executions.around(String(input.n), async () => {
            if (mode.hold) await aborted(tctx.signal);
            return input.n;
          }),
      },
    },
  });
}

describe('shutdown', () => {
  it('aborts running tasks with a ShutdownError, records them interrupted, releases every lease, and the next runner completes them', async () => {
    const store = new MemoryStore();
    const executions = new Executions();
    const mode = { hold: true };
    const interruptedBy: (string | undefined)[] = [];
    const job = resumableJob(executions, mode);
    const first = harness({ jobs: [job], instances: [instance('resume-1', 'resumable')], shared: store, graceMs: 1_000 });
    first.runner.on('run', (run) => {
      if (run.status === 'interrupted') interruptedBy.push(run.error?.name);
    });
    await first.runner.start();
    await until(() => executions.running === 3, 2_000, 'three running tasks');

    await first.runner.stop();

    expect(interruptedBy).toEqual(['ShutdownError', 'ShutdownError', 'ShutdownError']);
    expect(executions.running).toBe(0);
    const interrupted = await store.listRuns({ instanceId: 'resume-1' });
    expect(interrupted.map((r) => r.status)).toEqual(['interrupted', 'interrupted', 'interrupted']);
    expect(interrupted.every((r) => r.error?.name === 'ShutdownError')).toBe(true);
    expect(await store.listActiveLeases(Date.now())).toEqual([]);

    mode.hold = false;
    const next = harness({ jobs: [job], instances: [instance('resume-1', 'resumable')], shared: store });
    const stats = await next.runner.runOnce();

    expect(stats.succeeded).toBe(3);
    expect(withStatus(next.runs, 'succeeded').map((r) => r.result).sort()).toEqual([0, 1, 2]);
  });

  it('fires the running task’s signal with a ShutdownError', async () => {
    let reason: unknown;
    const job = defineJob({
      name: 'listening',
      params: noParams,
      getRunnableTasks: () => [{ task: 'work' }],
      tasks: {
        work: {
          run: async (_input, tctx) => {
            try {
              await aborted(tctx.signal);
            } finally {
              reason = tctx.signal.reason;
            }
          },
        },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('listening-1', 'listening')] });
    const running = waitForRun(h.runner, (r) => r.status === 'running');
    await h.runner.start();
    await running;
    const interrupted = waitForRun(h.runner, (r) => r.status === 'interrupted');

    await h.runner.stop();

    expect(reason).toBeInstanceOf(ShutdownError);
    expect((await interrupted).error?.message).toContain('shutting down');
  });

  it('records a task still queued at stop as interrupted, and the next runner runs it', async () => {
    const store = new MemoryStore();
    const executions = new Executions();
    const mode = { hold: true };
    const job = resumableJob(executions, mode, 2);
    const first = harness({ jobs: [job], instances: [instance('queued-1', 'resumable')], shared: store, concurrency: 1 });
    await first.runner.start();
    await until(() => executions.running === 1 && first.runner.stats().queued === 1, 2_000, 'one running, one queued');
    const queuedKey = ['0', '1'].find((key) => executions.count(key) === 0);

    await first.runner.stop();

    const records = await store.listRuns({ instanceId: 'queued-1' });
    expect(records.map((r) => r.status)).toEqual(['interrupted', 'interrupted']);
    const neverStarted = records.find((r) => r.startedAt === undefined);
    expect(neverStarted?.input).toEqual({ n: Number(queuedKey) });
    expect(neverStarted?.error?.name).toBe('ShutdownError');
    expect(await store.listActiveLeases(Date.now())).toEqual([]);

    mode.hold = false;
    const next = harness({ jobs: [job], instances: [instance('queued-1', 'resumable')], shared: store });
    await next.runner.runOnce();

    expect(withStatus(next.runs, 'succeeded').map((r) => r.result).sort()).toEqual([0, 1]);
    expect(executions.count(queuedKey ?? '')).toBe(1);
  });

  it('puts a manual trigger interrupted by stop back as a trigger', async () => {
    const store = new MemoryStore();
    const job = defineJob({
      name: 'manual',
      params: noParams,
      getRunnableTasks: () => [],
      tasks: { rebuild: { run: (_input: { day: string }, tctx) => aborted(tctx.signal) } },
    });
    const h = harness({ jobs: [job], instances: [instance('manual-1', 'manual')], shared: store });
    await h.runner.start();
    const running = waitForRun(h.runner, (r) => r.status === 'running');
    const original = await h.runner.trigger('manual-1', 'rebuild', { day: '2026-03-01' });
    const run = await running;
    expect(run.origin).toBe('manual');

    await h.runner.stop();

    expect((await store.getRun(run.id))?.status).toBe('interrupted');
    const triggers = await store.takeTriggers(10);
    expect(triggers).toHaveLength(1);
    expect(triggers[0]).toMatchObject({ instanceId: 'manual-1', task: 'rebuild', input: { day: '2026-03-01' } });
    expect(triggers[0]?.id).not.toBe(original.id);
  });
});
