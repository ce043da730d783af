/**
 * Shared limits in the runner (issue 15): tasks that name a rate wait for its tokens, tasks that
 * name a concurrency cap for a free slot, without holding a worker slot while they wait; the
 * queued run says what it waits for; a limit that is not configured is a rejected spec (MemoryStore,
 * inline tasks, real timers on short periods).
 */
import { describe, expect, it } from 'vitest';
import { defineJob } from '../../../core/define.js';
import { RateLimitedError } from '../../../core/errors.js';
import { InvalidLimitError, type LimitDefinition } from '../../../core/ports/limits.js';
import type { TaskContext, TaskLimit } from '../../../core/types.js';
import { instance, noParams, until, useHarnesses, waitForRun, work } from '../../helpers/runner.js';

const { harness, gate } = useHarnesses();

function limits(...definitions: LimitDefinition[]): Map<string, LimitDefinition> {
  return new Map(definitions.map((definition) => [definition.name, definition]));
}

interface Started {
  instanceId: string;
  n: number;
  at: number;
}

/** A job returning `count` tasks `work` that take `taking` limits and last `ms`; starts are recorded. */
function limitedJob(name: string, count: number, taking: TaskLimit[], started: Started[], ms = 5) {
  return defineJob({
    name,
    params: noParams,
    getRunnableTasks: () => Array.from({ length: count }, (_, n) => ({ task: 'work', input: { n, host: n % 2 === 0 ? 'a.example' : 'b.example' } })),
    tasks: {
      work: {
        limits: taking,
        run: async (input: { n: number }, tctx) => {
          started.push({ instanceId: tctx.instanceId, n: input.n, at: Date.now() });
          await work(ms);
          return input.n;
        },
      },
    },
  });
}

/** How much later than its run's `startedAt` a handler may read the clock (a busy test machine's pauses). */
const JITTER_MS = 50;

/** The most starts in any window of `windowMs` (half open: [t, t + windowMs)). */
function mostStartsInWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < sorted.length; i += 1) {
    while ((sorted[i] as number) - (sorted[j] as number) >= windowMs) j += 1;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

describe('shared limits in the runner', () => {
  it('starts the tasks of two instances that share a rate no faster than it allows, and every one succeeds on its first attempt', async () => {
    const started: Started[] = [];
    const job = limitedJob('fetcher', 6, ['api'], started);
    const h = harness({
      jobs: [job],
      instances: [instance('feed', 'fetcher'), instance('backfill', 'fetcher')],
      limits: limits({ name: 'api', rate: { count: 5, perMs: 500, burst: 1 } }),
    });

    await h.runner.runOnce();

    const runs = await h.store.listRuns({ limit: 100 });
    expect(runs).toHaveLength(12);
    expect(runs.every((run) => run.status === 'succeeded' && run.attempt === 1)).toBe(true);
    expect(new Set(started.map((s) => s.instanceId))).toStrictEqual(new Set(['feed', 'backfill']));
    // One token every 100 ms: the grants are that far apart; each handler starts a little after
    // its run is marked started (JITTER_MS at most, asserted), so no window of 500 ms less that
    // jitter holds more than 5 starts by the handlers' own clocks.
    const startedAt = new Map(runs.map((run) => [`${run.instanceId}#${(run.input as { n: number }).n}`, run.startedAt as number]));
    const lags = started.map((s) => s.at - (startedAt.get(`${s.instanceId}#${s.n}`) as number));
    expect(Math.max(...lags)).toBeLessThan(JITTER_MS);
    expect(mostStartsInWindow(started.map((s) => s.at), 500 - JITTER_MS)).toBeLessThanOrEqual(5);
    const times = started.map((s) => s.at).sort((a, b) => a - b);
    expect((times.at(-1) as number) - (times[0] as number)).toBeGreaterThanOrEqual(11 * 100 - JITTER_MS);
  });

  it('lets a task without limits run while a limited one waits: a waiting task holds no worker slot', async () => {
    const started: Started[] = [];
    const limited = limitedJob('limited', 2, ['slow'], started);
    const free = limitedJob('free', 1, [], started);
    const h = harness({
      jobs: [limited, free],
      instances: [instance('limited-1', 'limited'), instance('free-1', 'free')],
      concurrency: 1,
      limits: limits({ name: 'slow', rate: { count: 1, perMs: 1_000, burst: 1 } }),
    });

    await h.runner.runOnce();

    const second = started.find((s) => s.instanceId === 'limited-1' && s.n === 1);
    const other = started.find((s) => s.instanceId === 'free-1');
    const first = started.find((s) => s.instanceId === 'limited-1' && s.n === 0);
    expect(first && second && other).toBeTruthy();
    // With one slot, the free task ran while the second limited one waited for its token.
    expect(other!.at).toBeLessThan(second!.at);
    expect(other!.at - first!.at).toBeLessThan(500);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1_000 - JITTER_MS);
  });

  it('keeps at most the cap of tasks of one key running at once, each key on its own', async () => {
    let running = new Map<string, number>();
    let most = new Map<string, number>();
    let overall = 0;
    let mostOverall = 0;
    const job = defineJob({
      name: 'downloader',
      params: noParams,
      getRunnableTasks: () => Array.from({ length: 8 }, (_, n) => ({ task: 'download', input: { n, host: n % 2 === 0 ? 'a.example' : 'b.example' } })),
      tasks: {
        download: {
          limits: [{ name: 'host', key: (input: { host: string }) => input.host }],
          run: async (input: { n: number; host: string }) => {
            running.set(input.host, (running.get(input.host) ?? 0) + 1);
            most.set(input.host, Math.max(most.get(input.host) ?? 0, running.get(input.host) ?? 0));
            overall += 1;
            mostOverall = Math.max(mostOverall, overall);
            await work(40);
            running.set(input.host, (running.get(input.host) ?? 0) - 1);
            overall -= 1;
            return input.n;
          },
        },
      },
    });
    running = new Map();
    most = new Map();
    const h = harness({ jobs: [job], instances: [instance('dl', 'downloader')], limits: limits({ name: 'host', concurrency: 2 }) });

    await h.runner.runOnce();

    const runs = await h.store.listRuns({ limit: 100 });
    expect(runs.filter((run) => run.status === 'succeeded')).toHaveLength(8);
    expect(Object.fromEntries(most)).toStrictEqual({ 'a.example': 2, 'b.example': 2 });
    expect(mostOverall).toBe(4);
    const states = await h.store.limits.listLimitStates(Date.now());
    expect(states.map((s) => [s.name, s.key, s.held, s.granted])).toStrictEqual([
      ['host', 'a.example', 0, 4],
      ['host', 'b.example', 0, 4],
    ]);
  });

  it('says on the queued run what it waits for, and clears it once the task starts', async () => {
    const started: Started[] = [];
    const job = limitedJob('patient', 2, [{ name: 'api', key: () => 'credential-1' }], started);
    const h = harness({
      jobs: [job],
      instances: [instance('patient-1', 'patient')],
      tickMs: 10,
      limits: limits({ name: 'api', rate: { count: 1, perMs: 60_000, burst: 1 } }),
    });
    await h.runner.start();

    await until(() => started.length === 1, 5_000, 'the first task to start');
    await until(async () => (await h.store.listRuns({ status: 'queued' }))[0]?.progress !== undefined, 5_000, 'the waiting run to say why');

    const [waiting] = await h.store.listRuns({ status: 'queued' });
    expect(waiting?.progress?.message).toMatch(/^waiting for limit "api" \(key "credential-1"\): no token before \d\d:\d\d:\d\d\.\d{3}$/);
    const [done] = await h.store.listRuns({ status: 'succeeded' });
    expect(done?.progress).toBeUndefined();
    expect(h.runner.stats()).toMatchObject({ running: 0, queued: 1 });
  });

  it('rejects a task naming a limit that is not configured, naming both, and runs the instance’s other tasks', async () => {
    const ran: string[] = [];
    const job = defineJob({
      name: 'mixed',
      params: noParams,
      getRunnableTasks: () => [
        { task: 'limited', input: {} },
        { task: 'plain', input: {} },
      ],
      tasks: {
        limited: { limits: ['missing'], run: () => void ran.push('limited') },
        plain: { run: () => void ran.push('plain') },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('mixed-1', 'mixed')], limits: limits({ name: 'api', concurrency: 1 }) });
    const errors: string[] = [];
    h.runner.on('planError', (_instanceId, error) => errors.push(error.message));

    await h.runner.runOnce();

    expect(ran).toStrictEqual(['plain']);
    expect(errors.join('\n')).toContain('instance "mixed-1", task "limited" takes limit "missing", which is not configured; add it to "limits" in the instances file (known: api)');
  });

  it('ends a waiting task that is cancelled, and the next in its line goes on', async () => {
    const started: Started[] = [];
    const hold = gate();
    const job = defineJob({
      name: 'one-at-a-time',
      params: noParams,
      getRunnableTasks: () => Array.from({ length: 3 }, (_, n) => ({ task: 'work', input: { n } })),
      tasks: {
        work: {
          limits: ['solo'],
          run: async (input: { n: number }, tctx) => {
            started.push({ instanceId: tctx.instanceId, n: input.n, at: Date.now() });
            if (input.n === 0) await hold.opened;
            return input.n;
          },
        },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('solo-1', 'one-at-a-time')], tickMs: 10, limits: limits({ name: 'solo', concurrency: 1 }) });
    await h.runner.start();
    await until(() => started.length === 1, 5_000, 'the first task to start');
    await until(async () => (await h.store.listRuns({ status: 'queued' })).filter((run) => run.progress).length === 2, 5_000, 'both others to wait');

    const queued = (await h.store.listRuns({ status: 'queued' })).sort((a, b) => (a.input as { n: number }).n - (b.input as { n: number }).n);
    await h.store.addTrigger({ id: 'cancel-1', instanceId: 'solo-1', at: Date.now(), cancelRunId: queued[0]!.id });
    const cancelled = await waitForRun(h.runner, (run) => run.id === queued[0]!.id && run.status === 'cancelled');
    hold.open();
    const last = await waitForRun(h.runner, (run) => run.id === queued[1]!.id && run.status === 'succeeded');

    expect(cancelled.startedAt).toBeUndefined();
    expect(last.status).toBe('succeeded');
    expect(started.map((s) => s.n)).toStrictEqual([0, 2]);
  });

  it('lets the rest of a line go on when its head, woken, waits for another limit instead', async () => {
    // one and three take only their own limits; two and four take both. Two and four wait for
    // `fast` (one took its token), then two, woken, finds `slow` taken by three and waits there:
    // four, behind it for `fast`, must still get its turn.
    const started: string[] = [];
    const job = defineJob({
      name: 'two-limits',
      params: noParams,
      getRunnableTasks: () => ['one', 'two', 'four', 'three'].map((name) => ({ task: name === 'one' ? 'fast' : name === 'three' ? 'slow' : 'both', input: { name } })),
      tasks: Object.fromEntries(
        (
          [
            ['fast', ['fast']],
            ['slow', ['slow']],
            ['both', ['fast', 'slow']],
          ] as const
        ).map(([task, taking]) => [task, { limits: [...taking], run: (input: { name: string }) => void started.push(input.name) }]),
      ),
    });
    const h = harness({
      jobs: [job],
      instances: [instance('lines', 'two-limits')],
      limits: limits({ name: 'fast', rate: { count: 10, perMs: 1_000, burst: 1 } }, { name: 'slow', rate: { count: 2, perMs: 1_000, burst: 1 } }),
    });

    const done = h.runner.runOnce();
    await until(() => started.length === 4, 5_000, 'all four tasks to start');
    await done;

    expect(started.slice(0, 2).sort()).toEqual(['one', 'three']);
    expect(started.slice(2)).toEqual(['two', 'four']);
  });

  it('lets the rest of a line go on when its woken head is cancelled while it waits for a worker slot', async () => {
    // Two slots: a1 and b hold both for 1.5 s; a2 and a3 wait for `api` (a1 took its token);
    // a2's turn comes while no slot is free, and it is cancelled before one frees.
    const started: string[] = [];
    const job = defineJob({
      name: 'turns',
      params: noParams,
      getRunnableTasks: () => ['a1', 'a2', 'a3', 'b'].map((name) => ({ task: name === 'b' ? 'free' : 'limited', input: { name } })),
      tasks: {
        limited: {
          limits: ['api'],
          run: async (input: { name: string }) => {
            started.push(input.name);
            if (input.name === 'a1') await work(1_500);
          },
        },
        free: {
          run: async (input: { name: string }) => {
            started.push(input.name);
            await work(1_500);
          },
        },
      },
    });
    const h = harness({ jobs: [job], instances: [instance('turns-1', 'turns')], concurrency: 2, tickMs: 10, limits: limits({ name: 'api', rate: { count: 10, perMs: 1_000, burst: 1 } }) });
    await h.runner.start();
    await until(() => started.includes('a1') && started.includes('b'), 5_000, 'a1 and b to hold both slots');
    const a2 = async () => (await h.store.listRuns({ instanceId: 'turns-1', limit: 10 })).find((run) => (run.input as { name: string }).name === 'a2');
    // Its turn comes when the next token is (100 ms after a1's); no slot is free until 1.5 s.
    const tokens = async () => (await h.store.limits.listLimitStates(Date.now()))[0]?.tokens ?? 0;
    await until(async () => (await tokens()) >= 1, 5_000, 'the token a2 waits for');
    await h.store.addTrigger({ id: 'cancel-a2', instanceId: 'turns-1', at: Date.now(), cancelRunId: (await a2())!.id });

    await until(() => started.includes('a3'), 5_000, 'a3 to start after the cancelled a2');

    expect((await a2())?.status).toBe('cancelled');
    expect(started).not.toContain('a2');
  });

  it('refuses a malformed limit definition when it is given (setLimits, the limits option), naming it', () => {
    const h = harness({ jobs: [limitedJob('x', 1, ['api'], [])], instances: [], limits: limits({ name: 'api', concurrency: 1 }) });

    expect(() => h.runner.setLimits(limits({ name: 'api', rate: { count: 10, perMs: 1_000, burst: 0 } }))).toThrow(InvalidLimitError);
    expect(() => h.runner.setLimits(new Map([['api', { name: 'other', concurrency: 1 }]]))).toThrow('limit "api" is defined with the name "other"; use the same name');
    expect(() => harness({ jobs: [], limits: limits({ name: 'bad#name', concurrency: 1 }) })).toThrow('limit name "bad#name" must be non-empty and hold no "#"');
  });

  describe('back-pressure from the API', () => {
    /** Four tasks taking limit `api`, one at a time; task 0 meets a 429 on its first call, answered by `on429`. */
    function apiJob(started: Started[], on429: (tctx: TaskContext) => Promise<void> | void) {
      let answered429 = false;
      return defineJob({
        name: 'api-caller',
        params: noParams,
        getRunnableTasks: () => Array.from({ length: 4 }, (_, n) => ({ task: 'call', input: { n } })),
        tasks: {
          call: {
            limits: ['api'],
            run: async (input: { n: number }, tctx) => {
              started.push({ instanceId: tctx.instanceId, n: input.n, at: Date.now() });
              if (input.n === 0 && !answered429) {
                answered429 = true;
                await on429(tctx);
              }
              return input.n;
            },
          },
        },
      });
    }

    /** The caller instance on one worker slot, its tasks taking a loose rate `api`. */
    function oneAtATime(job: ReturnType<typeof apiJob>) {
      return harness({ jobs: [job], instances: [instance('caller', 'api-caller')], concurrency: 1, limits: limits({ name: 'api', rate: { count: 100, perMs: 1_000, burst: 10 } }) });
    }

    it('queues again an attempt that throws RateLimitedError, not as a failure, and no task taking the limit starts before the API said', async () => {
      const started: Started[] = [];
      let threwAt = 0;
      const job = apiJob(started, () => {
        threwAt = Date.now();
        throw new RateLimitedError('the API answered 429', { retryAfterMs: 300, limit: 'api' });
      });
      const h = oneAtATime(job);

      const stats = await h.runner.runOnce();

      const runs = await h.store.listRuns({ limit: 100 });
      expect(runs.map((run) => [(run.input as { n: number }).n, run.status, run.attempt]).sort()).toStrictEqual([
        [0, 'succeeded', 1],
        [1, 'succeeded', 1],
        [2, 'succeeded', 1],
        [3, 'succeeded', 1],
      ]);
      expect(stats).toMatchObject({ rateLimited: 1, failed: 0, retried: 0 });
      // Every start after the 429 waited for the back-off, whichever task it was.
      const after = started.filter((s) => s.at > threwAt);
      expect(after).toHaveLength(4);
      expect(Math.min(...after.map((s) => s.at)) - threwAt).toBeGreaterThanOrEqual(300 - 5);
      const zero = runs.find((run) => (run.input as { n: number }).n === 0)!;
      const logs = await h.store.getLogs(zero.id);
      expect(logs.map((line) => line.message).join('\n')).toMatch(/rate limited \(RateLimitedError: the API answered 429\): queued again in 300 ms, not counted as a failure; limit "api" backs off/);
      const [state] = await h.store.limits.listLimitStates(Date.now());
      expect(state?.throttledMs).toBe(300);
    });

    it('drains the bucket for every task on tctx.limits.backoff, while the task that called it goes on', async () => {
      const started: Started[] = [];
      let calledAt = 0;
      const job = apiJob(started, async (tctx) => {
        calledAt = Date.now();
        await tctx.limits.backoff('api', 300);
      });
      const h = oneAtATime(job);

      const stats = await h.runner.runOnce();

      expect(stats).toMatchObject({ succeeded: 4, rateLimited: 0, failed: 0 });
      const others = started.filter((s) => s.n !== 0);
      expect(Math.min(...others.map((s) => s.at)) - calledAt).toBeGreaterThanOrEqual(300 - 5);
    });

    it('rejects tctx.limits.backoff of a limit the task does not take, naming what it takes', async () => {
      const started: Started[] = [];
      let error: unknown;
      const job = apiJob(started, async (tctx) => {
        error = await tctx.limits.backoff('other', 100).catch((caught: unknown) => caught);
      });
      const h = harness({ jobs: [job], instances: [instance('caller', 'api-caller')], limits: limits({ name: 'api', concurrency: 4 }) });

      await h.runner.runOnce();

      expect(String(error)).toContain('tctx.limits.backoff: task "call" does not take limit "other" (it takes "api"); add it to the task\'s limits');
    });
  });
});
