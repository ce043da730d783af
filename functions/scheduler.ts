/**
 * The scheduler Lambda: ticks from EventBridge Scheduler and ad-hoc runs (see
 * core/adapters/aws/handlers.ts). build/bundle.ts generates the bundle's entry, which calls this
 * factory with the job types of the user's module:
 *
 *   export const handler = createSchedulerHandler(jobs);
 */
import { parseEnv, schedulerEnvSchema } from '../core/adapters/aws/env.js';
import { makeSchedulerHandler } from '../core/adapters/aws/handlers.js';
import { schedulerRuntime } from '../core/adapters/aws/runtime.js';
import type { JobType } from '../core/types.js';

/**
 * The scheduler's handler over `jobs`, with real clients built once from the environment (at cold
 * start: a missing variable fails the start, naming it).
 *
 * @example
 * ```ts
 * export const handler = createSchedulerHandler([collector, processor]);
 * ```
 */
export function createSchedulerHandler(jobs: readonly JobType[]) {
  const runtime = schedulerRuntime(parseEnv(schedulerEnvSchema, process.env, 'scheduler function'), { jobs, serviceName: 'ujr-scheduler' });
  return makeSchedulerHandler(runtime);
}
