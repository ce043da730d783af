/**
 * Job types from a user's module: its default export, an array or a record of job types. The
 * local runner loads the module itself ({@link loadJobTypes}); the deployed bundles import it and
 * check its export with the same rule ({@link jobTypesOf}, called by the entry build/bundle.ts
 * generates).
 */
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../errors.js';
import type { JobType } from '../types.js';

export async function loadJobTypes(modulePath: string): Promise<JobType[]> {
  let module: unknown;
  try {
    module = await import(pathToFileURL(modulePath).href);
  } catch (error) {
    throw new ConfigError(
      `cannot load job types from ${modulePath}: ${error instanceof Error ? error.message : String(error)}; check the path (--jobs) and that the module compiles`,
      { cause: error },
    );
  }
  return jobTypesOf((module as { default?: unknown }).default, modulePath);
}

/**
 * The job types of a module's default export (`exported`), an array or a record of them; throws
 * a {@link ConfigError} naming `modulePath` when it is anything else.
 *
 * @example
 * ```ts
 * import * as module from './jobs.js';
 * const jobs = jobTypesOf(module.default, 'jobs.ts');
 * ```
 */
export function jobTypesOf(exported: unknown, modulePath: string): JobType[] {
  const candidates = Array.isArray(exported)
    ? (exported as unknown[])
    : exported && typeof exported === 'object'
      ? Object.values(exported)
      : [];
  const jobs = candidates.filter(isJobType);
  if (jobs.length === 0 || jobs.length !== candidates.length) {
    throw new ConfigError(
      `${modulePath} must export default an array of job types made with defineJob (e.g. "export default [collector, processor]")`,
    );
  }
  return jobs;
}

function isJobType(value: unknown): value is JobType {
  if (!value || typeof value !== 'object') return false;
  const candidate = value as Partial<JobType>;
  return (
    typeof candidate.name === 'string' &&
    typeof candidate.getRunnableTasks === 'function' &&
    typeof candidate.tasks === 'object' &&
    candidate.params !== undefined
  );
}
