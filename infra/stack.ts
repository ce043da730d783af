/**
 * The stack of `npx cdk deploy` in this repository (./app.ts), and the simplest stack for anyone's
 * app: one {@link JobRunner} that writes the outputs the `ujr` CLI reads (./outputs.ts) at the
 * stack's top level under fixed keys. A stack of your own may hold several runners instead, and
 * ask one of them for the outputs (`stackOutputs: true`).
 */
import { Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { JobRunner, type JobRunnerProps } from './job-runner.js';

export interface UjrStackProps extends StackProps {
  /** The runner's properties (`jobs` at least); its `stackOutputs` is always on. */
  readonly runner: JobRunnerProps;
}

/**
 * A stack holding one {@link JobRunner} and the outputs the `ujr` CLI reads (`--stack <name>`).
 *
 * @example
 * ```ts
 * new UjrStack(new App(), 'Ujr', { runner: { jobs: 'jobs/index.ts', instances: 'jobs/instances.json' } });
 * ```
 */
export class UjrStack extends Stack {
  readonly runner: JobRunner;

  constructor(scope: Construct, id: string, props: UjrStackProps) {
    super(scope, id, { description: 'ujr: a job runner (scheduler and worker Lambdas, Fargate conductors, DynamoDB, S3)', ...props });
    this.runner = new JobRunner(this, 'Runner', { ...props.runner, stackOutputs: true });
  }
}
