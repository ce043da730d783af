/** Errors of the serverless runtime. */
import { NonRetryableError, UjrError } from '../errors.js';

/** A queue message ujr cannot use (unparseable, unknown instance or task): it goes to the DLQ. */
export class PoisonMessageError extends UjrError {
  override readonly retryable = false;
}

/** The runtime's environment or configuration is incomplete; names what is missing. */
export class RuntimeConfigError extends NonRetryableError {}
