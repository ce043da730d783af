/**
 * Faults on the emulators: workers and conductors killed mid-task (as processes, kill -9), every
 * message delivered twice, scheduler ticks racing, DynamoDB throttling. From the recorded runs:
 * no signature ever ran twice at once, and every planned task ended succeeded, or failed with a
 * record and a dead-letter message.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkerHandler } from '../../../core/adapters/aws/handlers.js';
import type { RunRecord } from '../../../core/types.js';
import jobs from '../../fixtures/aws/jobs.js';
import { LocalAwsStack, type StackOptions } from '../../helpers/aws-stack.js';
import { overlappingRuns } from '../../helpers/overlaps.js';
import { ProcessPool } from '../../helpers/processes.js';
import { pollFor } from '../../helpers/runner.js';
import { SqsEventSource } from '../../helpers/sqs-event-source.js';

const WORKER_PROCESS = fileURLToPath(new URL('../../fixtures/aws/worker-process.ts', import.meta.url));
const CONDUCTOR_PROCESS = fileURLToPath(new URL('../../fixtures/aws/conductor-process.ts', import.meta.url));

const stacks: LocalAwsStack[] = [];
const pool = new ProcessPool();

async function createStack(options: StackOptions = {}): Promise<LocalAwsStack> {
  const stack = await new LocalAwsStack({ maxReceiveCount: 3, visibilityTimeoutSec: 1, ...options }).create();
  stacks.push(stack);
  return stack;
}

afterEach(async () => {
  await pool.killAll();
  await Promise.all(stacks.splice(0).map((stack) => stack.destroy()));
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function inProcessWorker(stack: LocalAwsStack, duplicate = false): SqsEventSource {
  const { worker, telemetry } = stack.worker(jobs, { UJR_SAFETY_MARGIN_MS: '300', UJR_GRACE_MS: '200' });
  return new SqsEventSource({
    client: stack.clients.sqs,
    queueUrl: stack.queueUrl,
    handler: makeWorkerHandler({ worker, telemetry }),
    functionTimeoutMs: 60_000,
    ...(duplicate ? { duplicateEveryMessage: 'next-batch' as const } : {}),
  });
}

async function runsOf(stack: LocalAwsStack, instanceId: string): Promise<RunRecord[]> {
  return stack.store.listRuns({ instanceId, limit: 10_000 });
}

describe('a worker killed mid-task', () => {
  it('loses its lease when it expires; the next tick takes the task over and another worker completes it', async () => {
    const stack = await createStack();
    await stack.seedInstances([{ id: 'sleepy', job: 'sleeper', params: { ms: 1500, timeoutMs: 3000 }, schedule: '1s' }]);
    const { scheduler } = stack.scheduler(jobs, { UJR_TICK_MS: '1000' });
    const objects = stack.container(jobs).objects;
    await scheduler.tick();

    const worker = pool.start(WORKER_PROCESS, stack.processEnv({ UJR_SAFETY_MARGIN_MS: '300', UJR_GRACE_MS: '200' }));
    await pollFor(async () => ((await objects.list('started/sleepy/')).length > 0 ? true : undefined), 30_000, 'the task to start in the worker process');
    worker.signal('SIGKILL');
    await worker.exited;

    // Ticks until the lease (timeout + margins: 3.5 s) expired and the scheduler posted the task again.
    const takeover = await pollFor(async () => {
      const report = await scheduler.tick();
      return report.takenOver > 0 ? report : undefined;
    }, 20_000, 'the scheduler to take the task over');
    await inProcessWorker(stack).drain({ timeoutMs: 20_000, until: () => false });

    const runs = (await runsOf(stack, 'sleepy')).sort((a, b) => a.fencingToken - b.fencingToken);
    expect(takeover.dispatched.queue).toBe(1);
    expect(runs.map((run) => [run.status, run.runner.startsWith('worker:')])).toEqual([
      ['interrupted', true],
      ['succeeded', true],
    ]);
    expect(runs[0]!.error?.name).toBe('LeaseExpiredError');
    expect(runs[0]!.runner).not.toBe(runs[1]!.runner);
    expect(overlappingRuns(runs)).toEqual([]);
    // The killed worker's message came back and was dropped as stale, not run again.
    expect(await objects.list('started/sleepy/')).toHaveLength(2);
  });
});

describe('a conductor killed mid-task', () => {
  it('has its continuous task taken over by another conductor, resuming from the checkpoint', async () => {
    const stack = await createStack();
    await stack.seedInstances([{ id: 'counter', job: 'stream', params: { everyMs: 30 }, schedule: '1m' }]);
    const { scheduler } = stack.scheduler(jobs);
    const objects = stack.container(jobs).objects;
    const conductorEnv = stack.processEnv({ UJR_CONDUCTOR_LEASE_TTL_MS: '1500', UJR_CONDUCTOR_POLL_MS: '200', UJR_GRACE_MS: '2000' });

    const report = await scheduler.tick();
    const a = pool.start(CONDUCTOR_PROCESS, conductorEnv);
    await pool.waitForOutput(a, /ready (\S+)/);
    const signature = (await stack.store.listRoute('conductor'))[0]!.signature;
    await pollFor(async () => {
      const checkpoint = await stack.store.getCheckpoint(signature);
      return checkpoint && (checkpoint.value as { n: number }).n >= 10 ? true : undefined;
    }, 30_000, 'conductor A to checkpoint');
    a.signal('SIGKILL');
    await a.exited;
    const atKill = ((await stack.store.getCheckpoint(signature))!.value as { n: number }).n;

    const b = pool.start(CONDUCTOR_PROCESS, conductorEnv);
    const bOwner = (await pool.waitForOutput(b, /ready (\S+)/))[1];
    const resumed = await pollFor(async () => {
      const list = await objects.list('resumed/counter/');
      return list.length === 2 ? list : undefined;
    }, 30_000, 'conductor B to take the task over');
    const runs = (await runsOf(stack, 'counter')).sort((x, y) => (x.startedAt ?? 0) - (y.startedAt ?? 0));
    const bRun = runs.find((run) => run.runner === bOwner);

    expect(report).toMatchObject({ dispatched: { conductor: 1 }, conductors: 1 });
    expect(stack.desiredConductors).toBe(1);
    expect(runs[0]).toMatchObject({ status: 'interrupted', error: { name: 'LeaseExpiredError' } });
    expect(bRun).toMatchObject({ status: 'running', origin: 'takeover' });
    expect(await objects.getText(resumed[1]!.key === `resumed/counter/${runs[0]!.id}` ? resumed[0]!.key : `resumed/counter/${bRun!.id}`)).toBe(String(atKill));
    expect(overlappingRuns(runs)).toEqual([]);

    // Stopped by ECS: B aborts, records the run interrupted and hands the task back to the board.
    b.signal('SIGTERM');
    expect((await b.exited).code).toBe(0);
    const [entry] = await stack.store.listRoute('conductor');
    expect(entry?.owner).toMatch(/^conductor:/);
    expect((await stack.store.getRun(bRun!.id))?.status).toBe('interrupted');
  });
});

describe('at-least-once delivery, racing ticks and throttling together', () => {
  it('never runs a signature twice at once, and ends every task succeeded or failed with a DLQ message', async () => {
    const stack = await createStack({ throttle: 0.08 });
    await stack.seedInstances([{ id: 'chaos', job: 'fanout', params: { count: 30, sleepMs: 20, failAlways: [7], attempts: 2 }, schedule: '1s' }]);
    const schedulers = [stack.scheduler(jobs, { UJR_TICK_MS: '1000' }).scheduler, stack.scheduler(jobs, { UJR_TICK_MS: '1000' }).scheduler];
    const workers = [inProcessWorker(stack, true), inProcessWorker(stack, true)];
    for (const worker of workers) worker.start({ concurrency: 2 });

    const deadline = Date.now() + 60_000;
    const done = async () => {
      const runs = await runsOf(stack, 'chaos');
      const succeeded = new Set(runs.filter((run) => run.status === 'succeeded').map((run) => (run.input as { i: number }).i));
      return succeeded.size === 29 && runs.some((run) => run.status === 'failed');
    };
    while (!(await done())) {
      if (Date.now() > deadline) throw new Error(`not done after 60 s: ${JSON.stringify((await runsOf(stack, 'chaos')).map((run) => [run.input, run.status]))}`);
      // Two schedulers tick at once; a tick that throttling defeats is simply the next one's work.
      await Promise.allSettled(schedulers.map((scheduler) => scheduler.tick()));
      await sleep(1000);
    }
    await Promise.all(workers.map((worker) => worker.stop()));
    await inProcessWorker(stack).drain({ timeoutMs: 30_000 });

    const runs = await runsOf(stack, 'chaos');
    expect(overlappingRuns(runs)).toEqual([]);
    expect(stack.throttled).toBeGreaterThan(0);
    const bySignature = new Map<string, RunRecord[]>();
    for (const run of runs) bySignature.set(run.signature, [...(bySignature.get(run.signature) ?? []), run]);
    expect(bySignature.size).toBe(30);
    for (const [, list] of bySignature) {
      const i = (list[0]!.input as { i: number }).i;
      if (i === 7) expect(list.every((run) => run.status === 'retrying' || run.status === 'failed' || run.status === 'interrupted'), JSON.stringify(list, null, 1)).toBe(true);
      else expect(list.filter((run) => run.status === 'succeeded'), JSON.stringify(list, null, 1)).toHaveLength(1);
    }
    const failedForGood = runs.filter((run) => run.status === 'failed');
    const dead = await stack.drainDeadLetters();
    expect(dead.map((message) => (JSON.parse(message.body) as { runId: string }).runId).sort(), JSON.stringify(runs.filter((run) => (run.input as { i: number }).i === 7), null, 1)).toEqual(failedForGood.map((run) => run.id).sort());
  });
});
