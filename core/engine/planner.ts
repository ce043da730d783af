/**
 * The planner side of the engine: the context a job's `getRunnableTasks` sees, and the checks
 * that turn what it returned into runnable tasks (or clear errors naming the bad spec).
 */
import { InputTooLargeError, InvalidTaskSpecError } from '../errors.js';
import { MAX_INPUT_BYTES } from '../limits.js';
import { mergeRetry } from '../retry.js';
import { canonicalJson, defaultSignature } from '../signature.js';
import type { LimitDefinition, LimitSpec } from '../ports/limits.js';
import type { Store } from '../ports/store.js';
import type {
  HistoryQuery,
  InstanceConfig,
  JobType,
  Json,
  Logger,
  ObjectReader,
  PlanContext,
  RetryPolicy,
  RunRecord,
  RunSummary,
  TaskDefinition,
  TaskKind,
  TaskLimit,
  TaskSpec,
} from '../types.js';

/** Batch tasks without a timeout of their own get this one. */
export const DEFAULT_BATCH_TIMEOUT_MS = 15 * 60_000;

/** A task spec that passed every check, with everything the runner needs resolved. */
export interface PlannedTask {
  task: string;
  definition: TaskDefinition;
  input: Json;
  kind: TaskKind;
  signature: string;
  timeoutMs: number | undefined;
  /** Whether the task or its spec set the timeout (else it is the default of its kind). */
  timeoutSet: boolean;
  retry: RetryPolicy;
  isolate: boolean;
  /** The limits the spec or the task names, as named: {@link resolveLimits} makes them buckets. */
  limitRequests: readonly LimitRequestOf[];
  /** The buckets it takes before it starts, once resolved against the configured limits. */
  limits?: LimitSpec[];
}

/** A limit as a task definition (key function) or a spec override (key) names it. */
export type LimitRequestOf = TaskLimit | { name: string; key?: string };

export interface PlanOutcome {
  tasks: PlannedTask[];
  /** Specs that were rejected, each with an error naming the spec and what is wrong. */
  rejected: InvalidTaskSpecError[];
  /** Batch specs left unresolved because the limit was reached (see {@link SpecLimit}). */
  truncated: number;
}

/**
 * How much of a plan a runner can take: once `newBatch` batch tasks that are not `known` (held
 * already) are resolved, the remaining batch specs are not (their inputs are not hashed, their
 * mistakes are reported when a later plan reaches them). Continuous specs are always resolved:
 * the runner reconciles what it runs against all of them.
 */
export interface SpecLimit {
  newBatch: number;
  known(signature: string): boolean;
}

function declaredKind(job: JobType, spec: unknown): unknown {
  if (typeof spec !== 'object' || spec === null) return undefined;
  const { kind, task } = spec as { kind?: unknown; task?: unknown };
  if (kind !== undefined) return kind;
  return typeof task === 'string' && Object.hasOwn(job.tasks, task) ? (job.tasks[task]?.kind ?? 'batch') : undefined;
}

export function summarize(run: RunRecord): RunSummary {
  const summary: RunSummary = {
    id: run.id,
    instanceId: run.instanceId,
    task: run.task,
    signature: run.signature,
    status: run.status,
    attempt: run.attempt,
  };
  if (run.startedAt !== undefined) summary.startedAt = run.startedAt;
  if (run.endedAt !== undefined) summary.endedAt = run.endedAt;
  if (run.result !== undefined) summary.result = run.result;
  return summary;
}

/**
 * A task's input as the task runs with it: through its input schema (defaults filled in), as a
 * plan's specs are resolved, so that a signature computed from it is the one the task ran under.
 * An input the schema refuses, or a task the job does not define, is taken as given.
 */
export function inputAsRun(job: JobType, task: string, input: Json): Json {
  const schema = Object.hasOwn(job.tasks, task) ? job.tasks[task]?.input : undefined;
  if (!schema) return input;
  const parsed = schema.safeParse(input);
  return parsed.success ? (parsed.data as Json) : input;
}

/** The part of the store a plan uses: its instance's state and the run history's latest runs. */
export type PlanStore = Pick<Store, 'lastRun' | 'getState' | 'setState'>;

export function buildPlanContext(options: {
  instance: InstanceConfig;
  /** The instance's job type: a history query names one of its tasks' inputs as that task runs with it. */
  job: JobType;
  reason: PlanContext<unknown>['reason'];
  /** What a plan reads (and the state it writes) of the store. */
  store: PlanStore;
  objects: ObjectReader;
  log: Logger;
  now: () => number;
  onDone: (reason: string | undefined) => void;
}): PlanContext<unknown> {
  const { instance, job, store } = options;
  const signatureOf = (task: string, input: Json = {}) => defaultSignature(instance.id, task, canonicalJson(inputAsRun(job, task, input)));
  const toRunQuery = (query: HistoryQuery) => {
    if ('signature' in query) return { signature: query.signature };
    const instanceId = query.instanceId ?? instance.id;
    if (query.input === undefined) return { instanceId, task: query.task };
    // Another instance's job may be another type: its input is taken as given.
    const input = instanceId === instance.id ? inputAsRun(job, query.task, query.input) : query.input;
    return { signature: defaultSignature(instanceId, query.task, canonicalJson(input)) };
  };
  return {
    instanceId: instance.id,
    params: instance.params,
    reason: options.reason,
    now: options.now,
    state: {
      get: async <T extends Json = Json>(key: string) => (await store.getState(instance.id, key)) as T | undefined,
      set: async (key, value) => {
        canonicalJson(value, `state.${key}`);
        return store.setState(instance.id, key, value);
      },
      delete: (key) => store.setState(instance.id, key, undefined),
    },
    history: {
      async lastSuccess(query) {
        const run = await store.lastRun({ ...toRunQuery(query), status: 'succeeded' });
        return run && summarize(run);
      },
      async lastRun(query) {
        const run = await store.lastRun(toRunQuery(query));
        return run && summarize(run);
      },
    },
    signatureOf,
    objects: readOnly(options.objects),
    log: options.log,
    done: (reason) => options.onDone(reason),
  };
}

/** A view with only the reading calls, so a plan written in JavaScript cannot reach `put` either. */
function readOnly(objects: ObjectReader): ObjectReader {
  return {
    get: (key) => objects.get(key),
    getText: (key) => objects.getText(key),
    stat: (key) => objects.stat(key),
    list: (prefix) => objects.list(prefix),
  };
}

/** Checks each spec a plan returned; bad ones are rejected one by one, never the whole plan. */
export function resolveSpecs(job: JobType, instanceId: string, specs: unknown, limit?: SpecLimit): PlanOutcome {
  const outcome: PlanOutcome = { tasks: [], rejected: [], truncated: 0 };
  if (!Array.isArray(specs)) {
    outcome.rejected.push(
      new InvalidTaskSpecError(
        `job type "${job.name}" (instance "${instanceId}"): getRunnableTasks returned ${describe(specs)}; return an array of task specs such as [{ task: "name", input: {} }]`,
      ),
    );
    return outcome;
  }
  const seen = new Set<string>();
  let newBatch = 0;
  specs.forEach((spec: unknown, index) => {
    if (limit && newBatch >= limit.newBatch && declaredKind(job, spec) === 'batch') {
      outcome.truncated += 1;
      return;
    }
    try {
      const planned = resolveSpec(job, instanceId, spec, index);
      if (seen.has(planned.signature)) return;
      seen.add(planned.signature);
      outcome.tasks.push(planned);
      if (limit && planned.kind === 'batch' && !limit.known(planned.signature)) newBatch += 1;
    } catch (error) {
      outcome.rejected.push(
        error instanceof InvalidTaskSpecError
          ? error
          : new InvalidTaskSpecError(`instance "${instanceId}", task spec #${index}: ${String(error)}`, { cause: error }),
      );
    }
  });
  return outcome;
}

/**
 * The canonical JSON of a task input, checked as every runtime checks it at plan time: JSON only
 * (no cycles, bigints or class instances) and at most `MAX_INPUT_BYTES`.
 * @param where names the instance and task, for the error.
 * @throws {InvalidTaskSpecError} naming the path of a value JSON cannot hold.
 * @throws {InputTooLargeError} naming the size and the limit.
 */
export function canonicalInput(input: unknown, where: string): string {
  let canonical: string;
  try {
    canonical = canonicalJson(input, 'input');
  } catch (error) {
    throw new InvalidTaskSpecError(`${where}: ${(error as Error).message}`, { cause: error });
  }
  const bytes = Buffer.byteLength(canonical);
  if (bytes > MAX_INPUT_BYTES) {
    throw new InputTooLargeError(
      `${where}: its input is ${bytes} bytes as JSON, over the ${MAX_INPUT_BYTES}-byte limit of a task input (the same locally and on AWS); put large data in the object store (tctx.objects.put) and pass its key`,
    );
  }
  return canonical;
}

function resolveSpec(job: JobType, instanceId: string, raw: unknown, index: number): PlannedTask {
  const where = `instance "${instanceId}" (job type "${job.name}"), task spec #${index}`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidTaskSpecError(`${where} is ${describe(raw)}; a task spec is an object such as { task: "name", input: {} }`);
  }
  const spec = raw as Partial<TaskSpec>;
  if (typeof spec.task !== 'string' || !Object.hasOwn(job.tasks, spec.task)) {
    const known = Object.keys(job.tasks).join(', ');
    throw new InvalidTaskSpecError(`${where} names task ${JSON.stringify(spec.task)}, which job type "${job.name}" does not define; its tasks are: ${known}`);
  }
  const definition = job.tasks[spec.task] as TaskDefinition;
  let input: unknown = spec.input === undefined ? {} : spec.input;
  if (definition.input) {
    const parsed = definition.input.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = issue && issue.path.length > 0 ? `input.${issue.path.join('.')}` : 'input';
      throw new InvalidTaskSpecError(`${where} (task "${spec.task}"): ${path}: ${issue?.message ?? 'invalid'}`);
    }
    input = parsed.data;
  }
  const canonical = canonicalInput(input, `${where} (task "${spec.task}")`);
  const kind = spec.kind ?? definition.kind ?? 'batch';
  if (kind !== 'batch' && kind !== 'continuous') {
    throw new InvalidTaskSpecError(`${where} (task "${spec.task}"): kind must be "batch" or "continuous", not ${JSON.stringify(kind)}`);
  }
  if (spec.signature !== undefined && (typeof spec.signature !== 'string' || spec.signature.length === 0 || spec.signature.length > 512)) {
    throw new InvalidTaskSpecError(`${where} (task "${spec.task}"): signature must be a non-empty string of at most 512 characters`);
  }
  const timeoutMs = spec.timeoutMs ?? definition.timeoutMs ?? (kind === 'batch' ? DEFAULT_BATCH_TIMEOUT_MS : undefined);
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new InvalidTaskSpecError(`${where} (task "${spec.task}"): timeoutMs must be a positive number of milliseconds`);
  }
  const retry = mergeRetry(definition.retry, spec.retry);
  if (!(Number.isInteger(retry.attempts) && retry.attempts >= 1)) {
    throw new InvalidTaskSpecError(`${where} (task "${spec.task}"): retry.attempts must be an integer of at least 1`);
  }
  const limitRequests = spec.limits ?? definition.limits ?? [];
  checkLimitRequests(limitRequests, `${where} (task "${spec.task}")`);
  return {
    task: spec.task,
    definition,
    input: input as Json,
    kind,
    signature: spec.signature ?? defaultSignature(instanceId, spec.task, canonical),
    timeoutMs,
    timeoutSet: spec.timeoutMs !== undefined || definition.timeoutMs !== undefined,
    retry,
    isolate: kind === 'continuous' || definition.isolate === true,
    limitRequests,
  };
}

/** @throws {InvalidTaskSpecError} when `limits` is not a list of names or `{ name, key }` objects. */
function checkLimitRequests(limits: unknown, where: string): asserts limits is readonly LimitRequestOf[] {
  const shape = 'limits must be a list of limit names or { name, key } objects, such as ["api", { name: "host", key: "example.org" }]';
  if (!Array.isArray(limits)) throw new InvalidTaskSpecError(`${where}: ${shape}`);
  for (const limit of limits as unknown[]) {
    const ok =
      typeof limit === 'string' ||
      (typeof limit === 'object' &&
        limit !== null &&
        typeof (limit as { name?: unknown }).name === 'string' &&
        ['undefined', 'string', 'function'].includes(typeof (limit as { key?: unknown }).key));
    if (!ok) throw new InvalidTaskSpecError(`${where}: ${shape}; got ${JSON.stringify(limit) ?? String(limit)}`);
  }
}

/**
 * The buckets a planned task takes: each limit it names, looked up in `definitions` (the
 * configuration's limits), with its key (`''` when the limit is not split; a key function gets the
 * task's input and the instance's params).
 * @throws {InvalidTaskSpecError} naming the task and the limit when a limit is not configured or
 * a key function throws or returns something other than a string.
 */
export function resolveLimits(task: PlannedTask, instanceId: string, params: unknown, definitions: ReadonlyMap<string, LimitDefinition>): LimitSpec[] {
  const where = `instance "${instanceId}", task "${task.task}"`;
  const specs: LimitSpec[] = [];
  const seen = new Set<string>();
  for (const request of task.limitRequests) {
    const name = typeof request === 'string' ? request : request.name;
    const definition = definitions.get(name);
    if (!definition) {
      const known = [...definitions.keys()];
      throw new InvalidTaskSpecError(
        `${where} takes limit "${name}", which is not configured; add it to "limits" in the instances file (known: ${known.length > 0 ? known.join(', ') : 'none'}) or remove it from the task`,
      );
    }
    let key = '';
    if (typeof request !== 'string' && request.key !== undefined) {
      let derived: unknown;
      try {
        // A spec override gives the key itself; a task definition, a function of input and params.
        derived = typeof request.key === 'function' ? request.key(task.input, params) : request.key;
      } catch (error) {
        throw new InvalidTaskSpecError(`${where}: the key function of limit "${name}" threw: ${String(error)}`, { cause: error });
      }
      if (typeof derived !== 'string') throw new InvalidTaskSpecError(`${where}: the key of limit "${name}" must be a string, got ${describe(derived)}`);
      key = derived;
    }
    const id = `${name}#${key}`;
    if (seen.has(id)) continue;
    seen.add(id);
    specs.push({ name, key, ...(definition.rate ? { rate: definition.rate } : {}), ...(definition.concurrency !== undefined ? { concurrency: definition.concurrency } : {}) });
  }
  return specs;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return `a ${typeof value} (${String(value)})`;
  }
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
