/**
 * The embedded local runtime: a runner on the SQLite store under `.ujr/`, the data directory as
 * object store, continuous and isolated tasks in child processes, and a live instances file.
 */
import { mkdirSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { DirectoryObjectStore } from '../adapters/fs/objects.js';
import { StoreFileLostError } from '../adapters/sqlite/errors.js';
import { SqliteStore, type Durability } from '../adapters/sqlite/store.js';
import { Runner, type RunnerOptions } from '../engine/runner.js';
import type { JobType, Logger } from '../types.js';
import { ConfigWatcher } from './config-watcher.js';
import { loadJobTypes } from './jobs-module.js';
import { ProcessExecutor } from './process-executor.js';

export interface LocalPaths {
  /** The runtime's folder: the SQLite file and the data directory live here. */
  home: string;
  /** Module exporting the job types. */
  jobsModule: string;
  /** The instances file. */
  instancesFile: string;
}

export const DEFAULT_PATHS = { home: '.ujr', jobsModule: 'jobs/index.ts', instancesFile: 'jobs/instances.json' } as const;

export function resolvePaths(options: Partial<LocalPaths>, cwd = process.cwd()): LocalPaths {
  return {
    home: resolve(cwd, options.home ?? DEFAULT_PATHS.home),
    jobsModule: resolve(cwd, options.jobsModule ?? DEFAULT_PATHS.jobsModule),
    instancesFile: resolve(cwd, options.instancesFile ?? DEFAULT_PATHS.instancesFile),
  };
}

export function databasePath(paths: Pick<LocalPaths, 'home'>): string {
  return join(paths.home, 'ujr.db');
}

export function dataPath(paths: Pick<LocalPaths, 'home'>): string {
  return join(paths.home, 'data');
}

/** How often a runtime checks that its store file is still the one it opened. */
export const STORE_FILE_CHECK_MS = 1_000;

/**
 * Opens the store under `paths.home`. With `create: false` (commands other than `ujr run`),
 * nothing is created and a missing store fails with `StoreNotFoundError`.
 */
export function openLocalStore(paths: Pick<LocalPaths, 'home'>, options: { create?: boolean; durability?: Durability } = {}): SqliteStore {
  const create = options.create ?? true;
  if (create) mkdirSync(paths.home, { recursive: true });
  return SqliteStore.open(databasePath(paths), { create, ...(options.durability ? { durability: options.durability } : {}) });
}

export interface LocalRuntime {
  runner: Runner;
  store: SqliteStore;
  watcher: ConfigWatcher;
  jobs: JobType[];
  /** Problems found in the instances file at start. */
  configProblems: string[];
  /**
   * Resolves when the store file was deleted or replaced while the runtime used it (checked every
   * {@link STORE_FILE_CHECK_MS}); never otherwise. The runtime keeps running: its owner stops it.
   */
  storeLost: Promise<StoreFileLostError>;
  /** Stops the runner (graceful; `signal` is the one that stopped the process, for the runs' error), the watcher and closes the store. */
  close(graceMs?: number, signal?: string): Promise<void>;
}

export async function openLocalRuntime(
  paths: LocalPaths,
  options: Omit<RunnerOptions, 'store' | 'objects' | 'jobs' | 'instances' | 'processExecutor'> & { log: Logger; durability?: Durability },
): Promise<LocalRuntime> {
  const { durability, ...runnerOptions } = options;
  const jobs = await loadJobTypes(paths.jobsModule);
  const store = openLocalStore(paths, durability ? { durability } : {});
  const objectsRoot = dataPath(paths);
  mkdirSync(objectsRoot, { recursive: true });
  const runner = new Runner({
    ...runnerOptions,
    store,
    objects: new DirectoryObjectStore(objectsRoot),
    jobs,
    processExecutor: new ProcessExecutor({ jobsModule: paths.jobsModule, objectsRoot }),
  });
  const watcher = new ConfigWatcher({
    path: paths.instancesFile,
    jobs,
    apply: (instances) => runner.setInstances(instances),
    applyLimits: (limits) => runner.setLimits(limits),
    report: (message) => runnerOptions.log.error(message),
  });
  const configProblems = await watcher.load();
  const fileCheck = watchStoreFile(store);
  let closed = false;
  return {
    runner,
    store,
    watcher,
    jobs,
    configProblems,
    storeLost: fileCheck.lost,
    async close(graceMs, signal) {
      if (closed) return;
      closed = true;
      fileCheck.stop();
      watcher.stop();
      await runner.stop(graceMs, signal);
      await store.close();
    },
  };
}

/** Checks the store's file every {@link STORE_FILE_CHECK_MS} (an unref'd timer) until it is lost or `stop`. */
function watchStoreFile(store: SqliteStore): { lost: Promise<StoreFileLostError>; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  const lost = new Promise<StoreFileLostError>((resolve) => {
    timer = setInterval(() => {
      try {
        store.checkFile();
      } catch (error) {
        // Anything else (a stat that failed on a permission) is looked at again next time.
        if (!(error instanceof StoreFileLostError)) return;
        clearInterval(timer);
        resolve(error);
      }
    }, STORE_FILE_CHECK_MS);
    timer.unref();
  });
  return { lost, stop: () => clearInterval(timer) };
}
