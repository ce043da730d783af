/**
 * The stack outputs the `ujr` CLI reads (`--stack <name>`: DescribeStacks, then these keys). Plain
 * constants, no CDK import, so that the CLI can import them without loading aws-cdk-lib. The stack
 * (./stack.ts) writes one CloudFormation output under each key.
 *
 * @example
 * ```ts
 * const outputs = new Map(stack.Outputs?.map((o) => [o.OutputKey, o.OutputValue]));
 * const runsTable = outputs.get(STACK_OUTPUTS.runsTable);
 * ```
 */
export const STACK_OUTPUTS = {
  /** The region the stack is deployed in (every client of the CLI uses it). */
  region: 'Region',
  /** The leases table (the board): one item per signature ever leased. */
  leasesTable: 'LeasesTableName',
  /** The runs table: run records, their log lines and pending triggers. */
  runsTable: 'RunsTableName',
  /** The instances table: per instance its `config` (with `overrides`), `status` and `state#<key>` items. */
  instancesTable: 'InstancesTableName',
  /** The S3 bucket of the object store (collected data, archives). */
  dataBucket: 'DataBucketName',
  /** The task queue's URL (dispatched batch tasks). */
  taskQueueUrl: 'TaskQueueUrl',
  /** The task queue's ARN (the destination of a DLQ redrive). */
  taskQueueArn: 'TaskQueueArn',
  /** The task queue's dead-letter queue's URL. */
  deadLetterQueueUrl: 'DeadLetterQueueUrl',
  /** The dead-letter queue's ARN (the source of `ujr redrive`: StartMessageMoveTask). */
  deadLetterQueueArn: 'DeadLetterQueueArn',
  /** The dead-letter queue of EventBridge Scheduler's ticks that could not be delivered. */
  tickDeadLetterQueueUrl: 'TickDeadLetterQueueUrl',
  /** The scheduler Lambda's name: `ujr trigger --stack` invokes it with `{ instanceId, task?, input? }`. */
  schedulerFunction: 'SchedulerFunctionName',
  /** The worker Lambda's name. */
  workerFunction: 'WorkerFunctionName',
  /** Log group of the scheduler Lambda. */
  schedulerLogGroup: 'SchedulerLogGroupName',
  /** Log group of the worker Lambda (batch task runs). */
  workerLogGroup: 'WorkerLogGroupName',
  /** Log group of the conductor containers (continuous task runs). */
  conductorLogGroup: 'ConductorLogGroupName',
  /** Log group of the one-off long batch task containers. */
  longTaskLogGroup: 'LongTaskLogGroupName',
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
