/**
 * The serverless runtime on the emulators: scheduler Lambda → SQS → worker Lambda → run records,
 * with retries, the dead-letter queue, poison messages, and the time guard of the worker.
 */
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeWorkerHandler } from '../../../core/adapters/aws/handlers.js';
import type { RunRecord } from '../../../core/types.js';
import jobs from '../../fixtures/aws/jobs.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { SqsEventSource } from '../../helpers/sqs-event-source.js';

let stack: LocalAwsStack;

beforeEach(async () => {
  stack = await new LocalAwsStack({ maxReceiveCount: 3, visibilityTimeoutSec: 1 }).create();
});

afterEach(async () => {
  await stack.destroy();
});

function eventSource(options: { functionTimeoutMs?: number; duplicateEveryMessage?: boolean } = {}) {
  const { worker, telemetry } = stack.worker(jobs);
  return new SqsEventSource({
    client: stack.clients.sqs,
    queueUrl: stack.queueUrl,
    handler: makeWorkerHandler({ worker, telemetry }),
    functionTimeoutMs: options.functionTimeoutMs ?? 60_000,
    ...(options.duplicateEveryMessage ? { duplicateEveryMessage: true } : {}),
  });
}

async function runsOf(instanceId: string): Promise<RunRecord[]> {
  return stack.store.listRuns({ instanceId, limit: 1000 });
}

describe('scheduler → queue → worker', () => {
  it('runs every planned batch task once and records it', async () => {
    await stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 25 }, schedule: '1m' }]);
    const { scheduler } = stack.scheduler(jobs);

    const report = await scheduler.tick();
    await eventSource().drain({ timeoutMs: 20_000 });

    expect(report.dispatched.queue).toBe(25);
    const runs = await runsOf('fan');
    expect(runs).toHaveLength(25);
    expect(runs.every((run) => run.status === 'succeeded' && run.attempt === 1)).toBe(true);
    expect(new Set(runs.map((run) => run.signature)).size).toBe(25);
    expect(await stack.store.listActiveLeases(Date.now())).toEqual([]);
  });

  it('dispatches nothing on a tick where every returned task is still queued', async () => {
    await stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 30 }, schedule: '1s' }]);
    const { scheduler } = stack.scheduler(jobs, { UJR_TICK_MS: '1000' });

    const first = await scheduler.tick();
    stack.advanceSchedulerClock(1000);
    const second = await scheduler.tick();

    expect(first.dispatched.queue).toBe(30);
    expect(second.planned).toEqual(['fan']);
    expect(second).toMatchObject({ tasks: 30, deduplicated: 30, dispatched: { queue: 0, conductor: 0, fargate: 0 } });
    expect(await stack.queueDepth()).toBe(30);
  });

  it('retries a failing attempt with backoff: each failed attempt is recorded failed and linked to the next, the last succeeds', async () => {
    await stack.seedInstances([{ id: 'flaky', job: 'fanout', params: { count: 3, failUntilAttempt: 3, attempts: 3 }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();

    await eventSource().drain({ timeoutMs: 30_000 });

    const runs = await runsOf('flaky');
    expect(runs).toHaveLength(9);
    for (const signature of new Set(runs.map((run) => run.signature))) {
      const attempts = runs.filter((run) => run.signature === signature).sort((a, b) => a.attempt - b.attempt);
      expect(attempts.map((run) => [run.attempt, run.status, run.origin])).toEqual([
        [1, 'failed', 'schedule'],
        [2, 'failed', 'retry'],
        [3, 'succeeded', 'retry'],
      ]);
      expect(attempts[0]!.error?.message).toBe(`item ${(attempts[0]!.input as { i: number }).i} failed on attempt 1`);
      // The chain: each failed attempt names the next, each retry the one before.
      expect(attempts.map((run) => [run.previousRunId, run.nextRunId])).toEqual([
        [undefined, attempts[1]!.id],
        [attempts[0]!.id, attempts[2]!.id],
        [attempts[1]!.id, undefined],
      ]);
      // The lease is kept between attempts: each attempt's token is higher than the one before.
      expect(attempts[0]!.fencingToken).toBeLessThan(attempts[1]!.fencingToken);
      expect(attempts[1]!.fencingToken).toBeLessThan(attempts[2]!.fencingToken);
    }
    expect(stack.telemetry.counted('retried', 'fanout')).toBe(6);
    expect(await stack.drainDeadLetters()).toEqual([]);
  });

  it('after the last attempt records failed, runs revert, releases the lease and dead-letters the message', async () => {
    await stack.seedInstances([{ id: 'doomed', job: 'fanout', params: { count: 2, failAlways: [1], attempts: 2 }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();

    await eventSource().drain({ timeoutMs: 30_000 });

    const failing = (await runsOf('doomed')).filter((run) => (run.input as { i: number }).i === 1).sort((a, b) => a.attempt - b.attempt);
    expect(failing.map((run) => [run.status, run.nextRunId, run.previousRunId])).toEqual([
      ['failed', failing[1]!.id, undefined],
      ['failed', undefined, failing[0]!.id],
    ]);
    expect(failing[1]!.error?.message).toBe('item 1 failed on attempt 2');
    expect(await stack.container(jobs).objects.getText('reverted/doomed/1')).toBe('item 1 failed on attempt 2');
    const lease = await stack.store.getLease(failing[1]!.signature);
    expect(lease?.owner ?? null).toBeNull();
    const dead = await stack.drainDeadLetters();
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0]!.body)).toMatchObject({ instanceId: 'doomed', task: 'item', attempt: 2 });
    expect(dead[0]!.reason).toContain('item 1 failed on attempt 2');
  });

  it('does not retry a non-retryable error', async () => {
    await stack.seedInstances([{ id: 'fatal', job: 'fanout', params: { count: 1, failFatal: [0], attempts: 5 }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();

    await eventSource().drain({ timeoutMs: 20_000 });

    const runs = await runsOf('fatal');
    expect(runs.map((run) => [run.attempt, run.status, run.error?.name])).toEqual([[1, 'failed', 'NonRetryableError']]);
    expect(await stack.drainDeadLetters()).toHaveLength(1);
  });

  it('drops a duplicate delivery: every message delivered twice still runs each task once', async () => {
    await stack.seedInstances([{ id: 'dup', job: 'fanout', params: { count: 20, sleepMs: 20 }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();

    await eventSource({ duplicateEveryMessage: true }).drain({ timeoutMs: 20_000 });

    const runs = await runsOf('dup');
    expect(runs).toHaveLength(20);
    expect(runs.every((run) => run.status === 'succeeded')).toBe(true);
    expect(stack.telemetry.counted('dropped', 'fanout')).toBe(20);
    const done = await stack.container(jobs).objects.list('done/dup/');
    expect(done).toHaveLength(20);
  });

  it('drops a stale delivery that arrives after its task finished', async () => {
    await stack.seedInstances([{ id: 'late', job: 'fanout', params: { count: 1 }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();
    const source = eventSource();
    const first = await source.pollOnce();
    const body = first!.records[0]!.body;

    await stack.clients.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: body }));
    const replay = await source.pollOnce();

    expect(replay?.outcome).toBe('succeeded');
    expect(await runsOf('late')).toHaveLength(1);
    expect(stack.telemetry.counted('dropped', 'fanout')).toBe(1);
  });
});

describe('messages the worker cannot use', () => {
  it('sends an unparseable message to the DLQ after maxReceiveCount without failing the rest of its batch', async () => {
    await stack.seedInstances([{ id: 'ok', job: 'fanout', params: { count: 5 }, schedule: '1m' }]);
    await stack.clients.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: 'this is not a dispatch message' }));
    await stack.scheduler(jobs).scheduler.tick();

    await eventSource().drain({ timeoutMs: 30_000 });

    expect((await runsOf('ok')).filter((run) => run.status === 'succeeded')).toHaveLength(5);
    const dead = await stack.drainDeadLetters();
    expect(dead.map((message) => message.body)).toEqual(['this is not a dispatch message']);
  });

  it('records a task of an unknown instance as failed on its last delivery, then the queue dead-letters it', async () => {
    await stack.seedInstances([{ id: 'gone', job: 'fanout', params: { count: 1 }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();
    await stack.store.putInstanceEntry({ id: 'gone', job: 'no-such-job', params: {}, schedule: '1m' });

    await eventSource().drain({ timeoutMs: 30_000 });

    const runs = await runsOf('gone');
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'failed', error: { name: 'PoisonMessageError' } });
    expect(runs[0]!.error?.message).toContain('instance "gone" is broken (job: no job type is named "no-such-job"');
    expect(await stack.drainDeadLetters()).toHaveLength(1);
    expect((await stack.store.getLease(runs[0]!.signature))?.owner ?? null).toBeNull();
  });

  it('does not claim a task that does not fit in the remaining time, and queues it again for a later invocation', async () => {
    await stack.seedInstances([{ id: 'big', job: 'fanout', params: { count: 1, timeoutMs: 18_000 }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();

    const short = await eventSource({ functionTimeoutMs: 15_000 }).pollOnce();
    const afterShort = await runsOf('big');
    await eventSource({ functionTimeoutMs: 60_000 }).drain({ timeoutMs: 20_000 });

    expect(short?.outcome).toBe('succeeded');
    expect(afterShort).toEqual([]);
    expect((await runsOf('big')).map((run) => [run.status, run.attempt])).toEqual([['succeeded', 1]]);
  });

  it('calls off a scheduled task of an instance disabled after planning, but runs a manual one', async () => {
    await stack.seedInstances([{ id: 'paused', job: 'fanout', params: { count: 1 }, schedule: '1m' }]);
    const { scheduler } = stack.scheduler(jobs);
    await scheduler.tick();
    await stack.store.setInstanceOverride('paused', { enabled: false });

    await eventSource().drain({ timeoutMs: 20_000 });
    await scheduler.runNow({ instanceId: 'paused', task: 'item', input: { i: 0 } });
    await eventSource().drain({ timeoutMs: 20_000 });

    const runs = (await runsOf('paused')).sort((a, b) => a.fencingToken - b.fencingToken);
    expect(runs.map((run) => [run.origin, run.status])).toEqual([
      ['schedule', 'cancelled'],
      ['manual', 'succeeded'],
    ]);
  });

  it('runs a dead-lettered task again once when it is moved back to the queue after a fix', async () => {
    await stack.seedInstances([{ id: 'fixme', job: 'fanout', params: { count: 1, failAlways: [0], attempts: 1 }, schedule: '1h' }]);
    await stack.scheduler(jobs).scheduler.tick();
    await eventSource().drain({ timeoutMs: 20_000 });
    const [dead] = await stack.drainDeadLetters();
    await stack.seedInstances([{ id: 'fixme', job: 'fanout', params: { count: 1, attempts: 1 }, schedule: '1h' }]);

    // As `ujr redrive` does (StartMessageMoveTask), twice: a redriven message may be delivered twice too.
    await stack.clients.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: dead!.body }));
    await eventSource().drain({ timeoutMs: 20_000 });
    await stack.clients.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: dead!.body }));
    await eventSource().drain({ timeoutMs: 20_000 });

    const runs = (await runsOf('fixme')).sort((a, b) => a.fencingToken - b.fencingToken);
    expect(runs.map((run) => [run.origin, run.status, run.attempt])).toEqual([
      ['schedule', 'failed', 1],
      ['manual', 'succeeded', 1],
    ]);
    expect(runs[1]!.input).toEqual({ i: 0 });
    expect(await stack.drainDeadLetters()).toEqual([]);
  });
});
