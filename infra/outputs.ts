/**
 * The stack's outputs: those the `ujr` CLI reads (`--stack <name>`), defined once in
 * core/adapters/aws/stack-outputs.ts, plus what a person looking at the stack wants to find. A
 * JobRunner asked for them (`stackOutputs: true`, as ./stack.ts does) writes one CloudFormation
 * output under each key at its stack's top level.
 *
 * @example
 * ```ts
 * const outputs = new Map(stack.Outputs?.map((o) => [o.OutputKey, o.OutputValue]));
 * const runsTable = outputs.get(STACK_OUTPUTS.runsTable);
 * ```
 */
import { OPTIONAL_STACK_OUTPUTS, STACK_OUTPUTS as CLI_STACK_OUTPUTS } from '../core/adapters/aws/stack-outputs.js';

export const STACK_OUTPUTS = {
  // What the CLI reads (one list, in core, which the CLI imports without aws-cdk-lib).
  ...CLI_STACK_OUTPUTS,
  ...OPTIONAL_STACK_OUTPUTS,
  /** The dead-letter queue of EventBridge Scheduler's ticks that could not be delivered. */
  tickDeadLetterQueueUrl: 'TickDeadLetterQueueUrl',
  /** The worker Lambda's name. */
  workerFunction: 'WorkerFunctionName',
  /** The ECS cluster's name. */
  cluster: 'ClusterName',
  /** The conductor service's name (its desired count is set by the scheduler). */
  conductorService: 'ConductorServiceName',
  /** The long-task definition's family (RunTask runs its latest revision). */
  longTaskDefinition: 'LongTaskDefinitionFamily',
  /** The CloudWatch namespace of ujr's metrics (dimensions `service`, `jobType`). */
  metricsNamespace: 'MetricsNamespace',
  /** The CloudWatch dashboard's name. */
  dashboard: 'DashboardName',
  /** The SNS topic the alarms notify. */
  alarmTopic: 'AlarmTopicArn',
} as const;

export type StackOutputName = keyof typeof STACK_OUTPUTS;

/** The output key of each name, e.g. `'RunsTableName'`. */
export type StackOutputKey = (typeof STACK_OUTPUTS)[StackOutputName];

/** What each output holds, as its description in the template. */
export const OUTPUT_DESCRIPTIONS: Readonly<Record<StackOutputName, string>> = {
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
