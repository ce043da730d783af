/**
 * `createRunner`, as `ujr` exports it. The runner it makes lives in ./embedded-runner.ts, with the
 * SQLite store and the child processes of the local runtime; it is loaded on first use only. Job
 * code imports `ujr` too, and the bundles built of it for AWS must hold neither SQLite nor the
 * local runtime: the specifier is a variable, so that bundlers do not follow it.
 */
import type { CreateRunnerOptions, EmbeddedRunner } from './embedded-runner.js';

const EMBEDDED_RUNNER_MODULE: string = './embedded-runner.js';

/**
 * Creates a runner over the job types and instances given: the embedded form of `ujr run`.
 * Nothing runs until `runUntilIdle()` or `start()`.
 *
 * Continuous and `isolate` tasks run in child processes, which need `jobs` as a module path;
 * with job type objects they are refused (see {@link CreateRunnerOptions.jobs}).
 *
 * @throws {InvalidInstancesError} naming the instance and field of every invalid entry.
 * @throws {ConfigError} when the jobs module cannot be loaded.
 * @example
 * ```ts
 * import { createRunner } from 'ujr';
 * import jobs from './jobs/index.js';
 *
 * const runner = await createRunner({
 *   jobs,
 *   instances: [{ id: 'lab-a', job: 'greeter', params: { names: ['ada'] }, schedule: '5m' }],
 *   home: '.ujr',
 * });
 * const stats = await runner.runUntilIdle();
 * console.log(stats.succeeded, await runner.runs({ instanceId: 'lab-a' }));
 * await runner.close();
 * ```
 */
export async function createRunner(options: CreateRunnerOptions): Promise<EmbeddedRunner> {
  const embedded = (await import(EMBEDDED_RUNNER_MODULE)) as typeof import('./embedded-runner.js');
  return embedded.openEmbeddedRunner(options);
}
