/**
 * ujr/testing's createTestRunner(): the real engine in memory on a virtual clock. Nothing here
 * waits for real time to pass: schedules, backoffs and timeouts happen when the test advances the
 * clock (a real wait of a minute would time the test out).
 */
import { defineJob, InvalidInstancesError, UnknownInstanceError, z, type TaskSpec } from 'ujr';
import { createTestRunner, type TestRunner } from 'ujr/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidTaskSpecError } from '../../../core/errors.js';

const START = Date.UTC(2026, 0, 1);
const MINUTE = 60_000;

const open: TestRunner[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

async function testRunner(options: Parameters<typeof createTestRunner>[0]): Promise<TestRunner> {
  const made = await createTestRunner({ now: START, ...options });
  open.push(made);
  return made;
}

/** Each plan returns one new task, stamped with the plan's time. */
const stamper = defineJob({
  name: 'stamper',
  params: z.object({}),
  getRunnableTasks: async (ctx) =>
    (await ctx.history.lastRun({ task: 'stamp', input: { at: ctx.now() } })) ? [] : [{ task: 'stamp', input: { at: ctx.now() } }],
  tasks: {
    stamp: {
      async run(input: { at: number }, tctx) {
        tctx.log.info(`stamped ${input.at}`);
        await tctx.objects.put(`stamps/${input.at}`, String(input.at));
        return { at: input.at };
      },
    },
  },
});

describe('createTestRunner()', () => {
  it('plans every instance at start and runs until idle; advancing one schedule period plans again, not before', async () => {
    const t = await testRunner({ jobs: [stamper], instances: [{ id: 'stamps', job: 'stamper', schedule: '5m' }] });

    const first = await t.runUntilIdle();
    await t.clock.advance(5 * MINUTE - 1);
    const before = await t.runs();
    await t.clock.advance(1);
    const after = await t.runs();

    expect(first.succeeded).toBe(1);
    expect(before.map((r) => [r.status, r.input])).toEqual([['succeeded', { at: START }]]);
    expect(after.map((r) => [r.status, r.input, r.queuedAt])).toEqual([
      ['succeeded', { at: START }, START],
      ['succeeded', { at: START + 5 * MINUTE }, START + 5 * MINUTE],
    ]);
    expect(t.clock.now()).toBe(START + 5 * MINUTE);
    expect(await t.objects.stat(`stamps/${START + 5 * MINUTE}`)).toMatchObject({ modifiedAt: START + 5 * MINUTE });
  });

  it('elapses a failed task\'s retry backoff when the clock is advanced by it, not in real time', async () => {
    let calls = 0;
    const flaky = defineJob({
      name: 'flaky',
      params: z.object({}),
      getRunnableTasks: async (ctx) => ((await ctx.history.lastRun({ task: 'fetch' })) ? [] : [{ task: 'fetch' }]),
      tasks: {
        fetch: {
          retry: { attempts: 3, backoffMs: 10 * MINUTE, maxBackoffMs: 60 * MINUTE },
          run() {
            calls += 1;
            if (calls === 1) throw new Error('the source timed out');
            return { calls };
          },
        },
      },
    });
    const t = await testRunner({ jobs: [flaky], instances: [{ id: 'f', job: 'flaky', schedule: '1d' }] });

    await t.runUntilIdle();
    const waiting = await t.runs();
    await t.clock.advance(10 * MINUTE - 1);
    const stillWaiting = await t.runs();
    await t.clock.advance(1);
    const retried = await t.runs();

    expect(waiting.map((r) => [r.attempt, r.status])).toEqual([
      [1, 'failed'],
      [2, 'retrying'],
    ]);
    expect(waiting[0]?.nextRunId).toBe(waiting[1]?.id);
    expect(stillWaiting.map((r) => r.status)).toEqual(['failed', 'retrying']);
    expect(retried.map((r) => [r.attempt, r.status, r.origin, r.startedAt])).toEqual([
      [1, 'failed', 'schedule', START],
      [2, 'succeeded', 'retry', START + 10 * MINUTE],
    ]);
    expect(calls).toBe(2);
  });

  it('runs a pipeline through its follow-up plans within one runUntilIdle', async () => {
    const steps = ['fetch', 'parse', 'report'];
    const pipeline = defineJob({
      name: 'pipeline',
      params: z.object({}),
      async getRunnableTasks(ctx) {
        for (const step of steps) if (!(await ctx.history.lastSuccess({ task: step }))) return [{ task: step }];
        return [];
      },
      tasks: Object.fromEntries(steps.map((step) => [step, { run: () => ({ step }) }])),
    });
    const t = await testRunner({ jobs: [pipeline], instances: [{ id: 'p', job: 'pipeline' }] });

    const stats = await t.runUntilIdle();

    expect((await t.runs()).map((r) => [r.task, r.status, r.origin])).toEqual([
      ['fetch', 'succeeded', 'schedule'],
      ['parse', 'succeeded', 'followup'],
      ['report', 'succeeded', 'followup'],
    ]);
    expect(stats).toMatchObject({ succeeded: 3, failed: 0, queued: 0, running: 0 });
  });

  it('fires a task\'s timeout when the clock passes it, while the handler waits for its signal', async () => {
    const stuck = defineJob({
      name: 'stuck',
      params: z.object({}),
      getRunnableTasks: async (ctx) => ((await ctx.history.lastRun({ task: 'hang' })) ? [] : [{ task: 'hang' }]),
      tasks: {
        hang: {
          timeoutMs: 30_000,
          retry: { attempts: 1 },
          run: (_input: unknown, tctx) =>
            new Promise((_, reject) => tctx.signal.addEventListener('abort', () => reject(tctx.signal.reason as Error), { once: true })),
        },
      },
    });
    const t = await testRunner({ jobs: [stuck], instances: [{ id: 's', job: 'stuck', schedule: '1d' }] });

    await t.clock.advance(0);
    const running = await t.runs();
    await t.clock.advance(30_000);
    const ended = await t.runs();

    expect(running.map((r) => r.status)).toEqual(['running']);
    expect(ended.map((r) => [r.status, r.error?.name, r.endedAt])).toEqual([['failed', 'TaskTimeoutError', START + 30_000]]);
  });

  it('triggers a task with an input and reports the runs it created; validates the request first', async () => {
    const t = await testRunner({ jobs: [stamper], instances: [{ id: 'stamps', job: 'stamper', schedule: '1d' }] });
    await t.runUntilIdle();

    const result = await t.trigger('stamps', 'stamp', { at: 42 });
    await t.runUntilIdle();
    const [manual] = await t.runs({ task: 'stamp', status: 'succeeded', instanceId: 'stamps' }).then((runs) => runs.filter((r) => r.origin === 'manual'));

    expect(result.runIds).toEqual([manual?.id]);
    expect(manual).toMatchObject({ input: { at: 42 }, result: { at: 42 }, triggerId: result.id });
    expect((await t.logs(manual?.id ?? '')).map((l) => l.message)).toEqual(['stamped 42']);
    await expect(t.trigger('nobody')).rejects.toThrow(UnknownInstanceError);
    await expect(t.trigger('stamps', 'erase')).rejects.toThrow(InvalidTaskSpecError);
  });

  it('says why a triggered plan created no run', async () => {
    const t = await testRunner({ jobs: [stamper], instances: [{ id: 'stamps', job: 'stamper', schedule: '1d' }] });
    await t.runUntilIdle();

    const result = await t.trigger('stamps');

    expect(result).toMatchObject({ runIds: [], note: 'the plan returned no task' });
  });

  it('runs a continuous task in this process without waiting for it, and records it interrupted at close', async () => {
    const watcher = defineJob({
      name: 'watcher',
      params: z.object({}),
      getRunnableTasks: (): TaskSpec[] => [{ task: 'watch' }],
      tasks: {
        watch: {
          kind: 'continuous',
          run: (_input: unknown, tctx) =>
            new Promise((resolve) => {
              tctx.log.info(`watching in ${process.pid}`);
              tctx.signal.addEventListener('abort', () => resolve({ stopped: true }), { once: true });
            }),
        },
      },
    });
    const t = await createTestRunner({ now: START, jobs: [watcher], instances: [{ id: 'w', job: 'watcher' }] });

    const stats = await t.runUntilIdle();
    const [running] = await t.runs();
    await t.close();

    expect(stats.continuous).toBe(1);
    expect(running?.status).toBe('running');
    expect((await t.logs(running?.id ?? '')).map((l) => l.message)).toEqual([`watching in ${process.pid}`]);
    await expect(t.runs()).resolves.toEqual([expect.objectContaining({ status: 'interrupted', result: { stopped: true } })]);
  });

  it('refuses invalid instance entries, naming the instance and the field', async () => {
    const made = createTestRunner({ jobs: [stamper], instances: [{ id: 'stamps', job: 'stamper', schedule: 'sometimes' }] });

    await expect(made).rejects.toThrow(InvalidInstancesError);
    await expect(made).rejects.toThrow(/instance "stamps": schedule: "sometimes" is neither a rate/);
  });

  it('refuses to move the clock backwards', async () => {
    const t = await testRunner({ jobs: [stamper], instances: [] });

    await expect(t.clock.advance(-1)).rejects.toThrow(RangeError);
  });
});

describe('createTestRunner() on a clock standing still', () => {
  it('runs a triggered plan\'s task that ended in the same millisecond once the clock moves on, saying so meanwhile', async () => {
    const again = defineJob({ name: 'again', params: z.object({}), getRunnableTasks: () => [{ task: 'go' }], tasks: { go: { run: () => 1 } } });
    const t = await testRunner({ jobs: [again], instances: [{ id: 'a', job: 'again', schedule: '1d' }] });
    await t.runUntilIdle();

    const result = await t.trigger('a');
    await t.clock.advance(2);

    expect(result.runIds).toEqual([]);
    expect(result.note).toContain('advance the clock');
    expect((await t.runs()).map((r) => [r.origin, r.status, r.queuedAt])).toEqual([
      ['schedule', 'succeeded', START],
      ['manual', 'succeeded', START + 2],
    ]);
  });
});
