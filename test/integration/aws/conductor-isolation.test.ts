/**
 * A conductor container (the container program, containers/main.ts, as a process on DynamoDB Local
 * and the emulators) runs each continuous task in a child process of its own and keeps the leases
 * itself: a task that blocks its event loop for several lease lifetimes does not cost another task
 * its lease, while a scheduler sweeps and a second conductor stands ready to take over whatever
 * expires; a task process that crashes or is killed ends only its own attempt; on SIGTERM the
 * processes of tasks that do not return in the grace period are killed, and none outlives the
 * conductor.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { BoardEntry } from '../../../core/cloud/board.js';
import type { ObjectStore } from '../../../core/types.js';
import jobs from '../../fixtures/aws/isolation-jobs.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { isAlive, ProcessPool } from '../../helpers/processes.js';
import { pollFor } from '../../helpers/runner.js';

const CONTAINER = fileURLToPath(new URL('../../fixtures/aws/isolation-container.ts', import.meta.url));
const LEASE_TTL_MS = 2_000;
const GRACE_MS = 1_000;

const pool = new ProcessPool();
const stacks: LocalAwsStack[] = [];

afterEach(async () => {
  await pool.killAll();
  await Promise.all(stacks.splice(0).map((stack) => stack.destroy()));
});

async function createStack(): Promise<LocalAwsStack> {
  const stack = await new LocalAwsStack().create();
  stacks.push(stack);
  return stack;
}

function conductorEnv(stack: LocalAwsStack): Record<string, string> {
  return stack.processEnv({
    UJR_CONDUCTOR_LEASE_TTL_MS: String(LEASE_TTL_MS),
    UJR_CONDUCTOR_POLL_MS: '100',
    UJR_TASKS_PER_CONDUCTOR: '2',
    UJR_GRACE_MS: String(GRACE_MS),
  });
}

/** Starts the container program as a conductor; resolves with it and its owner id once it polls the board. */
async function startConductor(stack: LocalAwsStack) {
  const proc = pool.start(CONTAINER, conductorEnv(stack));
  const owner = (await pool.waitForOutput(proc, /conductor (\S+) started/))[1] as string;
  return { proc, owner };
}

/** The board's conductor entries by task, once `tasks` are all started by `owner`. */
async function startedBy(stack: LocalAwsStack, owner: string, tasks: string[]): Promise<Map<string, BoardEntry>> {
  return pollFor(async () => {
    const entries = new Map((await stack.store.listRoute('conductor')).map((entry) => [entry.task, entry]));
    return tasks.every((task) => entries.get(task)?.owner === owner && entries.get(task)?.startedAt !== undefined) ? entries : undefined;
  }, 30_000, `the conductor to start ${tasks.join(' and ')}`);
}

async function pidOf(objects: ObjectStore, instanceId: string, task: string): Promise<number> {
  // Read until whole: the S3 emulator can answer an object being written with its empty body.
  const text = await pollFor(async () => (await objects.getText(`pids/${instanceId}/${task}`)) || undefined, 30_000, `the pid of ${task}`);
  return Number(text);
}

interface Observation {
  at: number;
  entry: BoardEntry | undefined;
}

/** Reads the entry of each of `signatures` every 100 ms until `done()` says so; one list of readings per signature. */
async function observe(stack: LocalAwsStack, signatures: string[], done: () => Promise<boolean>): Promise<Map<string, Observation[]>> {
  const seen = new Map<string, Observation[]>(signatures.map((signature) => [signature, []]));
  for (;;) {
    const at = Date.now();
    const entries = new Map((await stack.store.listRoute('conductor')).map((entry) => [entry.signature, entry]));
    for (const signature of signatures) seen.get(signature)?.push({ at, entry: entries.get(signature) });
    if (await done()) return seen;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('a conductor container', () => {
  it('keeps a well-behaved task on its lease while another task busy-loops for several lease lifetimes', async () => {
    // Prepare: two continuous tasks on one conductor; one will block its event loop for 4 lease lifetimes.
    const stack = await createStack();
    const spinMs = 4 * LEASE_TTL_MS;
    await stack.seedInstances([{ id: 'pair', job: 'isolation', params: { tasks: ['spin', 'steady'], spinMs }, schedule: '1m' }]);
    const { scheduler } = stack.scheduler(jobs);
    const { objects } = stack.container(jobs);
    await scheduler.tick();
    const { proc, owner } = await startConductor(stack);
    const started = await startedBy(stack, owner, ['spin', 'steady']);
    const steady = started.get('steady') as BoardEntry;
    const spin = started.get('spin') as BoardEntry;
    const spinStartedAt = Number(await pollFor(() => objects.getText('spin/pair/started'), 30_000, 'the spin to start'));
    // A second conductor container, as the service runs several: it takes over any lease that expires.
    const rival = await startConductor(stack);

    // Act: watch both entries for as long as the spin blocks its process, the scheduler sweeping all along.
    let sweeping = true;
    const sweeps = (async () => {
      while (sweeping) {
        await scheduler.tick();
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    })();
    const seen = await observe(stack, [steady.signature, spin.signature], async () => (await objects.stat('spin/pair/ended')) !== undefined || Date.now() > spinStartedAt + spinMs + 5_000);
    sweeping = false;
    await sweeps;
    // (A spin whose lease moved on could not write its end: fenced.)
    const spinEndedAt = Number((await objects.getText('spin/pair/ended')) ?? Date.now());

    // Assess: the steady task never lost its lease, nobody swept or took it over, its progress went on.
    const steadySeen = seen.get(steady.signature) ?? [];
    const gaps = steadySeen.slice(1).map(({ at }, i) => at - (steadySeen[i]?.at ?? at));
    expect(Math.max(...gaps), 'the longest pause between two readings of the board').toBeLessThan(1_500);
    for (const { at, entry } of steadySeen) {
      expect(entry, `the steady task's entry at ${at - spinStartedAt} ms into the spin`).toMatchObject({ owner, token: steady.token });
      expect(entry?.expiresAt, `the steady task's lease expiry at ${at - spinStartedAt} ms into the spin`).toBeGreaterThan(at);
    }
    const whileBlocked = steadySeen.filter(({ at }) => at >= spinStartedAt + 2 * LEASE_TTL_MS && at < spinEndedAt).map(({ entry }) => entry?.progress?.current ?? 0);
    expect(spinEndedAt - spinStartedAt).toBeGreaterThanOrEqual(spinMs);
    expect(whileBlocked.length).toBeGreaterThan(5);
    expect(new Set(whileBlocked).size, `the steady task's progress while the other task spun: ${whileBlocked.join(', ')}`).toBeGreaterThanOrEqual(5);
    expect(whileBlocked).toEqual([...whileBlocked].sort((a, b) => a - b));
    // The conductor renewed the spinning task's lease too: its process was busy, not dead.
    for (const { entry } of seen.get(spin.signature) ?? []) expect(entry).toMatchObject({ owner, token: spin.token });
    expect(rival.owner).not.toBe(owner);
    const runs = await stack.store.listRuns({ instanceId: 'pair' });
    expect(runs.map((run) => run.status)).toEqual(['running', 'running']);
    const pids = [await pidOf(objects, 'pair', 'spin'), await pidOf(objects, 'pair', 'steady')];
    expect(new Set([proc.pid, ...pids]).size).toBe(3);

    // Stopped by ECS: both tasks are aborted, recorded interrupted and handed back; no task process is left.
    rival.proc.signal('SIGTERM'); // (or it would claim what the conductor hands back)
    expect((await rival.proc.exited).code).toBe(0);
    proc.signal('SIGTERM');
    expect((await proc.exited).code).toBe(0);
    expect(pids.filter(isAlive)).toEqual([]);
    const ended = await stack.store.listRuns({ instanceId: 'pair' });
    expect(ended.map((run) => run.status)).toEqual(['interrupted', 'interrupted']);
    expect((await stack.store.listRoute('conductor')).map((entry) => entry.owner)).toEqual([expect.stringMatching(/^conductor:/), expect.stringMatching(/^conductor:/)]);
  }, 90_000);

  it('kills a task process that does not return within the grace period after SIGTERM, and leaves none behind', async () => {
    // Prepare: a task that blocks its event loop for a minute, so it cannot see the abort.
    const stack = await createStack();
    await stack.seedInstances([{ id: 'stuck', job: 'isolation', params: { tasks: ['spin'], spinMs: 60_000 }, schedule: '1m' }]);
    const { objects } = stack.container(jobs);
    await stack.scheduler(jobs).scheduler.tick();
    const { proc } = await startConductor(stack);
    await pollFor(() => objects.getText('spin/stuck/started'), 30_000, 'the spin to start');
    const pid = await pidOf(objects, 'stuck', 'spin');

    // Act
    const stoppedAt = Date.now();
    proc.signal('SIGTERM');
    const exit = await proc.exited;

    // Assess
    expect(exit.code, exit.stderr).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(GRACE_MS + 10_000);
    expect(isAlive(pid)).toBe(false);
    const [run] = await stack.store.listRuns({ instanceId: 'stuck' });
    expect(run).toMatchObject({ status: 'interrupted', error: { name: 'ShutdownError' } });
    const [entry] = await stack.store.listRoute('conductor');
    expect(entry?.owner).toMatch(/^conductor:/);
  }, 60_000);

  it('records a stopped task as the ShutdownError with what its handler threw as the cause, as locally', async () => {
    // Prepare
    const stack = await createStack();
    await stack.seedInstances([{ id: 'stopper', job: 'isolation', params: { tasks: ['failstop'] }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();
    const { objects } = stack.container(jobs);
    const { proc, owner } = await startConductor(stack);
    await startedBy(stack, owner, ['failstop']);
    // The handler itself runs (a SIGTERM between the claim and its start would stop a task that never ran).
    await pidOf(objects, 'stopper', 'failstop');

    // Act
    proc.signal('SIGTERM');
    expect((await proc.exited).code).toBe(0);

    // Assess
    const [run] = await stack.store.listRuns({ instanceId: 'stopper' });
    expect(run).toMatchObject({ status: 'interrupted', error: { name: 'ShutdownError' } });
    expect(run?.error?.stack).toMatch(/^ShutdownError: /);
    expect(run?.error?.stack).toContain('Caused by: Error: could not flush on stop');
  }, 60_000);

  it('records the attempt of a task process that crashes or is killed as failed, and goes on with its other tasks', async () => {
    // Prepare
    const stack = await createStack();
    await stack.seedInstances([{ id: 'mixed', job: 'isolation', params: { tasks: ['crash', 'steady'] }, schedule: '1m' }]);
    const { objects } = stack.container(jobs);
    await stack.scheduler(jobs).scheduler.tick();
    const { proc, owner } = await startConductor(stack);
    const steadyPid = await pidOf(objects, 'mixed', 'steady');

    // Act: one task process exits by itself; once its attempt is recorded, the other is killed.
    const crashed = await pollFor(async () => (await stack.store.listRuns({ instanceId: 'mixed' })).find((run) => run.task === 'crash' && run.status === 'failed'), 30_000, 'the crashed attempt to be recorded');
    const steady = (await stack.store.listRoute('conductor')).find((entry) => entry.task === 'steady');
    const progressBefore = steady?.progress?.current ?? 0;
    await pollFor(async () => {
      const entry = (await stack.store.listRoute('conductor')).find((e) => e.task === 'steady');
      return (entry?.progress?.current ?? 0) > progressBefore + 3 ? entry : undefined;
    }, 30_000, 'the steady task to go on reporting progress');
    process.kill(steadyPid, 'SIGKILL');
    const killed = await pollFor(async () => (await stack.store.listRuns({ instanceId: 'mixed' })).find((run) => run.task === 'steady' && run.status === 'failed'), 30_000, 'the killed attempt to be recorded');

    // Assess
    expect(crashed).toMatchObject({ runner: owner, error: { name: 'TaskProcessError' } });
    expect(crashed.error?.message).toContain('exited with code 3');
    expect(steady).toMatchObject({ owner });
    expect(killed).toMatchObject({ runner: owner, error: { name: 'TaskProcessError' } });
    expect(killed.error?.message).toContain('killed by SIGKILL');
    expect(await stack.store.listRoute('conductor')).toEqual([]);
    expect(proc.running).toBe(true);
    proc.signal('SIGTERM');
    expect((await proc.exited).code).toBe(0);
  }, 60_000);
});
