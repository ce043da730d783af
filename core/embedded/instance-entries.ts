/**
 * Job instance entries given in code (to `createRunner` or `ujr/testing`), validated exactly as an
 * instances file is, but strictly: one bad entry fails the whole call, naming instance and field.
 */
import type { z } from 'zod';
import { formatProblem, instanceEntrySchema, parseInstances, type ConfigProblem } from '../config.js';
import { readInstancesFile } from '../config-file.js';
import { resolveSpecs } from '../engine/planner.js';
import type { LimitDefinition } from '../ports/limits.js';
import type { InstanceConfig, JobType, Json } from '../types.js';
import { InvalidInstancesError, UnknownInstanceError } from './errors.js';

/**
 * One job instance as written in an instances file: `{ id, job, params, schedule, enabled,
 * concurrency }`. `params` are validated by the job type's schema, `schedule` defaults to the job
 * type's (else `rate(1 minute)`), `enabled` to true, `concurrency` (its most tasks in flight) to
 * no limit.
 *
 * @example
 * ```ts
 * const entry: InstanceEntry = { id: 'lab-a', job: 'greeter', params: { names: ['ada'] }, schedule: '5m' };
 * ```
 */
export type InstanceEntry = z.input<typeof instanceEntrySchema>;

/**
 * Validates instance entries against the job types.
 * @param source names where the entries come from, at the start of each problem (a file's path).
 * @throws {InvalidInstancesError} listing every problem, each naming the instance and field.
 */
export function parseInstanceEntries(entries: readonly unknown[], jobs: readonly JobType[], source = 'instances'): InstanceConfig[] {
  const parsed = parseInstances({ instances: entries }, jobs);
  throwOnProblems(parsed.problems, source);
  return parsed.instances;
}

/**
 * Reads and validates an instances file (`{ "instances": [...], "limits": {...} }`), once.
 * @throws {InvalidInstancesError} when the file cannot be read or any entry or limit is invalid.
 */
export async function readInstanceEntries(path: string, jobs: readonly JobType[]): Promise<{ instances: InstanceConfig[]; limits: Map<string, LimitDefinition> }> {
  const parsed = await readInstancesFile(path, jobs);
  throwOnProblems(parsed.problems, path);
  return { instances: parsed.instances, limits: parsed.limits };
}

function throwOnProblems(problems: readonly ConfigProblem[], source: string): void {
  if (problems.length === 0) return;
  const lines = problems.map((problem) => formatProblem(source, problem));
  throw new InvalidInstancesError(lines.length === 1 ? (lines[0] ?? '') : `${lines.length} problems: ${lines.join('; ')}`, problems);
}

/**
 * Checks an ad-hoc run request before it is recorded: the instance is configured and, with a
 * task, the task exists and `input` validates as a plan's task would (else the runner would only
 * note the refusal in the trigger's result).
 * @throws {UnknownInstanceError} when no instance has the id.
 * @throws {InvalidTaskSpecError} naming the task and what is wrong with it.
 */
export function assertTriggerable(
  jobs: readonly JobType[],
  instances: readonly InstanceConfig[],
  request: { instanceId: string; task?: string; input?: Json },
): void {
  const instance = instances.find((i) => i.id === request.instanceId);
  if (!instance) throw new UnknownInstanceError(request.instanceId, instances.map((i) => i.id));
  const job = jobs.find((j) => j.name === instance.job);
  if (request.task === undefined || !job) return;
  const [rejected] = resolveSpecs(job, instance.id, [{ task: request.task, input: request.input ?? {} }]).rejected;
  if (rejected) throw rejected;
}
