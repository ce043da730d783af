/**
 * Continuous tasks and isolated batch tasks, run for real in child processes (ProcessExecutor,
 * through tsx) by a runner on a memory store. The fixture tasks (test/fixtures/continuous/jobs.ts)
 * report to the test through the object store directory both processes share: the pid of the
 * process running each attempt, and the reason of each abort they saw.
 *
 * Every test ends by stopping its runner and checking that no child process it started is left.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DirectoryObjectStore } from '../../core/adapters/fs/objects.js';
import { MemoryStore } from '../../core/adapters/memory/store.js';
import { Runner } from '../../core/engine/runner.js';
import { ProcessExecutor } from '../../core/local/process-executor.js';
import type { InstanceConfig, RunRecord } from '../../core/types.js';
import jobs, {
  abortKey,
  CRASH_CHECKPOINT,
  flagKey,
  HANG_HEARTBEAT_TIMEOUT_MS,
  latecomerReport,
  LOGGER_LINE,
  runKey,
  STDERR_LINE,
  STDOUT_LINE,
  QUICK_BEAT_TIMEOUT_MS,
  SLOW_RESTART_PLAN_MS,
  STREAM_CHECKPOINT,
  STUCK_TIMEOUT_MS,
  type TaskStart,
} from '../fixtures/continuous/jobs.js';
import { isAlive } from '../helpers/processes.js';
import { instance, until, waitFor } from '../helpers/runner.js';

const JOBS_MODULE = fileURLToPath(new URL('../fixtures/continuous/jobs.ts', import.meta.url));
/** Children boot through tsx in about a second, slower on a loaded machine: waits are generous. */
const WAIT_MS = 15_000;
const GRACE_MS = 300;
const RESTART_BACKOFF_MS = 50;
/**
 * Timers count from the event loop's cached clock, which can lag the Date.now() stamped on runs by
 * a few ms: measured delays may come out that much shorter than the timer that caused them.
 */
const CLOCK_SLACK_MS = 20;

interface Setup {
  runner: Runner;
  store: MemoryStore;
  objects: DirectoryObjectStore;
  dir: string;
}

const setups: Setup[] = [];

/** A runner whose continuous and isolated tasks run the fixture job types in child processes. */
function setup(instances: InstanceConfig[], graceMs = GRACE_MS): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'ujr-continuous-'));
  const store = new MemoryStore();
  const objects = new DirectoryObjectStore(dir);
  const runner = new Runner({
    store,
    objects,
    jobs,
    instances,
    processExecutor: new ProcessExecutor({ jobsModule: JOBS_MODULE, objectsRoot: dir }),
    leaseTtlMs: 5_000,
    graceMs,
    continuousRestart: { backoffMs: RESTART_BACKOFF_MS, jitter: 0, maxBackoffMs: 200 },
  });
  const created = { runner, store, objects, dir };
  setups.push(created);
  return created;
}

afterEach(async () => {
  const ending = setups.splice(0);
  try {
    for (const { runner, objects } of ending) {
      await runner.stop(2_000);
      await expectNoChildLeft(objects);
    }
  } finally {
    for (const { dir } of ending) rmSync(dir, { recursive: true, force: true });
  }
});

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Every pid a fixture task recorded (other than this process's: inline tasks) has exited. */
async function expectNoChildLeft(objects: DirectoryObjectStore): Promise<void> {
  const pids = new Set<number>();
  for (const info of await objects.list('runs/')) {
    const start = taskStartSchema.parse(JSON.parse((await objects.getText(info.key)) ?? 'null'));
    if (start.pid !== process.pid) pids.add(start.pid);
  }
  try {
    await until(() => [...pids].every((pid) => !isAlive(pid)), 5_000, `child processes ${[...pids].join(', ')} to exit`);
  } catch (error) {
    // Do not leave them running past a failed test either.
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    throw error;
  }
}

const taskStartSchema: z.ZodType<TaskStart> = z.object({
  pid: z.number().int(),
  attempt: z.number().int(),
  lastCheckpoint: z.any(),
});
const abortSeenSchema = z.object({ name: z.string(), message: z.string() });

/** What the task of run `runId` wrote at its start, once it has. */
async function taskStart(objects: DirectoryObjectStore, runId: string): Promise<TaskStart> {
  let text: string | undefined;
  await until(async () => (text = await objects.getText(runKey(runId))) !== undefined, WAIT_MS, `run ${runId} to start its task`);
  return taskStartSchema.parse(JSON.parse(text ?? 'null'));
}

/** The reason the task of run `runId` saw on its AbortSignal, once it has written it. */
async function abortSeen(objects: DirectoryObjectStore, runId: string): Promise<z.infer<typeof abortSeenSchema>> {
  let text: string | undefined;
  await until(async () => (text = await objects.getText(abortKey(runId))) !== undefined, WAIT_MS, `run ${runId} to see its abort`);
  return abortSeenSchema.parse(JSON.parse(text ?? 'null'));
}

/** A snapshot of the next run event matching `match` (call it before the event can happen). */
async function nextRun(runner: Runner, match: (run: RunRecord) => boolean, ms = WAIT_MS): Promise<RunRecord> {
  let seen: RunRecord | undefined;
  await waitFor<[RunRecord]>(
    runner,
    'run',
    (run) => {
      if (!match(run)) return false;
      seen = structuredClone(run);
      return true;
    },
    ms,
  );
  if (!seen) throw new Error('waitFor resolved without a matching run');
  return seen;
}

/** How long a run ran, from start to end. */
function elapsed(run: RunRecord): number {
  return (run.endedAt ?? 0) - (run.startedAt ?? Infinity);
}

async function exited(pid: number): Promise<void> {
  await until(() => !isAlive(pid), WAIT_MS, `process ${pid} to exit`);
}

async function leaseReleased(store: MemoryStore, signature: string): Promise<void> {
  await until(async () => (await store.getLease(signature))?.owner === null, WAIT_MS, `the lease on ${signature} to be released`);
}

describe('continuous tasks in child processes', () => {
  it('runs a continuous task in a child process and stores its log lines, stdout and stderr included, its progress and its checkpoint', async () => {
    // Prepare
    const { runner, store, objects } = setup([instance('stream', 'streamer')]);
    const running = nextRun(runner, (run) => run.instanceId === 'stream' && run.status === 'running');

    // Act
    await runner.start();
    const run = await running;
    const start = await taskStart(objects, run.id);
    await until(async () => (await store.getCheckpoint(run.signature)) !== undefined, WAIT_MS, 'the checkpoint');
    await until(
      async () => {
        const messages = (await store.getLogs(run.id)).map((line) => line.message);
        return [STDOUT_LINE, STDERR_LINE, LOGGER_LINE].every((line) => messages.includes(line));
      },
      WAIT_MS,
      'the log lines',
    );

    // Assess
    expect(run).toMatchObject({ kind: 'continuous', attempt: 1, origin: 'schedule' });
    expect(start.pid).not.toBe(process.pid);
    expect(isAlive(start.pid)).toBe(true);
    expect(await store.getCheckpoint(run.signature)).toMatchObject({ value: STREAM_CHECKPOINT, runId: run.id });
    expect(await store.getLogs(run.id)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ level: 'info', message: STDOUT_LINE }),
        expect.objectContaining({ level: 'error', message: STDERR_LINE }),
        expect.objectContaining({ level: 'info', message: LOGGER_LINE }),
      ]),
    );
    expect(await store.getRun(run.id)).toMatchObject({
      status: 'running',
      progress: { current: STREAM_CHECKPOINT.offset, total: 10, message: 'warming up' },
    });
    expect(runner.stats().continuous).toBe(1);
  });

  it('refuses the checkpoint and object write of a child whose lease was taken, with LeaseLostError in the child', async () => {
    // Prepare: the task runs in its child and waits for the flag.
    const reportDir = mkdtempSync(join(tmpdir(), 'ujr-latecomer-'));
    const { runner, store, objects } = setup([instance('late', 'latecomer', { params: { reportDir } })]);
    const running = nextRun(runner, (run) => run.instanceId === 'late' && run.status === 'running');
    await runner.start();
    const run = await running;
    await taskStart(objects, run.id);
    await until(async () => (await store.getRun(run.id))?.status === 'running', WAIT_MS, 'the running record');

    // Act: another holder takes the lease (as after an expiry), then the task tries to write.
    await store.acquireLeases([{ signature: run.signature, owner: 'newer-holder', ttlMs: 60_000, runId: 'other', instanceId: 'late', task: 'late' }], Number.MAX_SAFE_INTEGER / 2);
    await objects.put(flagKey('late'), 'go');
    let report: string | undefined;
    await until(() => (report = readIfExists(latecomerReport(reportDir, run.id))) !== undefined, WAIT_MS, 'the task to report');

    // Assess
    expect(JSON.parse(report ?? 'null')).toStrictEqual({ checkpoint: 'LeaseLostError', put: 'LeaseLostError' });
    expect(await store.getCheckpoint(run.signature)).toBeUndefined();
    expect(await objects.getText(`late/${run.id}`)).toBeUndefined();
    expect((await store.getLease(run.signature))?.owner).toBe('newer-holder');
    rmSync(reportDir, { recursive: true, force: true });
  });

  it('records a crashed continuous task failed and restarts it after the backoff from its last checkpoint', async () => {
    // Prepare
    const { runner, store, objects } = setup([instance('crash', 'crasher')]);
    const crashed = nextRun(runner, (run) => run.status === 'failed');
    const restarted = nextRun(runner, (run) => run.status === 'running' && run.attempt === 2);

    // Act
    await runner.start();
    const failedRun = await crashed;
    const restartRun = await restarted;
    const first = await taskStart(objects, failedRun.id);
    const second = await taskStart(objects, restartRun.id);

    // Assess
    expect(failedRun).toMatchObject({
      kind: 'continuous',
      attempt: 1,
      error: { name: 'TaskProcessError', message: expect.stringContaining('exited with code 1') as unknown },
    });
    expect(restartRun).toMatchObject({ attempt: 2, origin: 'restart', signature: failedRun.signature });
    expect((restartRun.startedAt ?? 0) - (failedRun.endedAt ?? Infinity)).toBeGreaterThanOrEqual(RESTART_BACKOFF_MS - CLOCK_SLACK_MS);
    expect(first.lastCheckpoint).toBeNull();
    expect(second.lastCheckpoint).toEqual(CRASH_CHECKPOINT);
    expect(second.pid).not.toBe(first.pid);
    await exited(first.pid);
    expect(isAlive(second.pid)).toBe(true);
    expect((await store.getRun(failedRun.id))?.status).toBe('failed');
  });

  it('restarts a crashed continuous task once its slow plan returns it, even when the backoff ends first', async () => {
    // Prepare
    expect(SLOW_RESTART_PLAN_MS).toBeGreaterThan(RESTART_BACKOFF_MS * 4);
    const { runner, store } = setup([instance('slow', 'slow-crasher')]);
    const crashed = nextRun(runner, (run) => run.status === 'failed');
    const restarted = nextRun(runner, (run) => run.status === 'running' && run.attempt === 2);

    // Act
    await runner.start();
    const failedRun = await crashed;
    const restartRun = await restarted;

    // Assess
    expect(restartRun).toMatchObject({ attempt: 2, origin: 'restart', signature: failedRun.signature });
    expect(await store.listRuns({ instanceId: 'slow', status: 'cancelled' })).toEqual([]);
  });

  it('kills a continuous task that stops heartbeating after the grace period and restarts it, while the runner keeps running other tasks', async () => {
    // Prepare
    const { runner, objects } = setup([instance('hang', 'hanger'), instance('tick', 'ticker')]);
    const hanging = nextRun(runner, (run) => run.instanceId === 'hang' && run.status === 'running' && run.attempt === 1);
    const killed = nextRun(runner, (run) => run.instanceId === 'hang' && run.status === 'failed', 2 * WAIT_MS);
    const restarted = nextRun(runner, (run) => run.instanceId === 'hang' && run.status === 'running' && run.attempt === 2, 2 * WAIT_MS);
    await runner.start();
    const hungRun = await hanging;
    const hung = await taskStart(objects, hungRun.id);

    // Act: while the child spins, an inline task of another instance runs
    const ticked = nextRun(runner, (run) => run.instanceId === 'tick' && run.status === 'succeeded');
    await runner.trigger('tick', 'tick');
    const tick = await ticked;
    const killedRun = await killed;
    const restartRun = await restarted;

    // Assess
    expect(tick.result).toEqual({ pid: process.pid });
    expect(tick.endedAt).toBeLessThan(killedRun.endedAt ?? 0);
    expect(killedRun).toMatchObject({
      id: hungRun.id,
      error: { name: 'TaskProcessError', message: expect.stringContaining(`no heartbeat for ${HANG_HEARTBEAT_TIMEOUT_MS} ms`) as unknown },
    });
    expect(elapsed(killedRun)).toBeGreaterThanOrEqual(HANG_HEARTBEAT_TIMEOUT_MS + GRACE_MS - CLOCK_SLACK_MS);
    await exited(hung.pid);
    expect(restartRun).toMatchObject({ origin: 'restart', signature: hungRun.signature });
    expect((await taskStart(objects, restartRun.id)).pid).not.toBe(hung.pid);
  });

  it('stops a continuous task its job no longer returns, and one whose instance is disabled: cancelled runs, exited children', async () => {
    // Prepare
    const flagged = instance('flagged', 'streamer');
    const disabled = instance('disabled', 'streamer');
    const { runner, store, objects } = setup([flagged, disabled]);
    const runningFlagged = nextRun(runner, (run) => run.instanceId === 'flagged' && run.status === 'running');
    const runningDisabled = nextRun(runner, (run) => run.instanceId === 'disabled' && run.status === 'running');
    await runner.start();
    const flaggedRun = await runningFlagged;
    const disabledRun = await runningDisabled;
    const flaggedChild = await taskStart(objects, flaggedRun.id);
    const disabledChild = await taskStart(objects, disabledRun.id);

    // Act 1: the job stops returning the task (its plan reads the flag through ctx.objects)
    const flaggedCancelled = nextRun(runner, (run) => run.id === flaggedRun.id && run.status === 'cancelled');
    await objects.put(flagKey('flagged'), 'off');
    await runner.trigger('flagged');
    const flaggedEnd = await flaggedCancelled;

    // Assess 1
    expect(flaggedEnd.error).toMatchObject({ name: 'CancelledError', message: expect.stringContaining('no longer returns') as unknown });
    expect(await abortSeen(objects, flaggedRun.id)).toMatchObject({ name: 'CancelledError' });
    await exited(flaggedChild.pid);
    await leaseReleased(store, flaggedRun.signature);
    expect(isAlive(disabledChild.pid)).toBe(true);

    // Act 2: the other instance is disabled
    const disabledCancelled = nextRun(runner, (run) => run.id === disabledRun.id && run.status === 'cancelled');
    runner.setInstances([flagged, { ...disabled, enabled: false }]);
    const disabledEnd = await disabledCancelled;

    // Assess 2
    expect(disabledEnd.error).toMatchObject({ name: 'CancelledError', message: expect.stringContaining('was disabled') as unknown });
    expect(await abortSeen(objects, disabledRun.id)).toMatchObject({ name: 'CancelledError' });
    await exited(disabledChild.pid);
    await leaseReleased(store, disabledRun.signature);
    await runner.whenIdle();
    expect(runner.stats()).toMatchObject({ continuous: 0, cancelled: 2 });
  });

  it('aborts continuous tasks on stop: the child sees the abort, the run is interrupted, the lease released and the child gone', async () => {
    // Prepare
    const { runner, store, objects } = setup([instance('stream', 'streamer')]);
    const running = nextRun(runner, (run) => run.instanceId === 'stream' && run.status === 'running');
    await runner.start();
    const run = await running;
    const child = await taskStart(objects, run.id);

    // Act
    await runner.stop(5_000);

    // Assess
    expect(await abortSeen(objects, run.id)).toMatchObject({ name: 'ShutdownError' });
    expect(await store.getRun(run.id)).toMatchObject({ status: 'interrupted', error: { name: 'ShutdownError' } });
    expect((await store.getLease(run.signature))?.owner).toBeNull();
    await exited(child.pid);
  });
});

describe('isolated batch tasks in child processes', () => {
  it('kills an isolated task that ignores its abort after timeout plus grace, fails it with TaskTimeoutError and releases its lease; an inline one can only be abandoned', async () => {
    // Prepare
    const graceMs = 500;
    const { runner, store, objects } = setup([instance('stuck', 'isolated', { params: { tasks: ['spin', 'stall', 'stallInline'] } })], graceMs);
    const failed = (task: string) => nextRun(runner, (run) => run.task === task && run.status === 'failed', 2 * WAIT_MS);
    const failures = Promise.all([failed('spin'), failed('stall'), failed('stallInline')]);

    // Act
    await runner.start();
    const [spin, stall, stallInline] = await failures;

    // Assess
    for (const run of [spin, stall, stallInline]) {
      expect(run).toMatchObject({ attempt: 1, maxAttempts: 1, error: { name: 'TaskTimeoutError' } });
      expect(elapsed(run)).toBeGreaterThanOrEqual(STUCK_TIMEOUT_MS + graceMs - CLOCK_SLACK_MS);
    }
    for (const run of [spin, stall]) {
      // The error is the runner's reason (the timeout); the stack is what ended the child.
      expect(run.error?.stack).toContain('killed by SIGKILL');
      const child = await taskStart(objects, run.id);
      expect(child.pid).not.toBe(process.pid);
      await exited(child.pid);
      await leaseReleased(store, run.signature);
    }
    expect((await taskStart(objects, stallInline.id)).pid).toBe(process.pid);
    expect((await store.getLease(stallInline.signature))?.owner).toBe(runner.owner);
  });

  it('counts timeouts and heartbeat deadlines from the handler start, not from the process boot', async () => {
    // Prepare
    const { runner } = setup([instance('beat', 'quick-beat')]);
    const ended = nextRun(runner, (run) => run.status !== 'running' && run.status !== 'queued');

    // Act
    await runner.start();
    const run = await ended;

    // Assess
    expect(run).toMatchObject({ status: 'succeeded', result: 'beat', attempt: 1 });
    expect((run.endedAt ?? 0) - (run.startedAt ?? 0)).toBeGreaterThan(QUICK_BEAT_TIMEOUT_MS);
  });

  it('fails an isolated task that throws NonRetryableError at once, keeping the error name and the stack from the child', async () => {
    // Prepare
    const { runner, store, objects } = setup([instance('refuse', 'isolated', { params: { tasks: ['refuse'] } })]);
    const failed = nextRun(runner, (run) => run.task === 'refuse' && run.status === 'failed');

    // Act
    await runner.start();
    const run = await failed;
    await runner.whenIdle();

    // Assess
    expect(run).toMatchObject({
      attempt: 1,
      maxAttempts: 3,
      error: { name: 'NonRetryableError', message: expect.stringContaining('names no source') as unknown },
    });
    expect(run.error?.stack).toMatch(/NonRetryableError: the input names no source/);
    expect(run.error?.stack).toContain('fixtures/continuous/jobs.ts');
    expect(await store.listRuns({ signature: run.signature })).toHaveLength(1);
    await exited((await taskStart(objects, run.id)).pid);
    await leaseReleased(store, run.signature);
  });
});
