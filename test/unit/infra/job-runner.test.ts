/**
 * The JobRunner construct with its defaults, resource by resource: what issue 4 asks of each and
 * what the runtime (core/adapters/aws/env.ts, tables.ts) expects of it. One synthesis, shared.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import { containerEnvSchema, schedulerEnvSchema, workerEnvSchema } from '../../../core/adapters/aws/env.js';
import { TABLES, type TableDefinition } from '../../../core/adapters/aws/tables.js';
import { DEFAULT_WORKER_CONFIG } from '../../../core/cloud/worker.js';
import jobTypes from '../../../jobs/index.js';
import { bootstrapProgram, CODE_SHA256_VARIABLE } from '../../../containers/bootstrap.js';
import { ROOT } from '../../../core/package-root.js';
import { loadSeedEntries, loadSeedLimits, readInstances, seedLimitsUpdateItem, seedUpdateItem } from '../../../infra/instances.js';
import { CODE_FETCH_CONTAINER, CODE_FETCH_IMAGE, CONDUCTOR_CONTAINER, LONG_TASK_CONTAINER, NODE_IMAGE, WORKER_START_HEADROOM } from '../../../infra/job-runner.js';
import { METRIC_SERVICES, SERVICES } from '../../../infra/monitoring.js';
import { OPTIONAL_STACK_OUTPUTS, STACK_OUTPUTS as CLI_STACK_OUTPUTS } from '../../../core/adapters/aws/stack-outputs.js';
import { STACK_OUTPUTS } from '../../../infra/outputs.js';
import { logicalId, render, resourcesOf, synthesize } from './synth.js';

const { stack, template, annotations, outdir } = synthesize();

type Props = Record<string, unknown>;

function propsOf(type: string, prefix: string): Props {
  const id = logicalId(template, type, prefix);
  return (template.toJSON() as { Resources: Record<string, { Properties: Props }> }).Resources[id]?.Properties ?? {};
}

const ids = {
  schedulerFunction: logicalId(template, 'AWS::Lambda::Function', 'RunnerSchedulerFunction'),
  workerFunction: logicalId(template, 'AWS::Lambda::Function', 'RunnerWorkerFunction'),
  taskQueue: logicalId(template, 'AWS::SQS::Queue', 'RunnerTaskQueue'),
  deadLetterQueue: logicalId(template, 'AWS::SQS::Queue', 'RunnerDeadLetterQueue'),
  tickDeadLetterQueue: logicalId(template, 'AWS::SQS::Queue', 'RunnerTickDeadLetterQueue'),
  dataBucket: logicalId(template, 'AWS::S3::Bucket', 'RunnerDataBucket'),
  accessLogsBucket: logicalId(template, 'AWS::S3::Bucket', 'RunnerAccessLogsBucket'),
  instancesTable: logicalId(template, 'AWS::DynamoDB::Table', 'RunnerInstancesTable'),
  conductorTask: logicalId(template, 'AWS::ECS::TaskDefinition', 'RunnerConductorTask'),
  longTask: logicalId(template, 'AWS::ECS::TaskDefinition', 'RunnerLongTask'),
  alarmTopic: logicalId(template, 'AWS::SNS::Topic', 'RunnerMonitoringAlarmTopic'),
};

/** The newest Node.js runtime aws-cdk-lib knows. */
function newestNodeRuntime(): string {
  const versions = Object.keys(lambda.Runtime)
    .map((key) => /^NODEJS_(\d+)_X$/.exec(key)?.[1])
    .filter((version): version is string => version !== undefined)
    .map(Number);
  return `nodejs${Math.max(...versions)}.x`;
}

function envNames(env: unknown): string[] {
  return Object.keys((env as { Variables: Props }).Variables).sort();
}

describe('the tables', () => {
  const tableIds = { leases: 'RunnerLeasesTable', runs: 'RunnerRunsTable', instances: 'RunnerInstancesTable' } as const;

  describe.each(Object.entries(TABLES) as [keyof typeof TABLES, TableDefinition][])('%s', (role, definition) => {
    const id = logicalId(template, 'AWS::DynamoDB::Table', tableIds[role]);
    const resource = (template.toJSON() as { Resources: Record<string, { Properties: Props; DeletionPolicy?: string }> }).Resources[id];
    const props = resource?.Properties ?? {};

    it('has the key schema of tables.ts', () => {
      const keys = [{ AttributeName: definition.partitionKey.name, KeyType: 'HASH' }];
      if (definition.sortKey) keys.push({ AttributeName: definition.sortKey.name, KeyType: 'RANGE' });
      expect(props.KeySchema).toEqual(keys);
    });

    it('has the global secondary indexes of tables.ts with their projections', () => {
      const expected = definition.globalSecondaryIndexes.map((index) => ({
        IndexName: index.indexName,
        KeySchema: [
          { AttributeName: index.partitionKey.name, KeyType: 'HASH' },
          ...(index.sortKey ? [{ AttributeName: index.sortKey.name, KeyType: 'RANGE' }] : []),
        ],
        Projection: { ProjectionType: index.projection },
      }));
      expect(props.GlobalSecondaryIndexes ?? []).toEqual(expected);
    });

    it('defines exactly the key attributes of the table and its indexes, with their types', () => {
      const attributes = new Map<string, string>();
      for (const key of [definition.partitionKey, definition.sortKey, ...definition.globalSecondaryIndexes.flatMap((i) => [i.partitionKey, i.sortKey])]) {
        if (key) attributes.set(key.name, key.type);
      }
      const defined = props.AttributeDefinitions as { AttributeName: string; AttributeType: string }[];
      expect(new Map(defined.map((a) => [a.AttributeName, a.AttributeType]))).toEqual(attributes);
      expect(defined).toHaveLength(attributes.size);
    });

    it('bills on demand, keeps point-in-time recovery and is retained and protected', () => {
      expect(props.BillingMode).toBe('PAY_PER_REQUEST');
      expect(props.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(props.DeletionProtectionEnabled).toBe(true);
      expect(resource?.DeletionPolicy).toBe('Retain');
    });

    it('has TTL exactly where tables.ts names a TTL attribute (garbage collection only)', () => {
      if (definition.timeToLiveAttribute === null) expect(props.TimeToLiveSpecification).toBeUndefined();
      else expect(props.TimeToLiveSpecification).toEqual({ AttributeName: definition.timeToLiveAttribute, Enabled: true });
    });
  });
});

describe('the data bucket', () => {
  const props = propsOf('AWS::S3::Bucket', 'RunnerDataBucket');

  it('is encrypted, blocks public access and logs access to the access-log bucket', () => {
    expect(props.BucketEncryption).toEqual({ ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] });
    expect(props.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(props.LoggingConfiguration).toEqual({ DestinationBucketName: { Ref: ids.accessLogsBucket }, LogFilePrefix: 'data/' });
  });

  it('moves archive/ to Glacier Instant Retrieval after 30 days', () => {
    const rules = (props.LifecycleConfiguration as { Rules: Props[] }).Rules;
    expect(rules).toContainEqual(
      expect.objectContaining({ Prefix: 'archive/', Status: 'Enabled', Transitions: [{ StorageClass: 'GLACIER_IR', TransitionInDays: 30 }] }),
    );
  });

  it('is retained when the stack is deleted', () => {
    template.hasResource('AWS::S3::Bucket', { Properties: Match.objectLike({ LifecycleConfiguration: Match.anyValue(), LoggingConfiguration: Match.anyValue() }), DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  it.each([
    ['data', () => ids.dataBucket],
    ['access-log', () => ids.accessLogsBucket],
  ])('the %s bucket refuses requests without TLS', (_name, id) => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: id() },
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
      },
    });
  });
});

describe('the queues', () => {
  const task = propsOf('AWS::SQS::Queue', 'RunnerTaskQueue');
  const worker = propsOf('AWS::Lambda::Function', 'RunnerWorkerFunction');

  it('give the task queue a visibility timeout of at least 6× the worker timeout', () => {
    expect(task.VisibilityTimeout).toBeGreaterThanOrEqual(6 * (worker.Timeout as number));
  });

  it('redrive task messages to the dead-letter queue after at least 5 receives', () => {
    const redrive = task.RedrivePolicy as { deadLetterTargetArn: unknown; maxReceiveCount: number };
    expect(redrive.deadLetterTargetArn).toEqual({ 'Fn::GetAtt': [ids.deadLetterQueue, 'Arn'] });
    expect(redrive.maxReceiveCount).toBeGreaterThanOrEqual(5);
  });

  it.each([
    ['task queue', () => ids.taskQueue],
    ['dead-letter queue', () => ids.deadLetterQueue],
    ['tick dead-letter queue', () => ids.tickDeadLetterQueue],
  ])('encrypt the %s and refuse requests without TLS', (_name, id) => {
    const queue = (template.toJSON() as { Resources: Record<string, { Properties: Props }> }).Resources[id()]?.Properties;
    expect(queue?.SqsManagedSseEnabled).toBe(true);
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: id() }],
      PolicyDocument: { Statement: [Match.objectLike({ Effect: 'Deny', Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })] },
    });
  });

  it.each([
    ['dead-letter queue', () => ids.deadLetterQueue],
    ['tick dead-letter queue', () => ids.tickDeadLetterQueue],
  ])('keep messages in the %s for 14 days', (_name, id) => {
    const queue = (template.toJSON() as { Resources: Record<string, { Properties: Props }> }).Resources[id()]?.Properties;
    expect(queue?.MessageRetentionPeriod).toBe(14 * 24 * 3600);
  });
});

describe('the worker', () => {
  const worker = propsOf('AWS::Lambda::Function', 'RunnerWorkerFunction');

  it('runs our bundle on the newest Node.js runtime, ARM64, traced', () => {
    expect(worker).toMatchObject({ Runtime: newestNodeRuntime(), Architectures: ['arm64'], TracingConfig: { Mode: 'Active' }, Handler: 'worker/index.handler' });
  });

  it('sets exactly the variables of the worker environment schema', () => {
    expect(envNames(worker.Environment)).toEqual(Object.keys(workerEnvSchema.shape).sort());
  });

  it('tells the worker the queue\'s maxReceiveCount', () => {
    const redrive = propsOf('AWS::SQS::Queue', 'RunnerTaskQueue').RedrivePolicy as { maxReceiveCount: number };
    expect((worker.Environment as { Variables: Props }).Variables.UJR_MAX_RECEIVE_COUNT).toBe(String(redrive.maxReceiveCount));
  });

  it('reads the task queue with partial batch failures, a batch size and window and a concurrency cap', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [ids.taskQueue, 'Arn'] },
      FunctionName: { Ref: ids.workerFunction },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BatchSize: 10,
      MaximumBatchingWindowInSeconds: 1,
      ScalingConfig: { MaximumConcurrency: 10 },
    });
  });
});

describe('the follow-up planner', () => {
  const scheduler = propsOf('AWS::Lambda::Function', 'RunnerSchedulerFunction');
  const planner = propsOf('AWS::Lambda::Function', 'RunnerPlannerFunction');
  const planQueue = logicalId(template, 'AWS::SQS::Queue', 'RunnerPlanQueue');
  const planQueueUrl = (props: Props) => render((props.Environment as { Variables: Props }).Variables.UJR_PLAN_QUEUE_URL);

  it('runs the scheduler\'s code, role and environment, not reserved to one at a time', () => {
    expect(planner).toMatchObject({ Handler: scheduler.Handler, Role: scheduler.Role, Environment: scheduler.Environment, Timeout: scheduler.Timeout });
    expect(planner.ReservedConcurrentExecutions).toBeUndefined();
  });

  it('reads the plan queue with partial batch failures and a concurrency cap', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [planQueue, 'Arn'] },
      FunctionName: { Ref: logicalId(template, 'AWS::Lambda::Function', 'RunnerPlannerFunction') },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      BatchSize: 10,
      ScalingConfig: { MaximumConcurrency: 4 },
    });
  });

  it('is where the worker and the containers send follow-up requests', () => {
    const url = `<${planQueue}>`;
    expect(planQueueUrl(propsOf('AWS::Lambda::Function', 'RunnerWorkerFunction'))).toBe(url);
    const containers = resourcesOf(template, 'AWS::ECS::TaskDefinition').flatMap(([, resource]) => (resource.Properties?.ContainerDefinitions ?? []) as Props[]);
    const envs = containers.flatMap((container) => ((container.Environment ?? []) as { Name: string; Value: unknown }[]).filter((e) => e.Name === 'UJR_PLAN_QUEUE_URL'));
    expect(envs.map((e) => render(e.Value))).toEqual([url, url]);
  });
});

describe('the scheduler', () => {
  const scheduler = propsOf('AWS::Lambda::Function', 'RunnerSchedulerFunction');
  const worker = propsOf('AWS::Lambda::Function', 'RunnerWorkerFunction');
  const env = (scheduler.Environment as { Variables: Props }).Variables;

  it('runs our bundle on the newest Node.js runtime, ARM64, traced, one at a time', () => {
    expect(scheduler).toMatchObject({
      Runtime: newestNodeRuntime(),
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      Handler: 'scheduler/index.handler',
      ReservedConcurrentExecutions: 1,
    });
  });

  it('sets exactly the variables of the scheduler environment schema', () => {
    expect(envNames(scheduler.Environment)).toEqual(Object.keys(schedulerEnvSchema.shape).sort());
  });

  it('sends to Fargate the batch tasks that do not fit in the worker timeout less its margins and a start headroom', () => {
    const limit = Number(env.UJR_WORKER_TASK_LIMIT_MS);
    expect(limit + DEFAULT_WORKER_CONFIG.safetyMarginMs + DEFAULT_WORKER_CONFIG.graceMs + WORKER_START_HEADROOM.toMilliseconds()).toBe((worker.Timeout as number) * 1000);
  });

  it('names the fleet: cluster, conductor service, long-task family and container, subnets, security group', () => {
    expect(render(env.UJR_CLUSTER)).toMatch(/^<RunnerCluster/);
    expect(render(env.UJR_CONDUCTOR_SERVICE)).toMatch(/^<RunnerConductorService.*\.Name>$/);
    expect(env.UJR_LONG_TASK_DEFINITION).toBe(propsOf('AWS::ECS::TaskDefinition', 'RunnerLongTask').Family);
    expect(env.UJR_LONG_TASK_CONTAINER).toBe(LONG_TASK_CONTAINER);
    expect(render(env.UJR_SUBNETS).split(',')).toHaveLength(2);
    expect(env.UJR_ASSIGN_PUBLIC_IP).toBe('true');
  });

  it('drops a failed tick instead of retrying it', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { FunctionName: { Ref: ids.schedulerFunction }, MaximumRetryAttempts: 0 });
  });

  it('is ticked with {} every minute by EventBridge Scheduler, with retries and its own dead-letter queue', () => {
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Target: {
        Arn: { 'Fn::GetAtt': [ids.schedulerFunction, 'Arn'] },
        Input: '{}',
        RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 300 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [ids.tickDeadLetterQueue, 'Arn'] } },
      },
    });
    expect(env.UJR_TICK_MS).toBe('60000');
  });
});

describe('the containers', () => {
  const conductor = propsOf('AWS::ECS::TaskDefinition', 'RunnerConductorTask');
  const longTask = propsOf('AWS::ECS::TaskDefinition', 'RunnerLongTask');
  const containerOf = (definition: Props, name: string) => (definition.ContainerDefinitions as Props[]).find((container) => container.Name === name) ?? {};
  const containerVariables = Object.keys(containerEnvSchema.shape)
    .filter((name) => name !== 'UJR_TASK_MESSAGE')
    .concat(['NODE_ENV', CODE_SHA256_VARIABLE])
    .sort();

  it('run in a cluster with Container Insights', () => {
    template.hasResourceProperties('AWS::ECS::Cluster', { ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }] });
  });

  it('start no conductor until the scheduler asks for one', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      DesiredCount: 0,
      LaunchType: 'FARGATE',
      TaskDefinition: { Ref: ids.conductorTask },
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'ENABLED' }) },
      DeploymentConfiguration: Match.objectLike({ DeploymentCircuitBreaker: { Enable: true, Rollback: true } }),
    });
  });

  it.each([
    ['conductor', conductor, CONDUCTOR_CONTAINER, '256', '512'],
    ['long task', longTask, LONG_TASK_CONTAINER, '1024', '2048'],
  ])('define the %s on Fargate, ARM64, with the container environment and no task message', (_name, definition, container, cpu, memory) => {
    expect(definition).toMatchObject({ RequiresCompatibilities: ['FARGATE'], Cpu: cpu, Memory: memory, RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' } });
    const variables = (containerOf(definition, container).Environment as { Name: string }[]).map((v) => v.Name).sort();
    expect(variables).toEqual(containerVariables);
    expect(variables).not.toContain('UJR_TASK_MESSAGE');
  });

  describe.each([
    ['conductor', conductor, CONDUCTOR_CONTAINER],
    ['long task', longTask, LONG_TASK_CONTAINER],
  ])('the %s', (_name, definition, container) => {
    const manifest = JSON.parse(readFileSync(join(outdir, `${stack.artifactId}.assets.json`), 'utf8')) as {
      files: Record<string, { destinations: Record<string, { bucketName: string; objectKey: string }> }>;
      dockerImages?: Record<string, unknown>;
    };
    const main = containerOf(definition, container);
    const fetch = containerOf(definition, CODE_FETCH_CONTAINER);

    it('runs the official Node.js image from ECR Public, and no image of ours (no Docker at deploy)', () => {
      expect(main.Image).toBe(NODE_IMAGE);
      expect(fetch.Image).toBe(CODE_FETCH_IMAGE);
      expect(Object.keys(manifest.dockerImages ?? {})).toEqual([]);
    });

    it('copies the code asset into a volume with one GetObject in an init container, and starts node once that exited 0', () => {
      const command = fetch.Command as unknown[];
      const destinations = Object.values(manifest.files).flatMap((file) => Object.values(file.destinations));
      const asset = destinations.find((destination) => destination.objectKey === command[5]);
      expect(asset, `an asset with the key ${String(command[5])}`).toBeDefined();
      expect(command).toEqual(['s3api', 'get-object', '--bucket', { 'Fn::Sub': asset?.bucketName }, '--key', asset?.objectKey, '/ujr/code/index.mjs']);
      expect(fetch.Essential).toBe(false);
      expect(main.DependsOn).toEqual([{ ContainerName: CODE_FETCH_CONTAINER, Condition: 'SUCCESS' }]);
      expect(definition.Volumes).toEqual([{ Name: 'ujr-code' }]);
      expect(fetch.MountPoints).toEqual([{ SourceVolume: 'ujr-code', ContainerPath: '/ujr/code', ReadOnly: false }]);
      expect(main.MountPoints).toEqual([{ SourceVolume: 'ujr-code', ContainerPath: '/ujr/code', ReadOnly: true }]);
    });

    it('checks the code\'s SHA-256 before it runs it, as user node', () => {
      expect(main.EntryPoint).toEqual(['node']);
      expect(main.Command).toEqual(['--input-type=module', '--eval', bootstrapProgram('/ujr/code/index.mjs')]);
      expect(main.User).toBe('node');
      // No bundling in this synthesis (see synth.ts): no code, so no digest; the bundled synthesis is in user-project.test.ts.
      expect((main.Environment as { Name: string; Value: unknown }[]).find((v) => v.Name === CODE_SHA256_VARIABLE)?.Value).toBe('not-bundled');
    });
  });

  it('run in a new VPC with public subnets only and no NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    for (const [, subnet] of resourcesOf(template, 'AWS::EC2::Subnet')) expect(subnet.Properties?.MapPublicIpOnLaunch).toBe(true);
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'REJECT' });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', { SecurityGroupIngress: Match.absent() });
  });
});

describe('logs', () => {
  const logGroups = new Set(resourcesOf(template, 'AWS::Logs::LogGroup').map(([id]) => id));

  it('keep every log group for a month', () => {
    for (const [, group] of resourcesOf(template, 'AWS::Logs::LogGroup')) expect(group.Properties?.RetentionInDays).toBe(30);
  });

  it('give every function a log group of the stack', () => {
    for (const [, fn] of resourcesOf(template, 'AWS::Lambda::Function')) {
      const group = render((fn.Properties?.LoggingConfig as { LogGroup: unknown }).LogGroup);
      expect(logGroups.has(group.slice(1, -1)), group).toBe(true);
    }
  });

  it('give every container a log group of the stack', () => {
    for (const [, definition] of resourcesOf(template, 'AWS::ECS::TaskDefinition')) {
      for (const container of definition.Properties?.ContainerDefinitions as { LogConfiguration: { LogDriver: string; Options: Props } }[]) {
        expect(container.LogConfiguration.LogDriver).toBe('awslogs');
        expect(logGroups.has(render(container.LogConfiguration.Options['awslogs-group']).slice(1, -1))).toBe(true);
      }
    }
  });
});

describe('the instance seed', () => {
  const entries = loadSeedEntries(join(ROOT, 'jobs', 'instances.json'), jobTypes);
  const seeds = resourcesOf(template, 'Custom::UjrInstanceConfig');
  const callOf = (property: unknown) => JSON.parse(render(property)) as Props;

  it('writes every instance of jobs/instances.json', () => {
    expect(entries.length).toBeGreaterThan(0);
    expect(seeds).toHaveLength(entries.length);
  });

  it.each(entries.map((entry) => [entry.id, entry] as const))('writes %s as putInstanceEntry does, on create and on update, and never deletes it', (_id, entry) => {
    const expected = { service: 'DynamoDB', action: 'UpdateItem', parameters: seedUpdateItem(`<${ids.instancesTable}>`, entry), physicalResourceId: { id: entry.id }, logApiResponseData: false };
    const seed = seeds.find(([, resource]) => callOf(resource.Properties?.Create).physicalResourceId !== undefined && (callOf(resource.Properties?.Create).physicalResourceId as Props).id === entry.id);
    expect(seed).toBeDefined();
    expect(callOf(seed?.[1].Properties?.Create)).toEqual(expected);
    expect(callOf(seed?.[1].Properties?.Update)).toEqual(expected);
    expect(seed?.[1].Properties?.Delete).toBeUndefined();
  });

  it('writes the shared limits of jobs/instances.json into the limits item, on create and on update, and never deletes it', () => {
    const limits = loadSeedLimits(readInstances(join(ROOT, 'jobs', 'instances.json')));
    expect(limits).toBeDefined();
    const [seed, ...more] = resourcesOf(template, 'Custom::UjrLimits');
    expect(more).toEqual([]);
    const expected = { service: 'DynamoDB', action: 'UpdateItem', parameters: seedLimitsUpdateItem(`<${ids.instancesTable}>`, limits ?? {}), physicalResourceId: { id: 'limits' }, logApiResponseData: false };
    expect(callOf(seed?.[1].Properties?.Create)).toEqual(expected);
    expect(callOf(seed?.[1].Properties?.Update)).toEqual(expected);
    expect(seed?.[1].Properties?.Delete).toBeUndefined();
  });

  it('replaces only the config attribute and creates the overrides only when missing', () => {
    const update = seedUpdateItem('t', entries[0] ?? { id: 'x', config: {} });
    expect(update.UpdateExpression).toBe('SET #config = :config, #overrides = if_not_exists(#overrides, :none)');
    expect(update.ExpressionAttributeNames).toEqual({ '#config': 'config', '#overrides': 'overrides' });
  });
});

describe('monitoring', () => {
  const dashboard = render(propsOf('AWS::CloudWatch::Dashboard', 'RunnerMonitoringDashboard').DashboardBody);
  const alarms = resourcesOf(template, 'AWS::CloudWatch::Alarm').map(([, alarm]) => alarm.Properties ?? {});
  const namespace = 'ujr/Test';

  it.each(jobTypes.map((job) => job.name))('charts every task outcome of %s with the dimensions the EMF lines carry', (jobType) => {
    for (const [metric, services] of Object.entries(METRIC_SERVICES)) {
      if (metric === 'dropped') continue;
      for (const service of services) expect(dashboard, `${metric} of ${service}`).toContain(JSON.stringify([namespace, metric, 'jobType', jobType, 'service', service]).slice(1, -1));
    }
  });

  it('charts queue depth, age of the oldest message, dead letters, Lambda errors, throttles and duration, conductors running vs desired', () => {
    for (const metric of ['ApproximateNumberOfMessagesVisible', 'ApproximateAgeOfOldestMessage', 'Errors', 'Throttles', 'Duration', 'RunningTaskCount', 'DesiredTaskCount', 'takenOver']) {
      expect(dashboard).toContain(`"${metric}"`);
    }
    expect(dashboard).toContain('"ECS/ContainerInsights"');
  });

  it('alarms when a dead-letter queue holds a message', () => {
    for (const queue of [ids.deadLetterQueue, ids.tickDeadLetterQueue]) {
      expect(alarms).toContainEqual(
        expect.objectContaining({
          MetricName: 'ApproximateNumberOfMessagesVisible',
          Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue, 'QueueName'] } }],
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        }),
      );
    }
  });

  it('alarms when the oldest task message is older than 30 minutes', () => {
    expect(alarms).toContainEqual(expect.objectContaining({ MetricName: 'ApproximateAgeOfOldestMessage', Threshold: 1800, Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [ids.taskQueue, 'QueueName'] } }] }));
  });

  it('alarms on scheduler errors, and on missed ticks with missing data as breaching', () => {
    const scheduler = [{ Name: 'FunctionName', Value: { Ref: ids.schedulerFunction } }];
    expect(alarms).toContainEqual(expect.objectContaining({ Namespace: 'AWS/Lambda', MetricName: 'Errors', Dimensions: scheduler, ComparisonOperator: 'GreaterThanOrEqualToThreshold' }));
    expect(alarms).toContainEqual(
      expect.objectContaining({ Namespace: 'AWS/Lambda', MetricName: 'Invocations', Dimensions: scheduler, ComparisonOperator: 'LessThanThreshold', Threshold: 1, Period: 600, TreatMissingData: 'breaching' }),
    );
  });

  it.each(jobTypes.map((job) => job.name))('alarms on the failure rate of %s, by metric math within CloudWatch\'s 10 metrics', (jobType) => {
    const alarm = alarms.find((props) => (props.Metrics as { Expression?: string }[] | undefined)?.some((m) => m.Expression?.startsWith('IF(')) && JSON.stringify(props.Metrics).includes(`"jobType","Value":"${jobType}"`));
    expect(alarm).toBeDefined();
    const metrics = alarm?.Metrics as { Expression?: string; MetricStat?: { Metric: { Namespace: string; MetricName: string } } }[];
    expect(metrics.length).toBeLessThanOrEqual(10);
    expect(new Set(metrics.flatMap((m) => (m.MetricStat ? [m.MetricStat.Metric.MetricName] : [])))).toEqual(new Set(['failed', 'succeeded']));
    expect(metrics.every((m) => !m.MetricStat || m.MetricStat.Metric.Namespace === namespace)).toBe(true);
    expect(alarm?.Threshold).toBe(0.2);
  });

  it('sends every alarm and its recovery to the encrypted alarm topic', () => {
    expect(alarms.length).toBe(9 + jobTypes.length);
    for (const alarm of alarms) {
      expect(alarm.AlarmActions).toEqual([{ Ref: ids.alarmTopic }]);
      expect(alarm.OKActions).toEqual([{ Ref: ids.alarmTopic }]);
    }
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^RunnerMonitoringAlarmTopicKey'), 'Arn'] } });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('counts metrics under the service names the entry points pass', () => {
    const sources = ['functions/scheduler.ts', 'functions/worker.ts', 'containers/main.ts'].map((file) => readFileSync(join(import.meta.dirname, '../../..', file), 'utf8')).join('\n');
    for (const service of Object.values(SERVICES)) expect(sources).toContain(`'${service}'`);
  });
});

describe('the stack', () => {
  it('outputs every value the CLI reads, under the keys of infra/outputs.ts', () => {
    expect(Object.keys(template.findOutputs('*')).sort()).toEqual(Object.values(STACK_OUTPUTS).sort());
  });

  it('outputs every key the CLI reads (core/adapters/aws/stack-outputs.ts), optional ones included', () => {
    const outputs = new Set(Object.keys(template.findOutputs('*')));
    for (const key of [...Object.values(CLI_STACK_OUTPUTS), ...Object.values(OPTIONAL_STACK_OUTPUTS)]) expect(outputs.has(key), key).toBe(true);
  });

  it('hard-codes no physical name (the task definition families derive from the stack\'s name)', () => {
    const nameProperties: Record<string, string> = {
      'AWS::DynamoDB::Table': 'TableName',
      'AWS::S3::Bucket': 'BucketName',
      'AWS::SQS::Queue': 'QueueName',
      'AWS::Lambda::Function': 'FunctionName',
      'AWS::IAM::Role': 'RoleName',
      'AWS::Logs::LogGroup': 'LogGroupName',
      'AWS::ECS::Cluster': 'ClusterName',
      'AWS::ECS::Service': 'ServiceName',
      'AWS::SNS::Topic': 'TopicName',
      'AWS::CloudWatch::Alarm': 'AlarmName',
      'AWS::CloudWatch::Dashboard': 'DashboardName',
      'AWS::Scheduler::Schedule': 'Name',
      'AWS::EC2::SecurityGroup': 'GroupName',
      'AWS::KMS::Key': 'Alias',
    };
    for (const [type, property] of Object.entries(nameProperties)) {
      for (const [id, resource] of resourcesOf(template, type)) expect(resource.Properties?.[property], `${id}.${property}`).toBeUndefined();
    }
    for (const [, definition] of resourcesOf(template, 'AWS::ECS::TaskDefinition')) expect(definition.Properties?.Family).toMatch(/^TestRunner/);
  });

  it('synthesizes without warnings or errors', () => {
    annotations.hasNoWarning('*', Match.anyValue());
    annotations.hasNoError('*', Match.anyValue());
  });
});
