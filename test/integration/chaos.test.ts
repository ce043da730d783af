/**
 * The runner's central promise under attack from outside, as production would attack it: three
 * `ujr run` processes on one SQLite file, one of them killed with SIGKILL and restarted again and
 * again, one frozen with SIGSTOP past its lease and woken up with SIGCONT. The job checks
 * `ctx.history.lastSuccess` before returning a task, as the README advises. Checked from what
 * the tasks wrote (their start and end records, through the fenced object store) and from the
 * store: no two executions of a signature overlap, no stale holder's result or checkpoint wins,
 * no run is left queued, running or retrying, and every task succeeded exactly once.
 *
 * A longer soak of the same attack: `UJR_CHAOS_SECONDS=300 npx vitest run test/integration/chaos.test.ts`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LIVE_STATUSES, type RunRecord } from '../../core/types.js';
import type { Execution } from '../fixtures/cli/jobs.js';
import { Sandbox, type UjrProcess } from '../fixtures/cli/sandbox.js';
import { until } from '../helpers/runner.js';

const START_MS = 20_000;
const LEASE_TTL_MS = 1_500;
const CHAOS_MS = Number(process.env.UJR_CHAOS_SECONDS ?? 10) * 1_000;

let sandbox: Sandbox;

beforeEach(async () => {
  sandbox = await Sandbox.create();
});

afterEach(async () => {
  await sandbox.dispose();
});

const resultSchema = z.object({ i: z.number(), token: z.number() });
const itemOf = (run: RunRecord) => z.object({ i: z.number() }).parse(run.input).i;

/** A small seeded generator, so that a failure names the seed that reproduces its schedule of attacks. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every pair of executions of one signature that broke the fencing order or overlapped. */
function fencingViolations(starts: Execution[], ends: Execution[]): string[] {
  const endOf = new Map(ends.map((e) => [e.runId, e.end]));
  const bySignature = new Map<string, Execution[]>();
  for (const start of starts) bySignature.set(start.signature, [...(bySignature.get(start.signature) ?? []), start]);
  const problems: string[] = [];
  for (const [signature, executions] of bySignature) {
    executions.sort((a, b) => a.start - b.start || a.token - b.token);
    for (let k = 1; k < executions.length; k += 1) {
      const before = executions[k - 1] as Execution;
      const after = executions[k] as Execution;
      // Each new start happened under a newer lease than every start before it.
      if (after.token <= before.token) problems.push(`${signature}: run ${after.runId} (token ${after.token}) started after run ${before.runId} (token ${before.token})`);
    }
    // No execution starts while a completed one (its end record was accepted) is under way.
    for (const done of executions) {
      const end = endOf.get(done.runId);
      if (end === undefined) continue;
      for (const other of executions) {
        if (other !== done && other.start >= done.start && other.start <= end) {
          problems.push(`${signature}: run ${other.runId} started at ${other.start}, inside run ${done.runId} [${done.start}, ${end}]`);
        }
      }
    }
  }
  return problems;
}

describe('three runners on one store, under kill -9 and SIGSTOP', () => {
  it('never overlap a signature, let no stale holder win, leave no run unfinished, and succeed every task exactly once', async () => {
    // Prepare
    const seed = Date.now() % 1_000_000;
    const next = random(seed);
    const context = `seed ${seed}`;
    // Enough work to outlast the attacks (a soak gets more).
    const count = Math.max(60, Math.round(CHAOS_MS / 1_000) * 6);
    await sandbox.writeInstances([{ id: 'c', job: 'once', schedule: '1s', params: { count, ms: 300, jitterMs: 400, perPlan: 3 } }]);
    const args = ['run', '--lease-ttl', String(LEASE_TTL_MS), '--concurrency', '3', '--grace', '2000', '--quiet'];
    const runners: UjrProcess[] = [0, 1, 2].map(() => sandbox.spawn(...args));
    await until(() => runners.every((r) => r.stderr.includes('running as')), START_MS, 'three runners to start');

    // Act: freeze a runner that holds leases past twice its lease lifetime, then let it go on; then
    // kill one runner at random moments and start a new one in its place.
    let holder: UjrProcess | undefined;
    await until(
      async () => {
        const leases = await sandbox.store().listActiveLeases(Date.now());
        holder = runners.find((r) => leases.some((l) => l.owner?.includes(`:${r.pid}:`)));
        return holder !== undefined;
      },
      START_MS,
      'a runner to hold leases',
      50,
    );
    holder?.signal('SIGSTOP');
    await sleep(LEASE_TTL_MS * 2 + 500);
    holder?.signal('SIGCONT');
    let kills = 0;
    const chaosEnds = Date.now() + CHAOS_MS;
    while (Date.now() < chaosEnds) {
      await sleep(400 + Math.floor(next() * 800));
      const index = Math.floor(next() * runners.length);
      const victim = runners[index] as UjrProcess;
      victim.signal('SIGKILL');
      await sandbox.waitExit(victim, 10_000);
      kills += 1;
      runners[index] = sandbox.spawn(...args);
    }
    // Then let them finish the work, and sweep at least once more after the last kill.
    const sweptAfter = Date.now() + LEASE_TTL_MS * 2 + 500;
    await until(
      async () => {
        if (Date.now() < sweptAfter) return false;
        const succeeded = await sandbox.store().listRuns({ instanceId: 'c', status: 'succeeded', limit: 10_000 });
        return new Set(succeeded.map(itemOf)).size === count;
      },
      60_000,
      `every task to succeed (${context})`,
      250,
    );
    // A runner restarted last may still be booting: SIGTERM before its handlers are in place would kill it.
    await until(() => runners.every((r) => r.stderr.includes('running as')), START_MS, 'the restarted runners to start');
    for (const runner of runners) runner.signal('SIGTERM');
    const exits = await Promise.all(runners.map((r) => sandbox.waitExit(r, 15_000)));

    // Assess
    expect(kills, context).toBeGreaterThan(3);
    for (const [k, exit] of exits.entries()) expect(exit.code, `${context}: ${(runners[k] as UjrProcess).describe()}`).toBe(0);
    const store = sandbox.store();
    const runs = await store.listRuns({ instanceId: 'c', limit: 10_000 });
    const { starts, ends } = await sandbox.executions('c');

    // From the tasks' own records: fencing order held and nothing overlapped.
    expect(fencingViolations(starts, ends), context).toStrictEqual([]);

    // From the store: one success per task, by the newest holder, whose checkpoint is the last.
    const successes = runs.filter((r) => r.status === 'succeeded');
    expect(successes.length, context).toBe(count);
    expect(new Set(successes.map((r) => r.signature)).size, context).toBe(count);
    for (const success of successes) {
      const result = resultSchema.parse(success.result);
      const tokens = starts.filter((s) => s.signature === success.signature).map((s) => s.token);
      expect(result.token, `${context}: ${success.id}`).toBe(success.fencingToken);
      expect(success.fencingToken, `${context}: ${success.id} is not the newest holder`).toBe(Math.max(...tokens));
      expect(ends.some((e) => e.runId === success.id), `${context}: ${success.id} has no end record`).toBe(true);
      expect((await store.getCheckpoint(success.signature))?.value, context).toStrictEqual({ i: result.i, token: success.fencingToken });
    }

    // Nothing left queued, running or retrying, and every lease let go.
    expect(runs.filter((r) => LIVE_STATUSES.includes(r.status)).map((r) => `${r.id} ${r.status} by ${r.runner}`), context).toStrictEqual([]);
    expect(await store.listActiveLeases(Date.now()), context).toStrictEqual([]);
    // The attacks left their mark: runs were interrupted, ended by the sweeper or a takeover.
    expect(runs.some((r) => r.status === 'interrupted' && r.error?.name === 'LeaseExpiredError'), context).toBe(true);
  }, 120_000);
});

describe('three runners on one store, a job that checks lastSuccess', () => {
  it('succeeds no signature twice', async () => {
    // Prepare
    const count = 300;
    // Started on an instances file with no instance yet (a missing file is a usage error, exit 2).
    await sandbox.writeInstances([]);
    const runners = [0, 1, 2].map(() => sandbox.spawn('run', '--concurrency', '8', '--quiet'));
    await until(() => runners.every((r) => r.stderr.includes('running as')), START_MS, 'three runners to start');

    // Act: every plan of every runner returns every task not yet succeeded.
    await sandbox.writeInstances([{ id: 'l', job: 'once', schedule: '1s', params: { count, ms: 20, jitterMs: 20 } }]);
    await until(
      async () => new Set((await sandbox.store().listRuns({ instanceId: 'l', status: 'succeeded', limit: 10_000 })).map(itemOf)).size === count,
      60_000,
      'every task to succeed',
      250,
    );
    // Plans that read the history before the last successes could still be taking leases.
    await sleep(1_500);
    for (const runner of runners) runner.signal('SIGTERM');
    await Promise.all(runners.map((r) => sandbox.waitExit(r, 15_000)));

    // Assess
    const successes = await sandbox.store().listRuns({ instanceId: 'l', status: 'succeeded', limit: 10_000 });
    const perSignature = new Map<string, number>();
    for (const run of successes) perSignature.set(run.signature, (perSignature.get(run.signature) ?? 0) + 1);
    expect([...perSignature.entries()].filter(([, n]) => n > 1)).toStrictEqual([]);
    expect(perSignature.size).toBe(count);
  }, 90_000);
});
