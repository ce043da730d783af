/**
 * The stack's outputs: those the `ujr` CLI reads (`--stack <name>`), defined once in
 * core/adapters/aws/stack-outputs.ts, plus what a person looking at the stack wants to find. The
 * stack (./stack.ts) writes one CloudFormation output under each key.
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
