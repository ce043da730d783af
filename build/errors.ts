/** Errors of the bundler: what is wrong with the user's code or project, and what to do about it. */
import { ConfigError } from '../core/errors.js';

/** The jobs module to bundle is missing, or is not a file. */
export class JobsModuleError extends ConfigError {}
