/**
 * The stack of `npx cdk deploy`: one {@link JobRunner} and the outputs the `ujr` CLI reads
 * (./outputs.ts). The outputs live here, at the stack's top level under fixed keys, so that the
 * construct stays reusable (a stack of your own may hold several runners and name them as it likes).
 */
import { Aws, CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { JobRunner, type JobRunnerProps } from './job-runner.js';
import { STACK_OUTPUTS, type StackOutputName } from './outputs.js';

export interface UjrStackProps extends StackProps {
  /**
   * The runner's properties.
   *
   * @default the defaults of {@link JobRunnerProps}
   */
  readonly runner?: JobRunnerProps;
}

/**
 * @example
 * ```ts
 * new UjrStack(new App(), 'Ujr', { runner: { alarmEmail: 'me@example.org' } });
 * ```
 */
export class UjrStack extends Stack {
  readonly runner: JobRunner;

  constructor(scope: Construct, id: string, props: UjrStackProps = {}) {
    super(scope, id, { description: 'ujr: a job runner (scheduler and worker Lambdas, Fargate conductors, DynamoDB, S3)', ...props });
    this.runner = new JobRunner(this, 'Runner', props.runner);
    const runner = this.runner;
    const values: Record<StackOutputName, string> = {
      region: Aws.REGION,
      leasesTable: runner.tables.leases.tableName,
      runsTable: runner.tables.runs.tableName,
      instancesTable: runner.tables.instances.tableName,
      dataBucket: runner.dataBucket.bucketName,
      taskQueueUrl: runner.taskQueue.queueUrl,
      taskQueueArn: runner.taskQueue.queueArn,
      deadLetterQueueUrl: runner.deadLetterQueue.queueUrl,
      deadLetterQueueArn: runner.deadLetterQueue.queueArn,
      tickDeadLetterQueueUrl: runner.tickDeadLetterQueue.queueUrl,
      schedulerFunction: runner.schedulerFunction.functionName,
      workerFunction: runner.workerFunction.functionName,
      schedulerLogGroup: runner.logGroups.scheduler.logGroupName,
      workerLogGroup: runner.logGroups.worker.logGroupName,
      conductorLogGroup: runner.logGroups.conductor.logGroupName,
      longTaskLogGroup: runner.logGroups.longTask.logGroupName,
      cluster: runner.cluster.clusterName,
      conductorService: runner.conductorService.serviceName,
      longTaskDefinition: runner.longTaskDefinition.family,
      metricsNamespace: runner.metricsNamespace,
      dashboard: runner.monitoring.dashboard.dashboardName,
      alarmTopic: runner.monitoring.alarmTopic.topicArn,
    };
    for (const [name, value] of Object.entries(values) as [StackOutputName, string][]) {
      new CfnOutput(this, STACK_OUTPUTS[name], { value, description: OUTPUT_DESCRIPTIONS[name] });
    }
  }
}

const OUTPUT_DESCRIPTIONS: Record<StackOutputName, string> = {
  region: 'Region of the deployment',
  leasesTable: 'DynamoDB table of leases (the board)',
  runsTable: 'DynamoDB table of runs, their logs and triggers',
  instancesTable: 'DynamoDB table of instance configuration, status and state',
  dataBucket: 'S3 bucket of the object store',
  taskQueueUrl: 'SQS task queue URL',
  taskQueueArn: 'SQS task queue ARN',
  deadLetterQueueUrl: 'SQS dead-letter queue URL of failed tasks',
  deadLetterQueueArn: 'SQS dead-letter queue ARN (ujr redrive)',
  tickDeadLetterQueueUrl: 'SQS dead-letter queue URL of undeliverable ticks',
  schedulerFunction: 'Scheduler Lambda (ujr trigger invokes it)',
  workerFunction: 'Worker Lambda',
  schedulerLogGroup: 'Log group of the scheduler',
  workerLogGroup: 'Log group of the worker (batch task runs)',
  conductorLogGroup: 'Log group of the conductors (continuous task runs)',
  longTaskLogGroup: 'Log group of long batch tasks on Fargate',
  cluster: 'ECS cluster',
  conductorService: 'ECS conductor service (desired count set by the scheduler)',
  longTaskDefinition: 'ECS task definition family of long batch tasks',
  metricsNamespace: 'CloudWatch namespace of ujr metrics',
  dashboard: 'CloudWatch dashboard',
  alarmTopic: 'SNS topic of the alarms',
};
