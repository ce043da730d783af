/** ujr/testing's plan(): the runner's plan context over the history, objects, state and time a test gives. */
import { defineJob, InvalidInstancesError, z, type PlanContext, type TaskSpec } from 'ujr';
import { MemoryObjectStore, plan } from 'ujr/testing';
import { describe, expect, it } from 'vitest';
import { parseInstances } from '../../../core/config.js';
import { InvalidTaskSpecError } from '../../../core/errors.js';
import { defaultSignature } from '../../../core/signature.js';

const greeter = defineJob({
  name: 'greeter',
  params: z.object({ names: z.array(z.string()), greeting: z.string().default('hello') }),
  async getRunnableTasks(ctx) {
    const due: TaskSpec[] = [];
    for (const name of ctx.params.names) {
      if (!(await ctx.history.lastSuccess({ task: 'greet', input: { name } }))) due.push({ task: 'greet', input: { name } });
    }
    return due;
  },
  tasks: {
    greet: {
      input: z.object({ name: z.string() }),
      retry: { attempts: 5 },
      run: (input: { name: string }) => ({ greeted: input.name }),
    },
  },
});

/** A job whose plan is written by each test. */
function jobPlanning(getRunnableTasks: (ctx: PlanContext<{ limit: number }>) => TaskSpec[] | Promise<TaskSpec[]>) {
  return defineJob({
    name: 'probe',
    params: z.object({ limit: z.number().int().default(3) }),
    getRunnableTasks,
    tasks: { work: { run: () => undefined }, watch: { kind: 'continuous', run: () => undefined } },
  });
}

describe('plan()', () => {
  it('returns the tasks resolved as the runner resolves them: kind, retry and default signature', async () => {
    const { tasks } = await plan(greeter, { params: { names: ['ada'] }, instanceId: 'lab-a' });

    expect(tasks).toEqual([
      {
        task: 'greet',
        kind: 'batch',
        input: { name: 'ada' },
        signature: defaultSignature('lab-a', 'greet', JSON.stringify({ name: 'ada' })),
        timeoutMs: 15 * 60_000,
        retry: { attempts: 5, backoffMs: 1_000, factor: 2, maxBackoffMs: 60_000, jitter: 0.2 },
        isolate: false,
      },
    ]);
  });

  it('returns inputs as the task\'s input schema parsed them, defaults filled in', async () => {
    const job = defineJob({
      name: 'sizer',
      params: z.object({}),
      getRunnableTasks: () => [{ task: 'resize', input: { file: 'a.png' } }],
      tasks: { resize: { input: z.object({ file: z.string(), width: z.number().default(640) }), run: () => undefined } },
    });

    const { tasks } = await plan(job);

    expect(tasks.map((t) => t.input)).toEqual([{ file: 'a.png', width: 640 }]);
  });

  it('answers history queries from the records given: a task that already succeeded is not returned again', async () => {
    const { tasks } = await plan(greeter, {
      params: { names: ['ada', 'alan', 'grace'] },
      history: [
        { task: 'greet', input: { name: 'ada' } },
        { task: 'greet', input: { name: 'alan' }, status: 'failed' },
      ],
    });

    expect(tasks.map((t) => t.input)).toEqual([{ name: 'alan' }, { name: 'grace' }]);
  });

  it('fills partial records in order given (the last is the newest) and keeps the times set', async () => {
    const now = Date.UTC(2026, 0, 1);
    let seen: unknown[] = [];
    const job = jobPlanning(async (ctx) => {
      seen = [
        await ctx.history.lastRun({ task: 'work' }),
        await ctx.history.lastSuccess({ task: 'work' }),
        await ctx.history.lastRun({ signature: 'shared:1' }),
        await ctx.history.lastRun({ task: 'work', instanceId: 'elsewhere' }),
      ];
      return [];
    });

    await plan(job, {
      now,
      history: [
        { task: 'work', input: { n: 1 } },
        { task: 'work', input: { n: 2 }, status: 'skipped' },
        { task: 'work', instanceId: 'other', signature: 'shared:1', status: 'running', startedAt: now - 50 },
        { task: 'work', instanceId: 'elsewhere', endedAt: now - 10_000, result: { rows: 3 } },
      ],
    });

    expect(seen).toEqual([
      expect.objectContaining({ instanceId: 'probe', status: 'skipped', startedAt: now - 3_000, endedAt: now - 3_000 }),
      expect.objectContaining({ instanceId: 'probe', status: 'succeeded', endedAt: now - 4_000 }),
      expect.objectContaining({ instanceId: 'other', signature: 'shared:1', status: 'running', startedAt: now - 50 }),
      expect.objectContaining({ instanceId: 'elsewhere', status: 'succeeded', endedAt: now - 10_000, result: { rows: 3 } }),
    ]);
    expect(seen[2]).not.toHaveProperty('endedAt');
  });

  it('validates params with the runtime\'s error, naming the instance and the field', async () => {
    const error: unknown = await plan(greeter, { params: { names: 'ada' }, instanceId: 'lab-a' }).catch((caught: unknown) => caught);

    const runtime = parseInstances({ instances: [{ id: 'lab-a', job: 'greeter', params: { names: 'ada' } }] }, [greeter]).problems;
    expect(error).toBeInstanceOf(InvalidInstancesError);
    expect((error as InvalidInstancesError).problems).toEqual(runtime);
    expect(String(error)).toMatch(/instance "lab-a": params\.names: /);
  });

  it('gives the params parsed (defaults filled), the time, the reason, read-only objects, and collects state, logs and done()', async () => {
    const now = new Date('2026-03-01T12:00:00Z');
    let seen: Record<string, unknown> = {};
    const job = jobPlanning(async (ctx) => {
      seen = {
        params: ctx.params,
        now: ctx.now(),
        reason: ctx.reason,
        text: await ctx.objects.getText('inbox/a.txt'),
        listed: (await ctx.objects.list('inbox/')).map((o) => [o.key, o.modifiedAt]),
        writable: 'put' in ctx.objects,
        cursor: await ctx.state.get('cursor'),
      };
      await ctx.state.set('cursor', 8);
      await ctx.state.set('seen', ['a']);
      await ctx.state.delete('old');
      ctx.log.info('planned', { files: 1 });
      ctx.done('nothing left');
      return [{ task: 'work', input: { file: 'inbox/a.txt' } }];
    });

    const result = await plan(job, { now, reason: 'manual', objects: { 'inbox/a.txt': 'A' }, state: { cursor: 7, old: true } });

    expect(seen).toEqual({
      params: { limit: 3 },
      now: now.getTime(),
      reason: 'manual',
      text: 'A',
      listed: [['inbox/a.txt', now.getTime()]],
      writable: false,
      cursor: 7,
    });
    expect(result.state).toEqual({ cursor: 8, seen: ['a'] });
    expect(result.logs).toEqual([{ level: 'info', message: 'planned {"files":1}' }]);
    expect(result.done).toEqual({ reason: 'nothing left' });
    expect(result.tasks.map((t) => t.task)).toEqual(['work']);
  });

  it('reads an object store given as such', async () => {
    const objects = new MemoryObjectStore();
    await objects.put('inbox/b.txt', 'B');
    const job = jobPlanning(async (ctx) => (await ctx.objects.list('inbox/')).map((o) => ({ task: 'work', input: { file: o.key } })));

    const { tasks } = await plan(job, { objects });

    expect(tasks.map((t) => t.input)).toEqual([{ file: 'inbox/b.txt' }]);
  });

  it('drops a duplicate signature and resolves a continuous task as isolated, without a timeout', async () => {
    const job = jobPlanning(() => [{ task: 'work' }, { task: 'work', input: {} }, { task: 'watch' }]);

    const { tasks } = await plan(job);

    expect(tasks.map((t) => [t.task, t.kind, t.isolate, t.timeoutMs])).toEqual([
      ['work', 'batch', false, 15 * 60_000],
      ['watch', 'continuous', true, undefined],
    ]);
  });

  it('fails as the runner would reject a spec: an unknown task, named with the known ones', async () => {
    const job = jobPlanning(() => [{ task: 'work' }, { task: 'nope' }]);

    await expect(plan(job)).rejects.toThrow(InvalidTaskSpecError);
    await expect(plan(job)).rejects.toThrow(/task spec #1 names task "nope", which job type "probe" does not define; its tasks are: work, watch/);
  });

  it('rejects with what getRunnableTasks throws', async () => {
    const job = jobPlanning(() => {
      throw new Error('the source is down');
    });

    await expect(plan(job)).rejects.toThrow('the source is down');
  });
});
