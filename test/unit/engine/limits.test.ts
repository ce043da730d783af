/**
 * Limits: global and per-instance concurrency, queued work, and the queue cap (MemoryStore,
 * inline tasks).
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../core/adapters/memory/store.js';
import { defineJob } from '../../../core/define.js';
import { Executions, instance, noParams, until, useHarnesses, waitForRun, withStatus, work } from '../../helpers/runner.js';

const { harness, gate } = useHarnesses();

/** A job handing back `count` tasks on every plan; each takes `ms` and counts under its instance. */
function manyTasks(name: string, count: number, executions: Executions, ms = 5, onStart: () => void = () => undefined) {
  return defineJob({
    name,
    params: noParams,
    getRunnableTasks: () => Array.from({ length: count }, (_, n) => ({ task: 'work', input: { n } })),
    tasks: {
      work: {
        run: (input: { n: number }, tctx) =>
          executions.around(
            `${tctx.instanceId}#${input.n}`,
            () => {
              onStart();
              return work(ms).then(() => input.n);
            },
            tctx.instanceId,
          ),
      },
    },
  });
}

describe('limits', () => {
  it('never runs more batch tasks at once than the global concurrency, and completes them all', async () => {
    const executions = new Executions();
    const job = manyTasks('global', 5, executions);
    const h = harness({ jobs: [job], instances: [instance('g-a', 'global'), instance('g-b', 'global')], concurrency: 2 });

    const stats = await h.runner.runOnce();

    expect(executions.maxRunning).toBe(2);
    expect(executions.started).toHaveLength(10);
    expect(new Set(executions.started).size).toBe(10);
    expect(stats.succeeded).toBe(10);
  });

  it('keeps an instance to its own concurrency while another instance runs in parallel', async () => {
    const executions = new Executions();
    let overlappedAcrossInstances = false;
    const job = manyTasks('per-instance', 4, executions, 10, () => {
      if (executions.runningIn('narrow') > 0 && executions.runningIn('wide') > 0) overlappedAcrossInstances = true;
    });
    const h = harness({
      jobs: [job],
      instances: [instance('narrow', 'per-instance', { concurrency: 1 }), instance('wide', 'per-instance')],
    });

    const stats = await h.runner.runOnce();

    expect(executions.maxIn('narrow')).toBe(1);
    expect(executions.maxIn('wide')).toBeGreaterThan(1);
    expect(overlappedAcrossInstances).toBe(true);
    expect(stats.succeeded).toBe(8);
  });

  it('queues the tasks over the limit (status queued in the store) and runs them all, dropping none', async () => {
    const executions = new Executions();
    const release = gate();
    const job = defineJob({
      name: 'waiting',
      params: noParams,
      getRunnableTasks: () => Array.from({ length: 5 }, (_, n) => ({ task: 'work', input: { n } })),
      tasks: {
        work: { run: (input: { n: number }) => executions.around(String(input.n), () => release.opened.then(() => input.n)) },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('waiting-1', 'waiting')], concurrency: 1 });
    const firstStart = waitForRun(h.runner, (r) => r.status === 'running');
    await h.runner.start();
    await firstStart;

    await until(async () => (await h.store.listRuns({ instanceId: 'waiting-1', status: 'queued' })).length === 4, 2_000, '4 queued runs');
    expect(executions.started).toHaveLength(1);
    expect(h.runner.stats()).toMatchObject({ queued: 4, running: 1 });

    release.open();
    await until(() => withStatus(h.runs, 'succeeded').length === 5, 5_000, '5 successes');
    await h.runner.whenIdle();

    expect(executions.started.slice().sort()).toEqual(['0', '1', '2', '3', '4']);
    expect(executions.maxRunning).toBe(1);
    const stored = await h.store.listRuns({ instanceId: 'waiting-1' });
    expect(stored.map((r) => r.status)).toEqual(Array(5).fill('succeeded'));
  });

  it('asks the instance again as queued tasks start, filling free slots beyond maxQueued before any task ends', async () => {
    const executions = new Executions();
    const release = gate();
    const job = defineJob({
      name: 'refill',
      params: noParams,
      getRunnableTasks: () => Array.from({ length: 10 }, (_, n) => ({ task: 'work', input: { n } })),
      tasks: { work: { run: (input: { n: number }) => executions.around(String(input.n), () => release.opened.then(() => input.n)) } },
    });
    const h = harness({ jobs: [job], instances: [instance('refill-1', 'refill')], concurrency: 10, maxQueued: 2 });
    await h.runner.start();

    await until(() => executions.running === 10, 2_000, 'ten tasks running at once');
    expect(executions.ended).toEqual([]);

    release.open();
    await until(() => withStatus(h.runs, 'succeeded').length === 10, 2_000, 'ten successes');
    expect(new Set(executions.started).size).toBe(10);
    expect(executions.started).toHaveLength(10);
  });

  it('asks the instance again as room frees when it returned more tasks than maxQueued, running each once', async () => {
    const executions = new Executions();
    const job = manyTasks('backlog', 20, executions, 2);
    let plans = 0;
    let mostQueued = 0;
    const h = harness({ jobs: [job], instances: [instance('backlog-1', 'backlog')], concurrency: 2, maxQueued: 3 });
    h.runner.on('planned', () => (plans += 1));
    h.runner.on('run', () => (mostQueued = Math.max(mostQueued, h.runner.stats().queued)));

    const stats = await h.runner.runOnce();

    expect(executions.started.slice().sort()).toEqual(Array.from({ length: 20 }, (_, n) => `backlog-1#${n}`).sort());
    expect(executions.overlaps).toEqual([]);
    expect(stats.succeeded).toBe(20);
    expect(mostQueued).toBeLessThanOrEqual(3);
    expect(plans).toBeGreaterThan(1);
    expect(executions.maxRunning).toBe(2);
  });

  it('does not re-plan a backlogged instance over and over when another runner holds the tasks it could take', async () => {
    const store = new MemoryStore();
    const release = gate();
    const sixTasks = (onPlan: () => boolean) =>
      defineJob({
        name: 'crowded',
        params: noParams,
        getRunnableTasks: () => (onPlan() ? Array.from({ length: 6 }, (_, n) => ({ task: 'work', input: { n } })) : []),
        tasks: { work: { run: () => release.opened } },
      });
    // Runner A leases all six (one runs, five wait for the instance's slot).
    const a = harness({ jobs: [sixTasks(() => true)], instances: [instance('crowded-1', 'crowded', { concurrency: 1 })], shared: store });
    await a.runner.start();
    await until(async () => (await store.listActiveLeases(Date.now())).length === 6, 2_000, 'six leases held by A');

    // Runner B has room for four: it is refused all four and holds nothing. Asking again at once
    // would get the same answer; the job stops returning tasks after 50 plans, to end a loop.
    let plansB = 0;
    const b = harness({
      jobs: [sixTasks(() => ++plansB <= 50)],
      instances: [instance('crowded-1', 'crowded', { concurrency: 1 })],
      shared: store,
      maxQueued: 4,
    });
    await b.runner.start();
    await b.runner.whenIdle();

    expect(b.runner.stats().deduplicated).toBe(4);
    expect(plansB).toBe(1);
  });
});

