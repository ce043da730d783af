/** Errors of the embedded runner (`createRunner`) and of `ujr/testing`. */
import type { ConfigProblem } from '../config.js';
import { ConfigError, UjrError } from '../errors.js';

/**
 * Job instance entries that do not validate: each problem names the instance and the field, as
 * `ujr run` reports an instances file (`instances: instance "lab-a": params.names: ...`).
 *
 * @example
 * ```ts
 * try {
 *   await createRunner({ jobs, instances: [{ id: 'lab-a', job: 'greeter', params: {} }] });
 * } catch (error) {
 *   if (error instanceof InvalidInstancesError) console.error(error.problems.map((p) => p.field));
 * }
 * ```
 */
export class InvalidInstancesError extends ConfigError {
  constructor(
    message: string,
    /** Every problem found, each with its instance id and field. */
    readonly problems: readonly ConfigProblem[],
  ) {
    super(message);
  }
}

/**
 * A call that does not fit what the runner is doing now (start while running until idle, use after close).
 *
 * @example
 * ```ts
 * await runner.start();
 * await runner.runUntilIdle(); // RunnerStateError: the runner is started; stop() it before running it again
 * ```
 */
export class RunnerStateError extends UjrError {
  override readonly retryable = false;
}

/**
 * A trigger names an instance the runner was not given.
 *
 * @example
 * ```ts
 * await runner.trigger('lab-z'); // UnknownInstanceError: no job instance "lab-z" is configured in this runner; configured: lab-a
 * ```
 */
export class UnknownInstanceError extends ConfigError {
  constructor(
    readonly instanceId: string,
    known: readonly string[],
  ) {
    super(`no job instance "${instanceId}" is configured in this runner; configured: ${known.join(', ') || '(none)'}`);
  }
}
