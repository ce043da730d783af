/**
 * `ujr/cdk`: the CDK construct that deploys your jobs serverless on AWS. Needs `aws-cdk-lib` 2 and
 * `constructs` 10 in your CDK project (ujr's optional peer dependencies); cdk-nag is optional.
 *
 * @example
 * ```ts
 * // infra/app.ts of your project: `npx cdk deploy`, then `ujr status --stack Research`
 * import { App } from 'aws-cdk-lib';
 * import { UjrStack } from 'ujr/cdk';
 *
 * const app = new App();
 * new UjrStack(app, 'Research', { runner: { jobs: 'jobs/index.ts', instances: 'jobs/instances.json' } });
 * ```
 */
export {
  CODE_FETCH_IMAGE,
  CONDUCTOR_CONTAINER,
  JobRunner,
  LONG_TASK_CONTAINER,
  NODE_IMAGE,
  type ContainerImageSource,
  type JobRunnerLogGroups,
  type JobRunnerProps,
} from './job-runner.js';
export { UjrStack, type UjrStackProps } from './stack.js';
export { STACK_OUTPUTS, type StackOutputKey, type StackOutputName } from './outputs.js';
export type { InstanceEntry } from './instances.js';
export { addNagChecks } from './nag.js';
export { InstanceSeedError, JobRunnerPropsError, JobsModuleError, NagUnavailableError } from './errors.js';
