/** Errors of the status page (`ujr ui`). */
import { ConfigError, UjrError } from '../errors.js';

/** The server's options are unsafe or invalid (say, a public address without a token). */
export class UiConfigError extends ConfigError {}

/** A request the API answers with an HTTP error: its status and a message naming what is wrong. */
export class HttpError extends UjrError {
  override readonly retryable = false;

  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
