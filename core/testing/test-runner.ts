/**
 * `createTestRunner()`: the real runner on an in-memory store, with a virtual clock. Time moves
 * only when the test advances it; then schedules come due, retry backoffs and timeouts elapse and
 * leases age, as if that time had passed, without waiting for it.
 */
import { MemoryStore } from '../adapters/memory/store.js';
import { assertTriggerable, parseInstanceEntries, type InstanceEntry } from '../embedded/instance-entries.js';
import { InlineExecutor } from '../engine/executor.js';
import { Runner, type RunnerOptions, type RunnerStats } from '../engine/runner.js';
import { requireLimits, type LimitsConfig } from '../limit-config.js';
import { RunnerStateError } from '../embedded/errors.js';
import type { RunQuery, TriggerResult } from '../ports/store.js';
import type { JobType, Json, LogLine, ObjectStore, RunRecord } from '../types.js';
import { epochOf, VirtualClock } from './clock.js';
import { objectStoreOf, type ObjectSeed } from './objects.js';

/**
 * The one way a trigger is taken without an answer once the runner settled: its plan returned a
 * task whose lease was released in the plan's millisecond (it may just have run), so the plan is
 * asked again once the clock moves on. On a virtual clock that only happens when it is advanced.
 */
const SAME_MILLISECOND_NOTE =
  'the plan returned a task that ended in this same millisecond, so the runner asks the job again once the clock moves on: advance the clock (2 ms is enough) and look at the runs';

/**
 * What `createTestRunner` takes.
 *
 * @example
 * ```ts
 * const options: TestRunnerOptions = { jobs: [greeter], instances: [{ id: 'a', job: 'greeter', params: { names: [] } }], now: Date.UTC(2026, 0, 1) };
 * ```
 */
export interface TestRunnerOptions extends Pick<RunnerOptions, 'concurrency' | 'maxContinuous' | 'leaseTtlMs' | 'tickMs' | 'graceMs' | 'log'> {
  /** The job types. Every task runs in this process, continuous and `isolate` ones too. */
  jobs: readonly JobType[];
  /** The job instances, as entries of an instances file; every entry must validate. */
  instances: readonly InstanceEntry[];
  /**
   * The shared limits tasks may name, as the instances file's `"limits"` writes them; kept in the
   * in-memory store, on the virtual clock. Every limit must validate.
   * @default {}
   * @example
   * ```ts
   * { limits: { api: { rate: 2, per: '1s' } } }
   * ```
   */
  limits?: LimitsConfig;
  /** The virtual clock's starting time. @default the current time */
  now?: Date | number;
  /** What the object store holds at the start: key → text or bytes, or an object store. @default {} */
  objects?: ObjectStore | ObjectSeed;
}

/**
 * The test runner's clock: virtual time, moved by `advance`.
 *
 * @example
 * ```ts
 * await t.clock.advance(5 * 60_000); // five minutes of schedules, backoffs and timeouts, at once
 * t.clock.now();
 * ```
 */
export interface TestClock {
  /** The virtual time, epoch ms (what `ctx.now()` returns and run records are stamped with). */
  now(): number;
  /**
   * Moves time forward by `ms`. Every timer of the runner due by then fires in order, at its own
   * due time, and the runner reacts to each (plans, starts tasks, records) before the next fires:
   * schedules come due, retry backoffs elapse, timeouts and heartbeat watchdogs fire, leases age.
   * Resolves once the runner has settled at the new time. Handlers run in real time: one still
   * running (it awaits real I/O, or its signal) is not waited for; `runUntilIdle()` waits for it.
   */
  advance(ms: number): Promise<void>;
}

/**
 * A runner for tests, made by {@link createTestRunner}.
 *
 * @example
 * ```ts
 * const t = await createTestRunner({ jobs: [greeter], instances: [{ id: 'a', job: 'greeter', params: { names: ['ada'] } }] });
 * await t.runUntilIdle();
 * expect((await t.runs()).map((r) => r.status)).toEqual(['succeeded']);
 * await t.close();
 * ```
 */
export interface TestRunner {
  readonly clock: TestClock;
  /** The object store the tasks use (in memory unless one was given). */
  readonly objects: ObjectStore;
  /**
   * Resolves when nothing is left to do at the current time: every plan answered, every task that
   * could start has ended (and is recorded). What waits for the clock (retry backoffs, the next
   * schedule) waits for `clock.advance`; continuous tasks keep running. A batch task that only
   * ends when its timeout fires needs `clock.advance` instead.
   * @returns the runner's counts since it started.
   */
  runUntilIdle(): Promise<RunnerStats>;
  /**
   * Asks for an ad-hoc run, as `ujr trigger` (with a task: that task and input; without: a plan
   * now), and resolves once the runner took it and settled, with what became of it: the runs it
   * created, or a note saying why there are none. Use `runUntilIdle()` to let those runs end.
   * A plan never takes a task whose lease was released in its own millisecond (the task may just
   * have run): on a clock that stands still, such a task runs once the clock is advanced.
   * @throws {UnknownInstanceError} when no instance has the id.
   * @throws {InvalidTaskSpecError} when the task does not exist or `input` does not validate.
   */
  trigger(instanceId: string, task?: string, input?: Json): Promise<TriggerResult>;
  /** Every attempt's run record matching the filter, oldest first (in the order they were queued); readable after `close()` too. */
  runs(filter?: Omit<RunQuery, 'limit'>): Promise<RunRecord[]>;
  /** A run's log lines, in order. */
  logs(runId: string): Promise<LogLine[]>;
  /** Stops the runner: running tasks are aborted (and recorded `interrupted`). */
  close(): Promise<void>;
}

/**
 * Starts the real runner over `jobs` and `instances` on an in-memory store, with a virtual clock
 * ({@link TestClock}) and an in-memory object store whose `modifiedAt` is virtual time. Every
 * enabled instance is planned at once, as `ujr run` plans on start. Retry backoffs take their full
 * length (no jitter), so `clock.advance(backoffMs)` always elapses one.
 *
 * @throws {InvalidInstancesError} naming the instance and field of every invalid entry.
 * @example
 * ```ts
 * import { createTestRunner } from 'ujr/testing';
 *
 * const t = await createTestRunner({
 *   jobs: [greeter],
 *   instances: [{ id: 'lab-a', job: 'greeter', params: { names: ['ada'] }, schedule: '5m' }],
 * });
 * await t.runUntilIdle();                  // the first plan and its tasks
 * await t.clock.advance(5 * 60_000);       // the next scheduled plan, and what it returns
 * const runs = await t.runs({ instanceId: 'lab-a' });
 * await t.close();
 * ```
 */
export async function createTestRunner(options: TestRunnerOptions): Promise<TestRunner> {
  const instances = parseInstanceEntries(options.instances, options.jobs);
  const limits = requireLimits(options.limits, 'createTestRunner options');
  const clock = new VirtualClock(epochOf(options.now ?? Date.now()));
  const store = new MemoryStore();
  const objects = objectStoreOf(options.objects, clock.now);
  const runner = new Runner({
    concurrency: options.concurrency,
    maxContinuous: options.maxContinuous,
    leaseTtlMs: options.leaseTtlMs,
    tickMs: options.tickMs,
    graceMs: options.graceMs,
    log: options.log,
    store,
    objects,
    jobs: [...options.jobs],
    instances,
    limits,
    processExecutor: new InlineExecutor(objects),
    owner: 'test-runner',
    now: clock.now,
    timers: clock,
    random: () => 1,
  });
  await runner.start();

  let advancing = false;
  let closed = false;
  const assertOpen = () => {
    if (closed) throw new RunnerStateError('the test runner was closed');
  };
  return {
    clock: {
      now: clock.now,
      async advance(ms) {
        assertOpen();
        if (!(Number.isFinite(ms) && ms >= 0)) throw new RangeError(`advance() takes a number of milliseconds >= 0, not ${ms}`);
        if (advancing) throw new RunnerStateError('the clock is being advanced already; await that advance() first');
        advancing = true;
        try {
          const target = clock.now() + ms;
          await runner.whenSettled({ ignoreRunning: true });
          while (clock.fireNext(target)) await runner.whenSettled({ ignoreRunning: true });
          clock.moveTo(target);
        } finally {
          advancing = false;
        }
      },
    },
    objects,
    async runUntilIdle() {
      assertOpen();
      await runner.whenSettled();
      return runner.stats();
    },
    async trigger(instanceId, task, input) {
      assertOpen();
      assertTriggerable(options.jobs, instances, { instanceId, task, input });
      // Nothing else takes triggers meanwhile: ticks wait for the clock.
      await runner.whenSettled({ ignoreRunning: true });
      const trigger = await runner.trigger(instanceId, task, input);
      await runner.whenSettled({ ignoreRunning: true });
      return (
        (await store.getTriggerResult(trigger.id)) ?? {
          id: trigger.id,
          instanceId,
          at: trigger.at,
          runIds: [],
          note: SAME_MILLISECOND_NOTE,
        }
      );
    },
    async runs(filter = {}) {
      const runs = await store.listRuns({ ...filter, limit: Number.MAX_SAFE_INTEGER });
      return runs.sort((a, b) => a.queuedAt - b.queuedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },
    logs: (runId) => store.getLogs(runId),
    async close() {
      if (closed) return;
      closed = true;
      await runner.stop();
      await store.close();
    },
  };
}
