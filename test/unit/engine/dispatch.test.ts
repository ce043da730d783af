/**
 * The dispatch queue over a real journal and memory store: nothing starts before its run is in
 * the store, the limits (global, per instance, continuous) hold, and instances take turns.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../../core/adapters/memory/store.js';
import { refOf, type Attempt, type InstanceRuntime } from '../../../core/engine/attempt.js';
import { Deque } from '../../../core/engine/deque.js';
import { DispatchQueue, type DispatchLimits } from '../../../core/engine/dispatch.js';
import { Journal } from '../../../core/engine/journal.js';
import type { PlannedTask } from '../../../core/engine/planner.js';
import type { TimerHandle, Timers } from '../../../core/ports/timers.js';
import type { RunRecord, TaskKind } from '../../../core/types.js';
import { makeRun, T0 } from '../../helpers/records.js';

/** One turn of the event loop: a commit the queue asked for, and what follows it, are done. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

const noHandle: TimerHandle = { refresh: () => undefined, unref: () => undefined, cancel: () => undefined };

/** Timers that only keep their callbacks, for the test to call. */
function heldTimers(): Timers & { due: (() => void)[] } {
  const due: (() => void)[] = [];
  return {
    due,
    setTimeout: (callback) => {
      due.push(callback);
      return noHandle;
    },
    setInterval: () => noHandle,
  };
}

function setup(limits: DispatchLimits, timers: Timers = heldTimers()) {
  const store = new MemoryStore();
  const storeErrors: unknown[] = [];
  // Writes wait a minute unless someone flushes: only the queue's own flush commits them.
  const journal = new Journal(store, { onError: (error) => storeErrors.push(error), onRefused: () => undefined, now: () => T0, commitIntervalMs: 60_000 });
  const started: string[] = [];
  /** What the store held of each run when it started (read at that moment). */
  const storedAtStart: Promise<RunRecord | undefined>[] = [];
  const shrank: string[] = [];
  const dropped = new Set<Attempt>();
  const flags = { stopping: false };
  const queue = new DispatchQueue(journal, timers, limits, {
    start(attempt) {
      attempt.state = 'running';
      started.push(attempt.run.id);
      storedAtStart.push(store.getRun(attempt.run.id));
    },
    holds: (attempt) => !dropped.has(attempt),
    stopping: () => flags.stopping,
    queueShrank(runtime) {
      runtime.followupDeferred = false;
      shrank.push(runtime.config.id);
    },
    changed: () => undefined,
  });
  /** An instance of this many slots of its own, in the queue's rotation. */
  const instance = (id: string, concurrency: number): InstanceRuntime => {
    const runtime = {
      config: { id, job: 'collector', params: {}, enabled: true, schedule: '* * * * *', concurrency },
      batchQueue: new Deque<Attempt>(),
      continuousQueue: new Deque<Attempt>(),
      batchRunning: 0,
      batchQueued: 0,
      followupDeferred: false,
    } as InstanceRuntime;
    queue.addInstance(runtime);
    return runtime;
  };
  /** An attempt of `runtime` holding a real lease on its own signature, its run not yet written. */
  const attempt = async (runtime: InstanceRuntime, id: string, kind: TaskKind = 'batch'): Promise<Attempt> => {
    const signature = `${runtime.config.id}/fetch/${id}`;
    const [grant] = await store.acquireLeases([{ signature, owner: 'runner-1', ttlMs: 60_000, runId: id, instanceId: runtime.config.id, task: 'fetch' }], T0);
    if (!grant?.granted) throw new Error(`expected a grant for ${signature}`);
    return {
      planned: { kind, signature } as PlannedTask,
      instance: runtime,
      run: makeRun(id, { instanceId: runtime.config.id, signature, kind, fencingToken: grant.lease.token }),
      lease: refOf(grant.lease),
      state: 'backoff',
      timers: [],
      logLines: 0,
      lastRenewal: T0,
      wanted: false,
      lastCheckpoint: undefined,
      restarts: 0,
      restartDue: false,
      lost: false,
    };
  };
  /** Attempts `ids` of `runtime`, enqueued in order. */
  const enqueue = async (runtime: InstanceRuntime, ids: string[], kind: TaskKind = 'batch'): Promise<Attempt[]> => {
    const attempts: Attempt[] = [];
    for (const id of ids) attempts.push(await attempt(runtime, id, kind));
    for (const a of attempts) queue.enqueue(a);
    return attempts;
  };
  return { store, journal, queue, started, storedAtStart, shrank, dropped, flags, storeErrors, instance, attempt, enqueue };
}

describe('dispatch queue', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('starts an attempt only once its run is in the store, committing it without waiting for the group-commit interval', async () => {
    const { queue, store, started, storedAtStart, instance, enqueue } = setup({ concurrency: 2, maxContinuous: 1 });
    const a = instance('a', 2);

    await enqueue(a, ['a1']);
    queue.pump();
    expect(started).toEqual([]);
    expect(await store.getRun('a1')).toBeUndefined();
    await turn();

    expect(started).toEqual(['a1']);
    expect((await Promise.all(storedAtStart)).map((run) => run?.status)).toEqual(['queued']);
  });

  it('commits the queued runs of a whole plan in one store commit', async () => {
    const { store, started, instance, enqueue } = setup({ concurrency: 5, maxContinuous: 1 });
    let commits = 0;
    const commit = store.commit.bind(store);
    store.commit = (batch) => {
      commits += 1;
      return commit(batch);
    };

    await enqueue(instance('a', 5), ['a1', 'a2', 'a3']);
    await turn();

    expect([...started].sort()).toEqual(['a1', 'a2', 'a3']);
    expect(commits).toBe(1);
  });

  it('lets an attempt whose run is already recorded join its queue at once', async () => {
    const { queue, started, instance, attempt } = setup({ concurrency: 2, maxContinuous: 1 });
    const a1 = await attempt(instance('a', 2), 'a1');
    a1.recorded = a1.run.id;

    queue.enqueue(a1);
    queue.pump();

    expect(started).toEqual(['a1']);
  });

  it('keeps to the global and per-instance limits, counting what runs and waits, and a freed slot starts the next attempt', async () => {
    const { queue, started, instance, enqueue } = setup({ concurrency: 3, maxContinuous: 1 });
    const a = instance('a', 1);
    const b = instance('b', 5);
    const [a1, a2] = await enqueue(a, ['a1', 'a2', 'a3']);
    const [b1] = await enqueue(b, ['b1', 'b2', 'b3']);
    await turn();

    expect([...started].sort()).toEqual(['a1', 'b1', 'b2']);
    expect([queue.batchRunning, a.batchRunning, b.batchRunning]).toEqual([3, 1, 2]);
    expect([queue.queued, a.batchQueued, b.batchQueued]).toEqual([3, 2, 1]);
    expect(queue.hasSlotFor(a2 as Attempt)).toBe(false);

    // b's slot goes to b3: a is still at its own cap.
    queue.vacate(b1 as Attempt);
    queue.pump();
    expect(started.slice(3)).toEqual(['b3']);

    queue.vacate(a1 as Attempt);
    queue.pump();
    expect(started.slice(4)).toEqual(['a2']);
    expect([queue.batchRunning, queue.queued, a.batchQueued, b.batchQueued]).toEqual([3, 1, 1, 0]);
  });

  it('takes instances in turn, so one instance’s backlog does not hold the others back', async () => {
    const { queue, started, instance, enqueue } = setup({ concurrency: 2, maxContinuous: 1 });
    const a = instance('a', 5);
    const b = instance('b', 5);
    const attempts = [...(await enqueue(a, ['a1', 'a2', 'a3'])), ...(await enqueue(b, ['b1', 'b2', 'b3']))];
    await turn();

    expect(started.map((id) => id[0]).sort()).toEqual(['a', 'b']);

    for (const id of started) queue.vacate(attempts.find((x) => x.run.id === id) as Attempt);
    queue.pump();
    expect(started.slice(2).map((id) => id[0]).sort()).toEqual(['a', 'b']);
  });

  it('never starts an attempt that left the queue, or that the runner dropped, while its run was committed', async () => {
    const { queue, started, dropped, instance, enqueue } = setup({ concurrency: 5, maxContinuous: 1 });
    const a = instance('a', 5);
    const [a1, a2] = await enqueue(a, ['a1', 'a2', 'a3']);
    (a1 as Attempt).state = 'abandoned';
    queue.leave(a1 as Attempt);
    dropped.add(a2 as Attempt);
    await turn();
    queue.pump();

    expect(started).toEqual(['a3']);
  });

  it('skips an attempt that left the queue while it waited for a slot', async () => {
    const { queue, started, instance, enqueue } = setup({ concurrency: 1, maxContinuous: 1 });
    const a = instance('a', 1);
    const [a1, a2] = await enqueue(a, ['a1', 'a2', 'a3']);
    await turn();
    expect(started).toEqual(['a1']);

    (a2 as Attempt).state = 'abandoned';
    queue.leave(a2 as Attempt);
    queue.vacate(a1 as Attempt);
    queue.pump();

    expect(started).toEqual(['a1', 'a3']);
    expect([queue.queued, a.batchQueued]).toEqual([0, 0]);
  });

  it('tells the runner once a deferred instance’s batch queue is down to one round of its slots', async () => {
    const { queue, shrank, instance, enqueue } = setup({ concurrency: 1, maxContinuous: 1 });
    const a = instance('a', 1);
    const [a1, a2] = await enqueue(a, ['a1', 'a2', 'a3']);
    a.followupDeferred = true;
    await turn();
    // a1 started: two still wait, more than the one slot a has.
    expect(shrank).toEqual([]);

    queue.vacate(a1 as Attempt);
    queue.pump();
    expect(shrank).toEqual(['a']);

    // No follow-up is deferred any more: nothing to tell.
    queue.vacate(a2 as Attempt);
    queue.pump();
    expect(shrank).toEqual(['a']);
  });

  it('limits continuous attempts by their own slots, apart from the batch slots', async () => {
    const { queue, started, instance, enqueue } = setup({ concurrency: 1, maxContinuous: 2 });
    const a = instance('a', 5);
    const [c1] = await enqueue(a, ['c1', 'c2', 'c3'], 'continuous');
    await enqueue(a, ['b1', 'b2']);
    await turn();

    expect([...started].sort()).toEqual(['b1', 'c1', 'c2']);
    expect([queue.continuousRunning, queue.batchRunning, queue.queued, a.batchQueued]).toEqual([2, 1, 2, 1]);

    queue.vacate(c1 as Attempt);
    queue.pump();
    expect(started.slice(3)).toEqual(['c3']);
  });

  it('starts nothing while the runner is stopping', async () => {
    const { queue, started, flags, instance, enqueue } = setup({ concurrency: 2, maxContinuous: 2 });
    const a = instance('a', 2);
    flags.stopping = true;
    await enqueue(a, ['a1']);
    await enqueue(a, ['c1'], 'continuous');
    await turn();
    queue.pump();
    expect(started).toEqual([]);

    flags.stopping = false;
    queue.pump();
    expect([...started].sort()).toEqual(['a1', 'c1']);
  });

  it('offers runs the store failed to take again later, starting nothing until they are in', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const timers = heldTimers();
    const { store, queue, started, storedAtStart, storeErrors, instance, enqueue } = setup({ concurrency: 2, maxContinuous: 1 }, timers);
    const commit = store.commit.bind(store);
    let failures = 1;
    store.commit = (batch) => (failures-- > 0 ? Promise.reject(new Error('database is locked')) : commit(batch));

    await enqueue(instance('a', 2), ['a1']);
    await turn();
    queue.pump();
    expect(started).toEqual([]);
    expect(storeErrors).toHaveLength(1);
    expect(timers.due).toHaveLength(1);

    timers.due[0]?.();
    await turn();
    expect(started).toEqual(['a1']);
    expect((await Promise.all(storedAtStart)).map((run) => run?.status)).toEqual(['queued']);
  });
});
