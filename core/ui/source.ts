/**
 * What the status page reads and the actions it takes, as a port with two implementations: the
 * local installation (below: the SQLite store, the instances file, the job types module) and a
 * deployed stack (./stack-source.ts: the DynamoDB store and board, the instances table,
 * CloudWatch Logs, the scheduler function). The page's rules (badges, checks of a "Run now"
 * request, 404s) live in status.ts and server.ts, once, over this port.
 */
import { formatProblem } from '../config.js';
import { readInstancesFile } from '../config-file.js';
import { InstanceNotFoundError, setInstanceEnabled, unretireInstance } from '../local/instances-file.js';
import { loadJobTypes } from '../local/jobs-module.js';
import type { LocalPaths } from '../local/runtime.js';
import type { LimitState, LimitStore } from '../ports/limits.js';
import type { Store, Trigger } from '../ports/store.js';
import { LIVE_STATUSES, type InstanceConfig, type Json, type JobType, type LogLine, type RunRecord } from '../types.js';
import { HttpError } from './errors.js';

/** The instances as configured, with the problems found in that configuration (each naming its source). */
export interface SourceConfig {
  instances: InstanceConfig[];
  problems: string[];
  /** Whether `tasksOf` knows every task of the job types (so a "Run now" of an unknown task is refused here). */
  knowsTasks: boolean;
}

/** A "Run now" request, checked by the server (instance known, task known, input valid JSON). */
export interface RunNowBody {
  task?: string;
  input?: Json;
}

/**
 * The status page's port: reads (instances, runs, statuses, logs) and actions (Run now,
 * enable/disable). Implementations translate; they hold no rule of the page.
 */
export interface StatusSource {
  /** Where the instances are configured, for messages: the instances file's path, or the stack's instances table. */
  readonly instancesSource: string;
  /** Shown in the page's header: `local`, or `stack "<name>"`. */
  readonly label: string;
  /** How often open pages are refreshed by default (each refresh reads the store). */
  readonly eventIntervalMs: number;
  /** Run records, instance statuses (reads only). */
  readonly store: Pick<Store, 'listRuns' | 'lastRun' | 'listInstanceStatus' | 'getInstanceStatus'>;
  /** The instances as configured now (read on every call, so edits show at once). */
  config(): Promise<SourceConfig>;
  /** The task names of an instance's job type. */
  tasksOf(instance: InstanceConfig): Promise<string[]>;
  /** Runs queued, running or waiting to retry, of every instance or of one. */
  activeRuns(instanceId?: string): Promise<RunRecord[]>;
  /** Every shared-limit bucket and its level, when the store keeps shared limits (issue 15). */
  limits?(): Promise<LimitState[]>;
  /** A run by id, including one that has no record yet where the store keeps those apart (a stack's board). */
  getRun(id: string): Promise<RunRecord | undefined>;
  /** The log lines of `run` after line `afterSeq`, oldest first. */
  logs(run: RunRecord, afterSeq: number): Promise<LogLine[]>;
  /**
   * Asks for a run of `instance` now; resolves with what the API answers (202).
   * @throws {HttpError} when the request is refused.
   */
  runNow(instance: InstanceConfig, request: RunNowBody): Promise<Record<string, unknown>>;
  /**
   * Asks whoever holds the live `run` to end it `cancelled`; resolves with what the API answers
   * (202) and a `message` saying what happens next.
   */
  cancel(run: RunRecord): Promise<Record<string, unknown>>;
  /**
   * Enables or disables an instance where it is configured (un-retiring it on enable).
   * @throws {HttpError} 404 when there is no such instance.
   */
  setEnabled(id: string, enabled: boolean): Promise<void>;
}

export interface LocalSourceOptions {
  store: Store;
  paths: LocalPaths;
  /** Job types; loaded from `paths.jobsModule` when not given. */
  jobs?: JobType[];
  now: () => number;
  nextId: () => string;
}

/**
 * The local installation: the store `ujr run` writes, the instances file, the job types module.
 * "Run now" adds a trigger the running `ujr run` takes.
 *
 * @example
 * ```ts
 * const source = await localStatusSource({ store, paths, now: Date.now, nextId: monotonicFactory() });
 * const ui = await startUiServer({ source });
 * ```
 */
export async function localStatusSource(options: LocalSourceOptions): Promise<StatusSource> {
  const { store, paths, now, nextId } = options;
  const jobs = options.jobs ?? (await loadJobTypes(paths.jobsModule));
  const tasks = new Map(jobs.map((job) => [job.name, Object.keys(job.tasks)]));
  return {
    instancesSource: paths.instancesFile,
    label: 'local',
    eventIntervalMs: 1_000,
    store,
    async config() {
      const parsed = await readInstancesFile(paths.instancesFile, jobs);
      return { instances: parsed.instances, problems: parsed.problems.map((p) => formatProblem(paths.instancesFile, p)), knowsTasks: true };
    },
    tasksOf: (instance) => Promise.resolve(tasks.get(instance.job) ?? []),
    activeRuns: (instanceId) => store.listRuns({ ...(instanceId !== undefined ? { instanceId } : {}), status: [...LIVE_STATUSES], limit: instanceId !== undefined ? 200 : 500 }),
    getRun: (id) => store.getRun(id),
    ...(store.limits ? { limits: () => (store.limits as LimitStore).listLimitStates(now()) } : {}),
    logs: (run, afterSeq) => store.getLogs(run.id, afterSeq),
    async runNow(instance, request) {
      const trigger: Trigger = { id: nextId(), instanceId: instance.id, at: now() };
      if (request.task !== undefined) {
        trigger.task = request.task;
        trigger.input = request.input ?? {};
      }
      await store.addTrigger(trigger);
      return { trigger };
    },
    async cancel(run) {
      const trigger: Trigger = { id: nextId(), instanceId: run.instanceId, cancelRunId: run.id, at: now() };
      await store.addTrigger(trigger);
      return { trigger, message: `Asked to cancel ${run.task} of ${run.instanceId}; the "ujr run" holding it aborts it within a second.` };
    },
    async setEnabled(id, enabled) {
      try {
        await setInstanceEnabled(paths.instancesFile, id, enabled);
      } catch (error) {
        if (error instanceof InstanceNotFoundError) throw new HttpError(404, error.message);
        throw error;
      }
      if (enabled) await unretireInstance(store, id);
    },
  };
}
