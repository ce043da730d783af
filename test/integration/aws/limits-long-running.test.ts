/**
 * Shared limits (issue 15) for the tasks the worker Lambda does not run, on the emulators:
 * continuous tasks on conductors (which take an entry's limits before they claim it) and long
 * batch tasks on Fargate (whose first attempt's limits the scheduler takes before it starts the
 * container, so that no container is started only to wait). Also what a waiting task says.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Conductor } from '../../../core/cloud/conductor.js';
import { makeSchedulerHandler } from '../../../core/adapters/aws/handlers.js';
import { runLongTask } from '../../../core/cloud/long-task.js';
import { DEFAULT_WORKER_CONFIG } from '../../../core/cloud/worker.js';
import { defineJob } from '../../../core/define.js';
import { waitingFor } from '../../../core/engine/limit-messages.js';
import { RateLimitedError } from '../../../core/errors.js';
import type { JobType } from '../../../core/types.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { pollFor } from '../../helpers/runner.js';

/** One call of a handler, by its own clock. */
interface Call {
  instanceId: string;
  n: number;
  runId: string;
  attempt: number;
  at: number;
  endedAt?: number;
}
const calls: Call[] = [];
/** Tasks (`instance#n`) whose first call answers as an API over its quota would. */
const throttleOnce = new Set<string>();

/** `count` tasks taking the limits the params name: continuous `watch` or batch `export`. */
const quota = defineJob({
  name: 'quota',
  params: z.object({
    count: z.number().int().positive(),
    limits: z.array(z.string()),
    kind: z.enum(['batch', 'continuous']),
    holdMs: z.number().int().nonnegative().default(0),
    timeoutMs: z.number().int().positive().optional(),
  }),
  async getRunnableTasks(ctx) {
    const task = ctx.params.kind === 'batch' ? 'export' : 'watch';
    const specs = [];
    for (let n = 0; n < ctx.params.count; n++) {
      if (await ctx.history.lastSuccess({ task, input: { n } })) continue;
      specs.push({ task, input: { n }, limits: ctx.params.limits, ...(ctx.params.timeoutMs ? { timeoutMs: ctx.params.timeoutMs } : {}) });
    }
    return specs;
  },
  tasks: {
    watch: { kind: 'continuous', input: z.object({ n: z.number() }), run: (input: { n: number }, tctx) => call(input, tctx) },
    export: { input: z.object({ n: z.number() }), run: (input: { n: number }, tctx) => call(input, tctx) },
  },
});
const jobs: JobType[] = [quota];

async function call(input: { n: number }, tctx: { instanceId: string; runId: string; attempt: number; params: { holdMs: number } }) {
  const entry: Call = { instanceId: tctx.instanceId, n: input.n, runId: tctx.runId, attempt: tctx.attempt, at: Date.now() };
  calls.push(entry);
  if (throttleOnce.delete(`${tctx.instanceId}#${input.n}`)) throw new RateLimitedError('the API answered 429', { retryAfterMs: 1500, limit: 'api' });
  if (tctx.params.holdMs > 0) await new Promise((resolve) => setTimeout(resolve, tctx.params.holdMs));
  entry.endedAt = Date.now();
  return { n: input.n };
}

let stack: LocalAwsStack;
const conductors: Conductor[] = [];

beforeEach(async () => {
  calls.length = 0;
  throttleOnce.clear();
  stack = await new LocalAwsStack().create();
});

afterEach(async () => {
  await Promise.all(conductors.splice(0).map((conductor) => conductor.stop()));
  await stack.destroy();
});

function conductor(): Conductor {
  const { conductor: created } = stack.container(jobs, { UJR_CONDUCTOR_POLL_MS: '100', UJR_CONDUCTOR_LEASE_TTL_MS: '3000', UJR_GRACE_MS: '1000' });
  conductors.push(created);
  return created;
}

/** Runs a long task's container on `message`, as ECS would (`sleep`: how it waits; default, it does not). */
function runContainer(message: unknown, sleep: (ms: number) => Promise<void> = () => Promise.resolve()) {
  const container = stack.container(jobs);
  return runLongTask({ ...container, config: { ...DEFAULT_WORKER_CONFIG, safetyMarginMs: 100, graceMs: 100 } }, JSON.stringify(message), 'longtask@test', sleep);
}

/** The calls' [start, end] intervals overlap nowhere. */
function overlapping(list: readonly Call[]): number {
  const sorted = [...list].sort((a, b) => a.at - b.at);
  let overlaps = 0;
  for (let i = 1; i < sorted.length; i++) if ((sorted[i] as Call).at < ((sorted[i - 1] as Call).endedAt ?? Number.POSITIVE_INFINITY)) overlaps += 1;
  return overlaps;
}

describe('shared limits on conductors', () => {
  it('lets two conductors run one continuous task at a time under a concurrency limit of 1 that two instances share; the other waits, saying so, and starts when the first ends', async () => {
    // Prepare: limit export at 1 at once, a continuous task in each of two instances taking it
    await stack.store.putLimits({ export: { concurrency: 1 } });
    await stack.seedInstances([
      { id: 'feed', job: 'quota', params: { count: 1, kind: 'continuous', limits: ['export'], holdMs: 1500 }, schedule: '1h' },
      { id: 'backfill', job: 'quota', params: { count: 1, kind: 'continuous', limits: ['export'], holdMs: 1500 }, schedule: '1h' },
    ]);
    expect((await stack.scheduler(jobs).scheduler.tick()).dispatched.conductor).toBe(2);

    // Act: two conductors, until one task runs and the other's entry says it waits
    conductor().start();
    conductor().start();
    const waiting = await pollFor(async () => (await stack.store.listRoute('conductor')).find((entry) => waitingFor(entry.progress?.message) !== undefined), 10_000, 'an entry saying it waits');

    // Assess: it waits for the bucket, and the first is running; both end, one after the other
    expect(waitingFor(waiting.progress?.message)).toEqual({ name: 'export', key: '' });
    expect(waiting.progress?.message).toContain('every slot is taken');
    expect(waiting.startedAt).toBeUndefined();
    await pollFor(async () => ((await stack.store.listRuns({ status: ['succeeded'], limit: 10 })).length === 2 ? true : undefined), 20_000, 'both tasks to succeed');
    expect(calls).toHaveLength(2);
    expect(new Set(calls.map((c) => c.instanceId))).toEqual(new Set(['feed', 'backfill']));
    expect(overlapping(calls)).toBe(0);
    const [bucket] = await stack.store.limits.listLimitStates(Date.now());
    expect(bucket).toMatchObject({ name: 'export', held: 0, granted: 2 });
    expect(bucket?.refused).toBeGreaterThan(0);
  });

  it('hands a continuous task that throws RateLimitedError back, the same run and attempt, not before the Retry-After, and drains its limit; nothing fails', async () => {
    // Prepare: limit api at 100 per second, one continuous task that gets a 429 on its first call
    await stack.store.putLimits({ api: { rate: 100, per: '1s' } });
    await stack.seedInstances([{ id: 'feed', job: 'quota', params: { count: 1, kind: 'continuous', limits: ['api'] }, schedule: '1h' }]);
    throttleOnce.add('feed#0');
    await stack.scheduler(jobs).scheduler.tick();

    // Act
    conductor().start();
    const run = await pollFor(async () => stack.store.lastRun({ instanceId: 'feed', task: 'watch', status: 'succeeded' }), 15_000, 'the task to succeed');

    // Assess: two calls of one run, the second 1.5 s after the first at the earliest; no failure recorded
    expect(calls).toHaveLength(2);
    const [first, second] = calls as [Call, Call];
    expect(second.runId).toBe(first.runId);
    expect(run.id).toBe(first.runId);
    expect(second.attempt).toBe(1);
    expect(second.at - first.at).toBeGreaterThanOrEqual(1500);
    expect(await stack.store.listRuns({ status: ['failed', 'interrupted'], limit: 10 })).toEqual([]);
    const [bucket] = await stack.store.limits.listLimitStates(Date.now());
    expect(bucket?.throttledMs).toBeGreaterThanOrEqual(1500);
  });

  it('calls off a continuous task waiting for its limit when its instance is switched off, without waiting for the limit', async () => {
    // Prepare: the one slot of limit export held elsewhere for an hour; a continuous task waits for it
    await stack.store.putLimits({ export: { concurrency: 1 } });
    await stack.store.limits.acquireLimits({ holder: 'elsewhere', ttlMs: 3_600_000, limits: [{ name: 'export', key: '', concurrency: 1 }] }, Date.now());
    const entry = { id: 'feed', job: 'quota', params: { count: 1, kind: 'continuous', limits: ['export'] }, schedule: '1h' };
    await stack.seedInstances([entry]);
    const { scheduler } = stack.scheduler(jobs);
    await scheduler.tick();
    const c = conductor();
    await c.pollOnce();
    expect(waitingFor((await stack.store.listRoute('conductor'))[0]?.progress?.message)).toEqual({ name: 'export', key: '' });

    // Act: switched off, the next tick asks it to stop; the conductor's next poll calls it off
    await stack.seedInstances([{ ...entry, enabled: false }]);
    await scheduler.tick();
    await c.pollOnce();

    // Assess: recorded cancelled, never run, off the board
    const run = await pollFor(async () => stack.store.lastRun({ instanceId: 'feed', task: 'watch' }), 5_000, 'the run to be recorded');
    expect(run).toMatchObject({ status: 'cancelled', error: { name: 'CancelledError' } });
    expect(calls).toEqual([]);
    expect(await stack.store.listRoute('conductor')).toEqual([]);
  });
});

describe('shared limits on long tasks (Fargate)', () => {
  it('starts one container at a time under a concurrency limit of 1: the scheduler takes the slot first, the other task waits on the board saying so until a tick finds it free', async () => {
    // Prepare: two long tasks (timeout over the worker's) taking limit export, 1 at once
    await stack.store.putLimits({ export: { concurrency: 1 } });
    await stack.seedInstances([{ id: 'long', job: 'quota', params: { count: 2, kind: 'batch', limits: ['export'], timeoutMs: 3_600_000 }, schedule: '1h' }]);
    const { scheduler } = stack.scheduler(jobs);

    // Act: a tick posts both and starts one container
    const report = await scheduler.tick();

    // Assess: one container, told its limits are held; the other waits and says for what
    expect(report.dispatched.fargate).toBe(2);
    expect(stack.longTasks).toHaveLength(1);
    expect(stack.longTasks[0]?.limitsHeld).toBe(true);
    const entries = await stack.store.listRoute('fargate');
    const waiting = entries.filter((entry) => waitingFor(entry.progress?.message) !== undefined);
    expect(waiting).toHaveLength(1);
    expect(waiting[0]?.runId).not.toBe(stack.longTasks[0]?.runId);
    expect((await stack.store.limits.listLimitStates(Date.now()))[0]).toMatchObject({ held: 1 });

    // Act: a tick while the first holds the slot starts nothing; the first's container runs and gives it back
    await scheduler.tick();
    expect(stack.longTasks).toHaveLength(1);
    const [first] = await runContainer(stack.longTasks[0]);
    expect(first?.status).toBe('succeeded');
    expect((await stack.store.limits.listLimitStates(Date.now()))[0]).toMatchObject({ held: 0 });

    // Act: the next tick starts the waiting one, which runs
    await scheduler.tick();
    expect(stack.longTasks).toHaveLength(2);
    expect(stack.longTasks[1]).toMatchObject({ runId: waiting[0]?.runId, limitsHeld: true });
    const [second] = await runContainer(stack.longTasks[1]);

    // Assess: both ran once, one after the other, and no slot is left held
    expect(second?.status).toBe('succeeded');
    expect(calls.map((c) => c.n).sort()).toEqual([0, 1]);
    expect(overlapping(calls)).toBe(0);
    expect((await stack.store.limits.listLimitStates(Date.now()))[0]).toMatchObject({ held: 0, granted: 2 });
  });

  it('waits in its own container when a rate-limited long task finds its limit still closed, and sends nothing to the worker queue', async () => {
    // Prepare: one token a second; the first call is answered 429 (Retry-After 1.5 s), which drains
    // the bucket, so that after the Retry-After the task waits another second for a token
    await stack.store.putLimits({ api: { rate: 1, per: '1s' } });
    await stack.seedInstances([{ id: 'long', job: 'quota', params: { count: 1, kind: 'batch', limits: ['api'], timeoutMs: 3_600_000 }, schedule: '1h' }]);
    throttleOnce.add('long#0');
    await stack.scheduler(jobs).scheduler.tick();

    const runs = await runContainer(stack.longTasks[0], (ms) => new Promise((resolve) => setTimeout(resolve, ms)));

    // Assess: the same run called twice, the second after the Retry-After and a token; the queue untouched
    expect(runs.map((run) => run.status)).toEqual(['succeeded']);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.runId).toBe(calls[0]?.runId);
    expect((calls[1]?.at ?? 0) - (calls[0]?.at ?? 0)).toBeGreaterThanOrEqual(1500);
    const [bucket] = await stack.store.limits.listLimitStates(Date.now());
    expect(bucket).toMatchObject({ granted: 2 });
    expect(bucket?.refused).toBeGreaterThan(0);
    expect(await stack.queueDepth()).toBe(0);
  });

  it('ends a waiting long task whose instance was switched off, cancelled, and starts no container for it', async () => {
    await stack.store.putLimits({ export: { concurrency: 1 } });
    await stack.seedInstances([{ id: 'long', job: 'quota', params: { count: 2, kind: 'batch', limits: ['export'], timeoutMs: 3_600_000 }, schedule: '1h' }]);
    const { scheduler } = stack.scheduler(jobs);
    await scheduler.tick();
    const waiting = (await stack.store.listRoute('fargate')).find((entry) => waitingFor(entry.progress?.message) !== undefined);

    await stack.seedInstances([{ id: 'long', job: 'quota', enabled: false, params: { count: 2, kind: 'batch', limits: ['export'], timeoutMs: 3_600_000 }, schedule: '1h' }]);
    await scheduler.tick();

    expect(stack.longTasks).toHaveLength(1);
    const run = await stack.store.getRun(waiting?.runId ?? 'none');
    expect(run).toMatchObject({ status: 'cancelled', error: { name: 'CancelledError' } });
    expect(run?.error?.message).toContain('instance "long" was disabled or retired while its task "export" waited for its shared limits');
  });

  it('reports the tasks waiting for each limit in its metrics after a tick, as the page counts them', async () => {
    await stack.store.putLimits({ export: { concurrency: 1 } });
    await stack.seedInstances([{ id: 'long', job: 'quota', params: { count: 3, kind: 'batch', limits: ['export'], timeoutMs: 3_600_000 }, schedule: '1h' }]);

    await makeSchedulerHandler(stack.scheduler(jobs))({});

    expect(stack.longTasks).toHaveLength(1);
    expect(stack.telemetry.limitSamples).toEqual([[expect.objectContaining({ name: 'export', held: 1, waiting: 2 })]]);
  });
});
