/**
 * A ujr deployment's dashboard and alarms. ujr's own metrics are EMF lines written by
 * core/adapters/aws/telemetry.ts: namespace `UJR_METRICS_NAMESPACE`, dimensions
 * `[["service", "jobType"]]`, one line per job type per invocation, where `service` is the
 * serviceName each entry point passes (functions/*.ts, containers/main.ts); and, for the shared
 * limits (issue 15), `[["service", "limit"]]`, one line per limit per tick from the scheduler. Limit
 * names are configuration, not code, so their graphs find them with SEARCH.
 *
 * Containers have no metric of their own for "failed to start" or "exited": ECS reports each
 * stopped task as an EventBridge "ECS Task State Change" event (lastStatus STOPPED, a stopCode,
 * the containers' exit codes). Two rules select the unexpected stops of this cluster's conductors
 * and long tasks; their alarms watch EventBridge's own count of matches (`AWS/Events`
 * `TriggeredRules` per `RuleName`), so they fire even if delivering the event failed, and the
 * rules keep the events themselves in a log group, since ECS forgets a stopped task within hours.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { MetricName } from '../core/cloud/ports.js';
import { acknowledge } from './nag.js';

/** The `service` dimension of each runtime's metrics (the serviceName its entry point passes). */
export const SERVICES = {
  scheduler: 'ujr-scheduler',
  worker: 'ujr-worker',
  conductor: 'ujr-conductor',
  longTask: 'ujr-long-task',
} as const;

type Service = (typeof SERVICES)[keyof typeof SERVICES];

/** Where each of ujr's metrics (core/cloud/ports.ts `MetricName`) is counted. */
export const METRIC_SERVICES = {
  planned: [SERVICES.scheduler],
  deduplicated: [SERVICES.scheduler],
  planErrors: [SERVICES.scheduler],
  started: [SERVICES.worker, SERVICES.conductor, SERVICES.longTask],
  succeeded: [SERVICES.worker, SERVICES.conductor, SERVICES.longTask],
  failed: [SERVICES.worker, SERVICES.conductor, SERVICES.longTask],
  retried: [SERVICES.worker, SERVICES.longTask],
  dropped: [SERVICES.worker, SERVICES.conductor, SERVICES.longTask],
  takenOver: [SERVICES.scheduler, SERVICES.conductor],
  swept: [SERVICES.scheduler],
} as const satisfies Record<MetricName, readonly Service[]>;

type UjrMetric = keyof typeof METRIC_SERVICES;

/** Task outcomes shown per job type on the dashboard. */
const TASK_METRICS: readonly UjrMetric[] = ['planned', 'deduplicated', 'started', 'succeeded', 'failed', 'retried', 'takenOver', 'swept'];

/** The period of the failure-rate alarms. */
const FAILURE_RATE_PERIOD = Duration.minutes(15);

/** The ECS stop codes of a task that never ran, and of one whose essential container exited by itself. */
const FAILED_TO_START = 'TaskFailedToStart';
const CONTAINER_EXITED = 'EssentialContainerExited';

/**
 * Exit codes of a long-task container that are not a fault of the container: 0 (a run succeeded
 * or was skipped) and 1, which containers/main.ts also returns for a task that failed after its
 * retries (counted by the failure-rate alarm, its message in the dead-letter queue) or a delivery
 * it dropped (stale, or its instance turned off). A crash of the program exits 1 too: it is told
 * apart only by the conductors, which run the same program and never exit by themselves.
 */
const LONG_TASK_EXPECTED_EXIT_CODES = [0, 1];

export interface JobRunnerMonitoringProps {
  /** The metrics namespace (`UJR_METRICS_NAMESPACE`). */
  readonly namespace: string;
  /** Names of the job types: one dashboard row and one failure-rate alarm each. */
  readonly jobTypes: readonly string[];
  readonly schedulerFunction: lambda.IFunction;
  readonly workerFunction: lambda.IFunction;
  readonly taskQueue: sqs.IQueue;
  readonly deadLetterQueue: sqs.IQueue;
  readonly tickDeadLetterQueue: sqs.IQueue;
  readonly cluster: ecs.ICluster;
  readonly conductorService: ecs.IBaseService;
  /** The tick interval: the missed-ticks alarm waits ten of them at least. */
  readonly tick: Duration;
  /** The oldest-message alarm's threshold. */
  readonly maxMessageAge: Duration;
  /** The failure-rate alarms' threshold, a share in (0, 1]. */
  readonly failureRateThreshold: number;
  /**
   * Retention of the log group that keeps the events of containers stopped unexpectedly.
   *
   * @default one month
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * An e-mail address subscribed to the alarm topic.
   *
   * @default no subscription
   */
  readonly alarmEmail?: string;
}

/** A metric id for math expressions: lower-case start, letters, digits and `_` only. */
function metricId(...parts: string[]): string {
  return `m_${parts.join('_').replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/**
 * The dashboard and the alarms of a {@link JobRunner}; every alarm notifies an encrypted SNS topic.
 *
 * @example
 * ```ts
 * const monitoring = new JobRunnerMonitoring(runner, 'Monitoring', { namespace: 'ujr/Research', jobTypes: ['collector'], ... });
 * monitoring.alarmTopic.addSubscription(new subscriptions.SmsSubscription('+15555550100'));
 * ```
 */
export class JobRunnerMonitoring extends Construct {
  readonly alarmTopic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: cloudwatch.Alarm[] = [];
  /** The "ECS Task State Change" events of the containers stopped unexpectedly (one JSON event a line). */
  readonly stoppedContainersLogGroup: logs.LogGroup;
  /** Conductors that failed to start or whose container exited by itself. */
  readonly conductorStoppedRule: events.Rule;
  /** Long tasks that failed to start or whose container was killed. */
  readonly longTaskStoppedRule: events.Rule;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: JobRunnerMonitoringProps,
  ) {
    super(scope, id);

    // CloudWatch cannot use the AWS managed SNS key, so the topic has its own (rotated yearly).
    const key = new kms.Key(this, 'AlarmTopicKey', {
      description: 'Encrypts the ujr alarm topic',
      enableKeyRotation: true,
      // It only protects notifications in transit through SNS: nothing needs it after the stack.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    // As AWS documents it for alarms on encrypted topics. The topic policy below is what limits
    // publishing to this account's alarms; "*" in a key policy means this key.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
      }),
    );
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', { masterKey: key, enforceSSL: true });
    this.alarmTopic.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.alarmTopic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    );
    if (props.alarmEmail !== undefined) {
      const subscription = new subscriptions.EmailSubscription(props.alarmEmail);
      this.alarmTopic.addSubscription(subscription);
      acknowledge(this.alarmTopic, {
        'Serverless-SNSRedrivePolicy':
          'The only subscription is the alarm e-mail: a mail SNS could not deliver is not worth replaying, the alarm\'s state stays in CloudWatch (and on the dashboard).',
      });
    }

    this.stoppedContainersLogGroup = new logs.LogGroup(this, 'StoppedContainers', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });
    [this.conductorStoppedRule, this.longTaskStoppedRule] = this.stoppedContainerRules();

    this.createAlarms();
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(3),
      widgets: this.widgets(),
    });
  }

  /** One of ujr's EMF metrics of one service and job type. */
  metric(name: UjrMetric | 'duration', service: Service, jobType: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: this.props.namespace,
      metricName: name,
      dimensionsMap: { service, jobType },
      statistic: 'Sum',
      period: Duration.minutes(5),
      ...options,
    });
  }

  /** A metric summed over the services that count it (missing series count as 0). */
  total(name: UjrMetric, jobType: string, period = Duration.minutes(5)): cloudwatch.IMetric {
    const services = METRIC_SERVICES[name];
    const using = Object.fromEntries(services.map((service) => [metricId(name, service, jobType), this.metric(name, service, jobType, { period })]));
    return new cloudwatch.MathExpression({
      expression: Object.keys(using).map((id) => `FILL(${id}, 0)`).join(' + '),
      usingMetrics: using,
      label: name,
      period,
    });
  }

  /**
   * The rules selecting this cluster's stopped tasks that stopped unexpectedly, both writing to
   * {@link stoppedContainersLogGroup}. The cluster is the runner's own: it runs the conductor
   * service's tasks (group `service:<name>`) and the long tasks the scheduler starts, nothing else.
   * Stops ECS or ujr asked for (scale-in, a deploy, StopTask) carry ServiceSchedulerInitiated or
   * UserInitiated and are not selected.
   */
  private stoppedContainerRules(): [events.Rule, events.Rule] {
    const { cluster, conductorService } = this.props;
    const conductorGroup = `service:${conductorService.serviceName}`;
    const stopped = (detail: Record<string, unknown>): events.EventPattern => ({
      source: ['aws.ecs'],
      detailType: ['ECS Task State Change'],
      detail: { clusterArn: [cluster.clusterArn], lastStatus: ['STOPPED'], ...detail },
    });
    const logGroup = this.stoppedContainersLogGroup;
    // What the CDK target (events-targets CloudWatchLogGroup) does, without its custom resource
    // (a Lambda function calling PutResourcePolicy): the log group's own resource policy.
    logGroup.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    const target: events.IRuleTarget = {
      bind: () => ({
        arn: Stack.of(this).formatArn({ service: 'logs', resource: 'log-group', arnFormat: ArnFormat.COLON_RESOURCE_NAME, resourceName: logGroup.logGroupName }),
      }),
    };
    const conductor = new events.Rule(this, 'ConductorStoppedRule', {
      description: 'ujr: a conductor task failed to start or its container exited by itself',
      eventPattern: stopped({ group: [conductorGroup], stopCode: [FAILED_TO_START, CONTAINER_EXITED] }),
      targets: [target],
    });
    const longTask = new events.Rule(this, 'LongTaskStoppedRule', {
      description: 'ujr: a long task failed to start or its container was killed (exit code other than 0 and 1)',
      eventPattern: stopped({
        group: [{ 'anything-but': conductorGroup }],
        // A task's containers are one array: the pattern matches when any exit code is unexpected
        // (the init container that fetches the code exits 0).
        $or: [{ stopCode: [FAILED_TO_START] }, { stopCode: [CONTAINER_EXITED], containers: { exitCode: [{ 'anything-but': LONG_TASK_EXPECTED_EXIT_CODES }] } }],
      }),
      targets: [target],
    });
    for (const rule of [conductor, longTask]) {
      acknowledge(rule, {
        'Serverless-EventBusDLQ':
          'The target only keeps a copy of the event for the reader: the alarm counts the rule\'s matches (AWS/Events TriggeredRules), so an event the log group did not get still raises it.',
      });
    }
    return [conductor, longTask];
  }

  /** How many events a rule matched (EventBridge's count, whether or not delivering them worked). */
  private ruleMatches(rule: events.IRule, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: 'AWS/Events',
      metricName: 'TriggeredRules',
      dimensionsMap: { RuleName: rule.ruleName },
      statistic: 'Sum',
      period: Duration.minutes(5),
      ...options,
    });
  }

  private alarm(id: string, props: cloudwatch.AlarmProps): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, props);
    const action = new cloudwatchActions.SnsAction(this.alarmTopic);
    alarm.addAlarmAction(action);
    alarm.addOkAction(action);
    this.alarms.push(alarm);
    return alarm;
  }

  private createAlarms(): void {
    const { schedulerFunction, workerFunction, taskQueue, deadLetterQueue, tickDeadLetterQueue } = this.props;
    this.alarm('DeadLetterQueueNotEmpty', {
      alarmDescription: 'Tasks failed for good or could not be used: their messages are in the dead-letter queue. Fix the cause, then `ujr redrive`.',
      metric: deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(1) }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.alarm('TickDeadLetterQueueNotEmpty', {
      alarmDescription: 'EventBridge Scheduler could not deliver ticks to the scheduler function (look at the messages\' attributes for the error).',
      metric: tickDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(1) }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.alarm('OldestTaskTooOld', {
      alarmDescription: `A task message has waited longer than ${this.props.maxMessageAge.toHumanString()}: workers are failing, throttled or too few (workerMaxConcurrency).`,
      metric: taskQueue.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum', period: Duration.minutes(5) }),
      threshold: this.props.maxMessageAge.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.alarm('SchedulerErrors', {
      alarmDescription: 'The scheduler function failed in two of the last three 5-minute periods: read its log group.',
      metric: schedulerFunction.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // Task failures never fail the worker's invocation (they are reported per message, as
    // batchItemFailures), so a single error is a fault of the worker itself and is worth a look:
    // the whole batch goes back to the queue and, if it keeps failing, reaches the dead-letter
    // queue only after maxReceiveCount visibility timeouts (hours).
    this.alarm('WorkerErrors', {
      alarmDescription:
        'The worker function failed an invocation (crash, timeout, out of memory or a failed cold start; failed tasks do not count): read the worker log group for "Task timed out", "Runtime exited" or the error. Its batch returns to the task queue.',
      metric: workerFunction.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // The event source mapping keeps within workerMaxConcurrency, so throttles mean the account's
    // (or Region's) concurrency is used up by others. A burst is retried by the mapping; throttling
    // that lasts costs receive counts (maxReceiveCount) and so can send tasks to the dead-letter
    // queue: two of three 5-minute periods, as for the scheduler's errors.
    this.alarm('WorkerThrottles', {
      alarmDescription:
        'Lambda throttled the worker in two of the last three 5-minute periods: the account\'s concurrency is used up (look at ConcurrentExecutions of the account and other functions\' reserved concurrency; the quota is in Service Quotas). Throttled batches count towards maxReceiveCount.',
      metric: workerFunction.metricThrottles({ statistic: 'Sum', period: Duration.minutes(5) }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // Conductors never exit by themselves (they stop on SIGTERM), so one such stop is a fault.
    const stoppedEvents = this.stoppedContainersLogGroup.logGroupName;
    this.alarm('ConductorStopped', {
      alarmDescription: `A conductor container failed to start or exited by itself. Read its "ECS Task State Change" event in log group ${stoppedEvents} (stoppedReason, containers' exitCode and reason), then the conductor log group. The scheduler starts another on its next tick.`,
      metric: this.ruleMatches(this.conductorStoppedRule),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.alarm('LongTaskStopped', {
      alarmDescription: `A long-task container failed to start or was killed (exit code other than 0 and 1: 137 out of memory or SIGKILL, 134 out of heap). Read its "ECS Task State Change" event in log group ${stoppedEvents} (stoppedReason, exitCode), then the long-task log group. Its lease expires and the scheduler posts the task again.`,
      metric: this.ruleMatches(this.longTaskStoppedRule),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const missedTicksWindow = Duration.minutes(Math.max(10, (this.props.tick.toSeconds() / 60) * 10));
    this.alarm('MissedTicks', {
      alarmDescription: `The scheduler was not invoked for ${missedTicksWindow.toHumanString()}: the schedule is disabled or failing (tick dead-letter queue).`,
      metric: schedulerFunction.metricInvocations({ statistic: 'Sum', period: missedTicksWindow }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    for (const jobType of this.props.jobTypes) {
      this.alarm(`FailureRate-${jobType}`, {
        alarmDescription: `Tasks of job type "${jobType}" failed (after their retries) in ${Math.round(this.props.failureRateThreshold * 100)} % of runs or more over 15 minutes.`,
        metric: this.failureRate(jobType),
        threshold: this.props.failureRateThreshold,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
  }

  /** failed / (succeeded + failed) of a job type over every service that runs tasks; 0 when nothing ended. */
  failureRate(jobType: string): cloudwatch.MathExpression {
    const period = FAILURE_RATE_PERIOD;
    const sum = (name: 'failed' | 'succeeded') => {
      const using = Object.fromEntries(METRIC_SERVICES[name].map((service) => [metricId(name, service, jobType), this.metric(name, service, jobType, { period })]));
      return { using, text: `(${Object.keys(using).map((id) => `FILL(${id}, 0)`).join(' + ')})` };
    };
    const failed = sum('failed');
    const succeeded = sum('succeeded');
    const total = `(${failed.text} + ${succeeded.text})`;
    return new cloudwatch.MathExpression({
      expression: `IF(${total} > 0, ${failed.text} / ${total}, 0)`,
      usingMetrics: { ...failed.using, ...succeeded.using },
      label: `${jobType} failure rate`,
      period,
    });
  }

  private widgets(): cloudwatch.IWidget[][] {
    const { schedulerFunction, workerFunction, taskQueue, deadLetterQueue, tickDeadLetterQueue, cluster, conductorService, namespace } = this.props;
    const fiveMinutes = { period: Duration.minutes(5) };
    const ecsMetric = (metricName: string) =>
      new cloudwatch.Metric({
        namespace: 'ECS/ContainerInsights',
        metricName,
        dimensionsMap: { ClusterName: cluster.clusterName, ServiceName: conductorService.serviceName },
        statistic: 'Average',
        period: Duration.minutes(1),
        label: metricName === 'RunningTaskCount' ? 'running' : 'desired',
      });
    const rows: cloudwatch.IWidget[][] = [
      [
        new cloudwatch.TextWidget({
          markdown: `# ujr\nMetrics in namespace \`${namespace}\`. Task outcomes count per job type over every runtime (worker Lambda, conductors, long tasks).`,
          width: 8,
          height: 4,
        }),
        new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 16, height: 4 }),
      ],
      [
        new cloudwatch.GraphWidget({
          title: 'Task queue depth',
          left: [
            taskQueue.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, statistic: 'Maximum', label: 'waiting' }),
            taskQueue.metricApproximateNumberOfMessagesNotVisible({ ...fiveMinutes, statistic: 'Maximum', label: 'in flight' }),
            taskQueue.metric('ApproximateNumberOfMessagesDelayed', { ...fiveMinutes, statistic: 'Maximum', label: 'delayed (retries)' }),
          ],
          width: 8,
        }),
        new cloudwatch.GraphWidget({
          title: 'Age of the oldest task message (s)',
          left: [taskQueue.metricApproximateAgeOfOldestMessage({ ...fiveMinutes, statistic: 'Maximum', label: 'oldest' })],
          leftAnnotations: [{ value: this.props.maxMessageAge.toSeconds(), label: 'alarm' }],
          width: 8,
        }),
        new cloudwatch.GraphWidget({
          title: 'Dead-letter queues',
          left: [
            deadLetterQueue.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, statistic: 'Maximum', label: 'tasks' }),
            tickDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ ...fiveMinutes, statistic: 'Maximum', label: 'ticks' }),
          ],
          width: 8,
        }),
      ],
      [
        new cloudwatch.GraphWidget({
          title: 'Lambda errors and throttles',
          left: [
            schedulerFunction.metricErrors({ ...fiveMinutes, label: 'scheduler errors' }),
            schedulerFunction.metricThrottles({ ...fiveMinutes, label: 'scheduler throttles' }),
            workerFunction.metricErrors({ ...fiveMinutes, label: 'worker errors' }),
            workerFunction.metricThrottles({ ...fiveMinutes, label: 'worker throttles' }),
          ],
          right: [schedulerFunction.metricInvocations({ ...fiveMinutes, label: 'scheduler invocations (ticks)' })],
          width: 8,
        }),
        new cloudwatch.GraphWidget({
          title: 'Lambda duration (ms)',
          left: [
            schedulerFunction.metricDuration({ ...fiveMinutes, statistic: 'p50', label: 'scheduler p50' }),
            schedulerFunction.metricDuration({ ...fiveMinutes, statistic: 'Maximum', label: 'scheduler max' }),
            workerFunction.metricDuration({ ...fiveMinutes, statistic: 'p50', label: 'worker p50' }),
            workerFunction.metricDuration({ ...fiveMinutes, statistic: 'p99', label: 'worker p99' }),
          ],
          width: 8,
        }),
        new cloudwatch.GraphWidget({
          title: 'Conductors: running vs desired',
          left: [ecsMetric('RunningTaskCount'), ecsMetric('DesiredTaskCount')],
          width: 8,
        }),
      ],
      [
        new cloudwatch.GraphWidget({
          title: 'Lease takeovers',
          left: this.props.jobTypes.map((jobType) => this.labelled(this.total('takenOver', jobType), jobType)),
          width: 12,
        }),
        new cloudwatch.GraphWidget({
          title: 'Plan errors',
          left: [...this.props.jobTypes, 'config'].map((jobType) => this.metric('planErrors', SERVICES.scheduler, jobType, { label: jobType })),
          width: 12,
        }),
      ],
      this.limitWidgets(),
      [
        new cloudwatch.GraphWidget({
          title: 'Containers stopped unexpectedly',
          left: [this.ruleMatches(this.conductorStoppedRule, { label: 'conductors' }), this.ruleMatches(this.longTaskStoppedRule, { label: 'long tasks' })],
          width: 8,
        }),
        new cloudwatch.LogQueryWidget({
          title: 'Last containers stopped unexpectedly',
          logGroupNames: [this.stoppedContainersLogGroup.logGroupName],
          queryLines: ['fields @timestamp, detail.group, detail.stopCode, detail.stoppedReason, detail.containers.0.exitCode, detail.containers.1.exitCode', 'sort @timestamp desc', 'limit 20'],
          width: 16,
        }),
      ],
    ];
    for (const jobType of this.props.jobTypes) {
      rows.push([
        new cloudwatch.GraphWidget({
          title: `${jobType}: tasks`,
          left: TASK_METRICS.map((name) => this.total(name, jobType)),
          width: 16,
        }),
        new cloudwatch.GraphWidget({
          title: `${jobType}: task duration (ms)`,
          left: [SERVICES.worker, SERVICES.conductor, SERVICES.longTask].map((service) =>
            this.metric('duration', service, jobType, { statistic: 'p50', label: `${service} p50` }),
          ),
          right: [this.metric('duration', SERVICES.worker, jobType, { statistic: 'Maximum', label: 'worker max' })],
          width: 8,
        }),
      ]);
    }
    return rows;
  }

  /**
   * Shared limits, one line per limit, as the scheduler reads their buckets at each tick: the
   * tokens of the scarcest bucket, the slots held and the tasks waiting, and per minute the grants, the refusals (tasks
   * sent back to wait) and the time closed by back-offs (the API's 429s).
   */
  private limitWidgets(): cloudwatch.IWidget[] {
    const search = (metric: string, statistic: string) => `SEARCH('{${this.props.namespace},limit,service} service="${SERVICES.scheduler}" MetricName="${metric}"', '${statistic}', 60)`;
    const graph = (title: string, lines: [expression: string, label: string][]) =>
      new cloudwatch.GraphWidget({
        title,
        left: lines.map(([expression, label]) => new cloudwatch.MathExpression({ expression, usingMetrics: {}, period: Duration.minutes(1), label })),
        width: 6,
      });
    return [
      graph('Shared limits: tokens left (scarcest bucket)', [[search('limitTokens', 'Minimum'), 'tokens']]),
      graph('Shared limits: slots held and tasks waiting', [
        [search('limitHeld', 'Maximum'), 'held'],
        [search('limitWaiting', 'Maximum'), 'waiting'],
      ]),
      graph('Shared limits: grants per minute', [[`DIFF(${search('limitGranted', 'Maximum')})`, 'granted']]),
      graph('Shared limits: refusals and throttled seconds per minute', [
        [`DIFF(${search('limitRefused', 'Maximum')})`, 'refused'],
        [`DIFF(${search('limitThrottledMs', 'Maximum')}) / 1000`, 'throttled s'],
      ]),
    ];
  }

  /** The same math expression under another label (a graph shows one line per job type). */
  private labelled(metric: cloudwatch.IMetric, label: string): cloudwatch.IMetric {
    return metric instanceof cloudwatch.MathExpression ? metric.with({ label }) : metric;
  }
}
