/**
 * The alarms issue 13 asks for beyond the queues and the scheduler: the worker function's errors
 * and throttles, and containers (conductors, long tasks) that fail to start or stop by themselves.
 * Each alarm must watch the right metric of the right resource, notify the alarm topic and stay
 * quiet without data; the two EventBridge rules behind the container alarms must select the stops
 * that are faults and leave alone those ECS or ujr asked for. One synthesis, shared.
 */
import { describe, expect, it } from 'vitest';
import { logicalId, render, resourcesOf, synthesize } from './synth.js';

const { template } = synthesize();

type Props = Record<string, unknown>;

const resources = (template.toJSON() as { Resources: Record<string, { Type: string; Properties?: Props }> }).Resources;

const ids = {
  workerFunction: logicalId(template, 'AWS::Lambda::Function', 'RunnerWorkerFunction'),
  cluster: logicalId(template, 'AWS::ECS::Cluster', 'RunnerCluster'),
  conductorService: logicalId(template, 'AWS::ECS::Service', 'RunnerConductorService'),
  alarmTopic: logicalId(template, 'AWS::SNS::Topic', 'RunnerMonitoringAlarmTopic'),
  conductorRule: logicalId(template, 'AWS::Events::Rule', 'RunnerMonitoringConductorStoppedRule'),
  longTaskRule: logicalId(template, 'AWS::Events::Rule', 'RunnerMonitoringLongTaskStoppedRule'),
  stoppedLogGroup: logicalId(template, 'AWS::Logs::LogGroup', 'RunnerMonitoringStoppedContainers'),
};

function alarm(prefix: string): Props {
  return resources[logicalId(template, 'AWS::CloudWatch::Alarm', `RunnerMonitoring${prefix}`)]?.Properties ?? {};
}

function rulePattern(id: string): Props {
  return (resources[id]?.Properties?.EventPattern ?? {}) as Props;
}

/** What every alarm of the runner shares: the topic on alarm and on recovery, quiet without data. */
const notifiedAndQuiet = {
  AlarmActions: [{ Ref: ids.alarmTopic }],
  OKActions: [{ Ref: ids.alarmTopic }],
  TreatMissingData: 'notBreaching',
  ComparisonOperator: 'GreaterThanOrEqualToThreshold',
};

describe('the worker function\'s alarms', () => {
  const worker = [{ Name: 'FunctionName', Value: { Ref: ids.workerFunction } }];

  it('alarms on one worker error in 5 minutes (a task failure is never an invocation error)', () => {
    expect(alarm('WorkerErrors')).toMatchObject({
      ...notifiedAndQuiet,
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: worker,
      Statistic: 'Sum',
      Period: 300,
      Threshold: 1,
      EvaluationPeriods: 1,
    });
  });

  it('alarms on worker throttles in two of three 5-minute periods', () => {
    expect(alarm('WorkerThrottles')).toMatchObject({
      ...notifiedAndQuiet,
      Namespace: 'AWS/Lambda',
      MetricName: 'Throttles',
      Dimensions: worker,
      Statistic: 'Sum',
      Period: 300,
      Threshold: 1,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
    });
  });

  it('tells the reader where to look first', () => {
    expect(alarm('WorkerErrors').AlarmDescription).toMatch(/worker log group/);
    expect(alarm('WorkerThrottles').AlarmDescription).toMatch(/ConcurrentExecutions/);
  });
});

describe('the container alarms', () => {
  it.each([
    ['ConductorStopped', () => ids.conductorRule],
    ['LongTaskStopped', () => ids.longTaskRule],
  ])('%s counts the matches of its own EventBridge rule', (name, rule) => {
    expect(alarm(name)).toMatchObject({
      ...notifiedAndQuiet,
      Namespace: 'AWS/Events',
      MetricName: 'TriggeredRules',
      Dimensions: [{ Name: 'RuleName', Value: { Ref: rule() } }],
      Statistic: 'Sum',
      Period: 300,
      Threshold: 1,
      EvaluationPeriods: 1,
    });
    expect(render(alarm(name).AlarmDescription)).toContain(`log group <${ids.stoppedLogGroup}>`);
  });

  it.each([
    ['conductor', () => ids.conductorRule],
    ['long-task', () => ids.longTaskRule],
  ])('the %s rule listens to stopped tasks of the runner\'s cluster and keeps them in the log group', (_kind, rule) => {
    const pattern = rulePattern(rule());
    expect(pattern.source).toEqual(['aws.ecs']);
    expect(pattern['detail-type']).toEqual(['ECS Task State Change']);
    expect(pattern.detail).toMatchObject({ clusterArn: [{ 'Fn::GetAtt': [ids.cluster, 'Arn'] }], lastStatus: ['STOPPED'] });
    const targets = resources[rule()]?.Properties?.Targets as { Arn: unknown }[];
    expect(targets.map((target) => render(target.Arn))).toEqual([`arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:<${ids.stoppedLogGroup}>`]);
  });

  it('lets EventBridge write that log group and nothing else', () => {
    const policies = resourcesOf(template, 'AWS::Logs::ResourcePolicy').map(([, policy]) => render(policy.Properties?.PolicyDocument));
    expect(policies).toHaveLength(1);
    const document = JSON.parse((policies[0] ?? '').replace(`<${ids.stoppedLogGroup}.Arn>`, 'LOG_GROUP_ARN')) as unknown;
    expect(document).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' }, Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: 'LOG_GROUP_ARN' }],
    });
  });

  it('shows the new alarms, the rules\' matches and the last stopped containers on the dashboard', () => {
    const dashboard = render(resources[logicalId(template, 'AWS::CloudWatch::Dashboard', 'RunnerMonitoringDashboard')]?.Properties?.DashboardBody);
    for (const name of ['WorkerErrors', 'WorkerThrottles', 'ConductorStopped', 'LongTaskStopped']) {
      expect(dashboard).toContain(`<${logicalId(template, 'AWS::CloudWatch::Alarm', `RunnerMonitoring${name}`)}.Arn>`);
    }
    expect(dashboard).toContain('"AWS/Events","TriggeredRules","RuleName","<' + ids.conductorRule + '>"');
    expect(dashboard).toContain('"AWS/Events","TriggeredRules","RuleName","<' + ids.longTaskRule + '>"');
    expect(dashboard).toContain(`SOURCE '<${ids.stoppedLogGroup}>'`);
  });
});

describe('the shared limits on the dashboard', () => {
  it('graphs every limit the scheduler reports, found by SEARCH in the runner\'s namespace', () => {
    const dashboard = render(resources[logicalId(template, 'AWS::CloudWatch::Dashboard', 'RunnerMonitoringDashboard')]?.Properties?.DashboardBody);
    const search = (metric: string, statistic: string) => `SEARCH('{ujr/Test,limit,service} service=\\"ujr-scheduler\\" MetricName=\\"${metric}\\"', '${statistic}', 60)`;

    for (const expression of [
      search('limitTokens', 'Minimum'),
      search('limitHeld', 'Maximum'),
      search('limitWaiting', 'Maximum'),
      `DIFF(${search('limitGranted', 'Maximum')})`,
      `DIFF(${search('limitRefused', 'Maximum')})`,
      `DIFF(${search('limitThrottledMs', 'Maximum')}) / 1000`,
    ]) {
      expect(dashboard).toContain(expression);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The rules' patterns against ECS events. `matches` implements the part of EventBridge's matching
// the two patterns use (exact values, anything-but, $or, nested objects, an array in the event
// matching when any of its values does; a missing field matches nothing), so that the choice of
// events is tested on examples shaped like ECS's "ECS Task State Change" events.

type Pattern = Record<string, unknown>;

function valueMatches(condition: unknown, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof condition === 'object' && condition !== null && 'anything-but' in condition) {
    const excluded = condition['anything-but'];
    return !(Array.isArray(excluded) ? excluded : [excluded]).includes(value);
  }
  return condition === value;
}

function fieldMatches(conditions: unknown, value: unknown): boolean {
  if (Array.isArray(value)) return value.some((item) => fieldMatches(conditions, item));
  if (!Array.isArray(conditions)) return typeof value === 'object' && value !== null && matches(conditions as Pattern, value as Record<string, unknown>);
  return conditions.some((condition) => valueMatches(condition, value));
}

function matches(pattern: Pattern, event: Record<string, unknown>): boolean {
  return Object.entries(pattern).every(([key, conditions]) =>
    key === '$or' ? (conditions as Pattern[]).some((alternative) => matches(alternative, event)) : fieldMatches(conditions, event[key]),
  );
}

const CLUSTER_ARN = 'arn:aws:ecs:eu-west-1:111122223333:cluster/TestRunnerCluster';
const SERVICE_NAME = 'TestRunnerConductorService';

/** The template's pattern with the cluster's ARN and the service's name filled in. */
function resolvedPattern(id: string): Pattern {
  const text = JSON.stringify(rulePattern(id))
    .replace(JSON.stringify({ 'Fn::GetAtt': [ids.cluster, 'Arn'] }), JSON.stringify(CLUSTER_ARN))
    .replace(JSON.stringify({ 'Fn::Join': ['', ['service:', { 'Fn::GetAtt': [ids.conductorService, 'Name'] }]] }), JSON.stringify(`service:${SERVICE_NAME}`));
  expect(text).not.toContain('Fn::');
  return JSON.parse(text) as Pattern;
}

interface TaskStop {
  group?: string;
  stopCode?: string;
  exitCodes?: (number | undefined)[];
  lastStatus?: string;
  clusterArn?: string;
}

/** An "ECS Task State Change" event (the fields the rules read, as ECS sends them). */
function taskStateChange({ group = `service:${SERVICE_NAME}`, stopCode, exitCodes = [], lastStatus = 'STOPPED', clusterArn = CLUSTER_ARN }: TaskStop): Record<string, unknown> {
  return {
    version: '0',
    source: 'aws.ecs',
    'detail-type': 'ECS Task State Change',
    detail: {
      clusterArn,
      group,
      lastStatus,
      desiredStatus: 'STOPPED',
      ...(stopCode === undefined ? {} : { stopCode, stoppedReason: stopCode }),
      containers: exitCodes.map((exitCode, index) => ({ name: `c${index}`, lastStatus: 'STOPPED', ...(exitCode === undefined ? {} : { exitCode }) })),
    },
  };
}

const LONG_TASK_GROUP = 'family:TestRunnerLongTaskABC123';

describe('the conductor rule', () => {
  const pattern = () => resolvedPattern(ids.conductorRule);

  it.each<[string, TaskStop]>([
    ['a conductor that failed to start (image pull, network, secrets)', { stopCode: 'TaskFailedToStart' }],
    ['a conductor whose program crashed', { stopCode: 'EssentialContainerExited', exitCodes: [0, 1] }],
    ['a conductor killed for memory', { stopCode: 'EssentialContainerExited', exitCodes: [0, 137] }],
    ['a conductor that exited 0 by itself (it never should)', { stopCode: 'EssentialContainerExited', exitCodes: [0, 0] }],
  ])('selects %s', (_case, stop) => {
    expect(matches(pattern(), taskStateChange(stop))).toBe(true);
  });

  it.each<[string, TaskStop]>([
    ['a conductor stopped by scale-in or a deploy', { stopCode: 'ServiceSchedulerInitiated', exitCodes: [0, 0] }],
    ['a conductor stopped by StopTask', { stopCode: 'UserInitiated', exitCodes: [0, 143] }],
    ['a conductor still running', { lastStatus: 'RUNNING' }],
    ['a long task', { group: LONG_TASK_GROUP, stopCode: 'TaskFailedToStart' }],
    ['a conductor of another cluster', { clusterArn: 'arn:aws:ecs:eu-west-1:111122223333:cluster/Other', stopCode: 'TaskFailedToStart' }],
  ])('leaves alone %s', (_case, stop) => {
    expect(matches(pattern(), taskStateChange(stop))).toBe(false);
  });
});

describe('the long-task rule', () => {
  const pattern = () => resolvedPattern(ids.longTaskRule);

  it.each<[string, TaskStop]>([
    ['a long task that failed to start', { group: LONG_TASK_GROUP, stopCode: 'TaskFailedToStart' }],
    ['a long task killed for memory', { group: LONG_TASK_GROUP, stopCode: 'EssentialContainerExited', exitCodes: [0, 137] }],
    ['a long task out of heap (V8 aborts)', { group: LONG_TASK_GROUP, stopCode: 'EssentialContainerExited', exitCodes: [0, 134] }],
    ['a long task whose init container failed before the program started', { group: LONG_TASK_GROUP, stopCode: 'EssentialContainerExited', exitCodes: [255, undefined] }],
  ])('selects %s', (_case, stop) => {
    expect(matches(pattern(), taskStateChange(stop))).toBe(true);
  });

  it.each<[string, TaskStop]>([
    ['a long task that ran its task (exit 0)', { group: LONG_TASK_GROUP, stopCode: 'EssentialContainerExited', exitCodes: [0, 0] }],
    ['a long task whose task failed or was dropped (exit 1, counted elsewhere)', { group: LONG_TASK_GROUP, stopCode: 'EssentialContainerExited', exitCodes: [0, 1] }],
    ['a long task stopped by StopTask', { group: LONG_TASK_GROUP, stopCode: 'UserInitiated', exitCodes: [0, 143] }],
    ['a conductor', { stopCode: 'TaskFailedToStart' }],
  ])('leaves alone %s', (_case, stop) => {
    expect(matches(pattern(), taskStateChange(stop))).toBe(false);
  });
});
