/**
 * Shared limits on the AWS runtime's queue route (issue 15), on the emulators: the scheduler
 * resolves each task's buckets into its dispatch message, and the worker takes them before it
 * claims the task. A refused delivery claims nothing and comes back as a new, delayed message; a
 * handler's `RateLimitedError` drains the bucket and hands the same run back to the queue.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { makeWorkerHandler } from '../../../core/adapters/aws/handlers.js';
import { defineJob } from '../../../core/define.js';
import { RateLimitedError } from '../../../core/errors.js';
import type { JobType } from '../../../core/types.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { pollFor, until } from '../../helpers/runner.js';
import { waitingFor } from '../../../core/engine/limit-messages.js';
import { SqsEventSource } from '../../helpers/sqs-event-source.js';
import { emulatorClientConfig } from '../../servers/endpoints.js';

/** What the handlers saw: one line per call, by the handler's own clock. */
interface Start {
  instanceId: string;
  n: number;
  runId: string;
  attempt: number;
  at: number;
  /** When the handler returned (set as it returns). */
  endedAt?: number;
  /** When it called tctx.limits.backoff (just before). */
  backoffAt?: number;
}
const starts: Start[] = [];
/** Tasks whose first call answers as an API over its quota would (429 with a Retry-After). */
const throttleOnce = new Set<string>();

/** `count` `call` tasks, each until it succeeded once, taking limit `api` (or the limits the params name). */
const paced = defineJob({
  name: 'paced',
  params: z.object({
    count: z.number().int().positive(),
    limits: z.array(z.string()).default(['api']),
    kind: z.enum(['batch', 'continuous']).default('batch'),
    /** How long each call takes (holding its limits). */
    holdMs: z.number().int().nonnegative().default(0),
    /** Task 0 calls tctx.limits.backoff('api', this) before it returns. */
    backoffMs: z.number().int().nonnegative().default(0),
    /** The tasks' timeout; above the worker's limit they run on Fargate. */
    timeoutMs: z.number().int().positive().optional(),
  }),
  async getRunnableTasks(ctx) {
    const specs = [];
    for (let n = 0; n < ctx.params.count; n++) {
      if (await ctx.history.lastSuccess({ task: 'call', input: { n } })) continue;
      specs.push({ task: ctx.params.kind === 'batch' ? 'call' : 'watch', input: { n }, limits: ctx.params.limits, ...(ctx.params.timeoutMs ? { timeoutMs: ctx.params.timeoutMs } : {}) });
    }
    return specs;
  },
  tasks: {
    call: {
      input: z.object({ n: z.number() }),
      async run(input: { n: number }, tctx) {
        const start: Start = { instanceId: tctx.instanceId, n: input.n, runId: tctx.runId, attempt: tctx.attempt, at: Date.now() };
        starts.push(start);
        const id = `${tctx.instanceId}#${input.n}`;
        if (throttleOnce.delete(id)) throw new RateLimitedError('the API answered 429', { retryAfterMs: 1500, limit: 'api' });
        if (tctx.params.holdMs > 0) await new Promise((resolve) => setTimeout(resolve, tctx.params.holdMs));
        if (input.n === 0 && tctx.params.backoffMs > 0) {
          start.backoffAt = Date.now();
          await tctx.limits.backoff('api', tctx.params.backoffMs);
        }
        start.endedAt = Date.now();
        return { n: input.n };
      },
    },
    watch: { kind: 'continuous', run: () => Promise.resolve() },
  },
});
const jobs: JobType[] = [paced];

let stack: LocalAwsStack;
const sources: SqsEventSource[] = [];

beforeEach(async () => {
  starts.length = 0;
  throttleOnce.clear();
  stack = await new LocalAwsStack({ maxReceiveCount: 3, visibilityTimeoutSec: 5 }).create();
});

afterEach(async () => {
  await Promise.all(sources.splice(0).map((source) => source.stop()));
  await stack.destroy();
});

/** The worker Lambda on this stack's queue, as Lambda's event source mapping would invoke it. */
function workerSource(): SqsEventSource {
  const { worker, telemetry } = stack.worker(jobs);
  const source = new SqsEventSource({ client: stack.clients.sqs, queueUrl: stack.queueUrl, handler: makeWorkerHandler({ worker, telemetry }), functionTimeoutMs: 60_000 });
  sources.push(source);
  return source;
}

describe('shared limits on the queue route', () => {
  it('never lets 4 concurrent worker invocations start more than 10 tasks in any 1 s window of a 10/s limit two instances share; each runs once and succeeds', async () => {
    // Prepare: limit api at 10 per second (burst 1), two instances of 20 tasks each taking it
    await stack.store.putLimits({ api: { rate: 10, per: '1s' } });
    await stack.seedInstances([
      { id: 'feed', job: 'paced', params: { count: 20 }, schedule: '1h' },
      { id: 'backfill', job: 'paced', params: { count: 20 }, schedule: '1h' },
    ]);
    const report = await stack.scheduler(jobs).scheduler.tick();
    expect(report.dispatched.queue).toBe(40);

    // Act: 4 invocations at once, until all 40 runs succeeded
    const source = workerSource();
    source.start({ concurrency: 4 });
    await until(async () => (await stack.store.listRuns({ status: ['succeeded'], limit: 100 })).length === 40, 60_000);
    await source.stop();

    // Assess: every task started once, on its first attempt, and nothing failed or was retried
    expect(starts).toHaveLength(40);
    expect(new Set(starts.map((s) => `${s.instanceId}#${s.n}`)).size).toBe(40);
    const runs = await stack.store.listRuns({ limit: 100 });
    expect(runs).toHaveLength(40);
    expect(runs.every((run) => run.status === 'succeeded' && run.attempt === 1 && run.previousRunId === undefined)).toBe(true);
    for (const metric of ['failed', 'retried'] as const) expect(stack.telemetry.counted(metric, 'paced')).toBe(0);
    expect(await stack.drainDeadLetters()).toEqual([]);
    // The bucket spaces grants 100 ms apart; a handler starts a claim's write after its grant, so
    // starts may be closer than grants by that jitter, never more. In no window of 1 s less that
    // jitter do more than 10 tasks start, by the handlers' own clocks.
    const JITTER_MS = 50;
    const times = starts.map((s) => s.at).sort((a, b) => a - b);
    const busiest = Math.max(...times.map((t) => times.filter((u) => u >= t && u < t + 1000 - JITTER_MS).length));
    expect(busiest, times.map((t) => t - (times[0] as number)).join(' ')).toBeLessThanOrEqual(10);
    // The limit is what paced them: 40 starts at 10 per second span about 4 s.
    expect((times.at(-1) as number) - (times[0] as number)).toBeGreaterThanOrEqual(3_900 - JITTER_MS);
    // Refusals happened and were counted on the bucket, none of them as an attempt.
    const [bucket] = await stack.store.limits.listLimitStates(Date.now());
    expect(bucket).toMatchObject({ name: 'api', key: '', granted: 40 });
    expect(bucket?.refused).toBeGreaterThan(0);
  }, 90_000);

  it('takes the limit once per task of a batch: the batch\'s tasks ask one after the other, so none loses a race on the bucket and writes again', async () => {
    await stack.store.putLimits({ api: { rate: 1000, per: '1s', burst: 1000 } });
    await stack.seedInstances([{ id: 'feed', job: 'paced', params: { count: 10 }, schedule: '1h' }]);
    expect((await stack.scheduler(jobs).scheduler.tick()).dispatched.queue).toBe(10);
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    let bucketWrites = 0;
    counted.middlewareStack.add(
      (next, context) => async (args) => {
        const table = (args.input as { TableName?: string }).TableName;
        if (context.commandName === 'UpdateItemCommand' && table === stack.tables().instances) bucketWrites += 1;
        return next(args);
      },
      { step: 'initialize', name: 'countBucketWrites' },
    );
    const { worker, telemetry } = stack.worker(jobs, {}, { clients: { ...stack.clients, dynamodb: counted } });

    const invocations = await new SqsEventSource({ client: stack.clients.sqs, queueUrl: stack.queueUrl, handler: makeWorkerHandler({ worker, telemetry }), batchSize: 10, functionTimeoutMs: 60_000 }).drain({ timeoutMs: 20_000 });

    counted.destroy();
    expect(starts).toHaveLength(10);
    expect(invocations.length).toBeLessThanOrEqual(2);
    const [bucket] = await stack.store.limits.listLimitStates(Date.now());
    expect(bucket).toMatchObject({ name: 'api', granted: 10, refused: 0 });
    // Ten grants, and the note that the instance has runs: no write lost a race.
    expect(bucketWrites).toBe(10 + 1);
  });

  it('claims nothing when the limit refuses: the entry stays posted to the queue and the message comes back delayed', async () => {
    // Prepare: one token an hour, two tasks
    await stack.store.putLimits({ api: { rate: 1, per: '1h' } });
    await stack.seedInstances([{ id: 'feed', job: 'paced', params: { count: 2 }, schedule: '1h' }]);
    await stack.scheduler(jobs).scheduler.tick();
    const posted = await stack.store.listRoute('queue');
    expect(posted).toHaveLength(2);

    // Act: one invocation takes both messages
    const invocation = await workerSource().pollOnce();

    // Assess: one ran; the other was not claimed (same owner and token as posted, no run record)
    expect(invocation?.outcome).toBe('succeeded');
    expect(starts).toHaveLength(1);
    const runs = await stack.store.listRuns({ limit: 10 });
    expect(runs.map((run) => run.status)).toEqual(['succeeded']);
    const waiting = posted.find((entry) => entry.input !== undefined && (entry.input as { n: number }).n !== starts[0]?.n);
    const lease = await stack.store.getLease(waiting?.signature ?? '');
    expect(lease).toMatchObject({ owner: waiting?.owner, token: waiting?.token });
    // Its entry says what it waits for (what the page counts per limit).
    const said = (await stack.store.listRoute('queue')).find((entry) => entry.signature === waiting?.signature);
    expect(said?.progress?.message).toMatch(/^waiting for limit "api": no token before \d\d:\d\d:\d\d\.\d{3}$/);
    // Its message waits, delayed (SQS's 15 minutes at most), in the queue, and not in the dead-letter queue.
    expect(await stack.queueDepth()).toBe(1);
    expect(await stack.drainDeadLetters()).toEqual([]);
    const [bucket] = await stack.store.limits.listLimitStates(Date.now());
    expect(bucket).toMatchObject({ granted: 1, refused: 1 });
    expect(stack.telemetry.counted('started', 'paced')).toBe(1);
  });

  it('calls off a task cancelled while it waits for a slot at its next delivery, without waiting for the slot; it never runs', async () => {
    // Prepare: the one slot of limit host held elsewhere for an hour; a task waits for it
    await stack.store.putLimits({ host: { concurrency: 1 } });
    await stack.store.limits.acquireLimits({ holder: 'elsewhere', ttlMs: 3_600_000, limits: [{ name: 'host', key: '', concurrency: 1 }] }, Date.now());
    await stack.seedInstances([{ id: 'feed', job: 'paced', params: { count: 1, limits: ['host'] }, schedule: '1h' }]);
    await stack.scheduler(jobs).scheduler.tick();
    const source = workerSource();
    expect((await source.pollOnce())?.outcome).toBe('succeeded');
    const [waiting] = await stack.store.listRoute('queue');
    expect(waitingFor(waiting?.progress?.message)).toEqual({ name: 'host', key: '' });

    // Act: cancelled (as the page does); the message comes back within the 2 s poll of a slot wait
    await stack.store.requestStop(waiting?.signature ?? '', waiting?.token ?? -1);
    source.start();
    const run = await pollFor(async () => stack.store.lastRun({ instanceId: 'feed', task: 'call' }), 15_000, 'the run to be recorded');

    // Assess: recorded cancelled, never started, and the slot still the other holder's alone
    expect(run).toMatchObject({ status: 'cancelled', error: { name: 'CancelledError' } });
    expect(starts).toEqual([]);
    expect(await stack.store.listRoute('queue')).toEqual([]);
    expect((await stack.store.limits.listLimitStates(Date.now()))[0]).toMatchObject({ held: 1, granted: 1 });
  });

  it('hands a run whose handler threw RateLimitedError back to the queue: same run, same attempt, the bucket drained, no failure or retry', async () => {
    // Prepare: a roomy limit; the task's first call is answered 429 with a 1.5 s Retry-After
    await stack.store.putLimits({ api: { rate: 100, per: '1s', burst: 100 } });
    await stack.seedInstances([{ id: 'feed', job: 'paced', params: { count: 1 }, schedule: '1h' }]);
    throttleOnce.add('feed#0');
    await stack.scheduler(jobs).scheduler.tick();

    // Act: the first call is throttled; then the requeued message is delivered again
    const source = workerSource();
    await source.pollOnce();
    const throttledAt = Date.now();
    const [backedOff] = await stack.store.limits.listLimitStates(throttledAt);
    await source.drain({ until: () => starts.length === 2, timeoutMs: 20_000, includeDelayed: true });

    // Assess: two calls of one run, attempt 1 both times, recorded once as succeeded
    expect(starts.map((s) => s.attempt)).toEqual([1, 1]);
    expect(new Set(starts.map((s) => s.runId)).size).toBe(1);
    expect((starts[1]?.at ?? 0) - (starts[0]?.at ?? 0)).toBeGreaterThanOrEqual(1500);
    const runs = await stack.store.listRuns({ limit: 10 });
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ id: starts[0]?.runId, status: 'succeeded', attempt: 1 });
    expect(backedOff?.blockedUntil).toBeGreaterThan(throttledAt);
    for (const metric of ['failed', 'retried'] as const) expect(stack.telemetry.counted(metric, 'paced')).toBe(0);
    expect(stack.telemetry.lines.some((line) => line.level === 'warn' && line.message.includes('rate limited (RateLimitedError: the API answered 429): queued again in 1500 ms, not counted as a failure'))).toBe(true);
    expect(await stack.drainDeadLetters()).toEqual([]);
  });
});

describe('concurrency caps and back-off on the queue route', () => {
  it('runs the tasks of a cap of 1 one at a time across 4 invocations, and frees the slot when each ends', async () => {
    // Prepare: one slot, three tasks holding it 300 ms each
    await stack.store.putLimits({ host: { concurrency: 1 } });
    await stack.seedInstances([{ id: 'feed', job: 'paced', params: { count: 3, limits: ['host'], holdMs: 300 }, schedule: '1h' }]);
    await stack.scheduler(jobs).scheduler.tick();

    // Act
    const source = workerSource();
    source.start({ concurrency: 4 });
    await until(async () => (await stack.store.listRuns({ status: ['succeeded'], limit: 10 })).length === 3, 30_000);
    await source.stop();

    // Assess: no two calls overlapped, each ran once, and the slot is free again
    const calls = [...starts].sort((a, b) => a.at - b.at);
    expect(calls).toHaveLength(3);
    for (let i = 1; i < calls.length; i++) expect(calls[i]?.at).toBeGreaterThanOrEqual(calls[i - 1]?.endedAt ?? Number.POSITIVE_INFINITY);
    const [bucket] = await stack.store.limits.listLimitStates(Date.now());
    expect(bucket).toMatchObject({ name: 'host', granted: 3, held: 0 });
    expect(stack.telemetry.counted('failed', 'paced') + stack.telemetry.counted('retried', 'paced')).toBe(0);
  });

  it('lets a handler drain its limit with tctx.limits.backoff: every worker waits it out, the task itself succeeds', async () => {
    // Prepare: a roomy rate; task 0 asks for a 2 s back-off before it returns
    await stack.store.putLimits({ api: { rate: 100, per: '1s', burst: 100 } });
    await stack.seedInstances([{ id: 'feed', job: 'paced', params: { count: 1, backoffMs: 2000 }, schedule: '1h' }]);
    await stack.scheduler(jobs).scheduler.tick();
    await workerSource().pollOnce();
    const drainedAt = Date.now();

    // Act: a task of another instance taking the same limit is dispatched after the back-off began
    await stack.seedInstances([{ id: 'other', job: 'paced', params: { count: 1 }, schedule: '1h' }]);
    await stack.scheduler(jobs).scheduler.tick();
    await workerSource().drain({ until: () => starts.length === 2, timeoutMs: 20_000, includeDelayed: true });

    // Assess: the first succeeded at once; the second started only after the back-off
    const [first, second] = starts;
    expect(first).toMatchObject({ instanceId: 'feed', attempt: 1 });
    expect(second).toMatchObject({ instanceId: 'other', attempt: 1 });
    expect(first?.backoffAt).toBeLessThan(drainedAt);
    expect(second?.at).toBeGreaterThanOrEqual((first?.backoffAt ?? Number.POSITIVE_INFINITY) + 2000);
    const runs = await stack.store.listRuns({ limit: 10 });
    expect(runs.map((run) => run.status)).toEqual(['succeeded', 'succeeded']);
  });
});

describe('what the scheduler refuses', () => {
  it('refuses a task naming a limit that is not configured, naming the instance, task and limit', async () => {
    await stack.store.putLimits({ api: { rate: 10, per: '1s' } });
    await stack.seedInstances([{ id: 'feed', job: 'paced', params: { count: 1, limits: ['feed-api'] }, schedule: '1h' }]);

    const report = await stack.scheduler(jobs).scheduler.tick();

    expect(report.dispatched.queue).toBe(0);
    expect(report.rejected).toBe(1);
    const status = await stack.store.getInstanceStatus('feed');
    expect(status?.planError).toMatchObject({ name: 'InvalidTaskSpecError' });
    expect(status?.planError?.message).toContain('instance "feed", task "call" takes limit "feed-api", which is not configured; add it to "limits" in the instances file (known: api)');
  });

  it('posts a continuous task and a long task that take limits, with their buckets on the board entry for whoever starts them', async () => {
    await stack.store.putLimits({ api: { rate: 10, per: '1s' } });
    await stack.seedInstances([
      { id: 'watcher', job: 'paced', params: { count: 1, kind: 'continuous' }, schedule: '1h' },
      { id: 'long', job: 'paced', params: { count: 1, timeoutMs: 3_600_000 }, schedule: '1h' },
    ]);

    const report = await stack.scheduler(jobs).scheduler.tick();

    expect(report.dispatched).toEqual({ queue: 0, conductor: 1, fargate: 1 });
    expect(report.rejected).toBe(0);
    expect((await stack.store.listRoute('conductor'))[0]?.limits).toEqual([{ name: 'api', key: '' }]);
    expect((await stack.store.listRoute('fargate'))[0]?.limits).toEqual([{ name: 'api', key: '' }]);
  });

  it('reports a malformed limit in the instances table by name and keeps planning', async () => {
    await stack.store.putLimits({ api: { rate: 10 } });
    await stack.seedInstances([{ id: 'feed', job: 'paced', params: { count: 1 }, schedule: '1h' }]);

    const report = await stack.scheduler(jobs).scheduler.tick();

    expect(report.rejected).toBe(1);
    expect(stack.telemetry.lines.some((line) => line.level === 'error' && line.message.includes('instances table: limits.api.per: a rate needs "per"'))).toBe(true);
  });
});
