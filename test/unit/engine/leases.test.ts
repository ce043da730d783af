/**
 * Leases: fencing tokens, runners sharing one store, takeover of a dead runner's work, and a
 * runner that lost its lease (MemoryStore, inline tasks).
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../core/adapters/memory/store.js';
import { defineJob } from '../../../core/define.js';
import { LeaseLostError } from '../../../core/errors.js';
import type { LeaseGrant } from '../../../core/ports/store.js';
import type { TaskDefinition } from '../../../core/types.js';
import {
  aborted,
  Executions,
  instance,
  noParams,
  storeWith,
  until,
  useHarnesses,
  waitForRun,
  withStatus,
  work,
} from '../../helpers/runner.js';

const { harness, gate } = useHarnesses();

/** A job handing back one task on every plan. */
function oneTask(run: TaskDefinition['run'], retry: TaskDefinition['retry'] = { attempts: 1 }) {
  return defineJob({
    name: 'leased',
    params: noParams,
    getRunnableTasks: () => [{ task: 'sync', input: { table: 'events' } }],
    tasks: { sync: { retry, run } },
  });
}

describe('leases', () => {
  it('passes the lease’s fencing token to the task, growing across runs of one signature', async () => {
    const store = new MemoryStore();
    const seen: { given: number; lease: number | undefined }[] = [];
    const job = oneTask(async (_input, tctx) => {
      seen.push({ given: tctx.fencingToken, lease: (await store.getLease(tctx.signature))?.token });
    });
    const h = harness({ jobs: [job], instances: [instance('fenced-1', 'leased')], shared: store, tickMs: 10 });

    const firstDone = waitForRun(h.runner, (r) => r.status === 'succeeded');
    await h.runner.start();
    const runs = [await firstDone];
    for (let i = 0; i < 2; i += 1) {
      await h.runner.whenIdle();
      const next = waitForRun(h.runner, (r) => r.status === 'succeeded');
      await h.runner.trigger('fenced-1');
      runs.push(await next);
    }

    expect(seen.map((s) => s.given)).toEqual([1, 2, 3]);
    expect(seen.every((s) => s.lease === s.given)).toBe(true);
    expect(runs.map((r) => r.fencingToken)).toEqual([1, 2, 3]);
    expect(new Set(runs.map((r) => r.signature)).size).toBe(1);
  });

  it('never overlaps a signature across two runners planning the same 20 tasks on one store', async () => {
    const executions = new Executions();
    const shared = new MemoryStore();
    // Leases are taken one signature at a time (as a key-value store does), so the two runners'
    // plans interleave and contend for each signature.
    const oneByOne = storeWith(shared, {
      async acquireLeases(requests, now) {
        const grants: LeaseGrant[] = [];
        for (const request of requests) {
          await new Promise((resolve) => setImmediate(resolve));
          grants.push(...(await shared.acquireLeases([request], now)));
        }
        return grants;
      },
    });
    const makeJob = (order: 'up' | 'down') =>
      defineJob({
        name: 'contended',
        params: noParams,
        getRunnableTasks() {
          const specs = Array.from({ length: 20 }, (_, n) => ({ task: 'work', input: { n } }));
          return order === 'up' ? specs : specs.reverse();
        },
        tasks: {
          work: { run: (input: { n: number }, tctx) => executions.around(String(input.n), () => work(1 + (input.n % 3)), tctx.instanceId) },
        },
      });
    const a = harness({ jobs: [makeJob('up')], instances: [instance('contended-1', 'contended')], shared, store: oneByOne });
    const b = harness({ jobs: [makeJob('down')], instances: [instance('contended-1', 'contended')], shared, store: oneByOne });

    const [statsA, statsB] = await Promise.all([a.runner.runOnce(), b.runner.runOnce()]);

    expect(executions.overlaps).toEqual([]);
    expect(new Set(executions.started)).toEqual(new Set(Array.from({ length: 20 }, (_, n) => String(n))));
    expect(withStatus(a.runs, 'succeeded').length).toBeGreaterThan(0);
    expect(withStatus(b.runs, 'succeeded').length).toBeGreaterThan(0);
    expect(statsA.deduplicated + statsB.deduplicated).toBeGreaterThan(0);
    expect(await shared.listActiveLeases(Date.now())).toEqual([]);
  });

  it('lets another runner run a dead runner’s task after its lease expired, with a higher token, ending the dead one’s run', async () => {
    const hung = gate();
    const shared = new MemoryStore();
    // Runner A's heartbeats hang (as if its process froze), and so does its task.
    const a = harness({
      jobs: [oneTask(() => hung.opened)],
      instances: [instance('takeover-1', 'leased')],
      shared,
      store: storeWith(shared, { renewLeases: () => new Promise<boolean[]>(() => undefined) }),
      leaseTtlMs: 500,
    });
    const tokens: number[] = [];
    const healthy = oneTask((_input, tctx) => {
      tokens.push(tctx.fencingToken);
      return 'synced';
    });
    const aRunning = waitForRun(a.runner, (r) => r.status === 'running');
    await a.runner.start();
    const aRun = await aRunning;

    // While A's lease is fresh, runner B is refused the signature.
    const early = harness({ jobs: [healthy], instances: [instance('takeover-1', 'leased')], shared, leaseTtlMs: 500 });
    const earlyStats = await early.runner.runOnce();
    expect(earlyStats).toMatchObject({ deduplicated: 1, succeeded: 0 });

    await until(async () => ((await shared.getLease(aRun.signature))?.expiresAt ?? Infinity) < Date.now(), 2_000, 'A’s lease to expire');
    const b = harness({ jobs: [healthy], instances: [instance('takeover-1', 'leased')], shared, leaseTtlMs: 500 });
    const bStats = await b.runner.runOnce();

    // B's sweeper ends A's run as it starts and releases A's expired lease; then B runs the task.
    const bRun = withStatus(b.runs, 'succeeded')[0];
    expect(bRun?.origin).toBe('schedule');
    expect(bRun?.fencingToken).toBeGreaterThan(aRun.fencingToken);
    expect(tokens).toEqual([bRun?.fencingToken]);
    expect(bStats.succeeded).toBe(1);
    const aRecord = await shared.getRun(aRun.id);
    expect(aRecord?.status).toBe('interrupted');
    expect(aRecord?.error?.name).toBe('LeaseExpiredError');
    expect(aRecord?.error?.message).toContain(a.runner.owner);
  });

  it('starts no handler, first attempt or retry, before its run is in the store: a runner killed at any moment leaves a record of what it started', async () => {
    const store = new MemoryStore();
    const seen: { runId: string; attempt: number; stored: string | undefined }[] = [];
    const job = oneTask(
      async (_input, tctx) => {
        seen.push({ runId: tctx.runId, attempt: tctx.attempt, stored: (await store.getRun(tctx.runId))?.status });
        if (tctx.attempt === 1) throw new Error('first attempt fails');
        return 'synced';
      },
      { attempts: 2, backoffMs: 0, factor: 1, maxBackoffMs: 0, jitter: 0 },
    );
    // The journal would hold every write for a minute unless something waits for it.
    const { runner } = harness({ jobs: [job], instances: [instance('recorded-1', 'leased')], shared: store, commitIntervalMs: 60_000 });

    await runner.runOnce();

    expect(seen.map((s) => s.attempt)).toEqual([1, 2]);
    // What the store held when each handler started: the run, not yet (or just) marked running.
    for (const { stored } of seen) expect(['queued', 'retrying', 'running']).toContain(stored);
  });

  it('aborts the attempt with a LeaseLostError when its lease renewal fails, recording it interrupted without retry', async () => {
    const reasons: unknown[] = [];
    const job = oneTask(
      async (_input, tctx) => {
        try {
          return await aborted(tctx.signal);
        } finally {
          reasons.push(tctx.signal.reason);
        }
      },
      { attempts: 3, backoffMs: 5, jitter: 0 },
    );
    const base = new MemoryStore();
    const a = harness({
      jobs: [job],
      instances: [instance('lost-1', 'leased')],
      shared: base,
      store: storeWith(base, { renewLeases: (refs) => Promise.resolve(refs.map(() => false)) }),
      leaseTtlMs: 300,
    });
    const interrupted = waitForRun(a.runner, (r) => r.status === 'interrupted', 2_000);
    await a.runner.start();
    const run = await interrupted;

    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(LeaseLostError);
    expect(run.error?.name).toBe('LeaseLostError');
    expect(run.error?.message).toContain(run.signature);
    await a.runner.whenIdle();
    const records = await base.listRuns({ instanceId: 'lost-1' });
    expect(records.map((r) => [r.attempt, r.status])).toEqual([[1, 'interrupted']]);
  });
});
