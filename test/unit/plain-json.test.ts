/**
 * Inputs, results, checkpoints and state values are plain JSON trees: a cycle is refused with its
 * path named (as a bigint is), while the same object used twice without a cycle is accepted.
 * Through a real Runner on a MemoryStore, inline tasks.
 */
import { describe, expect, it } from 'vitest';
import { defineJob } from '../../core/define.js';
import { canonicalJson, NotJsonError } from '../../core/signature.js';
import type { Json } from '../../core/types.js';
import { instance, noParams, useHarnesses, waitFor } from '../helpers/runner.js';

const { harness } = useHarnesses();

/** `{ items: [{ id: 0 }, …, { id: 3, parent: <the root> }] }`: a cycle four levels down. */
function circular(): Json {
  const root: { items: Record<string, unknown>[] } = { items: [{ id: 0 }, { id: 1 }, { id: 2 }] };
  root.items.push({ id: 3, parent: root });
  return root as unknown as Json;
}

/** The same object under two keys and in an array: a DAG, which is fine JSON. */
function shared(): Json {
  const point = { x: 1, y: 2 };
  return { from: point, to: point, path: [point, point] };
}

describe('canonical JSON of values with cycles', () => {
  it('names the path of a reference back to an enclosing object, and what to do', () => {
    const error = (() => {
      try {
        canonicalJson(circular(), 'result');
      } catch (e) {
        return e;
      }
      return undefined;
    })();

    expect(error).toBeInstanceOf(NotJsonError);
    expect((error as NotJsonError).path).toBe('result.items[3].parent');
    expect((error as Error).message).toBe(
      'result.items[3].parent is circular (it refers back to result), which is not JSON; results, inputs, checkpoints and state values must be plain JSON trees: store a copy or an id of what you need, not a reference to an enclosing object',
    );
  });

  it('names an array that contains itself', () => {
    const list: unknown[] = [1];
    list.push({ again: list });

    expect(() => canonicalJson({ list })).toThrow(/^input\.list\[1\]\.again is circular \(it refers back to input\.list\)/);
  });

  it('accepts an object used twice without a cycle, writing it twice as JSON.stringify does', () => {
    const value = shared();

    expect(canonicalJson(value)).toBe('{"from":{"x":1,"y":2},"path":[{"x":1,"y":2},{"x":1,"y":2}],"to":{"x":1,"y":2}}');
    expect(JSON.parse(canonicalJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
  });
});

describe('cycles through the runner', () => {
  it('fails a run whose handler returns a circular result, naming result and without retrying', async () => {
    const job = defineJob({
      name: 'loops',
      params: noParams,
      getRunnableTasks: () => [{ task: 'build' }],
      tasks: { build: { retry: { attempts: 3, backoffMs: 5 }, run: () => circular() } },
    });
    const h = harness({ jobs: [job], instances: [instance('loops-1', 'loops')] });

    await h.runner.runOnce();

    const records = await h.store.listRuns({ instanceId: 'loops-1' });
    expect(records.map((r) => [r.status, r.error?.name])).toEqual([['failed', 'NotJsonError']]);
    expect(records[0]?.error?.message).toMatch(/^result\.items\[3\]\.parent is circular .*must be plain JSON trees/);
  });

  it('rejects a planned task whose input is circular, naming the instance and the task', async () => {
    const job = defineJob({
      name: 'cyclic-plan',
      params: noParams,
      getRunnableTasks: () => [
        { task: 'work', input: circular() },
        { task: 'work', input: { fine: true } },
      ],
      tasks: { work: { run: () => ({ ok: true }) } },
    });
    const h = harness({ jobs: [job], instances: [instance('cyclic-1', 'cyclic-plan')] });
    const planError = waitFor<[string, { name: string; message: string }]>(h.runner, 'planError');

    const stats = await h.runner.runOnce();

    const [instanceId, error] = await planError;
    expect(instanceId).toBe('cyclic-1');
    expect(error.name).toBe('InvalidTaskSpecError');
    expect(error.message).toMatch(/^instance "cyclic-1" \(job type "cyclic-plan"\), task spec #0 \(task "work"\): input\.items\[3\]\.parent is circular/);
    expect(stats.succeeded).toBe(1);
  });

  it('rejects a circular checkpoint at the call, naming it, and lets the task carry on', async () => {
    let refusal: unknown;
    const job = defineJob({
      name: 'saver',
      params: noParams,
      getRunnableTasks: () => [{ task: 'save' }],
      tasks: {
        save: {
          async run(_input, tctx) {
            const pending = tctx.checkpoint(circular());
            refusal = await pending.then(
              () => undefined,
              (error: unknown) => error,
            );
            await tctx.checkpoint({ cursor: 1 });
            return { saved: true };
          },
        },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('saver-1', 'saver')] });

    await h.runner.runOnce();

    expect(refusal).toBeInstanceOf(NotJsonError);
    expect((refusal as Error).message).toMatch(/^checkpoint\.items\[3\]\.parent is circular/);
    const [record] = await h.store.listRuns({ instanceId: 'saver-1' });
    expect(record?.status).toBe('succeeded');
    expect((await h.store.getCheckpoint(record?.signature ?? ''))?.value).toEqual({ cursor: 1 });
  });

  it('refuses a circular state value in a plan, naming its key', async () => {
    let refusal: unknown;
    const job = defineJob({
      name: 'stateful',
      params: noParams,
      async getRunnableTasks(ctx) {
        refusal = await ctx.state.set('cursor', circular()).then(
          () => undefined,
          (error: unknown) => error,
        );
        return [];
      },
      tasks: { noop: { run: () => undefined } },
    });
    const h = harness({ jobs: [job], instances: [instance('stateful-1', 'stateful')] });

    await h.runner.runOnce();

    expect(refusal).toBeInstanceOf(NotJsonError);
    expect((refusal as Error).message).toMatch(/^state\.cursor\.items\[3\]\.parent is circular/);
    expect(await h.store.getState('stateful-1', 'cursor')).toBeUndefined();
  });

  it('accepts shared but acyclic values as input, result, checkpoint and state', async () => {
    const job = defineJob({
      name: 'dag',
      params: noParams,
      async getRunnableTasks(ctx) {
        await ctx.state.set('last', shared());
        return [{ task: 'copy', input: shared() }];
      },
      tasks: {
        copy: {
          async run(input: Json, tctx) {
            await tctx.checkpoint(shared());
            return { input, again: shared() };
          },
        },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('dag-1', 'dag')] });

    const stats = await h.runner.runOnce();

    expect(stats.planErrors).toBe(0);
    const [record] = await h.store.listRuns({ instanceId: 'dag-1' });
    expect(record?.status).toBe('succeeded');
    expect(record?.input).toEqual(shared());
    expect(record?.result).toEqual({ input: shared(), again: shared() });
    expect(await h.store.getState('dag-1', 'last')).toEqual(shared());
  });
});
