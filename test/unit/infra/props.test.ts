/**
 * JobRunner props: a runner tuned away from every default (one synthesis), and the props a
 * deployment must refuse before CloudFormation or the runtime would.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_WORKER_CONFIG } from '../../../core/cloud/worker.js';
import { InstanceSeedError, JobRunnerPropsError, JobsModuleError } from '../../../infra/errors.js';
import { JobRunner, WORKER_START_HEADROOM, type JobRunnerProps } from '../../../infra/job-runner.js';
import { cdkContext, logicalId, render, resourcesOf, synthesize } from './synth.js';

/** A VPC of someone else's, with private subnets (imported: plain ids, no cross-stack reference). */
const vpcStack = new Stack(new App(), 'Network');
const importedVpc = ec2.Vpc.fromVpcAttributes(vpcStack, 'Imported', { vpcId: 'vpc-1', availabilityZones: ['a', 'b'], privateSubnetIds: ['subnet-p1', 'subnet-p2'] });

const tuned: JobRunnerProps = {
  jobs: 'jobs/index.ts',
  instances: [{ id: 'only', job: 'summary', params: { source: 'metrics' }, schedule: '5m' }],
  tick: Duration.minutes(5),
  workerTimeout: Duration.minutes(5),
  workerMemorySize: 2048,
  workerBatchSize: 50,
  workerMaxBatchingWindow: Duration.seconds(5),
  workerMaxConcurrency: 40,
  maxReceiveCount: 8,
  schedulerTimeout: Duration.minutes(3),
  reserveSchedulerConcurrency: false,
  conductorCpu: 512,
  conductorMemoryMiB: 1024,
  maxConductors: 10,
  tasksPerConductor: 2,
  longTaskCpu: 2048,
  longTaskMemoryMiB: 4096,
  containerArchitecture: ecs.CpuArchitecture.X86_64,
  alarmEmail: 'alarms@example.org',
  ssmParameterPrefixes: ['/research/', '/shared/'],
  secretNamePrefixes: [],
  logRetention: logs.RetentionDays.ONE_WEEK,
  dataRemovalPolicy: RemovalPolicy.DESTROY,
  archivePrefix: 'cold/',
  archiveTransitionAfter: Duration.days(90),
  metricsNamespace: 'research/ujr',
  maxMessageAge: Duration.hours(2),
  failureRateThreshold: 0.5,
};

describe('a runner tuned away from every default', () => {
  const { template } = synthesize({ ...tuned, vpc: importedVpc });
  const resources = (template.toJSON() as { Resources: Record<string, { Properties: Record<string, unknown>; DeletionPolicy?: string }> }).Resources;
  const props = (type: string, prefix: string) => resources[logicalId(template, type, prefix)]?.Properties ?? {};
  const schedulerEnv = (props('AWS::Lambda::Function', 'RunnerSchedulerFunction').Environment as { Variables: Record<string, unknown> }).Variables;

  it('sizes the worker, its queue and its event source from the props', () => {
    expect(props('AWS::Lambda::Function', 'RunnerWorkerFunction')).toMatchObject({ Timeout: 300, MemorySize: 2048 });
    expect(props('AWS::SQS::Queue', 'RunnerTaskQueue')).toMatchObject({ VisibilityTimeout: 6 * 300 + 5, RedrivePolicy: { maxReceiveCount: 8 } });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { BatchSize: 50, MaximumBatchingWindowInSeconds: 5, ScalingConfig: { MaximumConcurrency: 40 } });
  });

  it('derives the scheduler\'s batch task limit from the worker timeout, and its tick from the schedule', () => {
    expect(Number(schedulerEnv.UJR_WORKER_TASK_LIMIT_MS)).toBe(300_000 - DEFAULT_WORKER_CONFIG.safetyMarginMs - DEFAULT_WORKER_CONFIG.graceMs - WORKER_START_HEADROOM.toMilliseconds());
    expect(schedulerEnv.UJR_TICK_MS).toBe('300000');
    template.hasResourceProperties('AWS::Scheduler::Schedule', { ScheduleExpression: 'rate(5 minutes)' });
  });

  it('reserves no concurrency for the scheduler when told not to', () => {
    expect(props('AWS::Lambda::Function', 'RunnerSchedulerFunction').ReservedConcurrentExecutions).toBeUndefined();
    expect(props('AWS::Lambda::Function', 'RunnerSchedulerFunction').Timeout).toBe(180);
  });

  it('sizes the conductors and long tasks, on x86', () => {
    expect(schedulerEnv).toMatchObject({ UJR_MAX_CONDUCTORS: '10', UJR_TASKS_PER_CONDUCTOR: '2' });
    expect(props('AWS::ECS::TaskDefinition', 'RunnerConductorTask')).toMatchObject({ Cpu: '512', Memory: '1024', RuntimePlatform: { CpuArchitecture: 'X86_64' } });
    expect(props('AWS::ECS::TaskDefinition', 'RunnerLongTask')).toMatchObject({ Cpu: '2048', Memory: '4096', RuntimePlatform: { CpuArchitecture: 'X86_64' } });
  });

  it('puts the containers in the given VPC\'s private subnets without public IPs, and creates no VPC', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    expect(schedulerEnv).toMatchObject({ UJR_SUBNETS: 'subnet-p1,subnet-p2', UJR_ASSIGN_PUBLIC_IP: 'false' });
    template.hasResourceProperties('AWS::ECS::Service', { NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED', Subnets: ['subnet-p1', 'subnet-p2'] }) } });
  });

  it('subscribes the alarm e-mail to the topic', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'alarms@example.org' });
  });

  it('grants the given parameter prefixes and no secret', () => {
    const statements = resourcesOf(template, 'AWS::IAM::Policy').flatMap(([, policy]) => (policy.Properties?.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] }).Statement);
    const ssm = statements.filter((s) => s.Action === 'ssm:GetParameter');
    expect(ssm.length).toBe(4);
    for (const statement of ssm) expect((statement.Resource as unknown[]).map(render).map((arn) => arn.split(':parameter')[1])).toEqual(['/research/*', '/shared/*']);
    expect(statements.some((s) => s.Action === 'secretsmanager:GetSecretValue')).toBe(false);
  });

  it('deletes the data with the stack, and unprotects the tables', () => {
    for (const [, table] of resourcesOf(template, 'AWS::DynamoDB::Table')) {
      expect(table.DeletionPolicy).toBe('Delete');
      expect(table.Properties?.DeletionProtectionEnabled).toBe(false);
    }
    for (const [, bucket] of resourcesOf(template, 'AWS::S3::Bucket')) expect(bucket.DeletionPolicy).toBe('Delete');
  });

  it('moves the archive prefix to Glacier Instant Retrieval after the given age', () => {
    expect(props('AWS::S3::Bucket', 'RunnerDataBucket').LifecycleConfiguration).toMatchObject({
      Rules: expect.arrayContaining([expect.objectContaining({ Prefix: 'cold/', Transitions: [{ StorageClass: 'GLACIER_IR', TransitionInDays: 90 }] })]) as unknown,
    });
  });

  it('keeps logs for the given retention, counts metrics in the given namespace and alarms at the given thresholds', () => {
    for (const [, group] of resourcesOf(template, 'AWS::Logs::LogGroup')) expect(group.Properties?.RetentionInDays).toBe(7);
    expect(schedulerEnv.UJR_METRICS_NAMESPACE).toBe('research/ujr');
    const alarms = resourcesOf(template, 'AWS::CloudWatch::Alarm').map(([, alarm]) => alarm.Properties ?? {});
    expect(alarms).toContainEqual(expect.objectContaining({ MetricName: 'ApproximateAgeOfOldestMessage', Threshold: 7200 }));
    expect(alarms).toContainEqual(expect.objectContaining({ MetricName: 'Invocations', Period: 3000 }));
    // One per job type: the five of jobs/.
    expect(alarms.filter((alarm) => alarm.Threshold === 0.5)).toHaveLength(5);
  });

  it('seeds the given instances only', () => {
    const seeds = resourcesOf(template, 'Custom::UjrInstanceConfig');
    expect(seeds).toHaveLength(1);
    expect(render(seeds[0]?.[1].Properties?.Create)).toContain('"instanceId":{"S":"only"}');
  });
});

describe('props a deployment refuses', () => {
  const construct = (props: Partial<JobRunnerProps>) => () => new JobRunner(new Stack(new App({ context: cdkContext() }), 'Refused'), 'Runner', { jobs: 'jobs/index.ts', ...props });

  it.each<[string, Partial<JobRunnerProps>, RegExp]>([
    ['a tick that is not whole minutes', { tick: Duration.seconds(90) }, /tick must be a whole number of minutes/],
    ['a worker timeout over Lambda\'s 15 minutes', { workerTimeout: Duration.minutes(16) }, /workerTimeout is at most 15 minutes/],
    ['a worker timeout within the worker\'s margins', { workerTimeout: Duration.seconds(40) }, /must leave batch tasks at least a second/],
    ['a maxReceiveCount under 5', { maxReceiveCount: 3 }, /maxReceiveCount must be at least 5/],
    ['a batch over 10 without a batching window', { workerBatchSize: 100, workerMaxBatchingWindow: Duration.seconds(0) }, /needs a workerMaxBatchingWindow/],
    ['a maximum concurrency under 2', { workerMaxConcurrency: 1 }, /workerMaxConcurrency must be 2–1000/],
    ['a failure rate threshold over 1', { failureRateThreshold: 20 }, /failureRateThreshold is a share/],
    // What a JavaScript user (no type checker) can write.
    ['a container image source that is neither stock nor docker', { containerImage: 'podman' as 'docker' }, /containerImage is 'stock' \(a public Node.js image, no Docker needed\) or 'docker' \(an image built at deploy\), got "podman"/],
  ])('refuses %s', (_what, props, message) => {
    expect(construct(props)).toThrow(JobRunnerPropsError);
    expect(construct(props)).toThrow(message);
  });

  it('refuses an instance of a job type the bundles do not have, naming the instance and field', () => {
    expect(construct({ instances: [{ id: 'x', job: 'nope' }] })).toThrow(InstanceSeedError);
    expect(construct({ instances: [{ id: 'x', job: 'nope' }] })).toThrow(/instance "x": job: no job type is named "nope"/);
  });

  it('refuses an instances file with a malformed shared limit, naming the limit and field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ujr-props-limits-'));
    try {
      const file = join(dir, 'instances.json');
      writeFileSync(file, JSON.stringify({ instances: [], limits: { 'feed-api': { rate: 300, per: 'soon' } } }));
      expect(construct({ instances: file })).toThrow(InstanceSeedError);
      expect(construct({ instances: file })).toThrow(/limits\.feed-api\.per: use a duration such as "500ms"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an instances file that does not exist, naming it', () => {
    expect(construct({ instances: '/nonexistent/instances.json' })).toThrow(/cannot read the instances file \/nonexistent\/instances.json/);
  });

  it('refuses a runner without a jobs module, saying what to pass', () => {
    // What a JavaScript user (no type checker) can write.
    const props = {} as JobRunnerProps;
    const withoutJobs = () => new JobRunner(new Stack(new App({ context: cdkContext() }), 'Refused'), 'Runner', props);
    expect(withoutJobs).toThrow(JobRunnerPropsError);
    expect(withoutJobs).toThrow(/JobRunner: jobs is required: the path of the module whose default export lists your job types/);
  });

  it('refuses a jobs module that does not exist, naming it and where relative paths start', () => {
    expect(construct({ jobs: 'nope/jobs.ts' })).toThrow(JobsModuleError);
    expect(construct({ jobs: 'nope/jobs.ts' })).toThrow(`JobRunner: jobs: the jobs module nope/jobs.ts (${join(process.cwd(), 'nope/jobs.ts')}) does not exist`);
  });

  it('refuses a jobs module whose default export is not job types, naming it', () => {
    // jobs/collector.ts exports a job type, but no default export listing it.
    expect(construct({ jobs: 'jobs/collector.ts' })).toThrow(JobsModuleError);
    expect(construct({ jobs: 'jobs/collector.ts' })).toThrow(`JobRunner: jobs: ${join(process.cwd(), 'jobs/collector.ts')} must export default an array of job types`);
  });

  it('refuses a second runner asked for the stack\'s outputs, the CLI reads one set', () => {
    const stack = new Stack(new App({ context: { ...cdkContext(), 'aws:cdk:bundling-stacks': [] } }), 'Twice');
    new JobRunner(stack, 'First', { jobs: 'jobs/index.ts', stackOutputs: true });

    expect(() => new JobRunner(stack, 'Second', { jobs: 'jobs/index.ts', stackOutputs: true })).toThrow(/JobRunner Twice\/Second: stackOutputs: the stack already holds an output/);
  });
});
