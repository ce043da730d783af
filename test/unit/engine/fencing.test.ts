/**
 * Fenced to the last write: a stale holder's result, checkpoint and object writes are refused;
 * the sweeper ends runs whose holder died; disabling an instance cancels what it runs; a manual
 * run of a disabled instance never starts a continuous task; triggers report what they started
 * (MemoryStore, inline tasks).
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../core/adapters/memory/store.js';
import { defineJob } from '../../../core/define.js';
import { LeaseLostError } from '../../../core/errors.js';
import type { Json, TaskDefinition } from '../../../core/types.js';
import { instance, noParams, pollFor, storeWith, until, useHarnesses, waitForRun, withStatus } from '../../helpers/runner.js';
import { makeRun, T0 } from '../../helpers/records.js';

const { harness, gate } = useHarnesses();

/** A job handing back one task `sync` on every plan, until it succeeded once. */
function onceJob(run: TaskDefinition['run']) {
  return defineJob({
    name: 'synced',
    params: noParams,
    async getRunnableTasks(ctx) {
      return (await ctx.history.lastSuccess({ task: 'sync' })) ? [] : [{ task: 'sync', input: { table: 'events' } }];
    },
    tasks: { sync: { retry: { attempts: 1 }, run } },
  });
}

describe('a stale holder', () => {
  it('gets its checkpoint and object writes refused, is recorded interrupted, and never becomes the newest success', async () => {
    // Prepare: runner A's renewals hang (its process froze) while its task waits; its lease expires.
    const shared = new MemoryStore();
    const wake = gate();
    const returned = gate();
    const seenByA: { checkpoint?: unknown; put?: unknown } = {};
    const firstJob = onceJob(async (_input, tctx) => {
      await wake.opened;
      try {
        await tctx.checkpoint({ by: 'first' });
      } catch (error) {
        seenByA.checkpoint = error;
      }
      try {
        await tctx.objects.put('report.txt', 'by first');
      } catch (error) {
        seenByA.put = error;
      }
      returned.open();
      return { by: 'first' };
    });
    const a = harness({
      jobs: [firstJob],
      instances: [instance('sync-1', 'synced')],
      shared,
      store: storeWith(shared, { renewLeases: () => new Promise<boolean[]>(() => undefined) }),
      leaseTtlMs: 300,
    });
    const aRunning = waitForRun(a.runner, (r) => r.status === 'running');
    await a.runner.start();
    const aRun = await aRunning;
    await until(async () => ((await shared.getLease(aRun.signature))?.expiresAt ?? Infinity) <= Date.now(), 2_000, 'A’s lease to expire');

    // Runner B takes the task over and finishes it, checkpointing on the way.
    const secondJob = onceJob(async (_input, tctx) => {
      await tctx.checkpoint({ by: 'takeover' });
      await tctx.objects.put('report.txt', 'by takeover');
      return { by: 'takeover' };
    });
    const b = harness({ jobs: [secondJob], instances: [instance('sync-1', 'synced')], shared, leaseTtlMs: 300 });
    await b.runner.runOnce();

    // Act: A wakes up, checkpoints, writes its object and returns.
    wake.open();
    await returned.opened;
    await a.runner.whenIdle();
    const aEnded = await shared.getRun(aRun.id);

    // Assess
    expect(seenByA.checkpoint).toBeInstanceOf(LeaseLostError);
    expect(seenByA.put).toBeInstanceOf(LeaseLostError);
    expect(aEnded).toMatchObject({ status: 'interrupted', error: { name: 'LeaseExpiredError' } });
    expect(aEnded?.result).toBeUndefined();
    const newest = await shared.lastRun({ signature: aRun.signature, status: 'succeeded' });
    expect(newest?.result).toStrictEqual({ by: 'takeover' });
    expect(await shared.listRuns({ signature: aRun.signature, status: 'succeeded' })).toHaveLength(1);
    expect(await a.store.getCheckpoint(aRun.signature)).toMatchObject({ value: { by: 'takeover' } });
    expect(await new (await import('../../../core/adapters/fs/objects.js')).DirectoryObjectStore(b.dataDir).getText('report.txt')).toBe('by takeover');
    // The next holder starts from the takeover's checkpoint, not the stale one.
    const [next] = await shared.acquireLeases([{ signature: aRun.signature, owner: 'next', ttlMs: 1_000, runId: 'n', instanceId: 'sync-1', task: 'sync' }], Date.now());
    expect(next).toMatchObject({ granted: true, checkpoint: { value: { by: 'takeover' } } });
  });

  it('whose run returns after it was aborted for a lost lease is recorded interrupted, not succeeded', async () => {
    // Prepare: the task notes its abort but carries on and returns a result.
    const shared = new MemoryStore();
    const aborted = gate();
    const job = onceJob(async (_input, tctx) => {
      await new Promise<void>((resolve) => tctx.signal.addEventListener('abort', () => resolve()));
      aborted.open();
      return { by: 'first', reason: String((tctx.signal.reason as Error).name) };
    });
    const a = harness({ jobs: [job], instances: [instance('sync-2', 'synced')], shared, leaseTtlMs: 200, graceMs: 5_000 });
    const running = waitForRun(a.runner, (r) => r.status === 'running');
    await a.runner.start();
    const run = await running;
    await until(async () => (await shared.getRun(run.id))?.status === 'running', 2_000, 'the running record');

    // Act: another owner takes the lease (as a runner would after expiry); A's next renewal finds it gone.
    await shared.acquireLeases([{ signature: run.signature, owner: 'thief', ttlMs: 60_000, runId: 'x', instanceId: 'sync-2', task: 'sync' }], Number.MAX_SAFE_INTEGER / 2);
    const ended = waitForRun(a.runner, (r) => r.id === run.id && r.status !== 'running');
    await aborted.opened;

    // Assess
    expect(await ended).toMatchObject({ status: 'interrupted', error: { name: 'LeaseLostError' } });
    expect(withStatus(a.runs, 'succeeded')).toStrictEqual([]);
    await a.runner.whenIdle();
    expect((await shared.getRun(run.id))?.status).toBe('running');
    expect(await shared.getLease(run.signature)).toMatchObject({ owner: 'thief' });
  });
});

describe('the sweeper', () => {
  it('ends at start the runs a dead runner left queued or running, though nobody leases them again', async () => {
    // Prepare: a runner died holding two signatures; its leases expired; no instance returns them.
    const store = new MemoryStore();
    const dead = 'host:4242:dead';
    for (const [id, signature, status] of [['r-run', 's-run', 'running'], ['r-queued', 's-queued', 'queued']] as const) {
      await store.acquireLeases([{ signature, owner: dead, ttlMs: 100, runId: id, instanceId: 'gone', task: 't' }], T0);
      await store.commit({ fenced: [{ fence: { signature, owner: dead, token: 1 }, runs: [makeRun(id, { signature, status, runner: dead, fencingToken: 1 })] }] });
    }

    // Act
    const h = harness({ jobs: [], instances: [], shared: store });
    await h.runner.start();

    // Assess
    for (const id of ['r-run', 'r-queued']) {
      expect(await store.getRun(id)).toMatchObject({ status: 'interrupted', error: { name: 'LeaseExpiredError' } });
      expect((await store.getRun(id))?.error?.message).toContain(dead);
    }
    expect(await store.listActiveLeases(Date.now())).toStrictEqual([]);
    expect(withStatus(h.runs, 'interrupted').map((r) => r.id).sort()).toStrictEqual(['r-queued', 'r-run']);
  });
});

describe('disabling an instance', () => {
  it('aborts its running batch task and records it cancelled', async () => {
    // Prepare
    const started = gate();
    const job = onceJob(async (_input, tctx) => {
      started.open();
      await new Promise((_resolve, reject) => tctx.signal.addEventListener('abort', () => reject(tctx.signal.reason as Error)));
    });
    const h = harness({ jobs: [job], instances: [instance('sync-3', 'synced')] });
    await h.runner.start();
    await started.opened;

    // Act
    const cancelled = waitForRun(h.runner, (r) => r.status === 'cancelled');
    h.runner.setInstances([instance('sync-3', 'synced', { enabled: false })]);

    // Assess
    const run = await cancelled;
    expect(run.error).toMatchObject({ name: 'CancelledError', message: expect.stringContaining('disabled') as unknown });
    await until(async () => (await h.store.getLease(run.signature))?.owner === null, 2_000, 'the lease to be released');
    expect((await h.store.getRun(run.id))?.status).toBe('cancelled');
  });
});

describe('a manual run of a disabled instance', () => {
  it('runs its batch tasks once, never starts its continuous task, and says so in the trigger result', async () => {
    // Prepare
    const job = defineJob({
      name: 'collecting',
      params: noParams,
      getRunnableTasks: () => [{ task: 'collect' }, { task: 'summarize' }],
      tasks: {
        collect: { kind: 'continuous', run: () => new Promise<Json>(() => undefined) },
        summarize: { run: () => ({ ok: true }) },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('lab', 'collecting', { enabled: false })] });
    await h.runner.start();

    // Act
    const summarized = waitForRun(h.runner, (r) => r.task === 'summarize' && r.status === 'succeeded');
    const trigger = await h.runner.trigger('lab');
    await summarized;
    const result = await pollFor(() => h.store.getTriggerResult(trigger.id), 5_000, 'the trigger result');

    // Assess
    expect(h.runs.filter((r) => r.task === 'collect')).toStrictEqual([]);
    expect(result.runIds).toHaveLength(1);
    expect((await h.store.getRun(result.runIds[0] ?? ''))?.task).toBe('summarize');
    expect((await h.store.listRuns({ instanceId: 'lab' })).map((r) => r.task)).toStrictEqual(['summarize']);
  });

  it('reports at once that the plan returned nothing new', async () => {
    const job = defineJob({ name: 'idle', params: noParams, getRunnableTasks: () => [], tasks: { never: { run: () => null } } });
    const h = harness({ jobs: [job], instances: [instance('quiet', 'idle')] });
    await h.runner.start();

    const trigger = await h.runner.trigger('quiet');
    const result = await pollFor(() => h.store.getTriggerResult(trigger.id), 5_000, 'the trigger result');

    expect(result).toMatchObject({ runIds: [], note: 'the plan returned no task' });
  });
});
