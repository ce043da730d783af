/**
 * The scheduler Lambda on the emulators: which instances it plans, what it posts where (queue,
 * board, Fargate), what it refuses at plan time, how it sizes the conductor fleet and stops
 * continuous tasks, and that racing ticks post each signature once.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { dispatchMessageSchema } from '../../../core/cloud/messages.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeSchedulerHandler } from '../../../core/adapters/aws/handlers.js';
import { DEFAULT_WORKER_CONFIG } from '../../../core/cloud/worker.js';
import { runLongTask } from '../../../core/cloud/long-task.js';
import { secretsResolver, type SecretSource } from '../../../core/cloud/secrets.js';
import jobs from '../../fixtures/aws/jobs.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { makeWorkerHandler } from '../../../core/adapters/aws/handlers.js';
import { SqsEventSource } from '../../helpers/sqs-event-source.js';

let stack: LocalAwsStack;

beforeEach(async () => {
  stack = await new LocalAwsStack({ maxReceiveCount: 3, visibilityTimeoutSec: 1 }).create();
});

afterEach(async () => {
  await stack.destroy();
});

describe('which instances a tick plans', () => {
  it('plans due, enabled, unretired instances and records when', async () => {
    await stack.seedInstances([
      { id: 'due', job: 'fanout', params: { count: 1 }, schedule: '1m' },
      { id: 'off', job: 'fanout', params: { count: 1 }, schedule: '1m', enabled: false },
      { id: 'broken', job: 'fanout', params: { count: 'many' }, schedule: '1m' },
    ]);
    const { scheduler } = stack.scheduler(jobs);

    const first = await scheduler.tick();
    const second = await scheduler.tick();

    expect(first.planned).toEqual(['due']);
    expect(second.planned).toEqual([]);
    expect((await stack.store.getInstanceStatus('due'))?.lastPlannedAt).toBeGreaterThan(0);
    expect(await stack.store.getInstanceStatus('off')).toBeUndefined();
    const problem = stack.telemetry.lines.find((line) => line.level === 'error' && line.message.includes('"broken"'));
    expect(problem?.message).toContain('params.count');
  });

  it('records a failing plan on the instance and still plans the others', async () => {
    await stack.seedInstances([
      { id: 'thrower', job: 'literal', params: { throws: 'upstream API is down' }, schedule: '1m' },
      { id: 'fine', job: 'fanout', params: { count: 2 }, schedule: '1m' },
    ]);

    const report = await stack.scheduler(jobs).scheduler.tick();

    expect(report.dispatched.queue).toBe(2);
    expect((await stack.store.getInstanceStatus('thrower'))?.planError?.message).toBe('upstream API is down');
  });

  it('retires an instance whose plan says it is done', async () => {
    await stack.seedInstances([{ id: 'finished', job: 'fanout', params: { count: 0 }, schedule: '1m' }]);
    // fanout with nothing left plans nothing; a job that calls done() is retired:
    await stack.seedInstances([{ id: 'bad-spec', job: 'literal', params: { specs: [{ task: 'nope' }, { task: 'echo', input: { a: 1 } }] }, schedule: '1m' }]);

    const report = await stack.scheduler(jobs).scheduler.tick();

    expect(report.rejected).toBe(1);
    expect(report.dispatched.queue).toBe(1);
    expect((await stack.store.getInstanceStatus('bad-spec'))?.planError?.message).toContain('names task "nope"');
  });
});

describe('what a tick posts', () => {
  it('refuses an input over the size limit at plan time, naming the instance and task', async () => {
    const big = 'x'.repeat(210 * 1024);
    await stack.seedInstances([{ id: 'huge', job: 'literal', params: { specs: [{ task: 'echo', input: { big } }, { task: 'echo', input: { small: true } }] }, schedule: '1m' }]);

    const report = await stack.scheduler(jobs).scheduler.tick();

    expect(report.dispatched.queue).toBe(1);
    const status = await stack.store.getInstanceStatus('huge');
    expect(status?.planError).toMatchObject({ name: 'InputTooLargeError' });
    expect(status?.planError?.message).toMatch(/instance "huge" \(job type "literal"\), task spec #0 \(task "echo"\): its input is \d+ bytes as JSON, over the 204800-byte limit/);
  });

  it('refuses a task that takes a limit not configured, naming it, and posts the others', async () => {
    await stack.seedInstances([{ id: 'limited', job: 'literal', params: { specs: [{ task: 'echo', input: { a: 1 }, limits: ['feed-api'] }, { task: 'echo', input: { b: 2 } }] }, schedule: '1m' }]);

    const report = await stack.scheduler(jobs).scheduler.tick();

    expect(report.dispatched.queue).toBe(1);
    expect(report.rejected).toBe(1);
    const status = await stack.store.getInstanceStatus('limited');
    expect(status?.planError).toMatchObject({ name: 'InvalidTaskSpecError' });
    expect(status?.planError?.message).toContain('instance "limited", task "echo" takes limit "feed-api", which is not configured; add it to "limits" in the instances file (known: none)');
  });

  it('puts the buckets a task takes, by name and key, in its dispatch message', async () => {
    await stack.store.putLimits({ 'feed-api': { rate: 300, per: '15m' }, host: { concurrency: 2 } });
    await stack.seedInstances([{ id: 'limited', job: 'literal', params: { specs: [{ task: 'echo', input: { a: 1 }, limits: ['feed-api', { name: 'host', key: 'example.org' }] }] }, schedule: '1m' }]);
    const { scheduler } = stack.scheduler(jobs);

    const report = await scheduler.tick();

    expect(report.dispatched.queue).toBe(1);
    const received = await stack.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 60 }));
    const sent = (received.Messages ?? []).map((message) => dispatchMessageSchema.parse(JSON.parse(message.Body ?? 'null')));
    expect(sent).toEqual([expect.objectContaining({ limits: [{ name: 'feed-api', key: '' }, { name: 'host', key: 'example.org' }], leaseExpiresAt: expect.any(Number) as number })]);
  });

  it('keeps to the instance concurrency', async () => {
    await stack.seedInstances([{ id: 'narrow', job: 'fanout', params: { count: 10 }, schedule: '1m', concurrency: 3 }]);

    const report = await stack.scheduler(jobs).scheduler.tick();

    expect(report.dispatched.queue).toBe(3);
    expect(await stack.queueDepth()).toBe(3);
  });

  it('posts each signature once when two ticks race', async () => {
    await stack.seedInstances([{ id: 'race', job: 'fanout', params: { count: 40 }, schedule: '1m' }]);
    const a = stack.scheduler(jobs).scheduler;
    const b = stack.scheduler(jobs).scheduler;

    const [ra, rb] = await Promise.all([a.tick(), b.tick()]);

    expect(ra.dispatched.queue + rb.dispatched.queue).toBe(40);
    expect(ra.deduplicated + rb.deduplicated).toBe(40);
    expect(await stack.queueDepth()).toBe(40);
  });

  it('runs a batch task longer than the worker allows as a one-off Fargate task under the same lease', async () => {
    await stack.seedInstances([{ id: 'long', job: 'fanout', params: { count: 1, timeoutMs: 30 * 60_000, failUntilAttempt: 2 }, schedule: '1m' }]);

    const report = await stack.scheduler(jobs).scheduler.tick();
    const [message] = stack.longTasks;
    const container = stack.container(jobs);
    const runs = await runLongTask({ ...container, config: { ...DEFAULT_WORKER_CONFIG, safetyMarginMs: 100, graceMs: 100 } }, JSON.stringify(message), 'longtask@test', () => Promise.resolve());

    expect(report.dispatched).toEqual({ queue: 0, conductor: 0, fargate: 1 });
    expect(message).toMatchObject({ instanceId: 'long', task: 'item', timeoutMs: 30 * 60_000 });
    expect(await stack.queueDepth()).toBe(0);
    expect(runs.map((run) => [run.attempt, run.status, run.previousRunId])).toEqual([
      [1, 'failed', undefined],
      [2, 'succeeded', runs[0]!.id],
    ]);
    expect(runs[0]!.nextRunId).toBe(runs[1]!.id);
    expect((await stack.store.getLease(runs[1]!.signature))?.owner ?? null).toBeNull();
  });

  it('reads the shared limits after a tick for their metrics, not after an ad-hoc run', async () => {
    await stack.seedInstances([{ id: 'adhoc', job: 'fanout', params: { count: 0 }, schedule: '1m' }]);
    await stack.store.putLimits({ 'quota-api': { rate: 5, per: '1s', burst: 5 } });
    const rate = { count: 5, perMs: 1000, burst: 5 };
    await stack.store.limits.acquireLimits({ holder: 'attempt-1', ttlMs: 60_000, limits: [{ name: 'quota-api', key: 'lab-1', rate }] }, Date.now());
    const handler = makeSchedulerHandler(stack.scheduler(jobs));

    await handler({});
    await handler({ instanceId: 'adhoc', task: 'item', input: { i: 1 } });

    expect(stack.telemetry.limitSamples).toEqual([[expect.objectContaining({ name: 'quota-api', key: 'lab-1', granted: 1, refused: 0, held: 0 })]]);
  });

  it('reads no bucket after a tick when no limit is configured', async () => {
    await stack.seedInstances([{ id: 'adhoc', job: 'fanout', params: { count: 0 }, schedule: '1m' }]);
    // A bucket left from a limit since removed from the configuration.
    await stack.store.limits.acquireLimits({ holder: 'attempt-1', ttlMs: 60_000, limits: [{ name: 'old-api', key: '', rate: { count: 5, perMs: 1000, burst: 5 } }] }, Date.now());
    const handler = makeSchedulerHandler(stack.scheduler(jobs));

    await handler({});

    expect(stack.telemetry.limitSamples).toEqual([]);
  });

  it('runs one task now with a given input, as an ad-hoc invocation of the handler', async () => {
    await stack.seedInstances([{ id: 'adhoc', job: 'fanout', params: { count: 0 }, schedule: '1m' }]);
    const runtime = stack.scheduler(jobs);
    const handler = makeSchedulerHandler(runtime);

    const report = await handler({ instanceId: 'adhoc', task: 'item', input: { i: 42 } });
    const { worker, telemetry } = stack.worker(jobs);
    await new SqsEventSource({ client: stack.clients.sqs, queueUrl: stack.queueUrl, handler: makeWorkerHandler({ worker, telemetry }), functionTimeoutMs: 60_000 }).drain({ timeoutMs: 20_000 });

    expect(report.dispatched.queue).toBe(1);
    const [run] = await stack.store.listRuns({ instanceId: 'adhoc' });
    expect(run).toMatchObject({ origin: 'manual', status: 'succeeded', input: { i: 42 } });
    await expect(handler({ instanceId: 'nobody' })).rejects.toThrow('no instance "nobody" in the instances table; known: adhoc');
    await expect(handler({ bogus: 1 })).rejects.toThrow('send {} for a tick');
  });
});

describe('continuous tasks and the conductor fleet', () => {
  it('posts continuous tasks to the board and sets how many conductors run', async () => {
    const specs = Array.from({ length: 5 }, (_, n) => ({ task: 'forever', input: { n } }));
    await stack.seedInstances([{ id: 'streams', job: 'literal', params: { specs }, schedule: '1s' }]);
    const { scheduler } = stack.scheduler(jobs, { UJR_TASKS_PER_CONDUCTOR: '4', UJR_TICK_MS: '1000' });

    const report = await scheduler.tick();

    expect(report.dispatched.conductor).toBe(5);
    expect(stack.desiredConductors).toBe(2);
    expect(await stack.queueDepth()).toBe(0);
    expect((await stack.store.listRoute('conductor')).map((entry) => entry.owner.startsWith('conductor:'))).toEqual([true, true, true, true, true]);
  });

  it('asks a continuous task the job no longer returns to stop, and one of a disabled instance', async () => {
    await stack.seedInstances([
      { id: 'shrinking', job: 'literal', params: { specs: [{ task: 'forever', input: { n: 1 } }, { task: 'forever', input: { n: 2 } }] }, schedule: '1s' },
      { id: 'switched-off', job: 'literal', params: { specs: [{ task: 'forever', input: {} }] }, schedule: '1s' },
    ]);
    const { scheduler } = stack.scheduler(jobs, { UJR_TICK_MS: '1000' });
    await scheduler.tick();
    await stack.seedInstances([
      { id: 'shrinking', job: 'literal', params: { specs: [{ task: 'forever', input: { n: 1 } }] }, schedule: '1s' },
      { id: 'switched-off', job: 'literal', params: { specs: [{ task: 'forever', input: {} }] }, schedule: '1s', enabled: false },
    ]);
    stack.advanceSchedulerClock(1000);

    await scheduler.tick();

    const entries = await stack.store.listRoute('conductor');
    const stopped = entries.filter((entry) => entry.stopRequested).map((entry) => [entry.instanceId, entry.input]);
    expect(stopped.sort()).toEqual([
      ['shrinking', { n: 2 }],
      ['switched-off', {}],
    ]);
  });
});

describe('a manual run of a disabled instance', () => {
  it('posts its batch tasks once and never its continuous task', async () => {
    await stack.seedInstances([
      { id: 'off', job: 'literal', params: { specs: [{ task: 'forever', input: {} }, { task: 'echo', input: { n: 1 } }] }, schedule: '1s', enabled: false },
    ]);
    const { scheduler } = stack.scheduler(jobs, { UJR_TICK_MS: '1000' });

    const planned = await scheduler.runNow({ instanceId: 'off' });
    const direct = await scheduler.runNow({ instanceId: 'off', task: 'forever', input: { direct: true } });

    expect(planned.dispatched).toEqual({ queue: 1, conductor: 0, fargate: 0 });
    expect(direct.dispatched).toEqual({ queue: 0, conductor: 0, fargate: 0 });
    expect(await stack.store.listRoute('conductor')).toEqual([]);
    expect(stack.desiredConductors).toBe(0);
  });
});

describe('secrets in instance params', () => {
  it('resolves them at run time for the task and never stores them', async () => {
    const source: SecretSource = { get: (ref) => Promise.resolve(ref.id === '/ujr/api-token' ? 's3cr3t-value' : Promise.reject(new Error('missing'))) };
    const resolveParams = secretsResolver(source);
    await stack.seedInstances([{ id: 'keyed', job: 'secretive', params: { token: { $secret: 'ssm:/ujr/api-token' } }, schedule: '1m' }]);
    await stack.scheduler(jobs, {}, { resolveParams }).scheduler.tick();
    const { worker, telemetry } = stack.worker(jobs, {}, { resolveParams });

    await new SqsEventSource({ client: stack.clients.sqs, queueUrl: stack.queueUrl, handler: makeWorkerHandler({ worker, telemetry }), functionTimeoutMs: 60_000 }).drain({ timeoutMs: 20_000 });

    const [run] = await stack.store.listRuns({ instanceId: 'keyed' });
    expect(run).toMatchObject({ status: 'succeeded', result: { tokenLength: 12 } });
    expect(await stack.container(jobs).objects.getText('called/keyed')).toBe('S3CR3T-VALUE');
    const everything = JSON.stringify([await stack.store.listRuns({ limit: 100 }), stack.telemetry.lines, await stack.store.listInstanceStatus()]);
    expect(everything).not.toContain('s3cr3t');
    const item = await stack.clients.dynamodb.send(new GetItemCommand({ TableName: stack.names.instances, Key: { instanceId: { S: 'keyed' }, kind: { S: 'config' } } }));
    expect(JSON.stringify(item.Item)).toContain('ssm:/ujr/api-token');
  });
});
