/**
 * The plan loop alone, over a real journal, dispatch queue and memory store: which instances it
 * asks, what it leases and records for what they return, and how it answers the other runners
 * that share the store (a lease held, released while the plan read the history, or expired).
 * The rest of the runner is a small host that records what the loop asks of it; the clock and
 * timers are the test's.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MemoryStore } from '../../../core/adapters/memory/store.js';
import { defineJob } from '../../../core/define.js';
import { newInstanceRuntime, refOf, type Attempt, type InstanceRuntime } from '../../../core/engine/attempt.js';
import { DispatchQueue, type DispatchLimits } from '../../../core/engine/dispatch.js';
import { Journal } from '../../../core/engine/journal.js';
import { PlanLoop, type PlanLoopHost } from '../../../core/engine/plan-loop.js';
import type { RunnerEvents } from '../../../core/engine/runner-events.js';
import type { TimerHandle, Timers } from '../../../core/ports/timers.js';
import { canonicalJson, defaultSignature } from '../../../core/signature.js';
import { MemoryObjectStore } from '../../../core/testing/objects.js';
import type { InstanceConfig, Logger, PlanContext, TaskSpec } from '../../../core/types.js';
import { makeRun, seed, T0 } from '../../helpers/records.js';

const OWNER = 'runner-1';
const TTL = 30_000;
const PLAN_TIMEOUT_MS = 60_000;
const HOUR = 3_600_000;

const silentLog: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** One turn of the event loop: a journal commit asked for in the last one has been made. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The spec of collector-a's `fetch` of one page, and that task's default signature. */
const page = (n: number): TaskSpec => ({ task: 'fetch', input: { page: n } });
const sig = (n: number, instanceId = 'collector-a') => defaultSignature(instanceId, 'fetch', canonicalJson({ page: n }));

interface HeldTimer {
  ms: number;
  state: 'pending' | 'fired' | 'cancelled';
  fire(): void;
}

/** Timers that only keep their callbacks: nothing fires unless the test fires it. */
function heldTimers(): Timers & { pending(): HeldTimer[] } {
  const all: HeldTimer[] = [];
  const start = (callback: () => void, ms: number): TimerHandle => {
    const timer: HeldTimer = {
      ms,
      state: 'pending',
      fire() {
        timer.state = 'fired';
        callback();
      },
    };
    all.push(timer);
    return {
      refresh: () => undefined,
      unref: () => undefined,
      cancel: () => {
        if (timer.state === 'pending') timer.state = 'cancelled';
      },
    };
  };
  return { setTimeout: start, setInterval: start, pending: () => all.filter((t) => t.state === 'pending') };
}

interface Emitted {
  event: string;
  args: unknown[];
}

function setup(options: { maxQueued?: number; limits?: Partial<DispatchLimits> } = {}) {
  const clock = { now: T0 };
  const store = new MemoryStore();
  const storeErrors: unknown[] = [];
  const journal = new Journal(store, { onError: (error) => storeErrors.push(error), onRefused: () => undefined, now: () => clock.now });
  const timers = heldTimers();
  /** The dispatch queue reads its limits from this object: a test may open slots later. */
  const limits: DispatchLimits = { concurrency: 16, maxContinuous: 4, ...options.limits };
  const instances = new Map<string, InstanceRuntime>();
  const held = new Map<string, Attempt>();
  const started: Attempt[] = [];
  const flags = { stopping: false };
  const dispatch = new DispatchQueue(journal, timers, limits, {
    start(attempt) {
      attempt.state = 'running';
      started.push(attempt);
    },
    holds: (attempt) => held.get(attempt.planned.signature) === attempt,
    stopping: () => flags.stopping,
    // As the runner wires it: a deferred follow-up is made once the queue is down to one round of slots.
    queueShrank(runtime) {
      runtime.followupDeferred = false;
      loop.followUp(runtime);
    },
    changed: () => undefined,
  });
  const events: Emitted[] = [];
  /** What the loop asked of the rest of the runner. */
  const asked = {
    cancelled: [] as { signature: string; why: string }[],
    instanceWork: [] as { instanceId: string; why: string; only: 'continuous' | undefined }[],
    pumps: 0,
    idleChecks: 0,
  };
  let ids = 0;
  const host: PlanLoopHost = {
    store,
    objects: new MemoryObjectStore({}, () => clock.now),
    journal,
    dispatch,
    timers,
    log: silentLog,
    owner: OWNER,
    options: { maxQueued: options.maxQueued ?? 10_000, leaseTtlMs: TTL, planTimeoutMs: PLAN_TIMEOUT_MS, once: false },
    instances,
    held,
    counters: { deduplicated: 0, takenOver: 0, planErrors: 0 },
    emit: (event, ...args) => {
      events.push({ event: String(event), args });
      return true;
    },
    now: () => clock.now,
    nextId: () => `run-${String((ids += 1)).padStart(3, '0')}`,
    stopping: () => flags.stopping,
    reportStoreError: (error) => storeErrors.push(error),
    cancel: (attempt, why) => asked.cancelled.push({ signature: attempt.planned.signature, why }),
    cancelInstanceWork: (runtime, why, only) => asked.instanceWork.push({ instanceId: runtime.config.id, why, only }),
    limitDefinitions: () => new Map(),
    hasLimitStore: true,
    schedulePump: () => {
      asked.pumps += 1;
    },
    checkIdle: () => {
      asked.idleChecks += 1;
    },
  };
  const loop = new PlanLoop(host);

  /** Every plan made: which instance was asked, and why. */
  const plans: { instanceId: string; reason: PlanContext<unknown>['reason'] }[] = [];
  /** A collector job type whose plans are `plan`, each recorded in `plans`. */
  const job = (plan: (ctx: PlanContext<unknown>) => TaskSpec[] | Promise<TaskSpec[]>) =>
    defineJob({
      name: 'collector',
      params: z.object({}).passthrough(),
      getRunnableTasks(ctx) {
        plans.push({ instanceId: ctx.instanceId, reason: ctx.reason });
        return plan(ctx);
      },
      tasks: {
        fetch: { run: () => undefined },
        watch: { kind: 'continuous', run: () => undefined },
      },
    });

  /** An instance as the runner keeps it, due now, in the dispatch queue's rotation. */
  const addInstance = (id: string, jobType: ReturnType<typeof job>, extra: Partial<InstanceConfig> = {}): InstanceRuntime => {
    const config: InstanceConfig = { id, job: jobType.name, params: {}, enabled: true, schedule: 'rate(1 hour)', concurrency: 16, ...extra };
    const runtime = newInstanceRuntime(config, jobType, clock.now);
    instances.set(id, runtime);
    dispatch.addInstance(runtime);
    return runtime;
  };

  /**
   * Lets what the loop started finish: plans, lease calls and journal commits, all in process.
   * Fails (rather than hangs) if the loop is still busy after many turns of the event loop.
   */
  const settle = async (): Promise<void> => {
    let quiet = 0;
    for (let n = 0; quiet < 3; n += 1) {
      if (n > 100) throw new Error('the plan loop was still planning after 100 turns of the event loop');
      await journal.flush();
      await turn();
      const busy = loop.takingTriggers || [...instances.values()].some((r) => r.planning);
      quiet = busy ? 0 : quiet + 1;
    }
  };

  /** The arguments of each `event` the loop emitted, in order. */
  const emitted = (event: keyof RunnerEvents) => events.filter((e) => e.event === event).map((e) => e.args);

  /** The attempt this runner holds for `signature`. */
  const attemptOf = (signature: string): Attempt => {
    const attempt = held.get(signature);
    if (!attempt) throw new Error(`the runner holds no attempt of ${signature}; it holds ${[...held.keys()].join(', ') || 'none'}`);
    return attempt;
  };

  return { clock, store, storeErrors, journal, timers, limits, dispatch, instances, held, started, flags, asked, host, loop, plans, job, addInstance, settle, emitted, attemptOf };
}

describe('plan loop', () => {
  describe('scheduled plans', () => {
    it('plans each due enabled instance once per tick and leases its tasks for this runner; their runs are in the store, queued, once the journal commits', async () => {
      const h = setup({ limits: { concurrency: 0 } });
      const job = h.job(() => [page(1), page(2)]);
      h.addInstance('collector-a', job);
      h.addInstance('collector-b', job, { enabled: false });

      h.loop.tick();
      h.loop.tick();
      await h.settle();

      expect(h.plans).toEqual([{ instanceId: 'collector-a', reason: 'schedule' }]);
      const attempts = [h.attemptOf(sig(1)), h.attemptOf(sig(2))];
      expect(h.held.size).toBe(2);
      const leases = await h.store.listActiveLeases(h.clock.now);
      expect(leases.map((l) => ({ signature: l.signature, owner: l.owner, runId: l.runId })).sort((a, b) => a.signature.localeCompare(b.signature))).toEqual(
        attempts.map((a) => ({ signature: a.planned.signature, owner: OWNER, runId: a.run.id })).sort((a, b) => a.signature.localeCompare(b.signature)),
      );
      for (const attempt of attempts) {
        const lease = await h.store.getLease(attempt.planned.signature);
        expect(await h.store.getRun(attempt.run.id)).toMatchObject({
          status: 'queued',
          origin: 'schedule',
          runner: OWNER,
          instanceId: 'collector-a',
          task: 'fetch',
          fencingToken: lease?.token,
        });
      }
      expect(h.dispatch.queued).toBe(2);
      expect(h.emitted('planned')).toEqual([['collector-a', 2]]);
      expect((await h.store.getInstanceStatus('collector-a'))?.lastPlannedAt).toBe(T0);
      expect(await h.store.getInstanceStatus('collector-b')).toBeUndefined();
      expect(await h.store.listRuns({ instanceId: 'collector-b' })).toEqual([]);
      expect(h.storeErrors).toEqual([]);
    });

    it('asks a due instance again on its next due time, leasing nothing it holds already', async () => {
      const h = setup({ limits: { concurrency: 0 } });
      h.addInstance('collector-a', h.job(() => [page(1), page(2)]));
      h.loop.tick();
      await h.settle();
      const tokens = await Promise.all([sig(1), sig(2)].map(async (s) => (await h.store.getLease(s))?.token));

      h.clock.now = T0 + HOUR - 1;
      h.loop.tick();
      await h.settle();
      expect(h.plans).toHaveLength(1);

      h.clock.now = T0 + HOUR;
      h.loop.tick();
      await h.settle();

      expect(h.plans).toHaveLength(2);
      expect(h.held.size).toBe(2);
      expect(await Promise.all([sig(1), sig(2)].map(async (s) => (await h.store.getLease(s))?.token))).toEqual(tokens);
      expect(await h.store.listRuns({ instanceId: 'collector-a' })).toHaveLength(2);
      expect(h.host.counters.deduplicated).toBe(0);
    });
  });

  describe('room in the queue', () => {
    it('admits exactly maxQueued of a larger plan, marks the instance backlogged, and asks it again once the queue is below half', async () => {
      const h = setup({ maxQueued: 4, limits: { concurrency: 0 } });
      const runtime = h.addInstance('collector-a', h.job(() => Array.from({ length: 10 }, (_, n) => page(n))));

      h.loop.tick();
      await h.settle();

      expect([...h.held.keys()].sort()).toEqual([0, 1, 2, 3].map((n) => sig(n)).sort());
      expect(await h.store.listActiveLeases(h.clock.now)).toHaveLength(4);
      expect(h.dispatch.queued).toBe(4);
      expect(runtime.backlogged).toBe(true);

      // The queue is full: asking again would only find the same four held.
      h.loop.replanBacklogged();
      await h.settle();
      expect(h.plans).toHaveLength(1);

      // Three slots open: one task is left waiting, under half of maxQueued.
      h.limits.concurrency = 3;
      h.dispatch.pump();
      expect(h.dispatch.queued).toBe(1);
      h.loop.replanBacklogged();
      await h.settle();

      expect(h.plans.map((p) => p.reason)).toEqual(['schedule', 'followup']);
      expect([...h.held.keys()].sort()).toEqual([0, 1, 2, 3, 4, 5, 6].map((n) => sig(n)).sort());
      expect([4, 5, 6].map((n) => h.attemptOf(sig(n)).run.origin)).toEqual(['followup', 'followup', 'followup']);
      expect(await h.store.listActiveLeases(h.clock.now)).toHaveLength(7);
      expect(h.dispatch.queued).toBe(4);
      // Three tasks of the plan are still not admitted.
      expect(runtime.backlogged).toBe(true);
    });
  });

  describe('other runners', () => {
    it('leaves a signature another runner holds to it, counting it deduplicated and naming the holder', async () => {
      const h = setup();
      const [theirs] = await h.store.acquireLeases(
        [{ signature: sig(1), owner: 'runner-2', ttlMs: TTL, runId: 'their-run', instanceId: 'collector-a', task: 'fetch' }],
        T0,
      );
      h.addInstance('collector-a', h.job(() => [page(1), page(2)]));

      h.loop.tick();
      await h.settle();

      expect(h.host.counters.deduplicated).toBe(1);
      expect(h.emitted('deduplicated')).toEqual([['collector-a', sig(1), 'runner-2']]);
      expect(await h.store.getLease(sig(1))).toMatchObject({ owner: 'runner-2', runId: 'their-run', token: theirs?.granted ? theirs.lease.token : -1 });
      expect([...h.held.keys()]).toEqual([sig(2)]);
      expect(await h.store.listRuns({ signature: sig(1) })).toEqual([]);
    });

    it('refuses a lease released after the plan started reading the history, and asks the job again shortly', async () => {
      const h = setup();
      let raced = false;
      h.addInstance(
        'collector-a',
        h.job(async (ctx) => {
          const done = await ctx.history.lastSuccess({ task: 'fetch', input: { page: 1 } });
          if (!raced) {
            // Runner-2 finishes page 1 while this plan reads the history, 5 ms after the plan began.
            raced = true;
            h.clock.now += 5;
            const run = makeRun('their-run', { signature: sig(1), runner: 'runner-2', status: 'succeeded', input: { page: 1 }, queuedAt: T0, endedAt: h.clock.now });
            await seed(h.store, { runs: [run] }, h.clock.now);
          }
          return done ? [] : [page(1)];
        }),
      );

      h.loop.tick();
      await h.settle();

      expect(h.held.size).toBe(0);
      expect(h.host.counters.deduplicated).toBe(1);
      expect(h.emitted('deduplicated')).toEqual([['collector-a', sig(1), null]]);
      const pending = h.timers.pending();
      expect(pending).toHaveLength(1);
      expect(pending[0]?.ms).toBeLessThan(1_000);
      expect(h.plans).toHaveLength(1);

      // The timer fires once the clock has moved on by its delay.
      h.clock.now += pending[0]?.ms ?? 0;
      pending[0]?.fire();
      await h.settle();

      // Asked again, the job sees that page 1 succeeded: it never runs twice.
      expect(h.plans.map((p) => p.reason)).toEqual(['schedule', 'schedule']);
      expect((await h.store.listRuns({ signature: sig(1) })).map((r) => r.id)).toEqual(['their-run']);
      expect(h.held.size).toBe(0);
    });

    it('takes a lease released before the plan started', async () => {
      const h = setup();
      const run = makeRun('their-run', { signature: sig(1), runner: 'runner-2', status: 'failed', input: { page: 1 }, queuedAt: T0 - 10, endedAt: T0 - 1 });
      await seed(h.store, { runs: [run] }, T0 - 1);
      h.addInstance('collector-a', h.job(() => [page(1)]));

      h.loop.tick();
      await h.settle();

      expect(await h.store.getLease(sig(1))).toMatchObject({ owner: OWNER, runId: h.attemptOf(sig(1)).run.id });
      expect(h.host.counters.deduplicated).toBe(0);
      expect(h.timers.pending()).toEqual([]);
    });

    it('takes over an expired lease: its run says so, and the dead holder’s running run is recorded interrupted', async () => {
      const h = setup();
      // Runner-2 leased page 1 two lease periods ago, recorded its run running, and died.
      const [grant] = await h.store.acquireLeases(
        [{ signature: sig(1), owner: 'runner-2', ttlMs: TTL, runId: 'dead-run', instanceId: 'collector-a', task: 'fetch' }],
        T0 - 2 * TTL,
      );
      if (!grant?.granted) throw new Error('expected runner-2 to get the lease');
      const deadRun = makeRun('dead-run', {
        signature: sig(1),
        runner: 'runner-2',
        status: 'running',
        input: { page: 1 },
        fencingToken: grant.lease.token,
        queuedAt: T0 - 2 * TTL,
        startedAt: T0 - 2 * TTL,
      });
      await h.store.commit({ fenced: [{ fence: refOf(grant.lease), runs: [deadRun] }], at: T0 - 2 * TTL });
      h.addInstance('collector-a', h.job(() => [page(1), page(2)]));

      h.loop.tick();
      await h.settle();

      const ours = h.attemptOf(sig(1));
      expect(await h.store.getRun(ours.run.id)).toMatchObject({ origin: 'takeover', status: 'queued', runner: OWNER });
      expect((await h.store.getRun(h.attemptOf(sig(2)).run.id))?.origin).toBe('schedule');
      expect(await h.store.getLease(sig(1))).toMatchObject({ owner: OWNER, token: grant.lease.token + 1 });
      const interrupted = await h.store.getRun('dead-run');
      expect(interrupted).toMatchObject({ status: 'interrupted', endedAt: T0, error: { name: 'LeaseExpiredError' } });
      expect(interrupted?.error?.message).toContain('runner-2');
      expect(interrupted?.error?.message).toContain(OWNER);
      expect(h.host.counters.takenOver).toBe(1);
      expect(h.emitted('run')).toEqual([[expect.objectContaining({ id: 'dead-run', status: 'interrupted' })]]);
    });
  });

  describe('triggers', () => {
    it('admits exactly the task and input a trigger names, without asking the job, and records the run for the trigger', async () => {
      const h = setup({ limits: { concurrency: 0 } });
      h.addInstance('collector-a', h.job(() => [page(1), page(2)]));
      await h.store.addTrigger({ id: 'trigger-1', instanceId: 'collector-a', task: 'fetch', input: { page: 7 }, at: T0 });

      await h.loop.takeTriggers();
      await h.settle();

      expect(h.plans).toEqual([]);
      expect([...h.held.keys()]).toEqual([sig(7)]);
      const runId = h.attemptOf(sig(7)).run.id;
      expect(await h.store.getTriggerResult('trigger-1')).toEqual({ id: 'trigger-1', instanceId: 'collector-a', at: T0, runIds: [runId] });
      expect(await h.store.getRun(runId)).toMatchObject({ status: 'queued', origin: 'manual', triggerId: 'trigger-1', task: 'fetch', input: { page: 7 } });
      expect(await h.store.getLease(sig(7))).toMatchObject({ owner: OWNER, runId });
    });

    it('answers a trigger for an instance it does not know with a note naming it, and admits nothing', async () => {
      const h = setup();
      h.addInstance('collector-a', h.job(() => [page(1)]));
      await h.store.addTrigger({ id: 'trigger-2', instanceId: 'collector-z', task: 'fetch', input: { page: 1 }, at: T0 });

      await h.loop.takeTriggers();
      await h.settle();

      const result = await h.store.getTriggerResult('trigger-2');
      expect(result).toMatchObject({ id: 'trigger-2', instanceId: 'collector-z', runIds: [] });
      expect(result?.note).toContain('"collector-z"');
      expect(h.held.size).toBe(0);
      expect(await h.store.listActiveLeases(h.clock.now)).toEqual([]);
      expect(h.plans).toEqual([]);
    });

    it('plans the instance for a trigger without a task, recording the runs of that manual plan for the trigger', async () => {
      const h = setup({ limits: { concurrency: 0 } });
      const runtime = h.addInstance('collector-a', h.job(() => [page(1), page(2)]));
      runtime.nextDueAt = T0 + HOUR;
      await h.store.addTrigger({ id: 'trigger-3', instanceId: 'collector-a', at: T0 });

      h.loop.tick();
      await h.settle();

      expect(h.plans).toEqual([{ instanceId: 'collector-a', reason: 'manual' }]);
      const runIds = [sig(1), sig(2)].map((s) => h.attemptOf(s).run.id);
      expect((await h.store.getTriggerResult('trigger-3'))?.runIds.sort()).toEqual([...runIds].sort());
      for (const id of runIds) expect(await h.store.getRun(id)).toMatchObject({ origin: 'manual', triggerId: 'trigger-3' });
    });
  });

  describe('plan errors and retirement', () => {
    it('reports a plan that throws, in the counters, an event and the instance status, until a later plan succeeds', async () => {
      const h = setup();
      let failing = true;
      h.addInstance(
        'collector-a',
        h.job(() => {
          if (failing) throw new Error('the feed is unreachable');
          return [page(1)];
        }),
      );

      h.loop.tick();
      await h.settle();

      expect(h.host.counters.planErrors).toBe(1);
      expect(h.emitted('planError')).toEqual([['collector-a', expect.objectContaining({ message: 'the feed is unreachable' })]]);
      expect((await h.store.getInstanceStatus('collector-a'))?.planError).toMatchObject({ message: 'the feed is unreachable', at: T0 });
      expect(h.held.size).toBe(0);

      failing = false;
      h.clock.now = T0 + HOUR;
      h.loop.tick();
      await h.settle();

      const status = await h.store.getInstanceStatus('collector-a');
      expect(status?.planError).toBeUndefined();
      expect(status?.lastPlannedAt).toBe(T0 + HOUR);
      expect(h.host.counters.planErrors).toBe(1);
      expect([...h.held.keys()]).toEqual([sig(1)]);
    });

    it('reports a plan that does not return within planTimeoutMs as a plan error', async () => {
      const h = setup();
      h.addInstance('collector-a', h.job(() => new Promise<TaskSpec[]>(() => undefined)));

      h.loop.tick();
      for (let n = 0; n < 3; n += 1) await turn();
      const timeout = h.timers.pending().find((t) => t.ms === PLAN_TIMEOUT_MS);
      expect(timeout).toBeDefined();
      timeout?.fire();
      await h.settle();

      expect(h.host.counters.planErrors).toBe(1);
      expect((await h.store.getInstanceStatus('collector-a'))?.planError?.message).toContain('did not return within');
      expect(h.instances.get('collector-a')?.planning).toBe(false);
    });

    it('retires an instance whose plan calls done: its status says when, its continuous work is stopped, and it is not planned again', async () => {
      const h = setup();
      h.addInstance(
        'collector-a',
        h.job((ctx) => {
          ctx.done('every page is fetched');
          return [];
        }),
      );

      h.loop.tick();
      await h.settle();

      expect(await h.store.getInstanceStatus('collector-a')).toMatchObject({ retiredAt: T0, retiredReason: 'every page is fetched' });
      expect(h.emitted('retired')).toEqual([['collector-a', 'every page is fetched']]);
      expect(h.asked.instanceWork.map((w) => [w.instanceId, w.only])).toEqual([['collector-a', 'continuous']]);

      h.clock.now = T0 + HOUR;
      h.loop.tick();
      await h.settle();
      expect(h.plans).toHaveLength(1);
    });
  });

  describe('follow-ups', () => {
    it('waits with a follow-up while more of the instance’s tasks are queued than one round of its slots, and plans once they drain', async () => {
      const h = setup({ limits: { concurrency: 1 } });
      let pages = [1, 2, 3];
      const runtime = h.addInstance(
        'collector-a',
        h.job(() => pages.map(page)),
        { concurrency: 1 },
      );
      h.loop.tick();
      await h.settle();
      expect(h.started.map((a) => a.planned.signature)).toEqual([sig(1)]);
      expect(runtime.batchQueued).toBe(2);
      pages = [1, 2, 3, 4];

      // Page 1 ends, as the runner ends a task: its slot is free, its lease let go, the job asked again.
      const first = h.attemptOf(sig(1));
      h.dispatch.vacate(first);
      h.held.delete(sig(1));
      runtime.finishedSinceTick.add(sig(1));
      h.journal.release(first.lease);
      h.loop.followUp(runtime);
      await h.settle();

      expect(h.plans).toHaveLength(1);
      expect(runtime.followupDeferred).toBe(true);

      // A second later page 2 starts: one task waits, one round of the instance's single slot.
      h.clock.now = T0 + 1_000;
      h.dispatch.pump();
      await h.settle();

      expect(h.plans.map((p) => p.reason)).toEqual(['schedule', 'followup']);
      expect(h.attemptOf(sig(4)).run.origin).toBe('followup');
      // Page 1 ended since the tick: a follow-up does not start it again.
      expect(h.held.has(sig(1))).toBe(false);
      expect((await h.store.listRuns({ signature: sig(1) })).map((r) => r.id)).toEqual([first.run.id]);
      expect(await h.store.getLease(sig(1))).toMatchObject({ owner: null });
      expect(h.host.counters.deduplicated).toBe(0);
    });
  });

  describe('across races with other runners', () => {
    it('asks again after a release it raced with, however many earlier races ended with a plan that had nothing to admit', async () => {
      const h = setup();
      let round = 0;
      let racing = false;
      h.addInstance(
        'collector-a',
        h.job(async (ctx) => {
          const done = await ctx.history.lastSuccess({ task: 'fetch', input: { page: round } });
          if (racing) {
            // Runner-2 ends this round's page while the plan reads the history: rounds 1 and 2
            // succeed, round 3 fails (so the job wants it again).
            racing = false;
            h.clock.now += 5;
            const run = makeRun(`their-run-${round}`, { signature: sig(round), runner: 'runner-2', status: round < 3 ? 'succeeded' : 'failed', input: { page: round }, queuedAt: h.clock.now - 5, endedAt: h.clock.now });
            await seed(h.store, { runs: [run] }, h.clock.now);
          }
          return done ? [] : [page(round)];
        }),
      );

      for (round = 1; round <= 3; round += 1) {
        racing = true;
        h.clock.now = T0 + (round - 1) * HOUR;
        h.loop.tick();
        await h.settle();
        // Each race is a fresh scheduled plan: its refusal is asked again shortly.
        expect(h.timers.pending(), `round ${round}`).toHaveLength(1);
        for (const timer of h.timers.pending()) {
          h.clock.now += timer.ms;
          timer.fire();
        }
        await h.settle();
      }
      round = 3;
      expect(h.held.has(sig(3))).toBe(true);
    });

    it("records the dead holder's live retry run interrupted when it takes the signature over", async () => {
      const h = setup();
      const [grant] = await h.store.acquireLeases([{ signature: sig(1), owner: 'runner-2', ttlMs: TTL, runId: 'dead-1', instanceId: 'collector-a', task: 'fetch' }], T0 - 2 * TTL);
      if (!grant?.granted) throw new Error('expected runner-2 to get the lease');
      const base = { signature: sig(1), runner: 'runner-2', input: { page: 1 }, fencingToken: grant.lease.token, queuedAt: T0 - 2 * TTL };
      await h.store.commit({
        fenced: [
          {
            fence: refOf(grant.lease),
            runs: [
              makeRun('dead-1', { ...base, status: 'failed', endedAt: T0 - 2 * TTL, nextRunId: 'dead-2' }),
              makeRun('dead-2', { ...base, attempt: 2, status: 'running', origin: 'retry', previousRunId: 'dead-1' }),
            ],
          },
        ],
        at: T0 - 2 * TTL,
      });
      h.addInstance('collector-a', h.job(() => [page(1)]));

      h.loop.tick();
      await h.settle();

      expect(h.host.counters.takenOver).toBe(1);
      expect((await h.store.getRun('dead-1'))?.status).toBe('failed');
      expect(await h.store.getRun('dead-2')).toMatchObject({ status: 'interrupted', error: { name: 'LeaseExpiredError' } });
    });

    it('keeps a retirement another runner on the same store recorded when it writes its own plan status', async () => {
      const h = setup();
      h.addInstance('collector-a', h.job(() => [page(1)]));
      await h.store.setInstanceStatus('collector-a', { instanceId: 'collector-a', retiredAt: T0 - 1, retiredReason: 'every page is fetched' });

      h.loop.tick();
      await h.settle();

      expect(await h.store.getInstanceStatus('collector-a')).toMatchObject({ retiredAt: T0 - 1, retiredReason: 'every page is fetched' });
      expect(h.held.has(sig(1))).toBe(false);
    });
  });
});
