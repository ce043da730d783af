/** `plan()`: asks a job type for its tasks, with the plan context the runner builds, over test data. */
import { MemoryStore } from '../adapters/memory/store.js';
import { buildPlanContext, resolveSpecs, type PlannedTask } from '../engine/planner.js';
import type { JobType, Json, ObjectStore, PlanContext, RetryPolicy, TaskKind } from '../types.js';
import { epochOf } from './clock.js';
import { collectingLogger, testInstance, type LogEntry } from './context.js';
import { completeHistory, recordHistory, type HistoryRun } from './history.js';
import { objectStoreOf, type ObjectSeed } from './objects.js';

/**
 * What `plan()` takes; everything is optional.
 *
 * @example
 * ```ts
 * const options: PlanOptions = { params: { source: 'metrics' }, now: new Date('2026-01-01'), history: [{ task: 'process' }] };
 * ```
 */
export interface PlanOptions {
  /** The instance's params, validated by the job type's schema (defaults filled in). @default {} */
  params?: unknown;
  /** The instance's id. @default the job type's name */
  instanceId?: string;
  /** The run history `ctx.history` answers from: partial run records, completed (see {@link HistoryRun}). */
  history?: readonly HistoryRun[];
  /** What `ctx.objects` holds: key → text or bytes, or an object store. @default {} */
  objects?: ObjectStore | ObjectSeed;
  /** The instance's `ctx.state` before the plan. @default {} */
  state?: Readonly<Record<string, Json>>;
  /** What `ctx.now()` returns (and the time seeded objects were written). @default the current time */
  now?: Date | number;
  /** Why the plan happens (`ctx.reason`). @default 'schedule' */
  reason?: PlanContext<unknown>['reason'];
}

/**
 * A task the plan returned, resolved as the runner resolves it (defaults of the task definition filled in).
 *
 * @example
 * ```ts
 * const [first] = (await plan(greeter, { params: { names: ['ada'] } })).tasks;
 * first?.input; // { name: 'ada' }
 * ```
 */
export interface PlannedTaskInfo {
  task: string;
  kind: TaskKind;
  /** The input, after the task's input schema parsed it. */
  input: Json;
  /** Its unit of deduplication: the spec's, or the default of instance, task and input. */
  signature: string;
  /** The timeout the attempt gets (batch tasks: 15 minutes unless set). */
  timeoutMs: number | undefined;
  retry: RetryPolicy;
  /** Whether it runs in a child process (continuous, or `isolate: true`). */
  isolate: boolean;
}

/**
 * What a plan did.
 *
 * @example
 * ```ts
 * const { tasks, done, logs, state } = await plan(job, { state: { cursor: 7 } });
 * ```
 */
export interface PlanResult {
  /** The tasks returned, in order, duplicates (same signature) dropped as the runner drops them. */
  tasks: PlannedTaskInfo[];
  /** Set when the plan called `ctx.done(reason)`: the runner would retire the instance. */
  done: { reason: string | undefined } | undefined;
  /** What the plan logged through `ctx.log`. */
  logs: LogEntry[];
  /** The instance's `ctx.state` after the plan. */
  state: Record<string, Json>;
}

/** A memory store that remembers which state keys were written, to give the state back. */
class StateRecordingStore extends MemoryStore {
  private readonly keys = new Set<string>();

  override setState(instanceId: string, key: string, value: Json | undefined): Promise<void> {
    this.keys.add(key);
    return super.setState(instanceId, key, value);
  }

  async stateOf(instanceId: string): Promise<Record<string, Json>> {
    const state: Record<string, Json> = {};
    for (const key of this.keys) {
      const value = await this.getState(instanceId, key);
      if (value !== undefined) state[key] = value;
    }
    return state;
  }
}

function infoOf(task: PlannedTask): PlannedTaskInfo {
  return {
    task: task.task,
    kind: task.kind,
    input: task.input,
    signature: task.signature,
    timeoutMs: task.timeoutMs,
    retry: task.retry,
    isolate: task.isolate,
  };
}

/**
 * Asks `job` which tasks are ready, as the runner would on the instance's schedule: the plan
 * context is the runner's own (history queries, state, read-only objects, `done()`), over the
 * history, objects and state given. The returned specs are checked as the runner checks them.
 *
 * @throws {InvalidInstancesError} when `params` do not validate (naming the field, as `ujr run` does).
 * @throws {InvalidTaskSpecError} when a returned spec would be rejected (unknown task, bad input, ...).
 * @throws whatever `getRunnableTasks` throws (the runner would report it as a plan error).
 * @example
 * ```ts
 * import { plan } from 'ujr/testing';
 * import { processor, processSignature } from '../jobs/processor.js';
 *
 * const { tasks } = await plan(processor, {
 *   params: { source: 'metrics' },
 *   objects: { 'collected/metrics/a.jsonl': '{"at":1}\n', 'collected/metrics/b.jsonl': '{"at":2}\n' },
 *   history: [{ task: 'process', signature: processSignature('collected/metrics/a.jsonl') }],
 * });
 * // tasks: [{ task: 'process', input: { file: 'collected/metrics/b.jsonl' }, ... }]
 * ```
 */
export async function plan(job: JobType, options: PlanOptions = {}): Promise<PlanResult> {
  const instance = testInstance(job, options);
  const now = epochOf(options.now ?? Date.now());
  const clock = () => now;
  const store = new StateRecordingStore();
  await recordHistory(store, completeHistory(options.history ?? [], { job, instanceId: instance.id, now }), now);
  for (const [key, value] of Object.entries(options.state ?? {})) await store.setState(instance.id, key, value);
  const logs: LogEntry[] = [];
  let done: PlanResult['done'];
  const ctx = buildPlanContext({
    instance,
    job,
    reason: options.reason ?? 'schedule',
    store,
    objects: objectStoreOf(options.objects, clock),
    log: collectingLogger(logs),
    now: clock,
    onDone: (reason) => {
      done = { reason };
    },
  });
  const outcome = resolveSpecs(job, instance.id, await job.getRunnableTasks(ctx));
  const [rejected] = outcome.rejected;
  if (rejected) throw rejected;
  return { tasks: outcome.tasks.map(infoOf), done, logs, state: await store.stateOf(instance.id) };
}
