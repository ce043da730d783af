/**
 * Live configuration: `runner.setInstances` on a running runner (MemoryStore, inline tasks).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../../../core/define.js';
import type { PlanContext } from '../../../core/types.js';
import { Executions, instance, noParams, until, useHarnesses, waitForPlan, waitForRun, withStatus } from '../../helpers/runner.js';

const { harness, gate } = useHarnesses();

interface Plan {
  instanceId: string;
  reason: PlanContext<unknown>['reason'];
  params: unknown;
}

describe('live configuration', () => {
  it('plans an instance added while running at once, without waiting for a tick', async () => {
    const plans: Plan[] = [];
    const job = defineJob({
      name: 'listed',
      params: noParams,
      getRunnableTasks(ctx) {
        plans.push({ instanceId: ctx.instanceId, reason: ctx.reason, params: ctx.params });
        return [{ task: 'work' }];
      },
      tasks: { work: { run: (_input, tctx) => tctx.instanceId } },
    });
    // Ticks are an hour apart: only setInstances itself can plan the new instance in time.
    const h = harness({ jobs: [job], instances: [instance('first', 'listed')], tickMs: 3_600_000 });
    const firstDone = waitForRun(h.runner, (r) => r.instanceId === 'first' && r.status === 'succeeded');
    await h.runner.start();
    await firstDone;
    await h.runner.whenIdle();

    const addedDone = waitForRun(h.runner, (r) => r.instanceId === 'added' && r.status === 'succeeded', 2_000);
    h.runner.setInstances([instance('first', 'listed'), instance('added', 'listed')]);
    await addedDone;

    expect(plans.filter((p) => p.instanceId === 'added')[0]?.reason).toBe('schedule');
    expect(plans.filter((p) => p.instanceId === 'first' && p.reason === 'schedule')).toHaveLength(1);
    expect(h.runner.listInstances().map((i) => i.config.id)).toEqual(['first', 'added']);
  });

  it('cancels the queued tasks of an instance disabled while running, lets its running task finish, and plans it no more', async () => {
    let clock = Date.now();
    const executions = new Executions();
    const planned: string[] = [];
    const release = gate();
    const job = defineJob({
      name: 'switchable',
      params: z.object({ tasks: z.number() }),
      getRunnableTasks(ctx) {
        planned.push(ctx.instanceId);
        return Array.from({ length: ctx.params.tasks }, (_, n) => ({ task: 'work', input: { n } }));
      },
      tasks: { work: { run: (input: { n: number }) => executions.around(String(input.n), () => release.opened.then(() => input.n)) } },
    });
    const switched = instance('switched', 'switchable', { params: { tasks: 3 }, concurrency: 1 });
    // The witness shares the schedule: when its next tick comes, the disabled instance's would have.
    const witness = instance('witness', 'switchable', { params: { tasks: 0 } });
    const h = harness({ jobs: [job], instances: [switched, witness], tickMs: 10, now: () => clock });
    await h.runner.start();
    await until(() => executions.running === 1 && h.runner.stats().queued === 2, 2_000, 'one running, two queued');

    h.runner.setInstances([{ ...switched, enabled: false }, witness]);
    const plansWhenDisabled = planned.filter((id) => id === 'switched').length;

    const cancelled = withStatus(h.runs, 'cancelled');
    expect(cancelled).toHaveLength(2);
    expect(cancelled.every((r) => r.error?.name === 'CancelledError' && r.error.message.includes('"switched" was disabled'))).toBe(true);
    expect(h.runner.stats()).toMatchObject({ queued: 0, running: 1 });
    await until(
      async () => (await h.store.listRuns({ instanceId: 'switched', status: 'cancelled' })).length === 2,
      2_000,
      'two cancelled records',
    );

    release.open();
    await waitForRun(h.runner, (r) => r.instanceId === 'switched' && r.status === 'succeeded');
    await h.runner.whenIdle();

    clock += 2 * 3_600_000;
    await waitForPlan(h.runner, 'witness');
    await h.runner.whenIdle();

    expect(planned.filter((id) => id === 'witness')).toHaveLength(2);
    expect(planned.filter((id) => id === 'switched')).toHaveLength(plansWhenDisabled);
    expect(executions.started).toHaveLength(1);
    expect(withStatus(h.runs, 'succeeded')).toHaveLength(1);
  });

  it('hands changed params to the next plan and its tasks', async () => {
    const plans: Plan[] = [];
    const seenByTasks: unknown[] = [];
    const job = defineJob({
      name: 'tunable',
      params: z.object({ query: z.string() }),
      getRunnableTasks(ctx) {
        plans.push({ instanceId: ctx.instanceId, reason: ctx.reason, params: ctx.params });
        return [{ task: 'search', input: { query: ctx.params.query } }];
      },
      tasks: {
        search: {
          run: (input: { query: string }, tctx) => {
            seenByTasks.push(tctx.params);
            return input.query;
          },
        },
      },
    });
    const before = instance('tuned', 'tunable', { params: { query: 'cats' } });
    const h = harness({ jobs: [job], instances: [before], tickMs: 3_600_000 });
    const firstDone = waitForRun(h.runner, (r) => r.status === 'succeeded');
    await h.runner.start();
    await firstDone;
    await h.runner.whenIdle();

    const secondDone = waitForRun(h.runner, (r) => r.status === 'succeeded' && r.result === 'dogs', 2_000);
    h.runner.setInstances([{ ...before, params: { query: 'dogs' } }]);
    await secondDone;

    expect(plans.map((p) => p.params)).toContainEqual({ query: 'dogs' });
    expect(plans.at(-1)?.params).toEqual({ query: 'dogs' });
    expect(seenByTasks).toEqual([{ query: 'cats' }, { query: 'dogs' }]);
  });
});
