/**
 * The attempt lifecycle alone, over a real memory store (each attempt's lease really taken), a
 * real journal, dispatch queue, lease keeper and inline executor. The rest of the runner is a
 * small host that records what the lifecycle asks of it; the clock and its timers are the test's,
 * so backoffs, timeouts and grace periods pass only when a test moves the clock. What each test
 * checks is read back from the store: runs, leases, log lines.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MemoryStore } from '../../../core/adapters/memory/store.js';
import { newInstanceRuntime, newRun, refOf, type Attempt } from '../../../core/engine/attempt.js';
import { DispatchQueue } from '../../../core/engine/dispatch.js';
import { InlineExecutor } from '../../../core/engine/executor.js';
import { Journal } from '../../../core/engine/journal.js';
import { LeaseKeeper } from '../../../core/engine/lease-keeper.js';
import { AttemptLifecycle, type LifecycleHost } from '../../../core/engine/lifecycle.js';
import type { PlannedTask } from '../../../core/engine/planner.js';
import type { RunnerEvents, RunnerStats } from '../../../core/engine/runner-events.js';
import { CancelledError, LeaseLostError, NonRetryableError, TaskTimeoutError } from '../../../core/errors.js';
import type { LeaseRef } from '../../../core/ports/store.js';
import type { TimerHandle, Timers } from '../../../core/ports/timers.js';
import { mergeRetry } from '../../../core/retry.js';
import { canonicalJson, defaultSignature } from '../../../core/signature.js';
import { MemoryObjectStore } from '../../../core/testing/objects.js';
import type { ErrorInfo, RetryPolicy, RunStatus, TaskContext, TaskDefinition } from '../../../core/types.js';
import { T0 } from '../../helpers/records.js';

const OWNER = 'runner-1';
const TTL = 60_000;
const GRACE_MS = 5_000;
const MAX_RESULT_BYTES = 1_000;
/** With jitter 0.2 and random() = 0.5: a 1,000 ms step waits 900 ms, a 2,000 ms step 1,800 ms. */
const RETRY: Partial<RetryPolicy> = { attempts: 3, backoffMs: 1_000, factor: 2, jitter: 0.2 };
const RESTART: RetryPolicy = mergeRetry({ attempts: Number.MAX_SAFE_INTEGER, backoffMs: 2_000, jitter: 0.2 });

/** One turn of the event loop. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A promise the test settles: a handler or a revert that waits for it stays in progress. */
function gate() {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** Settles with the reason the signal is aborted with (a handler that honours its signal). */
function untilAborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
}

interface VirtualTimer {
  at: number;
  ms: number;
  callback: () => void;
}

/** A clock and timers the test moves: `advance` fires, in order, the timers that fall due. */
function virtualClock(start: number) {
  let now = start;
  const pending = new Set<VirtualTimer>();
  const timers: Timers = {
    setTimeout(callback, ms): TimerHandle {
      const timer: VirtualTimer = { at: now + ms, ms, callback };
      pending.add(timer);
      return {
        refresh: () => {
          timer.at = now + ms;
          pending.add(timer);
        },
        unref: () => undefined,
        cancel: () => {
          pending.delete(timer);
        },
      };
    },
    setInterval: () => {
      throw new Error('the attempt lifecycle starts no interval timers');
    },
  };
  return {
    timers,
    now: () => now,
    /** Moves the clock on by `ms`, firing each timer due by then at its own time. */
    advance(ms: number): void {
      const until = now + ms;
      for (;;) {
        const due = [...pending].filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        pending.delete(due);
        now = due.at;
        due.callback();
      }
      now = until;
    },
    /** The delays of the timers still pending. */
    pending: () => [...pending].map((t) => t.ms),
  };
}

function zeroCounters(): Omit<RunnerStats, 'queued' | 'running' | 'continuous'> {
  return { backoff: 0, succeeded: 0, failed: 0, skipped: 0, interrupted: 0, cancelled: 0, retried: 0, rateLimited: 0, deduplicated: 0, takenOver: 0, planErrors: 0 };
}

function setup(options: { concurrency?: number } = {}) {
  const clock = virtualClock(T0);
  const store = new MemoryStore();
  const objects = new MemoryObjectStore({}, clock.now);
  const held = new Map<string, Attempt>();
  const counters = zeroCounters();
  const storeErrors: unknown[] = [];
  /** Fences whose writes the store refused. */
  const refused: LeaseRef[] = [];
  /** What the lifecycle asked of the rest of the runner. */
  const asked = { followUps: [] as string[], plans: [] as string[], idleChecks: 0 };
  const warnings: string[] = [];
  const events = new EventEmitter<RunnerEvents>();
  /** Run statuses as the lifecycle announced them, `<run id> <status>`. */
  const announced: string[] = [];
  events.on('run', (run) => announced.push(`${run.id} ${run.status}`));

  // The journal, the queue and the keeper call into the lifecycle, built last (as the runner does).
  const journal = new Journal(store, {
    onError: (error) => storeErrors.push(error),
    onRefused: (refs) => {
      refused.push(...refs);
      lifecycle.writesRefused(refs);
    },
    now: clock.now,
  });
  const dispatch = new DispatchQueue(
    journal,
    clock.timers,
    { concurrency: 8, maxContinuous: 2 },
    {
      start: (attempt) => lifecycle.start(attempt),
      holds: (attempt) => held.get(attempt.planned.signature) === attempt,
      stopping: () => false,
      queueShrank: () => undefined,
      changed: () => undefined,
    },
  );
  const leases = new LeaseKeeper(store, TTL, clock.now, {
    held: () => held.values(),
    lost: (attempt) => lifecycle.leaseLost(attempt),
    storeError: (error) => storeErrors.push(error),
  });
  const inline = new InlineExecutor(objects);
  let ids = 0;
  const host: LifecycleHost = {
    journal,
    dispatch,
    leases,
    timers: clock.timers,
    log: { debug: () => undefined, info: () => undefined, warn: (message) => warnings.push(message), error: () => undefined },
    objects,
    inline,
    // Child processes are not this test's subject: the inline executor stands in for them.
    processExecutor: inline,
    limits: store.limits,
    owner: OWNER,
    options: { graceMs: GRACE_MS, maxLogLinesPerRun: 100, maxResultBytes: MAX_RESULT_BYTES },
    continuousRestart: RESTART,
    held,
    counters,
    emit: (event, ...args) => events.emit(event, ...args),
    now: clock.now,
    nextId: () => `run-${(ids += 1)}`,
    random: () => 0.5,
    stopping: () => false,
    followUp: (runtime) => asked.followUps.push(runtime.config.id),
    requestPlan: (runtime, reason) => asked.plans.push(`${runtime.config.id} ${reason}`),
    // As the runner does: soon, not inside the call that asked.
    schedulePump: () => queueMicrotask(() => dispatch.pump()),
    checkIdle: () => {
      asked.idleChecks += 1;
    },
  };
  const lifecycle = new AttemptLifecycle(host);

  const runtime = newInstanceRuntime(
    { id: 'collector-a', job: 'collector', params: {}, enabled: true, schedule: 'rate(1 hour)', concurrency: options.concurrency ?? 4 },
    { name: 'collector', params: z.object({}), getRunnableTasks: () => [], tasks: {} },
    T0,
  );
  dispatch.addInstance(runtime);

  /** The planned task `fetch` of page `page` (its own signature), run by `definition`. */
  const task = (definition: TaskDefinition, page = 1): PlannedTask => {
    const input = { page };
    const kind = definition.kind ?? 'batch';
    return {
      task: 'fetch',
      definition,
      input,
      kind,
      signature: defaultSignature(runtime.config.id, 'fetch', canonicalJson(input)),
      timeoutMs: definition.timeoutMs,
      timeoutSet: definition.timeoutMs !== undefined,
      retry: mergeRetry(RETRY, definition.retry),
      isolate: kind === 'continuous',
      limitRequests: [],
    };
  };

  /** Admits `planned` as the plan loop does: leases its signature, holds it and queues its first run. */
  const admit = async (planned: PlannedTask): Promise<Attempt> => {
    const runId = host.nextId();
    const [grant] = await store.acquireLeases(
      [{ signature: planned.signature, owner: OWNER, ttlMs: TTL, runId, instanceId: runtime.config.id, task: planned.task }],
      clock.now(),
    );
    if (!grant?.granted) throw new Error(`expected a grant for ${planned.signature}`);
    const attempt: Attempt = {
      planned,
      instance: runtime,
      run: newRun(runtime, planned, { id: runId, attempt: 1, origin: 'schedule', token: grant.lease.token, runner: OWNER, queuedAt: clock.now() }),
      lease: refOf(grant.lease),
      state: 'queued',
      timers: [],
      logLines: 0,
      lastRenewal: clock.now(),
      wanted: true,
      lastCheckpoint: grant.checkpoint?.value,
      restarts: 0,
      restartDue: false,
      lost: false,
    };
    held.set(planned.signature, attempt);
    if (planned.kind === 'continuous') runtime.continuousHeld.set(planned.signature, attempt);
    dispatch.enqueue(attempt);
    return attempt;
  };

  /** Lets queued commits, and what they set off (starts, handler endings, releases), run their course. */
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 4; i += 1) {
      await journal.flush();
      await turn();
    }
  };

  const runOf = async (id: string) => {
    const run = await store.getRun(id);
    if (!run) throw new Error(`run ${id} is not in the store`);
    return run;
  };
  const statusOf = async (id: string): Promise<RunStatus | undefined> => (await store.getRun(id))?.status;
  const leaseOwner = async (signature: string) => (await store.getLease(signature))?.owner;
  const logsOf = async (runId: string) => (await store.getLogs(runId)).map((line) => `${line.level} ${line.message}`);

  return { clock, store, objects, journal, dispatch, leases, lifecycle, held, counters, storeErrors, refused, asked, warnings, announced, runtime, task, admit, settle, runOf, statusOf, leaseOwner, logsOf };
}

describe('attempt lifecycle', () => {
  it('runs a queued attempt to succeeded, stores its result, then releases its lease and lets the signature go', async () => {
    const h = setup();
    const proceed = gate();
    const seenAtStart: Promise<RunStatus | undefined>[] = [];
    const planned = h.task({
      async run(input: { page: number }, tctx: TaskContext) {
        seenAtStart.push(h.statusOf(tctx.runId));
        await proceed.opened;
        return { page: input.page, rows: 3 };
      },
    });

    const attempt = await h.admit(planned);
    await h.settle();
    const whileRunning = { status: await h.statusOf('run-1'), owner: await h.leaseOwner(planned.signature) };
    proceed.open();
    await h.settle();

    expect(await Promise.all(seenAtStart)).toEqual(['queued']);
    expect(whileRunning).toEqual({ status: 'running', owner: OWNER });
    const run = await h.runOf('run-1');
    expect([run.status, run.result, run.startedAt, run.endedAt]).toEqual(['succeeded', { page: 1, rows: 3 }, T0, T0]);
    expect(await h.leaseOwner(planned.signature)).toBeNull();
    expect(h.refused).toEqual([]);
    expect(h.held.has(planned.signature)).toBe(false);
    expect(attempt.state).toBe('abandoned');
    expect(h.asked.followUps).toEqual(['collector-a']);
    expect(h.runtime.finishedSinceTick.has(planned.signature)).toBe(true);
    expect([h.counters.succeeded, h.dispatch.batchRunning, h.runtime.batchRunning]).toEqual([1, 0, 0]);
    expect(h.announced).toEqual(['run-1 running', 'run-1 succeeded']);
    expect(h.clock.pending()).toEqual([]);
  });

  it('retries a retryable failure after its backoff as a new run linked to the failed one, holding the lease throughout', async () => {
    const h = setup();
    const attempts: number[] = [];
    const planned = h.task({
      run(_input: unknown, tctx: TaskContext) {
        attempts.push(tctx.attempt);
        if (tctx.attempt === 1) throw new Error('HTTP 503 from the API');
        return { rows: 3 };
      },
    });
    const attempt = await h.admit(planned);
    const token = attempt.lease.token;

    await h.settle();

    const failed = await h.runOf('run-1');
    expect([failed.status, failed.error?.message, failed.nextRunId]).toEqual(['failed', 'HTTP 503 from the API', 'run-2']);
    const next = await h.runOf('run-2');
    expect([next.status, next.attempt, next.previousRunId, next.origin, next.fencingToken]).toEqual(['retrying', 2, 'run-1', 'retry', token]);
    expect(await h.logsOf('run-1')).toEqual(['warn attempt 1 of 3 failed: Error: HTTP 503 from the API; retrying in 900 ms as run run-2']);
    expect(await h.store.getLease(planned.signature)).toMatchObject({ owner: OWNER, token });
    expect(h.held.get(planned.signature)).toBe(attempt);
    expect([h.counters.retried, h.counters.backoff, h.counters.failed]).toEqual([1, 1, 0]);
    expect(h.asked.followUps).toEqual([]);
    expect(h.clock.pending()).toEqual([900]);

    h.clock.advance(899);
    await h.settle();
    expect(attempts).toEqual([1]);
    h.clock.advance(1);
    await h.settle();

    expect(attempts).toEqual([1, 2]);
    const retried = await h.runOf('run-2');
    expect([retried.status, retried.result, retried.startedAt]).toEqual(['succeeded', { rows: 3 }, T0 + 900]);
    expect(await h.statusOf('run-1')).toBe('failed');
    expect(await h.leaseOwner(planned.signature)).toBeNull();
    expect(h.held.has(planned.signature)).toBe(false);
    expect([h.counters.retried, h.counters.backoff, h.counters.succeeded, h.counters.failed]).toEqual([1, 0, 1, 0]);
  });

  it('reverts once with the error after the last attempt failed, logs it, and only then releases the lease', async () => {
    const h = setup();
    const reverting = gate();
    const reverts: { input: unknown; error: ErrorInfo }[] = [];
    const planned = h.task({
      retry: { attempts: 1 },
      run() {
        throw new Error('the export was half written');
      },
      async revert(input: unknown, error: ErrorInfo, rctx) {
        reverts.push({ input, error });
        rctx.log.info('deleted the partial export');
        await reverting.opened;
      },
    });

    await h.admit(planned);
    await h.settle();

    expect(await h.statusOf('run-1')).toBe('failed');
    expect(reverts.map((r) => [r.input, r.error.name, r.error.message])).toEqual([[{ page: 1 }, 'Error', 'the export was half written']]);
    expect(await h.leaseOwner(planned.signature)).toBe(OWNER);
    expect(h.held.has(planned.signature)).toBe(true);

    reverting.open();
    await h.settle();

    expect(reverts).toHaveLength(1);
    expect(await h.logsOf('run-1')).toEqual(['info deleted the partial export', 'info reverted after the last attempt failed']);
    expect(await h.leaseOwner(planned.signature)).toBeNull();
    expect(h.refused).toEqual([]);
    expect(h.held.has(planned.signature)).toBe(false);
    expect([h.counters.failed, h.counters.retried]).toEqual([1, 0]);
    expect(h.clock.pending()).toEqual([]);
  });

  it('records a result over maxResultBytes as a failure naming its size, and does not retry it', async () => {
    const h = setup();
    let calls = 0;
    // 2,000 characters: 2,002 bytes of JSON with the quotes.
    const planned = h.task({
      run() {
        calls += 1;
        return 'x'.repeat(2_000);
      },
    });

    await h.admit(planned);
    await h.settle();

    const run = await h.runOf('run-1');
    expect(run.status).toBe('failed');
    expect(run.result).toBeUndefined();
    expect(run.nextRunId).toBeUndefined();
    expect(run.error?.name).toBe('ResultTooLargeError');
    expect(run.error?.message).toContain(`the result is 2002 bytes, over the ${MAX_RESULT_BYTES}-byte cap`);
    expect(calls).toBe(1);
    expect(await h.store.getRun('run-2')).toBeUndefined();
    expect(await h.leaseOwner(planned.signature)).toBeNull();
    expect([h.counters.failed, h.counters.retried]).toEqual([1, 0]);
  });

  it('cancels a queued attempt without ever running its handler', async () => {
    const h = setup({ concurrency: 1 });
    const first = gate();
    const ran: number[] = [];
    const definition: TaskDefinition = {
      async run(input: { page: number }) {
        ran.push(input.page);
        if (input.page === 1) await first.opened;
      },
    };
    await h.admit(h.task(definition, 1));
    const waiting = await h.admit(h.task(definition, 2));
    await h.settle();
    expect([ran, waiting.state, await h.statusOf('run-2')]).toEqual([[1], 'queued', 'queued']);

    h.lifecycle.cancel(waiting, 'the job no longer returns it');
    first.open();
    await h.settle();

    expect(ran).toEqual([1]);
    const cancelled = await h.runOf('run-2');
    expect([cancelled.status, cancelled.error?.name, cancelled.error?.message, cancelled.startedAt]).toEqual([
      'cancelled',
      'CancelledError',
      'the job no longer returns it',
      undefined,
    ]);
    expect(await h.statusOf('run-1')).toBe('succeeded');
    expect(await h.leaseOwner(waiting.planned.signature)).toBeNull();
    expect(h.held.size).toBe(0);
    expect([h.dispatch.queued, h.runtime.batchQueued, h.dispatch.batchRunning]).toEqual([0, 0, 0]);
    expect([h.counters.cancelled, h.counters.succeeded]).toEqual([1, 1]);
  });

  it('cancels a running attempt through its AbortSignal and records it cancelled', async () => {
    const h = setup();
    const reasons: unknown[] = [];
    const planned = h.task({
      async run(_input: unknown, tctx: TaskContext) {
        const reason = await untilAborted(tctx.signal);
        reasons.push(reason);
        throw reason;
      },
    });
    const attempt = await h.admit(planned);
    await h.settle();
    expect(await h.statusOf('run-1')).toBe('running');

    h.lifecycle.cancel(attempt, 'instance "collector-a" was disabled');
    await h.settle();

    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(CancelledError);
    const run = await h.runOf('run-1');
    expect([run.status, run.error?.name, run.error?.message]).toEqual(['cancelled', 'CancelledError', 'instance "collector-a" was disabled']);
    expect(run.nextRunId).toBeUndefined();
    expect(await h.leaseOwner(planned.signature)).toBeNull();
    expect(h.held.has(planned.signature)).toBe(false);
    expect([h.counters.cancelled, h.counters.retried]).toEqual([1, 0]);
    // The grace timer started with the abort went with the attempt.
    expect(h.clock.pending()).toEqual([]);
  });

  it('aborts a handler when its timeout falls due and records the run failed with the TaskTimeoutError', async () => {
    const h = setup();
    const reasons: unknown[] = [];
    const planned = h.task({
      timeoutMs: 5_000,
      retry: { attempts: 1 },
      async run(_input: unknown, tctx: TaskContext) {
        const reason = await untilAborted(tctx.signal);
        reasons.push(reason);
        throw reason;
      },
    });
    await h.admit(planned);
    await h.settle();

    h.clock.advance(4_999);
    await h.settle();
    expect([reasons, await h.statusOf('run-1')]).toEqual([[], 'running']);
    h.clock.advance(1);
    await h.settle();

    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(TaskTimeoutError);
    const run = await h.runOf('run-1');
    expect([run.status, run.error?.name, run.endedAt]).toEqual(['failed', 'TaskTimeoutError', T0 + 5_000]);
    expect(run.error?.message).toContain('task timed out after 5000 ms');
    expect(await h.leaseOwner(planned.signature)).toBeNull();
    expect(h.counters.failed).toBe(1);
    expect(h.clock.pending()).toEqual([]);
  });

  it('stops a running attempt whose lease renewal is refused, and nothing it writes afterwards lands', async () => {
    const h = setup();
    const reasons: unknown[] = [];
    const writeErrors: unknown[] = [];
    const planned = h.task({
      async run(_input: unknown, tctx: TaskContext) {
        tctx.log.info('page 1 fetched');
        const reason = await untilAborted(tctx.signal);
        reasons.push(reason);
        // A handler that does not give up at once: it still logs, reports progress, writes an object, returns.
        tctx.log.info('writing what was fetched');
        tctx.progress(1, 1);
        await tctx.objects.put('collected/page-1.json', '{"rows":3}').catch((error: unknown) => writeErrors.push(error));
        return { rows: 3 };
      },
    });
    const attempt = await h.admit(planned);
    await h.settle();
    expect(await h.logsOf('run-1')).toEqual(['info page 1 fetched']);

    // This runner missed its renewals: the lease expired and another runner took it over.
    h.clock.advance(TTL);
    const [takeover] = await h.store.acquireLeases(
      [{ signature: planned.signature, owner: 'runner-2', ttlMs: TTL, runId: 'other-1', instanceId: 'collector-a', task: 'fetch' }],
      h.clock.now(),
    );
    expect(takeover?.granted).toBe(true);
    h.leases.renewAll();
    await h.settle();

    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(LeaseLostError);
    expect(writeErrors).toHaveLength(1);
    expect(writeErrors[0]).toBeInstanceOf(LeaseLostError);
    expect(await h.objects.get('collected/page-1.json')).toBeUndefined();
    // The run stays as the new holder found it: this runner's final record was refused by the fence.
    const run = await h.runOf('run-1');
    expect([run.status, run.result, run.progress, run.endedAt]).toEqual(['running', undefined, undefined, undefined]);
    expect(await h.logsOf('run-1')).toEqual(['info page 1 fetched']);
    expect(h.refused.map((ref) => [ref.signature, ref.owner, ref.token])).toContainEqual([planned.signature, OWNER, attempt.lease.token]);
    expect(await h.store.getLease(planned.signature)).toMatchObject({ owner: 'runner-2', token: attempt.lease.token + 1 });
    expect(attempt.state).toBe('abandoned');
    expect(h.held.has(planned.signature)).toBe(false);
    expect([h.counters.interrupted, h.counters.succeeded]).toEqual([1, 0]);
    expect(h.warnings.some((line) => line.includes('was lost'))).toBe(true);
  });

  it('stops a running attempt when the store refuses its writes, leaving the run as the new holder recorded it', async () => {
    const h = setup();
    const proceed = gate();
    const reasons: unknown[] = [];
    const planned = h.task({
      async run(_input: unknown, tctx: TaskContext) {
        const aborted = untilAborted(tctx.signal);
        await proceed.opened;
        // Its first write since the takeover: refused by the store.
        tctx.log.info('page 2 fetched');
        const reason = await aborted;
        reasons.push(reason);
        tctx.log.info('after the abort');
        throw reason;
      },
    });
    const attempt = await h.admit(planned);
    await h.settle();

    h.clock.advance(TTL);
    const [takeover] = await h.store.acquireLeases(
      [{ signature: planned.signature, owner: 'runner-2', ttlMs: TTL, runId: 'other-1', instanceId: 'collector-a', task: 'fetch' }],
      h.clock.now(),
    );
    if (!takeover?.granted) throw new Error('expected runner-2 to take the lease over');
    // The new holder ends the run it found, as the plan loop does after a takeover.
    const found = await h.runOf('run-1');
    const interrupted = { ...found, status: 'interrupted' as const, endedAt: h.clock.now(), error: { name: 'LeaseExpiredError', message: 'runner-1 stopped renewing its lease' } };
    await h.store.commit({ fenced: [{ fence: refOf(takeover.lease), runs: [interrupted] }], at: h.clock.now() });
    proceed.open();
    await h.settle();

    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(LeaseLostError);
    expect(h.refused.map((ref) => [ref.signature, ref.owner, ref.token])).toContainEqual([planned.signature, OWNER, attempt.lease.token]);
    expect(await h.runOf('run-1')).toEqual(interrupted);
    expect(await h.logsOf('run-1')).toEqual([]);
    expect(await h.store.getLease(planned.signature)).toMatchObject({ owner: 'runner-2', token: takeover.lease.token });
    expect(h.held.has(planned.signature)).toBe(false);
    expect(h.counters.interrupted).toBe(1);
    expect(h.clock.pending()).toEqual([]);
  });

  describe('a continuous task that fails', () => {
    /** A continuous task whose first start fails at once and whose later starts run until aborted. */
    function flaky(h: ReturnType<typeof setup>) {
      const starts: { attempt: number; runId: string }[] = [];
      const planned = h.task({
        kind: 'continuous',
        async run(_input: unknown, tctx: TaskContext) {
          starts.push({ attempt: tctx.attempt, runId: tctx.runId });
          if (tctx.attempt === 1) throw new Error('socket closed');
          throw await untilAborted(tctx.signal);
        },
      });
      return { planned, starts };
    }

    it('asks its job at once and restarts it after the backoff once the job wants it again', async () => {
      const h = setup();
      const { planned, starts } = flaky(h);
      const attempt = await h.admit(planned);
      await h.settle();

      const failed = await h.runOf('run-1');
      expect([failed.status, failed.error?.message, failed.nextRunId]).toEqual(['failed', 'socket closed', undefined]);
      expect(h.asked.plans).toEqual(['collector-a restart']);
      expect(await h.leaseOwner(planned.signature)).toBe(OWNER);
      expect([attempt.state, attempt.wanted, h.counters.backoff, h.counters.failed]).toEqual(['backoff', false, 1, 1]);
      expect(h.clock.pending()).toEqual([1_800]);

      // The job returned the task again (the plan loop marks it wanted).
      attempt.wanted = true;
      h.clock.advance(1_800);
      await h.settle();

      expect(starts).toEqual([
        { attempt: 1, runId: 'run-1' },
        { attempt: 2, runId: 'run-2' },
      ]);
      const restarted = await h.runOf('run-2');
      expect([restarted.status, restarted.origin, restarted.previousRunId, restarted.startedAt]).toEqual(['running', 'restart', 'run-1', T0 + 1_800]);
      expect(h.counters.backoff).toBe(0);

      h.lifecycle.cancel(attempt, 'the job no longer returns it');
      await h.settle();
      expect(await h.statusOf('run-2')).toBe('cancelled');
      expect(await h.leaseOwner(planned.signature)).toBeNull();
      expect(h.held.size + h.runtime.continuousHeld.size).toBe(0);
      expect(h.clock.pending()).toEqual([]);
    });

    it('does not restart it when the backoff ends before the job asked for it again', async () => {
      const h = setup();
      const { planned, starts } = flaky(h);
      const attempt = await h.admit(planned);
      await h.settle();

      h.clock.advance(1_800);
      await h.settle();

      expect(starts.map((s) => s.attempt)).toEqual([1]);
      expect([attempt.state, attempt.restartDue, h.counters.backoff]).toEqual(['backoff', true, 0]);
      expect(await h.store.getRun('run-2')).toBeUndefined();
      expect(h.dispatch.queued).toBe(0);
      expect(await h.leaseOwner(planned.signature)).toBe(OWNER);
      expect(h.held.get(planned.signature)).toBe(attempt);
      expect(h.asked.plans).toEqual(['collector-a restart']);
      expect(h.clock.pending()).toEqual([]);
    });
  });

  it('takes a non-retryable failure to failed at once, with attempts left', async () => {
    const h = setup();
    let calls = 0;
    const planned = h.task({
      run() {
        calls += 1;
        throw new NonRetryableError('the account was closed');
      },
    });

    await h.admit(planned);
    await h.settle();

    const run = await h.runOf('run-1');
    expect([run.status, run.error?.name, run.nextRunId, calls]).toEqual(['failed', 'NonRetryableError', undefined, 1]);
    expect(await h.leaseOwner(planned.signature)).toBeNull();
    expect(h.counters.retried).toBe(0);
  });

  it('leaves a failed attempt alone while its revert runs: a cancel neither ends it again nor frees its slot twice', async () => {
    const h = setup();
    const reverting = gate();
    const planned = h.task({
      retry: { attempts: 1 },
      run() {
        throw new Error('the export was half written');
      },
      async revert() {
        await reverting.opened;
      },
    });
    const attempt = await h.admit(planned);
    await h.settle();
    expect([await h.statusOf('run-1'), h.dispatch.batchRunning, h.counters.failed]).toEqual(['failed', 0, 1]);

    // The instance is disabled while the revert still runs, which takes longer than the grace period.
    h.lifecycle.cancel(attempt, 'instance "collector-a" was disabled');
    h.clock.advance(GRACE_MS);
    await h.settle();

    expect([h.dispatch.batchRunning, h.runtime.batchRunning]).toEqual([0, 0]);
    expect([h.counters.failed, h.counters.cancelled]).toEqual([1, 0]);
    expect(attempt.run.status).toBe('failed');
    expect(h.warnings).toEqual([]);

    reverting.open();
    await h.settle();
    expect(await h.leaseOwner(planned.signature)).toBeNull();
    expect(await h.statusOf('run-1')).toBe('failed');
  });
});
