/**
 * The guarantees that hold across processes, checked on real `ujr run` processes sharing one
 * SQLite file (one --home): one signature never runs in two places at once, a runner killed
 * with SIGKILL is taken over once its lease expires, SIGTERM stops gracefully without losing
 * work, and edits of the instances file apply live. The fixture tasks (test/fixtures/cli/jobs.ts)
 * record each execution's start and end, pid and fencing token in the data directory.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { RunRecord } from '../../core/types.js';
import type { Execution } from '../fixtures/cli/jobs.js';
import { Sandbox } from '../fixtures/cli/sandbox.js';
import { pollFor, until } from '../helpers/runner.js';

/** A process start (tsx compiles on the fly) takes a second or more on a busy machine. */
const START_MS = 20_000;

let sandbox: Sandbox;

beforeEach(async () => {
  sandbox = await Sandbox.create();
});

afterEach(async () => {
  await sandbox.dispose();
});

/** Runs `check` at most every `everyMs` under `until`, so that polling leaves the runners their CPU. */
function throttled(check: () => Promise<boolean>, everyMs = 100): () => Promise<boolean> {
  let last = 0;
  return async () => {
    if (Date.now() - last < everyMs) return false;
    last = Date.now();
    return check();
  };
}

function runsOf(instanceId: string): Promise<RunRecord[]> {
  return sandbox.store().listRuns({ instanceId, limit: 10_000 });
}

async function startsOf(instanceId: string): Promise<Execution[]> {
  return (await sandbox.executions(instanceId)).starts;
}

const itemOf = (input: unknown) => z.object({ i: z.number() }).parse(input).i;

describe('two runner processes on one SQLite file', () => {
  it('never run one signature at the same time, run every task, and share the work', async () => {
    // Prepare: both runners up and idle before there is any work, so that both can take some.
    const count = 16;
    const rounds = 3;
    await sandbox.writeInstances([]);
    const a = sandbox.spawn('run', '--concurrency', '4', '--quiet');
    const b = sandbox.spawn('run', '--concurrency', '4', '--quiet');
    await until(() => a.stderr.includes('running as') && b.stderr.includes('running as'), START_MS, 'both runners to start');

    // Act: every task must run `rounds` times, so each signature is leased again and again.
    // One task per plan: each runner asks for one more as one ends, so both keep busy.
    await sandbox.writeInstances([{ id: 'n', job: 'batch', schedule: '1s', params: { count, rounds, perPlan: 1, ms: 100, jitterMs: 100 } }]);
    await until(
      throttled(async () => {
        const succeeded = (await runsOf('n')).filter((run) => run.status === 'succeeded');
        const perItem = new Map<number, number>();
        for (const run of succeeded) perItem.set(itemOf(run.input), (perItem.get(itemOf(run.input)) ?? 0) + 1);
        return perItem.size === count && [...perItem.values()].every((n) => n >= rounds);
      }),
      40_000,
      `${count} tasks to succeed ${rounds} times each`,
    );
    a.signal('SIGTERM');
    b.signal('SIGTERM');
    const [exitA, exitB] = await Promise.all([sandbox.waitExit(a, 15_000), sandbox.waitExit(b, 15_000)]);

    // Assess
    expect(exitA.code, a.describe()).toBe(0);
    expect(exitB.code, b.describe()).toBe(0);
    const { starts, ends } = await sandbox.executions('n');
    const endOf = new Map(ends.map((e) => [e.runId, e.end ?? Number.POSITIVE_INFINITY]));
    const bySignature = new Map<string, Execution[]>();
    for (const e of starts) bySignature.set(e.signature, [...(bySignature.get(e.signature) ?? []), e]);
    expect(bySignature.size).toBe(count);
    const problems: string[] = [];
    let handedOver = 0;
    for (const [signature, executions] of bySignature) {
      executions.sort((x, y) => x.start - y.start);
      for (const [k, after] of executions.entries()) {
        const before = executions[k - 1];
        if (before === undefined) continue;
        // An execution without an end record was stopped by SIGTERM: it may have run until then.
        const beforeEnd = endOf.get(before.runId) ?? Number.POSITIVE_INFINITY;
        if (after.start < beforeEnd) problems.push(`${signature}: pid ${before.pid} ran ${before.start}–${beforeEnd}, pid ${after.pid} started at ${after.start}`);
        if (after.token <= before.token) problems.push(`${signature}: fencing token ${after.token} came after ${before.token}`);
        if (after.pid !== before.pid) handedOver += 1;
      }
    }
    expect(problems).toEqual([]);
    expect(starts.length).toBeGreaterThanOrEqual(count * rounds);
    expect(new Set(ends.map((e) => e.pid))).toEqual(new Set([a.pid, b.pid]));
    // The check above is not vacuous: signatures did pass from one process to the other.
    expect(handedOver).toBeGreaterThan(0);
  }, 60_000);
});

describe('a runner killed with SIGKILL', () => {
  it('has its task taken over by another runner once its lease expires, with a higher fencing token', async () => {
    // Prepare
    await sandbox.writeInstances([{ id: 'h', job: 'hang', schedule: '1s', params: { ms: 60_000 } }]);
    const a = sandbox.spawn('run', '--lease-ttl', '1500', '--quiet');
    await until(throttled(async () => (await startsOf('h')).length > 0), START_MS, 'runner A to start the task');
    const [first] = await startsOf('h');
    expect(first?.pid).toBe(a.pid);

    // Act
    a.signal('SIGKILL');
    expect((await sandbox.waitExit(a, 10_000)).signal).toBe('SIGKILL');
    const orphaned = await sandbox.store().getLease(first?.signature ?? '');
    const b = sandbox.spawn('run', '--lease-ttl', '1500', '--quiet');
    await until(throttled(async () => (await startsOf('h')).some((e) => e.pid === b.pid)), START_MS, 'runner B to take the task over');

    // Assess
    const second = (await startsOf('h')).find((e) => e.pid === b.pid);
    expect(orphaned?.owner).toContain(`:${a.pid}:`);
    expect(second?.signature).toBe(first?.signature);
    expect(second?.token).toBeGreaterThan(first?.token ?? Number.POSITIVE_INFINITY);
    expect(second?.start).toBeGreaterThanOrEqual(orphaned?.expiresAt ?? Number.POSITIVE_INFINITY);
    // The run was stored (queued) before the handler started; its `running` follows within a commit interval.
    const takenOver = await pollFor(
      async () => {
        const run = await sandbox.store().getRun(second?.runId ?? '');
        return run?.status === 'running' ? run : undefined;
      },
      5_000,
      "B's run to be recorded running",
      100,
    );
    expect(takenOver).toMatchObject({ status: 'running', fencingToken: second?.token });
    // B either found A's lease expired when it planned (a takeover) or its sweeper had already
    // ended A's run and released the lease (then B's plan is an ordinary one).
    expect(['takeover', 'schedule']).toContain(takenOver?.origin);
    expect(takenOver?.runner).toContain(`:${b.pid}:`);
    await until(throttled(async () => (await sandbox.store().getRun(first?.runId ?? ''))?.status === 'interrupted'), 10_000, "A's run to be recorded interrupted");
    expect((await sandbox.store().getRun(first?.runId ?? ''))?.error?.name).toBe('LeaseExpiredError');
  }, 60_000);
});

describe('a runner stopped with SIGTERM', () => {
  it('exits 0 within the grace period, records the run interrupted, releases its lease, and the next run completes the task', async () => {
    // Prepare
    await sandbox.writeInstances([{ id: 'h', job: 'hang', params: { ms: 60_000 } }]);
    const runner = sandbox.spawn('run', '--grace', '5000', '--quiet');
    await until(throttled(async () => (await startsOf('h')).length > 0), START_MS, 'the runner to start the task');
    const [started] = await startsOf('h');

    // Act
    const signalledAt = Date.now();
    runner.signal('SIGTERM');
    const exit = await sandbox.waitExit(runner, 15_000);
    const tookMs = Date.now() - signalledAt;

    // Assess
    expect(exit.code, runner.describe()).toBe(0);
    expect(tookMs).toBeLessThan(5_000);
    expect(exit.stderr).toContain('SIGTERM: stopping');
    expect(exit.stdout).toContain('stopped: ');
    const interrupted = await sandbox.store().getRun(started?.runId ?? '');
    expect(interrupted).toMatchObject({ status: 'interrupted', error: { name: 'ShutdownError' } });
    expect(await sandbox.store().listActiveLeases(Date.now())).toEqual([]);
    expect((await sandbox.executions('h')).ends).toEqual([]);

    // Nothing lost: the next start plans the task again and completes it (quickly, this time).
    await sandbox.writeInstances([{ id: 'h', job: 'hang', params: { ms: 50 } }]);
    const once = await sandbox.run(['run', '--once']);
    expect(once.code, once.stderr).toBe(0);
    const [latest] = await runsOf('h');
    expect(latest).toMatchObject({ status: 'succeeded', origin: 'schedule', signature: started?.signature });
    expect(latest?.fencingToken).toBeGreaterThan(started?.token ?? Number.POSITIVE_INFINITY);
    expect((await sandbox.executions('h')).ends.map((e) => e.runId)).toEqual([latest?.id]);
  }, 60_000);
});

describe('editing the instances file while ujr run runs', () => {
  it('starts added instances, keeps the last good version of a broken one, and stops a disabled one', async () => {
    // Prepare
    const a = { id: 'a', job: 'ticker' };
    await sandbox.writeInstances([a]);
    const runner = sandbox.spawn('run', '--quiet');
    const succeeded = async (id: string, after = 0) => (await runsOf(id)).some((run) => run.status === 'succeeded' && run.queuedAt > after);
    await until(throttled(() => succeeded('a')), START_MS, 'instance a to run');

    // Act + Assess: an added instance runs without a restart.
    await sandbox.writeInstances([a, { id: 'b', job: 'ticker' }]);
    await until(throttled(() => succeeded('b')), 10_000, 'the added instance b to run');

    // A bad edit is reported with the instance and the field; b's last good version keeps running.
    await sandbox.writeInstances([a, { id: 'b', job: 'ticker', params: { slotMs: 'fast' } }]);
    await until(() => runner.stderr.includes('instance "b": params.slotMs'), 10_000, 'the bad edit to be reported');
    const reportedAt = Date.now();
    expect(runner.stderr).toMatch(/instance "b": params\.slotMs: .*\(the last good configuration keeps running\)/);
    await until(throttled(() => succeeded('b', reportedAt)), 10_000, 'b to keep running after the bad edit');

    // Disabling b (with `ujr jobs disable`) stops planning it, while a goes on.
    await sandbox.writeInstances([a, { id: 'b', job: 'ticker' }]);
    const disable = await sandbox.run(['jobs', 'disable', 'b']);
    expect(disable.code, disable.stderr).toBe(0);
    await until(
      throttled(async () => {
        const lastB = Math.max(...(await runsOf('b')).map((run) => run.queuedAt));
        return (await runsOf('a')).some((run) => run.queuedAt > lastB + 2_500);
      }),
      15_000,
      'a to keep running for 2.5 s after the last run of b',
    );
    expect(runner.running).toBe(true);
    expect(new Set((await sandbox.executions('b')).starts.map((e) => e.pid))).toEqual(new Set([runner.pid]));
  }, 60_000);
});
