/**
 * The embedded runner (`createRunner`, see ./create-runner.ts): the runner of `ujr run`, in a program or a test. The same engine, the
 * SQLite store under a home folder (or an in-memory one), the data directory as object store, and
 * child processes for continuous and isolated tasks when the job types come as a module path.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monotonicFactory } from 'ulid';
import { DirectoryObjectStore } from '../adapters/fs/objects.js';
import { MemoryStore } from '../adapters/memory/store.js';
import { failure, type AttemptHandle, type AttemptRequest, type Executor } from '../engine/executor.js';
import { Runner, type RunnerEvents, type RunnerOptions, type RunnerStats } from '../engine/runner.js';
import { NonRetryableError } from '../errors.js';
import { requireLimits, type LimitsConfig } from '../limit-config.js';
import type { LimitDefinition } from '../ports/limits.js';
import { loadJobTypes } from '../local/jobs-module.js';
import { ProcessExecutor } from '../local/process-executor.js';
import type { Durability } from '../adapters/sqlite/store.js';
import { dataPath, DEFAULT_PATHS, openLocalStore } from '../local/runtime.js';
import type { RunQuery, Store, Trigger } from '../ports/store.js';
import type { InstanceConfig, JobType, Json, LogLine, ObjectStore, RunRecord } from '../types.js';
import { RunnerStateError } from './errors.js';
import { assertTriggerable, parseInstanceEntries, readInstanceEntries, type InstanceEntry } from './instance-entries.js';

/**
 * What `createRunner` takes: the job types and instances, where the store lives, and the runner's
 * limits (`concurrency`, `leaseTtlMs`, `graceMs`, ... as `ujr run`'s flags), and its `log`.
 *
 * @example
 * ```ts
 * const options: CreateRunnerOptions = { jobs: 'jobs/index.ts', instances: 'jobs/instances.json', concurrency: 4 };
 * ```
 */
export interface CreateRunnerOptions
  extends Pick<RunnerOptions, 'concurrency' | 'maxContinuous' | 'leaseTtlMs' | 'tickMs' | 'graceMs' | 'retentionMs' | 'log' | 'owner'> {
  /**
   * The job types, or the path of a module whose default export lists them (an array or a record,
   * as `ujr run --jobs` loads). Continuous and `isolate` tasks run in child processes, which load
   * the job types from that module: given as objects, such tasks are refused (their runs fail,
   * not retried, saying to pass the module path); batch tasks run in this process either way.
   */
  jobs: readonly JobType[] | string;
  /**
   * The job instances, as entries of an instances file, or the path of an instances file, read
   * once (edits are not watched, unlike `ujr run`). Every entry must validate.
   * @default [] (no instance)
   */
  instances?: readonly InstanceEntry[] | string;
  /**
   * The shared limits tasks may name (their `limits` option), by name, as the instances file's
   * `"limits"` writes them: `{ rate, per, burst?, concurrency? }`. When `instances` is a path, the
   * file's limits are read too; a limit given here replaces the file's of that name. Every limit
   * must validate.
   * @default {} (only the file's, when `instances` is a path)
   * @example
   * ```ts
   * { limits: { api: { rate: 300, per: '15m' }, 'archive-host': { concurrency: 3 } } }
   * ```
   */
  limits?: LimitsConfig;
  /**
   * `'sqlite'`: the store `ujr.db` and the data directory `data/` under `home`, kept across runs
   * and shared with the CLI (`ujr runs --home`). `'memory'`: an in-memory store and a temporary
   * data directory, both gone at `close()`.
   * @default 'sqlite'
   */
  store?: 'sqlite' | 'memory';
  /**
   * The folder of the SQLite store and the data directory, relative to the current folder.
   * @default '.ujr'
   */
  home?: string;
  /**
   * With the SQLite store: what a commit survives (see `ujr run --durability`). `'normal'`: a
   * crash of the process; `'full'`: also a power loss, at the cost of an fsync per commit.
   * @default 'normal'
   */
  durability?: Durability;
}

interface Setup {
  jobs: JobType[];
  instances: InstanceConfig[];
  limits: ReadonlyMap<string, LimitDefinition>;
  store: Store;
  objects: DirectoryObjectStore;
  /** Runs continuous and isolated tasks (a fresh one per runner: stopping a runner closes it). */
  processExecutor: () => Executor;
  options: CreateRunnerOptions;
  /** Removes what the runner made for itself (the temporary data directory). */
  cleanup: () => void;
}

/**
 * A runner made by `createRunner`: run until idle (as `ujr run --once`) or until stopped
 * (as `ujr run`), trigger runs, read the run records. Its events are the engine's (`run` at every
 * status change of a run, `planned`, `planError`, `retired`, ...).
 *
 * @example
 * ```ts
 * const runner = await createRunner({ jobs: 'jobs/index.ts', instances: 'jobs/instances.json' });
 * runner.on('run', (run) => console.log(run.instanceId, run.task, run.status));
 * await runner.start();
 * // ...
 * await runner.close();
 * ```
 */
export class EmbeddedRunner extends EventEmitter<RunnerEvents> {
  /** The job types it runs. */
  readonly jobs: readonly JobType[];
  /** The validated instances (defaults filled in). */
  readonly instances: readonly InstanceConfig[];
  /** The validated shared limits, by name (the file's and the `limits` option's, defaults filled in). */
  readonly limits: ReadonlyMap<string, LimitDefinition>;
  /** The data directory, where tasks' `tctx.objects` writes go: read what they wrote. */
  readonly objects: ObjectStore;
  private readonly nextId = monotonicFactory();
  private current: { runner: Runner; once: boolean } | undefined;
  private closed = false;

  /** @internal Made by `createRunner`. */
  constructor(private readonly setup: Setup) {
    super();
    this.jobs = setup.jobs;
    this.instances = setup.instances;
    this.limits = setup.limits;
    this.objects = setup.objects;
  }

  /**
   * Plans every enabled instance once and runs until nothing is left (follow-up plans included),
   * as `ujr run --once`; continuous tasks are not started. Takes the triggers recorded meanwhile.
   *
   * @returns the counts of this run (`succeeded`, `failed`, `retried`, `planErrors`, ...).
   * @throws {RunnerStateError} while the runner runs (started, or already running until idle).
   * @example
   * ```ts
   * const stats = await runner.runUntilIdle();
   * if (stats.failed > 0 || stats.planErrors > 0) process.exitCode = 1;
   * ```
   */
  async runUntilIdle(): Promise<RunnerStats> {
    const runner = this.open(true);
    try {
      return await runner.runOnce();
    } finally {
      this.current = undefined;
    }
  }

  /**
   * Starts planning on the instances' schedules and running, until {@link stop}; continuous tasks
   * are started and supervised.
   *
   * @throws {RunnerStateError} while it runs already.
   * @example
   * ```ts
   * await runner.start();
   * process.once('SIGTERM', () => void runner.close());
   * ```
   */
  async start(): Promise<void> {
    await this.open(false).start();
  }

  /**
   * Stops a started runner: planning stops, running tasks are aborted and get `graceMs` to end,
   * then they are recorded `interrupted` (planned again next start). Does nothing when not started.
   *
   * @example
   * ```ts
   * await runner.stop(10_000);
   * ```
   */
  async stop(graceMs?: number): Promise<void> {
    const current = this.current;
    if (!current) return;
    await current.runner.stop(graceMs);
    if (this.current === current) this.current = undefined;
  }

  /**
   * The counts of the run in progress (or `undefined` when it is not running).
   *
   * @example
   * ```ts
   * const { running, queued, failed } = runner.stats() ?? { running: 0, queued: 0, failed: 0 };
   * ```
   */
  stats(): RunnerStats | undefined {
    return this.current?.runner.stats();
  }

  /**
   * Asks for an ad-hoc run, as `ujr trigger`: with a task, that task with `input` (validated as a
   * plan's task would be); without, a plan of the instance now. A started runner takes it at once,
   * else the next `start` or `runUntilIdle` does. A disabled instance may run its batch tasks so.
   *
   * @throws {UnknownInstanceError} when no instance has the id.
   * @throws {InvalidTaskSpecError} when the job type has no such task or `input` does not validate.
   * @example
   * ```ts
   * await runner.trigger('lab-a', 'greet', { name: 'ada' });
   * await runner.runUntilIdle();
   * ```
   */
  async trigger(instanceId: string, task?: string, input?: Json): Promise<Trigger> {
    this.assertOpen();
    assertTriggerable(this.jobs, this.instances, { instanceId, task, input });
    if (this.current) return this.current.runner.trigger(instanceId, task, input);
    const trigger: Trigger = { id: this.nextId(), instanceId, at: Date.now() };
    if (task !== undefined) trigger.task = task;
    if (input !== undefined) trigger.input = input;
    await this.setup.store.addTrigger(trigger);
    return trigger;
  }

  /**
   * Run records (every attempt is one), newest first, as `ujr runs`: by instance, task,
   * signature, status, time; at most `limit` (default 100).
   *
   * @example
   * ```ts
   * const failed = await runner.runs({ instanceId: 'lab-a', status: 'failed' });
   * ```
   */
  runs(query: RunQuery = {}): Promise<RunRecord[]> {
    this.assertOpen();
    return this.setup.store.listRuns(query);
  }

  /**
   * A run's log lines, in order (what its task logged, and the runner's notes on it).
   *
   * @example
   * ```ts
   * for (const line of await runner.logs(run.id)) console.log(line.level, line.message);
   * ```
   */
  logs(runId: string): Promise<LogLine[]> {
    this.assertOpen();
    return this.setup.store.getLogs(runId);
  }

  /**
   * Stops the runner (see {@link stop}) and closes the store; with `store: 'memory'`, the
   * temporary data directory is removed. The runner cannot be used after.
   *
   * @example
   * ```ts
   * await runner.close();
   * ```
   */
  async close(graceMs?: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.stop(graceMs);
    } finally {
      await this.setup.store.close();
      this.setup.cleanup();
    }
  }

  private open(once: boolean): Runner {
    this.assertOpen();
    if (this.current) {
      throw new RunnerStateError(
        this.current.once ? 'the runner is running until idle already; await that first' : 'the runner is started; stop() it before running it again',
      );
    }
    const { jobs: _jobs, instances: _instances, limits: _limits, store: _store, home: _home, ...runnerOptions } = this.setup.options;
    const runner = new Runner({
      ...runnerOptions,
      store: this.setup.store,
      objects: this.setup.objects,
      jobs: this.setup.jobs,
      instances: [...this.setup.instances],
      limits: this.setup.limits,
      processExecutor: this.setup.processExecutor(),
      once,
    });
    forwardEvents(runner, this);
    this.current = { runner, once };
    return runner;
  }

  private assertOpen(): void {
    if (this.closed) throw new RunnerStateError('the runner was closed; create another with createRunner');
  }
}

/** Passes every event of the engine's runner on to the embedded runner's listeners. */
function forwardEvents(from: Runner, to: EventEmitter<RunnerEvents>): void {
  from.on('run', (run) => to.emit('run', run));
  from.on('planned', (instanceId, count) => to.emit('planned', instanceId, count));
  from.on('planError', (instanceId, error) => to.emit('planError', instanceId, error));
  from.on('deduplicated', (instanceId, signature, holder) => to.emit('deduplicated', instanceId, signature, holder));
  from.on('retired', (instanceId, reason) => to.emit('retired', instanceId, reason));
  from.on('idle', () => to.emit('idle'));
  from.on('storeError', (error) => to.emit('storeError', error));
}

/**
 * Stands in for the process executor when the job types were given as objects: a child process
 * could not load them, so continuous and isolated tasks are refused, saying how to run them.
 */
class NoProcessExecutor implements Executor {
  start(_job: JobType, _definition: unknown, request: AttemptRequest): AttemptHandle {
    const error = new NonRetryableError(
      `task "${request.task}" of instance "${request.instanceId}" runs in a child process (it is continuous, or isolate: true), ` +
        'which loads the job types from their module: pass createRunner({ jobs: "<path of the module>" }) ' +
        '(whose default export lists the job types) instead of the job type objects',
    );
    return { done: Promise.resolve(failure(error)), abort: () => undefined, kill: () => false };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Opens what `createRunner` (./create-runner.ts) returns; loaded on demand, see there. */
export async function openEmbeddedRunner(options: CreateRunnerOptions): Promise<EmbeddedRunner> {
  const jobsModule = typeof options.jobs === 'string' ? resolve(options.jobs) : undefined;
  const jobs = jobsModule !== undefined ? await loadJobTypes(jobsModule) : [...(options.jobs as readonly JobType[])];
  const { instances, limits } = await readConfiguration(options, jobs);

  const memory = options.store === 'memory';
  const home = resolve(options.home ?? DEFAULT_PATHS.home);
  const objectsRoot = memory ? mkdtempSync(join(tmpdir(), 'ujr-data-')) : dataPath({ home });
  const store = memory ? new MemoryStore() : openLocalStore({ home }, options.durability ? { durability: options.durability } : {});
  mkdirSync(objectsRoot, { recursive: true });
  return new EmbeddedRunner({
    jobs,
    instances,
    limits,
    store,
    objects: new DirectoryObjectStore(objectsRoot),
    processExecutor: () => (jobsModule !== undefined ? new ProcessExecutor({ jobsModule, objectsRoot }) : new NoProcessExecutor()),
    options,
    cleanup: () => {
      if (memory) rmSync(objectsRoot, { recursive: true, force: true });
    },
  });
}

/**
 * The instances and limits of `createRunner`'s options: the instances file's when `instances` is a
 * path, then the `limits` option's over them.
 * @throws {InvalidInstancesError} when the file cannot be read or any of its instances or limits is invalid.
 * @throws {InvalidLimitError} when a limit of the `limits` option is invalid.
 */
async function readConfiguration(
  options: CreateRunnerOptions,
  jobs: readonly JobType[],
): Promise<{ instances: InstanceConfig[]; limits: Map<string, LimitDefinition> }> {
  const entries = options.instances ?? [];
  const given = requireLimits(options.limits, 'createRunner options');
  if (typeof entries !== 'string') return { instances: parseInstanceEntries(entries, jobs), limits: given };
  const file = await readInstanceEntries(resolve(entries), jobs);
  return { instances: file.instances, limits: new Map([...file.limits, ...given]) };
}
