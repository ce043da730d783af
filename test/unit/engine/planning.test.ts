/**
 * Planning: what the runner does with what `getRunnableTasks` returns (MemoryStore, inline tasks).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../../../core/define.js';
import { resolveSpecs } from '../../../core/engine/planner.js';
import type { Json, ObjectStore, PlanContext, TaskSpec } from '../../../core/types.js';
import {
  Executions,
  instance,
  noParams,
  useHarnesses,
  waitFor,
  waitForPlan,
  waitForRun,
  withStatus,
  work,
  until,
} from '../../helpers/runner.js';

const { harness, gate } = useHarnesses();

describe('planning', () => {
  it('runs ten distinct tasks to success and reports each exactly once', async () => {
    const job = defineJob({
      name: 'ten',
      params: noParams,
      getRunnableTasks: () => Array.from({ length: 10 }, (_, n) => ({ task: 'work', input: { n } })),
      tasks: { work: { run: (input: { n: number }) => ({ doubled: input.n * 2 }) } },
    });
    const h = harness({ jobs: [job], instances: [instance('ten-1', 'ten')] });

    const stats = await h.runner.runOnce();

    const succeeded = withStatus(h.runs, 'succeeded');
    expect(succeeded).toHaveLength(10);
    expect(new Set(succeeded.map((r) => r.signature)).size).toBe(10);
    expect(succeeded.map((r) => (r.input as { n: number }).n).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(succeeded.every((r) => r.result !== undefined && (r.result as { doubled: number }).doubled === (r.input as { n: number }).n * 2)).toBe(true);
    expect(stats.succeeded).toBe(10);
    const stored = await h.store.listRuns({ instanceId: 'ten-1' });
    expect(stored).toHaveLength(10);
    expect(stored.every((r) => r.status === 'succeeded' && r.attempt === 1)).toBe(true);
  });

  it('never runs a task twice at the same time when the job hands it back on every plan', async () => {
    const executions = new Executions();
    const release = gate();
    let first = true;
    const job = defineJob({
      name: 'same',
      params: noParams,
      getRunnableTasks: () => [{ task: 'slow', input: { key: 'always' } }],
      tasks: {
        slow: {
          run: async () =>
            executions.around('always', async () => {
              if (first) {
                first = false;
                await release.opened;
              }
              await work(3);
            }),
        },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('same-1', 'same')], tickMs: 10 });
    const firstStart = waitForRun(h.runner, (r) => r.status === 'running');
    await h.runner.start();
    await firstStart;

    // Ask the job five more times while its task is held: each plan hands the same task back.
    for (let i = 0; i < 5; i += 1) {
      const planned = waitForPlan(h.runner, 'same-1');
      await h.runner.trigger('same-1');
      expect(await planned).toBe(1);
    }
    expect(executions.started).toHaveLength(1);

    release.open();
    await waitForRun(h.runner, (r) => r.status === 'succeeded');
    // Once it ended (and its follow-up plan passed), a new plan starts it again, once at a time.
    for (let i = 0; i < 3; i += 1) {
      await h.runner.whenIdle();
      const done = waitForRun(h.runner, (r) => r.status === 'succeeded');
      await h.runner.trigger('same-1');
      await done;
    }

    expect(executions.overlaps).toEqual([]);
    expect(executions.started.length).toBeGreaterThanOrEqual(2);
    expect(executions.ended).toHaveLength(executions.started.length);
    expect(withStatus(h.runs, 'running')).toHaveLength(executions.started.length);
  });

  it('asks a job that returns all its outstanding work a bounded number of times, not once per finished task', async () => {
    const total = 400;
    const done = new Set<number>();
    let plans = 0;
    const job = defineJob({
      name: 'backlog',
      params: noParams,
      getRunnableTasks() {
        plans += 1;
        const due: TaskSpec[] = [];
        for (let n = 0; n < total; n += 1) if (!done.has(n)) due.push({ task: 'work', input: { n } });
        return due;
      },
      tasks: {
        work: {
          async run(input: { n: number }) {
            await new Promise((resolve) => setImmediate(resolve));
            done.add(input.n);
          },
        },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('backlog-1', 'backlog')], concurrency: 4 });

    const stats = await h.runner.runOnce();

    expect(stats.succeeded).toBe(total);
    expect(new Set(withStatus(h.runs, 'succeeded').map((r) => (r.input as { n: number }).n)).size).toBe(total);
    // Follow-ups wait while more than one round of slots is queued: a few dozen plans at most
    // (the queue's tail), where asking after every task would make 400.
    expect(plans).toBeLessThan(40);
  });

  it('resolves only as many new batch specs as the runner can take, and every continuous spec', () => {
    const job = defineJob({
      name: 'mixed',
      params: noParams,
      getRunnableTasks: () => [],
      tasks: { work: { run: () => undefined }, watch: { kind: 'continuous', run: () => undefined } },
    });
    const specs = [
      ...Array.from({ length: 6 }, (_, n) => ({ task: 'work', input: { n } })),
      { task: 'watch', input: {} },
      { task: 'work', input: { n: 'bad', extra: 10n } },
    ];
    const held = new Set(resolveSpecs(job, 'm', specs.slice(0, 2)).tasks.map((t) => t.signature));

    const outcome = resolveSpecs(job, 'm', specs, { newBatch: 2, known: (signature) => held.has(signature) });

    // Two held, two new, then the limit: the rest of the batch specs (the bad one included) wait
    // for a later plan; the continuous one is resolved whatever the limit.
    expect(outcome.tasks.map((t) => [t.task, t.input])).toEqual([
      ['work', { n: 0 }],
      ['work', { n: 1 }],
      ['work', { n: 2 }],
      ['work', { n: 3 }],
      ['watch', {}],
    ]);
    expect(outcome.truncated).toBe(3);
    expect(outcome.rejected).toEqual([]);
    expect(resolveSpecs(job, 'm', specs).rejected).toHaveLength(1);
  });

  it('retires an instance whose job calls done() on its first plan, and runOnce resolves', async () => {
    let plans = 0;
    const job = defineJob({
      name: 'finished',
      params: noParams,
      getRunnableTasks(ctx) {
        plans += 1;
        ctx.done('nothing left to collect');
        return [];
      },
      tasks: { work: { run: () => undefined } },
    });
    const h = harness({ jobs: [job], instances: [instance('finished-1', 'finished')] });
    const retired: [string, string | undefined][] = [];
    h.runner.on('retired', (id, reason) => retired.push([id, reason]));

    const stats = await h.runner.runOnce();

    expect(stats.planErrors).toBe(0);
    expect(retired).toEqual([['finished-1', 'nothing left to collect']]);
    const status = await h.store.getInstanceStatus('finished-1');
    expect(status?.retiredAt).toEqual(expect.any(Number));
    expect(status?.retiredReason).toBe('nothing left to collect');
    expect(h.runs).toEqual([]);

    // A retired instance is not planned again, by this store's next runner either.
    const next = harness({ jobs: [job], instances: [instance('finished-1', 'finished')], shared: h.store });
    await next.runner.runOnce();
    expect(plans).toBe(1);
  });

  it('plans again as soon as a task ends, so step B starts right after step A without waiting for the next tick', async () => {
    const reasons: PlanContext<unknown>['reason'][] = [];
    const job = defineJob({
      name: 'pipeline',
      params: noParams,
      schedule: 'rate(1 hour)',
      async getRunnableTasks(ctx) {
        reasons.push(ctx.reason);
        if (!(await ctx.history.lastSuccess({ task: 'a' }))) return [{ task: 'a' }];
        if (!(await ctx.history.lastSuccess({ task: 'b' }))) return [{ task: 'b' }];
        return [];
      },
      tasks: {
        a: { run: () => ({ step: 'a' }) },
        b: { run: () => ({ step: 'b' }) },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('pipe-1', 'pipeline', { schedule: 'rate(1 hour)' })] });
    const bDone = waitForRun(h.runner, (r) => r.task === 'b' && r.status === 'succeeded', 2_000);

    await h.runner.start();
    const b = await bDone;

    const a = withStatus(h.runs, 'succeeded').find((r) => r.task === 'a');
    expect(a).toBeDefined();
    expect(b.startedAt).toBeGreaterThanOrEqual(a?.endedAt ?? Number.POSITIVE_INFINITY);
    expect(b.origin).toBe('followup');
    expect(reasons.slice(0, 2)).toEqual(['schedule', 'followup']);
  });

  it("finds a task's runs by the input the plan passed, with its input schema's defaults as the task ran with them", async () => {
    const found: { lastSuccess: unknown; lastRun: unknown; signature: string }[] = [];
    const job = defineJob({
      name: 'pages',
      params: noParams,
      async getRunnableTasks(ctx) {
        const input = { page: 1 };
        const lastSuccess = await ctx.history.lastSuccess({ task: 'fetch', input });
        found.push({ lastSuccess: lastSuccess?.id, lastRun: (await ctx.history.lastRun({ task: 'fetch', input }))?.id, signature: ctx.signatureOf('fetch', input) });
        return lastSuccess ? [] : [{ task: 'fetch', input }];
      },
      tasks: {
        fetch: {
          input: z.object({ page: z.number(), pageSize: z.number().default(100) }),
          run: (input: { page: number; pageSize: number }) => ({ rows: input.pageSize }),
        },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('pages-1', 'pages')] });

    await h.runner.runOnce();

    const [run, ...others] = withStatus(h.runs, 'succeeded');
    expect(others).toEqual([]);
    expect(run?.input).toEqual({ page: 1, pageSize: 100 });
    // The follow-up plan found the success by { page: 1 } and asked for nothing more.
    expect(found.at(-1)).toEqual({ lastSuccess: run?.id, lastRun: run?.id, signature: run?.signature });
    expect(found).toHaveLength(2);
  });

  it('reports a plan that throws, keeps running other instances, and asks the failing one again on the next trigger', async () => {
    let failing = true;
    let badPlans = 0;
    const job = defineJob({
      name: 'flaky-plan',
      params: z.object({ bad: z.boolean() }),
      getRunnableTasks(ctx) {
        if (ctx.params.bad) {
          badPlans += 1;
          if (failing) throw new Error('source listing unavailable');
        }
        return [{ task: 'work', input: { from: ctx.instanceId } }];
      },
      tasks: { work: { run: () => 'ok' } },
    });
    const h = harness({
      jobs: [job],
      instances: [instance('bad', 'flaky-plan', { params: { bad: true } }), instance('good', 'flaky-plan', { params: { bad: false } })],
      tickMs: 10,
    });
    const planError = waitFor<[string, { message: string }]>(h.runner, 'planError');
    const goodDone = waitForRun(h.runner, (r) => r.instanceId === 'good' && r.status === 'succeeded');

    await h.runner.start();
    const [failedId, error] = await planError;
    await goodDone;

    expect(failedId).toBe('bad');
    expect(error.message).toContain('source listing unavailable');
    await until(async () => (await h.store.getInstanceStatus('bad'))?.planError !== undefined, 2_000, 'planError in the store');
    expect((await h.store.getInstanceStatus('bad'))?.planError?.message).toContain('source listing unavailable');
    expect(h.runner.stats().planErrors).toBe(1);

    // The next trigger asks the failing instance again; a good plan clears the error.
    failing = false;
    const badDone = waitForRun(h.runner, (r) => r.instanceId === 'bad' && r.status === 'succeeded');
    await h.runner.trigger('bad');
    await badDone;
    expect(badPlans).toBe(2);
    await until(async () => (await h.store.getInstanceStatus('bad'))?.planError === undefined, 2_000, 'planError cleared');
  });

  it('lets a plan read what tasks wrote, but not write or delete objects itself', async () => {
    const seen: string[] = [];
    const job = defineJob({
      name: 'reader',
      params: noParams,
      async getRunnableTasks(ctx) {
        for (const { key } of await ctx.objects.list('out/')) seen.push(`${key}=${(await ctx.objects.getText(key)) ?? ''}`);
        const writable = ctx.objects as Partial<ObjectStore>;
        if (writable.put ?? writable.delete) throw new Error('the plan context can write objects');
        return seen.length === 0 ? [{ task: 'write' }] : [];
      },
      tasks: { write: { run: async (_input, tctx) => tctx.objects.put('out/a.txt', 'from the task') } },
    });
    const h = harness({ jobs: [job], instances: [instance('reader-1', 'reader')] });

    const first = await h.runner.runOnce();
    const second = await h.runner.runOnce();

    expect(first.succeeded).toBe(1);
    expect(first.planErrors + second.planErrors).toBe(0);
    expect(seen).toStrictEqual(['out/a.txt=from the task']);
  });

  it('rejects invalid specs with a message naming the instance and the task or field, and runs the valid ones of the same plan', async () => {
    const job = defineJob({
      name: 'mixed',
      params: noParams,
      getRunnableTasks: (): TaskSpec[] => [
        { task: 'nope' },
        { task: 'free', input: { callback: (() => 1) as unknown as Json } },
        { task: 'free', input: { ratio: Number.NaN } },
        { task: 'typed', input: { count: 'three' } },
        { task: 'typed', input: { count: 3 } },
        { task: 'free', input: { fine: true } },
      ],
      tasks: {
        free: { run: () => 'free ran' },
        typed: { input: z.object({ count: z.number() }), run: (input: { count: number }) => input.count },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('mixed-1', 'mixed')] });
    const errors: string[] = [];
    h.runner.on('planError', (id, error) => errors.push(`${id}: ${error.name}: ${error.message}`));

    await h.runner.runOnce();

    // Every plan reports them (follow-up plans too), each under its own message.
    const distinct = [...new Set(errors)];
    expect(distinct).toHaveLength(4);
    for (const message of distinct) {
      expect(message).toMatch(/^mixed-1: InvalidTaskSpecError: /);
      expect(message).toContain('instance "mixed-1"');
    }
    expect(distinct[0]).toMatch(/task spec #0 names task "nope"/);
    expect(distinct[1]).toMatch(/task spec #1 \(task "free"\): input\.callback is a function/);
    expect(distinct[2]).toMatch(/task spec #2 \(task "free"\): input\.ratio is NaN/);
    expect(distinct[3]).toMatch(/task spec #3 \(task "typed"\): input\.count: /);
    const succeeded = withStatus(h.runs, 'succeeded');
    expect(succeeded.map((r) => r.task).sort()).toEqual(['free', 'typed']);
    expect(succeeded.find((r) => r.task === 'typed')?.result).toBe(3);
    expect((await h.store.getInstanceStatus('mixed-1'))?.planError?.name).toBe('InvalidTaskSpecError');
  });

  it('runs an explicit signature shared by two instances of two job types once at a time', async () => {
    const executions = new Executions();
    const release = gate();
    const makeJob = (name: string) =>
      defineJob({
        name,
        params: noParams,
        getRunnableTasks: () => [{ task: 'refresh', signature: 'shared:refresh-index' }],
        tasks: {
          refresh: {
            run: async (_input: unknown, tctx) =>
              executions.around('shared', async () => {
                if (executions.started.length === 1) await release.opened;
                return tctx.instanceId;
              }),
          },
        },
      });
    const h = harness({
      jobs: [makeJob('indexer'), makeJob('reindexer')],
      instances: [instance('idx-a', 'indexer'), instance('idx-b', 'reindexer')],
      tickMs: 10,
    });
    const firstStart = waitForRun(h.runner, (r) => r.status === 'running');
    await h.runner.start();
    const first = await firstStart;
    const other = first.instanceId === 'idx-a' ? 'idx-b' : 'idx-a';

    // The other instance is asked while the first holds the signature: it does not start.
    const planned = waitForPlan(h.runner, other);
    await h.runner.trigger(other);
    await planned;
    expect(executions.started).toHaveLength(1);
    expect(await h.store.getLease('shared:refresh-index')).toMatchObject({ owner: h.runner.owner, instanceId: first.instanceId });

    release.open();
    await waitForRun(h.runner, (r) => r.instanceId === first.instanceId && r.status === 'succeeded');
    await h.runner.whenIdle();
    const otherDone = waitForRun(h.runner, (r) => r.instanceId === other && r.status === 'succeeded');
    await h.runner.trigger(other);
    const second = await otherDone;

    expect(executions.overlaps).toEqual([]);
    expect(executions.started).toHaveLength(2);
    expect(second.signature).toBe('shared:refresh-index');
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
  });

  it('deduplicates an ad-hoc trigger against a running run of the same signature', async () => {
    const executions = new Executions();
    const release = gate();
    const job = defineJob({
      name: 'adhoc',
      params: noParams,
      getRunnableTasks: () => [],
      tasks: {
        rebuild: {
          run: async (input: { day: string }) =>
            executions.around(input.day, async () => {
              await release.opened;
              return input.day;
            }),
        },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('adhoc-1', 'adhoc')], tickMs: 10 });
    await h.runner.start();
    await h.runner.whenIdle();

    const running = waitForRun(h.runner, (r) => r.status === 'running');
    await h.runner.trigger('adhoc-1', 'rebuild', { day: '2026-01-01' });
    const first = await running;
    expect(first.origin).toBe('manual');

    const planned = waitForPlan(h.runner, 'adhoc-1');
    await h.runner.trigger('adhoc-1', 'rebuild', { day: '2026-01-01' });
    await planned;
    release.open();
    await waitForRun(h.runner, (r) => r.status === 'succeeded');
    await h.runner.whenIdle();

    expect(executions.started).toEqual(['2026-01-01']);
    expect(withStatus(h.runs, 'running')).toHaveLength(1);
    const stored = await h.store.listRuns({ instanceId: 'adhoc-1' });
    expect(stored.map((r) => [r.status, r.origin])).toEqual([['succeeded', 'manual']]);
  });

  it('runs an ad-hoc trigger made the moment the previous run of its signature is reported', async () => {
    const job = defineJob({
      name: 'again',
      params: noParams,
      getRunnableTasks: () => [],
      tasks: { rebuild: { run: (input: { day: string }) => input.day } },
    });
    const h = harness({ jobs: [job], instances: [instance('again-1', 'again')], tickMs: 10 });
    await h.runner.start();
    await h.runner.whenIdle();
    const deduplicated: (string | null)[] = [];
    h.runner.on('deduplicated', (_id, _signature, holder) => deduplicated.push(holder));

    const firstDone = waitForRun(h.runner, (r) => r.status === 'succeeded');
    await h.runner.trigger('again-1', 'rebuild', { day: '2026-01-02' });
    const first = await firstDone;
    // The run is over (its record says so): asking for it again must run it again.
    const secondDone = waitForRun(h.runner, (r) => r.status === 'succeeded' && r.id !== first.id, 2_000);
    await h.runner.trigger('again-1', 'rebuild', { day: '2026-01-02' });
    const second = await secondDone;

    expect(deduplicated).toEqual([]);
    expect(second.signature).toBe(first.signature);
    expect(second.origin).toBe('manual');
    expect(second.fencingToken).toBe(first.fencingToken + 1);
  });

  it('keeps ctx.state between plans', async () => {
    const seen: (Json | undefined)[] = [];
    const job = defineJob({
      name: 'stateful',
      params: noParams,
      async getRunnableTasks(ctx) {
        const count = await ctx.state.get<number>('plans');
        seen.push(count);
        await ctx.state.set('plans', (count ?? 0) + 1);
        return [];
      },
      tasks: { work: { run: () => undefined } },
    });
    const h = harness({ jobs: [job], instances: [instance('state-1', 'stateful')], tickMs: 10 });
    const firstPlan = waitForPlan(h.runner, 'state-1');
    await h.runner.start();
    await firstPlan;

    for (let i = 0; i < 2; i += 1) {
      const planned = waitForPlan(h.runner, 'state-1');
      await h.runner.trigger('state-1');
      await planned;
    }

    expect(seen).toEqual([undefined, 1, 2]);
    expect(await h.store.getState('state-1', 'plans')).toBe(3);
  });
  it('records when an instance was last planned on its schedule, and gives runs of a manual plan the origin manual', async () => {
    let manual = false;
    const job = defineJob({
      name: 'origins',
      params: noParams,
      getRunnableTasks: (ctx) => {
        if (ctx.reason !== 'manual') return [];
        manual = true;
        return [{ task: 'work' }];
      },
      tasks: { work: { run: () => 'done' } },
    });
    const h = harness({ jobs: [job], instances: [instance('o', 'origins')] });
    const before = Date.now();

    await h.runner.start();
    await waitForPlan(h.runner, 'o');
    await until(async () => (await h.store.getInstanceStatus('o'))?.lastPlannedAt !== undefined, 5_000, 'lastPlannedAt');
    const triggered = waitForRun(h.runner, (run) => run.status === 'succeeded');
    await h.runner.trigger('o');
    const run = await triggered;

    expect((await h.store.getInstanceStatus('o'))?.lastPlannedAt).toBeGreaterThanOrEqual(before);
    expect(manual).toBe(true);
    expect(run.origin).toBe('manual');
  });
});
