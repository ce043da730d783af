/**
 * The worker Lambda: batches of dispatched tasks from SQS (see core/adapters/aws/handlers.ts).
 * build/bundle.ts generates the bundle's entry, which calls this factory with the job types of
 * the user's module:
 *
 *   export const handler = createWorkerHandler(jobs);
 */
import { parseEnv, workerEnvSchema } from '../core/adapters/aws/env.js';
import { makeWorkerHandler } from '../core/adapters/aws/handlers.js';
import { workerRuntime } from '../core/adapters/aws/runtime.js';
import type { JobType } from '../core/types.js';

/**
 * The worker's handler over `jobs`, with real clients built once from the environment (at cold
 * start: a missing variable fails the start, naming it).
 *
 * @example
 * ```ts
 * export const handler = createWorkerHandler([collector, processor]);
 * ```
 */
export function createWorkerHandler(jobs: readonly JobType[]) {
  const runtime = workerRuntime(parseEnv(workerEnvSchema, process.env, 'worker function'), { jobs, serviceName: 'ujr-worker' });
  return makeWorkerHandler(runtime);
}
