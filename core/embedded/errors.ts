/** Errors of the embedded runner (`createRunner`) and of `ujr/testing`. */
import type { ConfigProblem } from '../config.js';
import { ConfigError, UjrError } from '../errors.js';

/**
 * Job instance entries that do not validate: each problem names the instance and the field, as
 * `ujr run` reports an instances file (`instances: instance "lab-a": params.names: ...`).
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

/** A call that does not fit what the runner is doing now (start while running until idle, use after close). */
export class RunnerStateError extends UjrError {
  override readonly retryable = false;
}

/** A trigger names an instance the runner was not given. */
export class UnknownInstanceError extends ConfigError {
  constructor(
    readonly instanceId: string,
    known: readonly string[],
  ) {
    super(`no job instance "${instanceId}" is configured in this runner; configured: ${known.join(', ') || '(none)'}`);
  }
}
