/** The CLI's exit codes and the error it prints as is. */
import { UjrError } from '../errors.js';

/**
 * 0 success, 1 a run failed (`run --once`, `trigger --wait`) or `ujr run` lost its store file, 2 bad
 * usage or configuration (or no store at --home), 3 a named run or instance does not exist.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const;

/** An error the CLI prints as is (after "ujr: "), exiting with its code. */
export class CliError extends UjrError {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
