/** Errors of the local installation's discovery (./project.ts). The CLI exits 2 on them (configuration). */
import { ConfigError } from '../errors.js';

/** A project's config (a `ujr.config.*` file or package.json's `"ujr"` field) cannot be used. */
export class ProjectConfigError extends ConfigError {
  constructor(
    message: string,
    /** The file at fault. */
    readonly file: string,
    /** The field at fault (`jobs`, or `ujr.jobs` in package.json), when one is. */
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** No jobs module where the flags, the project's config and the defaults point; the message says where ujr looked. */
export class JobsModuleNotFoundError extends ConfigError {
  constructor(
    message: string,
    /** The path that was resolved and does not exist. */
    readonly path: string,
  ) {
    super(message);
  }
}
