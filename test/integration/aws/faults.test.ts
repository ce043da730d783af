/**
 * Faults on the emulators: workers and conductors killed mid-task (as processes, kill -9) or
 * stopped past their lease (SIGSTOP, then SIGCONT), every message delivered twice, scheduler
 * ticks racing, DynamoDB throttling. From the recorded runs: no signature ever ran twice at
 * once, every planned task ended succeeded, or failed with a record and a dead-letter message, a
 * stale holder recorded and wrote nothing, and no run was left queued, running or retrying
 * without a live lease.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkerHandler } from '../../../core/adapters/aws/handlers.js';
import { LeaseLostError } from '../../../core/errors.js';
import type { RunRecord } from '../../../core/types.js';
import jobs from '../../fixtures/aws/jobs.js';
import type { TickReport } from '../../../core/cloud/scheduler.js';
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

/** Waits for a line of a fixture process's output (warnings go to stderr); on failure, says what it printed. */
async function waitForLine(proc: ReturnType<ProcessPool['start']>, pattern: RegExp, ms = 10_000): Promise<void> {
  try {
    await pollFor(() => (pattern.test(proc.stdout + proc.stderr) ? true : undefined), ms, `${String(pattern)} from a fixture process`);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${proc.describe()}`, { cause: error });
  }
}

/**
 * Ticks until the ticks so far swept a run (its lease expired without a record) and, unless
 * `dispatched` is false, posted the task again (the 1 s instances fall due once a second);
 * returns their counts summed.
 */
async function tickUntilSwept(scheduler: { tick(): Promise<TickReport> }, dispatched = true): Promise<{ swept: number; queue: number; planned: number }> {
  const total = { swept: 0, queue: 0, planned: 0 };
  return pollFor(async () => {
    const report = await scheduler.tick();
    total.swept += report.swept;
    total.queue += report.dispatched.queue;
    total.planned += report.planned.length;
    return total.swept > 0 && (!dispatched || total.queue > 0) ? total : undefined;
  }, 20_000, 'ticks to sweep the run whose lease expired and post its task again');
}

/**
 * A stack whose `sleepy` task (1.5 s, timeout 3 s) was posted and started in a worker process,
 * which was then killed with SIGKILL mid-task.
 */
async function killWorkerMidTask() {
  const stack = await createStack();
  await stack.seedInstances([{ id: 'sleepy', job: 'sleeper', params: { ms: 1500, timeoutMs: 3000 }, schedule: '1s' }]);
  const { scheduler } = stack.scheduler(jobs, { UJR_TICK_MS: '1000' });
  const objects = stack.container(jobs).objects;
  await scheduler.tick();
  const worker = pool.start(WORKER_PROCESS, stack.processEnv({ UJR_SAFETY_MARGIN_MS: '300', UJR_GRACE_MS: '200' }));
  await pollFor(async () => ((await objects.list('started/sleepy/')).length > 0 ? true : undefined), 30_000, 'the task to start in the worker process');
  worker.signal('SIGKILL');
  await worker.exited;
  return { stack, scheduler, objects };
}

describe('a worker killed mid-task', () => {
  it('loses its lease when it expires; the next tick sweeps its run interrupted, posts the task again and another worker completes it', async () => {
    const { stack, scheduler, objects } = await killWorkerMidTask();

    // Ticks until the lease (timeout + margins: 3.5 s) expired: the sweep ends the run, the plan posts it again.
    const takeover = await tickUntilSwept(scheduler);
    await inProcessWorker(stack).drain({ timeoutMs: 20_000, until: () => false });

    const runs = (await runsOf(stack, 'sleepy')).sort((a, b) => a.fencingToken - b.fencingToken);
    expect(takeover).toMatchObject({ swept: 1, queue: 1 });
    expect(runs.map((run) => [run.status, run.runner.startsWith('worker:')])).toEqual([
      ['interrupted', true],
      ['succeeded', true],
    ]);
    expect(runs[0]!.error?.name).toBe('LeaseExpiredError');
    expect(runs[0]!.runner).not.toBe(runs[1]!.runner);
    expect(overlappingRuns(runs)).toEqual([]);
    // The killed worker's message came back and was dropped as stale, not run again.
    expect(await objects.list('started/sleepy/')).toHaveLength(2);
    expect(await stack.orphanedRuns()).toEqual([]);
  });

  it('has its run ended interrupted by the next tick’s sweep although nobody leases the task again (instance disabled)', async () => {
    const { stack, scheduler } = await killWorkerMidTask();
    await stack.store.setInstanceOverride('sleepy', { enabled: false });
    const [orphan] = await stack.store.listRoute('queue');

    const report = await tickUntilSwept(scheduler, false);

    expect(orphan).toMatchObject({ instanceId: 'sleepy', owner: expect.stringMatching(/^worker:/) as unknown });
    expect(orphan!.startedAt).toBeDefined();
    expect(report).toStrictEqual({ swept: 1, queue: 0, planned: 0 });
    expect(await stack.store.getRun(orphan!.runId)).toMatchObject({ status: 'interrupted', runner: orphan!.owner, fencingToken: orphan!.token, error: { name: 'LeaseExpiredError' } });
    expect(await stack.store.listRoute('queue')).toEqual([]);
    expect((await stack.store.getLease(orphan!.signature))?.owner ?? null).toBeNull();
    expect(await stack.orphanedRuns()).toEqual([]);
  });
});

describe('a worker stopped past its lease (SIGSTOP), then resumed', () => {
  it('records nothing and cannot write objects: its run ends interrupted and the taker’s run is the newest success', async () => {
    // The handler sleeps 1 s of its 3 s timeout: frozen while it sleeps, it wakes with its sleep
    // over before its timeout, whatever the order the expired timers fire in.
    const stack = await createStack();
    await stack.seedInstances([{ id: 'sleepy', job: 'sleeper', params: { ms: 1000, timeoutMs: 3000 }, schedule: '1s' }]);
    const { scheduler } = stack.scheduler(jobs, { UJR_TICK_MS: '1000' });
    const objects = stack.container(jobs).objects;
    await scheduler.tick();
    const stale = pool.start(WORKER_PROCESS, stack.processEnv({ UJR_SAFETY_MARGIN_MS: '300', UJR_GRACE_MS: '200' }));
    // Frozen only once its handler is asleep: a process frozen while the response to its first write
    // is in flight would wake with its timeout expired before it ever started to sleep.
    await waitForLine(stale, /"message":"sleeping"/, 30_000);
    const [started] = await objects.list('started/sleepy/');
    const staleRunId = started!.key.split('/').pop()!;
    stale.signal('SIGSTOP');

    // Its lease expires: the sweep ends its run, the plan posts the task again, another worker runs it.
    expect(await tickUntilSwept(scheduler)).toMatchObject({ swept: 1, queue: 1 });
    // (The stopped process's pending long poll may hold the new message until its visibility ends.)
    const taker = inProcessWorker(stack);
    taker.start({ concurrency: 1 });
    await pollFor(async () => ((await runsOf(stack, 'sleepy')).some((run) => run.status === 'succeeded') ? true : undefined), 20_000, 'another worker to run the task');
    await taker.stop();
    const before = await stack.store.getRun(staleRunId);
    stale.signal('SIGCONT');
    // Its handler returns (or times out) and writes finished/: refused, then its record: refused.
    await waitForLine(stale, new RegExp(`could not write finished/: ${LeaseLostError.name}`));
    await waitForLine(stale, /the lease moved on/);

    const runs = (await runsOf(stack, 'sleepy')).sort((a, b) => a.fencingToken - b.fencingToken);
    expect(before).toMatchObject({ status: 'interrupted', error: { name: 'LeaseExpiredError' } });
    expect(await stack.store.getRun(staleRunId)).toStrictEqual(before);
    expect(runs.map((run) => [run.id === staleRunId, run.status])).toEqual([
      [true, 'interrupted'],
      [false, 'succeeded'],
    ]);
    expect((await stack.store.lastRun({ signature: runs[0]!.signature, status: 'succeeded' }))?.id).toBe(runs[1]!.id);
    expect(await objects.getText(`finished/sleepy/${staleRunId}`)).toBeUndefined();
    expect(await objects.getText(`finished/sleepy/${runs[1]!.id}`)).toBeDefined();
    expect((await stack.store.getLease(runs[0]!.signature))?.owner ?? null).toBeNull();
    expect(overlappingRuns(runs.filter((run) => run.status === 'succeeded'))).toEqual([]);
    expect(await stack.orphanedRuns()).toEqual([]);
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
    expect(await stack.orphanedRuns()).toEqual([]);
  });
});

describe('a conductor stopped past its lease (SIGSTOP), then resumed', () => {
  it('has its running record swept interrupted and its lease released, so its checkpoints and records after waking are refused', async () => {
    const stack = await createStack();
    await stack.seedInstances([{ id: 'counter', job: 'stream', params: { everyMs: 30 }, schedule: '1m' }]);
    const { scheduler } = stack.scheduler(jobs);
    await scheduler.tick();
    const a = pool.start(CONDUCTOR_PROCESS, stack.processEnv({ UJR_CONDUCTOR_LEASE_TTL_MS: '1500', UJR_CONDUCTOR_POLL_MS: '200', UJR_GRACE_MS: '2000' }));
    await pool.waitForOutput(a, /ready (\S+)/);
    const [entry] = await stack.store.listRoute('conductor');
    await pollFor(async () => {
      const checkpoint = await stack.store.getCheckpoint(entry!.signature);
      return checkpoint && (checkpoint.value as { n: number }).n >= 5 ? true : undefined;
    }, 30_000, 'conductor A to checkpoint');
    a.signal('SIGSTOP');
    const [running] = await stack.store.listRuns({ instanceId: 'counter', status: 'running' });
    // Switched off, so no tick posts the task again: only the sweep can end A's run.
    await stack.store.setInstanceOverride('counter', { enabled: false });

    await tickUntilSwept(scheduler, false);
    const atSweep = await stack.store.getCheckpoint(entry!.signature);
    a.signal('SIGCONT');
    await waitForLine(a, /the lease moved on/);

    expect(running).toMatchObject({ status: 'running', kind: 'continuous' });
    expect(await stack.store.getRun(running!.id)).toMatchObject({ status: 'interrupted', error: { name: 'LeaseExpiredError' } });
    expect(await stack.store.getCheckpoint(entry!.signature)).toStrictEqual(atSweep);
    expect(await stack.store.getLease(entry!.signature)).toMatchObject({ owner: null });
    expect(await stack.store.listRoute('conductor')).toEqual([]);
    expect(await stack.orphanedRuns()).toEqual([]);
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
      if (i === 7) expect(list.every((run) => run.status === 'failed' || run.status === 'interrupted'), JSON.stringify(list, null, 1)).toBe(true);
      else expect(list.filter((run) => run.status === 'succeeded'), JSON.stringify(list, null, 1)).toHaveLength(1);
    }
    // Failed for good: the last attempt of its chain (a retried attempt names the next).
    const failedForGood = runs.filter((run) => run.status === 'failed' && run.nextRunId === undefined);
    expect(await stack.orphanedRuns()).toEqual([]);
    const dead = await stack.drainDeadLetters();
    expect(dead.map((message) => (JSON.parse(message.body) as { runId: string }).runId).sort(), JSON.stringify(runs.filter((run) => (run.input as { i: number }).i === 7), null, 1)).toEqual(failedForGood.map((run) => run.id).sort());
  });
});
