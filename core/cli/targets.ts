/**
 * What a CLI command reads and edits: the local installation (the SQLite store under --home, the
 * instances file, the job types module) or a deployed stack (`--stack <name>`: the DynamoDB store,
 * the instances table). Commands are written once over a {@link Target}, so `status`, `runs` and
 * `jobs` print the same shapes in both modes.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parse as parseJsonc, type ParseError } from 'jsonc-parser';
import type { AwsCliContext } from '../adapters/aws/cli-context.js';
import { StoreNotFoundError } from '../adapters/sqlite/errors.js';
import type { SqliteStore } from '../adapters/sqlite/store.js';
import type { Board } from '../cloud/board.js';
import { findSecretRefs } from '../cloud/secrets.js';
import { canonicalInput } from '../engine/planner.js';
import { DEFAULT_SCHEDULE, formatProblem, instanceEntrySchema, parseInstances, type ConfigProblem } from '../config.js';
import { readInstancesFile } from '../config-file.js';
import { InstanceNotFoundError, InstancesFileError, setInstanceEnabled, unretireInstance } from '../local/instances-file.js';
import { loadJobTypes } from '../local/jobs-module.js';
import { databasePath, openLocalStore, type LocalPaths } from '../local/runtime.js';
import type { Store } from '../ports/store.js';
import type { InstanceConfig, JobType } from '../types.js';
import { CliError, EXIT } from './errors.js';

/** An instance entry that does not validate: shown with its problems, never left out silently. */
export interface InvalidInstance {
  id: string;
  /** The job type it names, when it names one. */
  job: string | null;
  /** Its problems, as `field: message`. */
  problems: string[];
}

/** The instances as configured where the target keeps them, validated as its runtime does. */
export interface InstanceView {
  instances: InstanceConfig[];
  problems: ConfigProblem[];
  /** The entries with problems (the problems of the file as a whole are only in `problems`). Default: none. */
  invalid?: InvalidInstance[];
  /** The task names of an instance's job type (from the job types module, or else from its run history). */
  tasksOf(instance: InstanceConfig): Promise<string[]>;
  /** Whether `tasksOf` knows every task (the job types are loaded), so unknown task names can be refused here. */
  readonly knowsTasks: boolean;
}

export interface Target {
  /** `local`, or the stack's name. */
  readonly name: string;
  /** Where instances are configured, for messages: the instances file's path, or the stack's instances table. */
  readonly instancesSource: string;
  /** The same in words: "the instances file", or the stack's instances table. */
  readonly instancesLabel: string;
  store(): Store;
  /** The board of a deployed stack: what is queued or running lives there, not in run records. */
  readonly board?: Board;
  instances(): Promise<InstanceView>;
  /**
   * Enables or disables an instance where its configuration lives (un-retiring it on enable);
   * resolves with where that was, for the message.
   * @throws {CliError} exit 3 when there is no such instance.
   */
  setEnabled(instanceId: string, enabled: boolean): Promise<string>;
  close(): Promise<void>;
}

/**
 * Opens the local store for any command but `ujr run`: only the runner creates a store, so that a
 * mistyped --home or a store deleted by hand is reported, not replaced by an empty one.
 * @throws {CliError} exit 2 when there is no store under `paths.home` (nothing is created).
 */
export function openExistingLocalStore(paths: Pick<LocalPaths, 'home'>): SqliteStore {
  try {
    return openLocalStore(paths, { create: false });
  } catch (error) {
    if (error instanceof StoreNotFoundError) {
      throw new CliError(`no ujr store at ${error.path}: start the runner with "ujr run" (it creates the store), or pass --home <dir>`, EXIT.usage);
    }
    throw error;
  }
}

/** The local installation: the SQLite store is opened on first use, and never created (see `openExistingLocalStore`). */
export function localTarget(paths: LocalPaths): Target {
  let store: Store | undefined;
  const target: Target = {
    name: 'local',
    instancesSource: paths.instancesFile,
    instancesLabel: 'the instances file',
    store: () => (store ??= openExistingLocalStore(paths)),
    async instances() {
      const jobs = await loadJobTypes(paths.jobsModule);
      const config = await readInstancesFile(paths.instancesFile, jobs);
      const tasks = new Map(jobs.map((job) => [job.name, Object.keys(job.tasks)]));
      const invalid = invalidInstances(config.problems, await readEntries(paths.instancesFile));
      return { instances: config.instances, problems: config.problems, invalid, knowsTasks: true, tasksOf: (instance) => Promise.resolve(tasks.get(instance.job) ?? []) };
    },
    async setEnabled(instanceId, enabled) {
      try {
        await setInstanceEnabled(paths.instancesFile, instanceId, enabled);
      } catch (error) {
        if (error instanceof InstanceNotFoundError) throw new CliError(`${error.message}; see "ujr jobs list"`, EXIT.notFound);
        if (error instanceof InstancesFileError) throw new CliError(error.message, EXIT.usage);
        throw error;
      }
      // Without a store nothing is retired: editing the file is all there is to do.
      if (enabled && existsSync(databasePath(paths))) await unretireInstance(target.store(), instanceId);
      return paths.instancesFile;
    },
    async close() {
      await store?.close();
    },
  };
  return target;
}

export interface StackTargetOptions {
  /** The job types module, when the stack's job types are at hand: tasks are then known and params validated. */
  jobsModule?: string;
  /** Whether `jobsModule` was asked for (its failure to load is then an error, not a fallback). */
  jobsModuleRequired?: boolean;
}

/**
 * A deployed stack. Instance entries come from the instances table (with their run-time overrides:
 * `jobs enable|disable` writes overrides, which survive redeploys). Params holding secret
 * references are not validated here (the CLI never fetches secrets); the scheduler does.
 */
export function stackTarget(aws: AwsCliContext, options: StackTargetOptions = {}): Target {
  const store = aws.store;
  const source = `the instances table of stack "${aws.stackName}"`;
  let jobs: Promise<JobType[] | undefined> | undefined;
  const jobTypes = () =>
    (jobs ??= (async () => {
      const module = options.jobsModule;
      if (module === undefined || (!options.jobsModuleRequired && !existsSync(module))) return undefined;
      return loadJobTypes(module);
    })());

  const entryIds = async () => (await store.listInstanceEntries()).map((entry) => (typeof entry.id === 'string' ? entry.id : '?')).sort();

  return {
    name: aws.stackName,
    instancesSource: source,
    instancesLabel: source,
    store: () => store,
    board: store,
    async instances() {
      const [entries, known] = await Promise.all([store.listInstanceEntries(), jobTypes()]);
      const parsed = parseStackEntries(entries, known);
      const view = { ...parsed, invalid: invalidInstances(parsed.problems, entries) };
      const byName = new Map((known ?? []).map((job) => [job.name, Object.keys(job.tasks)]));
      return {
        ...view,
        knowsTasks: known !== undefined,
        async tasksOf(instance) {
          const tasks = byName.get(instance.job);
          if (tasks) return tasks;
          // Without the job types: the tasks this instance ran lately, and what it has on the board.
          const runs = await store.listRuns({ instanceId: instance.id, limit: 200 });
          return [...new Set(runs.map((run) => run.task))].sort();
        },
      };
    },
    async setEnabled(instanceId, enabled) {
      const ids = await entryIds();
      if (!ids.includes(instanceId)) {
        throw new CliError(`no job instance "${instanceId}" in ${source}; known: ${ids.join(', ') || '(none)'}`, EXIT.notFound);
      }
      await store.setInstanceOverride(instanceId, { enabled });
      if (enabled) await unretireInstance(store, instanceId);
      return `stack "${aws.stackName}" (the scheduler applies it at its next tick)`;
    },
    close() {
      aws.close();
      return Promise.resolve();
    },
  };
}

/**
 * Validates the instances table's entries as the scheduler does where the CLI can: in full when the
 * job types are loaded and the params hold no secret reference, else the entry's own fields.
 */
export function parseStackEntries(entries: readonly unknown[], jobs: readonly JobType[] | undefined): { instances: InstanceConfig[]; problems: ConfigProblem[] } {
  const instances: InstanceConfig[] = [];
  const problems: ConfigProblem[] = [];
  const byName = new Map((jobs ?? []).map((job) => [job.name, job]));
  for (const entry of entries) {
    const envelope = instanceEntrySchema.safeParse(entry);
    if (!envelope.success) {
      const id = typeof entry === 'object' && entry !== null && 'id' in entry && typeof entry.id === 'string' ? entry.id : '?';
      for (const issue of envelope.error.issues) problems.push({ instanceId: id, field: issue.path.join('.') || undefined, message: issue.message });
      continue;
    }
    const { id, job: jobName, params, enabled, schedule, concurrency } = envelope.data;
    const job = byName.get(jobName);
    if (jobs !== undefined && !job) {
      problems.push({ instanceId: id, field: 'job', message: `no job type is named "${jobName}"; known job types: ${[...byName.keys()].join(', ') || '(none loaded)'}` });
      continue;
    }
    let hasSecrets: boolean;
    try {
      hasSecrets = findSecretRefs(params).length > 0;
    } catch (error) {
      problems.push({ instanceId: id, field: 'params', message: (error as Error).message });
      continue;
    }
    if (jobs !== undefined && !hasSecrets) {
      const parsed = parseInstances({ instances: [entry] }, jobs);
      instances.push(...parsed.instances);
      problems.push(...parsed.problems);
      continue;
    }
    instances.push({
      id,
      job: jobName,
      params: params ?? {},
      enabled,
      schedule: schedule ?? job?.schedule ?? DEFAULT_SCHEDULE,
      concurrency: concurrency ?? Number.POSITIVE_INFINITY,
    });
  }
  instances.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { instances, problems };
}

/**
 * Checks an ad-hoc run request against the configured instances: the instance exists and is valid,
 * the task (when the job types are known) exists, and an input comes with a task and is JSON within
 * `MAX_INPUT_BYTES`, as the planners check it.
 * @throws {CliError} exit 2 (broken instance or instances file, input without task, input not JSON or too large) or 3 (unknown instance or task).
 */
export async function checkTrigger(target: Target, view: InstanceView, instanceId: string, task: string | undefined, input: unknown): Promise<InstanceConfig> {
  const instance = view.instances.find((i) => i.id === instanceId);
  const problems = view.problems.filter((p) => p.instanceId === instanceId);
  if (!instance && problems.length > 0) {
    throw new CliError(
      `instance "${instanceId}" has problems in ${target.instancesLabel}; fix them first:\n${formatProblems(target, problems).join('\n')}`,
      EXIT.usage,
    );
  }
  const fileProblems = view.problems.filter((p) => p.instanceId === undefined);
  if (!instance && fileProblems.length > 0) {
    // The instance may well be there: the file as a whole cannot be used.
    throw new CliError(`${target.instancesLabel} cannot be used; fix it first:\n${formatProblems(target, fileProblems).join('\n')}`, EXIT.usage);
  }
  if (!instance) {
    throw new CliError(`no job instance "${instanceId}" in ${target.instancesSource}; known: ${view.instances.map((i) => i.id).join(', ') || '(none)'}`, EXIT.notFound);
  }
  if (task !== undefined && view.knowsTasks) {
    const tasks = await view.tasksOf(instance);
    if (!tasks.includes(task)) throw new CliError(`job type "${instance.job}" has no task "${task}"; its tasks: ${tasks.join(', ')}`, EXIT.notFound);
  }
  if (task === undefined && input !== undefined) {
    throw new CliError('--input needs a task name: ujr trigger <instance> <task> --input JSON', EXIT.usage);
  }
  if (task !== undefined && input !== undefined) {
    // The runtime checks it again at plan time; this says so before anything is written.
    try {
      canonicalInput(input, `instance "${instanceId}", task "${task}"`);
    } catch (error) {
      throw new CliError((error as Error).message, EXIT.usage);
    }
  }
  return instance;
}

/**
 * The entries that have problems, each with the job type it names (looked up in `entries`, the
 * file's or table's raw entries, by id or by `#index` for an entry without a usable id).
 */
export function invalidInstances(problems: readonly ConfigProblem[], entries: readonly unknown[]): InvalidInstance[] {
  const byId = new Map<string, InvalidInstance>();
  for (const problem of problems) {
    if (problem.instanceId === undefined) continue;
    const id = problem.instanceId;
    let invalid = byId.get(id);
    if (!invalid) {
      const index = /^#(\d+)$/.exec(id);
      const entry = index ? entries[Number(index[1])] : entries.find((e) => isRecord(e) && e.id === id);
      invalid = { id, job: isRecord(entry) && typeof entry.job === 'string' ? entry.job : null, problems: [] };
      byId.set(id, invalid);
    }
    invalid.problems.push(problem.field ? `${problem.field}: ${problem.message}` : problem.message);
  }
  return [...byId.values()];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The raw entries of the instances file (JSONC), or none when it cannot be read or parsed (its problems say why). */
async function readEntries(file: string): Promise<unknown[]> {
  try {
    const errors: ParseError[] = [];
    const raw: unknown = parseJsonc(await readFile(file, 'utf8'), errors, { allowTrailingComma: true, disallowComments: false });
    return errors.length === 0 && isRecord(raw) && Array.isArray(raw.instances) ? (raw.instances as unknown[]) : [];
  } catch {
    return [];
  }
}

/** The problems of a view, each naming its source. */
export function formatProblems(target: Target, problems: readonly ConfigProblem[]): string[] {
  return problems.map((problem) => formatProblem(target.instancesSource, problem));
}
