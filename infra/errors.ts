/** Errors of the CDK app: a deployment that cannot be synthesized as configured says what to change. */
import { ConfigError } from '../core/errors.js';

export { JobsModuleError } from '../build/errors.js';

/** A `JobRunner` prop out of its range, or two props that contradict each other. */
export class JobRunnerPropsError extends ConfigError {}

/** The instance configuration to seed is not valid for the job types in the bundles. */
export class InstanceSeedError extends ConfigError {}

/** cdk-nag's checks were asked for, but cdk-nag is not installed. */
export class NagUnavailableError extends ConfigError {}
