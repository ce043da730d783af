/**
 * `JobRunner`: a complete ujr deployment as one construct, for this repository's app
 * (./stack.ts) or for anyone's CDK app (`ujr/cdk`). It deploys the runtime of core/adapters/aws/
 * with the job types of the user's module (the `jobs` prop), which build/bundle.ts bundles with
 * ujr's code into the scheduler, the worker and the container at synth (./bundling.ts). The
 * module is also loaded at synth, in a child process (./user-jobs.ts), to validate the instance
 * configuration against its job types and to name them in the alarms. `cdk deploy` needs Node.js
 * and AWS credentials only, no Docker:
 *
 * - an EventBridge Scheduler schedule (retries, its own DLQ) ticking the scheduler Lambda
 *   (reserved concurrency 1) with `{}`;
 * - the task queue (SSE, TLS only, visibility 6× the worker timeout) and its dead-letter queue;
 *   the worker Lambda reads the queue through an event source mapping that reports partial
 *   batch failures and caps its concurrency;
 * - the three DynamoDB tables exactly as core/adapters/aws/tables.ts describes them, and the S3
 *   data bucket (with its access-log bucket);
 * - an ECS cluster running the conductor service (continuous tasks; its desired count belongs to
 *   the scheduler) and a task definition for long batch tasks. By default both run a stock
 *   Node.js image from ECR Public: an init container (the AWS CLI's public image) copies the
 *   container bundle, a CDK S3 asset of one file, into a volume the task's containers share,
 *   and the Node.js container checks the file's SHA-256 (computed at synth) before it runs it
 *   (containers/bootstrap.ts); the task role may read that one object and no other. With
 *   `containerImage: 'docker'` an image is built at deploy from a generated context instead (the
 *   same bundle on the same Node.js image; Docker needed then);
 * - least-privilege roles, log groups with retention, X-Ray tracing, the instance configuration
 *   seeded into the instances table, and a dashboard with alarms (./monitoring.ts);
 * - when asked (`stackOutputs`, as ./stack.ts does), the stack outputs the `ujr` CLI reads.
 *
 * Nothing has a hard-coded physical name: two stages (or two runners in one stack) never collide.
 */
import { ArnFormat, Aws, CfnOutput, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { z } from 'zod';
import { resolveJobsModule } from '../build/bundle.js';
import type { containerEnvSchema, schedulerEnvSchema, workerEnvSchema } from '../core/adapters/aws/env.js';
import type { LimitsConfig } from '../core/limit-config.js';
import type { Json } from '../core/types.js';
import { TABLES, type KeyAttribute, type TableDefinition, type TableNames } from '../core/adapters/aws/tables.js';
import { DEFAULT_CONDUCTOR_CONFIG } from '../core/cloud/conductor.js';
import { DEFAULT_WORKER_CONFIG } from '../core/cloud/worker.js';
import { bundledCode, handlerOf } from './bundling.js';
import { addProgram, CODE_FETCH_IMAGE, containerProgram, NODE_IMAGE, type ContainerImageSource } from './container-program.js';
import { JobRunnerPropsError, JobsModuleError } from './errors.js';
import { loadSeedLimits, readInstances, seedLimitsUpdateItem, seedUpdateItem, type InstanceEntry, type SeedEntry } from './instances.js';
import { JobRunnerMonitoring } from './monitoring.js';
import { acknowledge, acknowledgeWildcardResources } from './nag.js';
import { OUTPUT_DESCRIPTIONS, STACK_OUTPUTS, type StackOutputName } from './outputs.js';
import { inspectJobs } from './user-jobs.js';

/**
 * What the DynamoDB adapter (core/adapters/aws/dynamo-store.ts and dynamo/) calls: Get, Put, Update, Delete,
 * Query, Scan, BatchGet, BatchWrite, and TransactWriteItems for fenced writes, which IAM checks
 * action by action (its Put and Update as PutItem and UpdateItem, its ConditionCheck as
 * ConditionCheckItem; IAM has no TransactWriteItems action). test/unit/infra/iam.test.ts checks
 * this list against the adapter's commands, so a new call cannot ship without its permission.
 */
export const DYNAMODB_DATA_ACTIONS = [
  'dynamodb:BatchGetItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DeleteItem',
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:Query',
  'dynamodb:Scan',
  'dynamodb:UpdateItem',
] as const;

/** What the S3 adapter (core/adapters/aws/s3-objects.ts) calls on objects: Get and Head (s3:GetObject), Put, Delete. */
export const S3_OBJECT_ACTIONS = ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'] as const;

/** What a plan's read-only view of the object store (PlanContext.objects) calls on objects. */
export const S3_OBJECT_READ_ACTIONS = ['s3:GetObject'] as const;

/** ListObjectsV2 on the bucket. */
export const S3_BUCKET_ACTIONS = ['s3:ListBucket'] as const;

/** The container of the long-task definition, as the scheduler's RunTask override names it. */
export const LONG_TASK_CONTAINER = 'task';

/** The conductor service's container. */
export const CONDUCTOR_CONTAINER = 'conductor';

export { CODE_FETCH_CONTAINER, CODE_FETCH_IMAGE, NODE_IMAGE, type ContainerImageSource } from './container-program.js';

/** The example pipeline's archives (jobs/archiver.ts writes `archive/<instance>/…`). */
const DEFAULT_ARCHIVE_PREFIX = 'archive/';

/**
 * Kept free in every worker invocation on top of the worker's safety margin and grace, for what
 * happens before a task's clock starts: loading instances (a Scan, secrets), parsing, the claim.
 * A batch task whose timeout is the whole limit must still fit in the time left when it starts,
 * or the worker does not start it and queues it again for a later invocation.
 */
export const WORKER_START_HEADROOM = Duration.seconds(30);

/** The longest a Lambda function may run. */
const LAMBDA_MAX_TIMEOUT = Duration.minutes(15);

/** SQS's longest visibility timeout. */
const SQS_MAX_VISIBILITY = Duration.hours(12);

/** Every variable of a runtime's environment schema, set (the schema's defaults included). */
type EnvOf<S extends z.ZodType> = { [K in keyof z.infer<S>]-?: string };

/** The container's variables; the task message is set per long task by the scheduler's RunTask. */
type ContainerEnv = Omit<EnvOf<typeof containerEnvSchema>, 'UJR_TASK_MESSAGE'>;

/** Properties of a {@link JobRunner}. Every one but `jobs` has a default. */
export interface JobRunnerProps {
  /**
   * The module whose default export lists your job types (an array or a record of job types made
   * with `defineJob`): a path relative to the working directory (where `cdk` runs, your project's
   * root), or absolute. TypeScript or JavaScript; it and everything it imports (from `ujr`, your
   * own files, your dependencies) is bundled into the scheduler, the worker and the container at
   * synth. Job code imports from `ujr` only: `ujr/cdk` and `ujr/testing` stop the bundling.
   */
  readonly jobs: string;

  /**
   * The instance configuration seeded into the instances table at every deploy: the entries
   * themselves, or the path of an instances file (`{ "instances": [ ... ] }`, relative to the
   * working directory, or absolute). Entries are validated against the job types of `jobs`; an
   * invalid one fails the synthesis, naming the instance and field. A deploy replaces each listed
   * instance's configuration and keeps its run-time overrides; instances added at run time, or
   * removed from this list, are left alone (disable or delete them with the CLI).
   *
   * @default none: instances are added at run time (an item in the instances table)
   */
  readonly instances?: readonly InstanceEntry[] | string;

  /**
   * The shared limits (rate limits and concurrency caps) that tasks name in their `limits` option,
   * by limit name, as an instances file's `"limits"` holds them: for instances given in code, or
   * instead of the file's `"limits"` (giving both fails the synthesis). Each limit is validated at
   * synth; a bad one fails the synthesis, naming the limit and field. The whole object is written
   * into the instances table at every deploy (`{}` removes every limit), and the scheduler and
   * workers read it live, as they read the instances.
   *
   * @example
   * ```ts
   * new JobRunner(stack, 'Ujr', {
   *   jobs: 'jobs/index.ts',
   *   instances: [{ id: 'feed', job: 'feed-reader', schedule: '15m' }],
   *   limits: { 'feed-api': { rate: 300, per: '15m' }, 'archive-host': { concurrency: 3 } },
   * });
   * ```
   * @default none: the instances file's `"limits"`, if any; otherwise the limits item is left alone
   */
  readonly limits?: LimitsConfig;

  /**
   * Where the conductors and long tasks run from. `'stock'`: the official Node.js image
   * (`nodeImage`), with the bundled code fetched from a CDK S3 asset at start by an init
   * container (`codeFetchImage`) and checked against its SHA-256 before it runs; deploying needs
   * no Docker. `'docker'`: an image built at deploy from the same bundle on the same Node.js image
   * (a generated build context: no Dockerfile of yours), pushed to the CDK assets repository;
   * deploying needs Docker (or a compatible builder), and one for ARM64 on an x86 machine.
   *
   * @default 'stock'
   */
  readonly containerImage?: ContainerImageSource;

  /**
   * The Node.js image the containers run (`'stock'`) or are built from (`'docker'`). It must hold
   * `node` (20 or later) and, for `'docker'`, a user `node`.
   *
   * @default {@link NODE_IMAGE}, the official Node.js 22 image on ECR Public
   */
  readonly nodeImage?: string;

  /**
   * The image of the init container that copies the code from S3 (`containerImage: 'stock'`): it
   * runs `aws s3api get-object` as its command.
   *
   * @default {@link CODE_FETCH_IMAGE}, the AWS CLI's image on ECR Public
   */
  readonly codeFetchImage?: string;

  /**
   * Write the outputs the `ujr` CLI reads (`--stack <name>`: tables, queues, bucket, functions,
   * log groups, cluster…) at the stack's top level, under the keys of `STACK_OUTPUTS`. One runner
   * per stack may do it; `UjrStack` does it for its runner.
   *
   * @default false
   */
  readonly stackOutputs?: boolean;

  /**
   * How often EventBridge Scheduler ticks the scheduler: a whole number of minutes.
   *
   * @default Duration.minutes(1)
   */
  readonly tick?: Duration;

  /**
   * Memory of the scheduler Lambda, in MiB.
   *
   * @default 512
   */
  readonly schedulerMemorySize?: number;

  /**
   * Timeout of the scheduler Lambda. A tick plans for at most a minute (the scheduler's plan
   * timeout) and then dispatches.
   *
   * @default Duration.minutes(2)
   */
  readonly schedulerTimeout?: Duration;

  /**
   * Reserve a concurrency of 1 for the scheduler, so that ticks never overlap (overlapping ticks
   * are safe, only wasteful). Accounts whose concurrency quota is still the new-account 10 cannot
   * reserve any: turn this off there, or ask for a higher quota.
   *
   * @default true
   */
  readonly reserveSchedulerConcurrency?: boolean;

  /**
   * Memory of the worker Lambda, in MiB (CPU grows with it).
   *
   * @default 1024
   */
  readonly workerMemorySize?: number;

  /**
   * Timeout of the worker Lambda, at most 15 minutes. Batch tasks whose timeout does not fit in
   * it (less the worker's safety margin and grace, and {@link WORKER_START_HEADROOM}) run as long
   * tasks on Fargate instead; the task queue's visibility timeout is 6× this (plus the batching
   * window).
   *
   * @default Duration.minutes(15)
   */
  readonly workerTimeout?: Duration;

  /**
   * Messages per worker invocation (1–10, or up to 10,000 with a batching window).
   *
   * @default 10
   */
  readonly workerBatchSize?: number;

  /**
   * How long the event source mapping gathers messages before it invokes the worker.
   *
   * @default Duration.seconds(1)
   */
  readonly workerMaxBatchingWindow?: Duration;

  /**
   * Most concurrent worker invocations the event source mapping starts (2–1000): the
   * backpressure on DynamoDB, S3 and whatever the tasks call.
   *
   * @default 10
   */
  readonly workerMaxConcurrency?: number;

  /**
   * Deliveries of a task message before the queue moves it to the dead-letter queue (at least 5).
   *
   * @default 5
   */
  readonly maxReceiveCount?: number;

  /**
   * CPU units of a conductor container (256 = ¼ vCPU; a valid Fargate CPU/memory pair with
   * `conductorMemoryMiB`).
   *
   * @default 256
   */
  readonly conductorCpu?: number;

  /**
   * Memory of a conductor container, in MiB.
   *
   * @default 512
   */
  readonly conductorMemoryMiB?: number;

  /**
   * Most conductor containers the scheduler starts.
   *
   * @default 4
   */
  readonly maxConductors?: number;

  /**
   * Continuous tasks one conductor runs.
   *
   * @default 4
   */
  readonly tasksPerConductor?: number;

  /**
   * CPU units of a long batch task's container.
   *
   * @default 1024
   */
  readonly longTaskCpu?: number;

  /**
   * Memory of a long batch task's container, in MiB.
   *
   * @default 2048
   */
  readonly longTaskMemoryMiB?: number;

  /**
   * CPU architecture of the containers (the Lambdas run on ARM64). The stock images exist for
   * both. With `containerImage: 'docker'` the image is built for it at deploy: building ARM64 on
   * an x86 machine needs Docker's QEMU emulation (Docker Desktop has it).
   *
   * @default ecs.CpuArchitecture.ARM64
   */
  readonly containerArchitecture?: ecs.CpuArchitecture;

  /**
   * An e-mail address subscribed to the alarm topic (AWS sends a confirmation mail first).
   *
   * @default no subscription: subscribe to the topic (output `AlarmTopicArn`) yourself
   */
  readonly alarmEmail?: string;

  /**
   * Prefixes of the SSM parameter names instance params may reference with
   * `{ "$secret": "ssm:/name" }`; the runtime may read the parameters under them and no other.
   *
   * @default ['/ujr/']
   */
  readonly ssmParameterPrefixes?: readonly string[];

  /**
   * Prefixes of the Secrets Manager secret names instance params may reference with
   * `{ "$secret": "secretsmanager:name" }`.
   *
   * @default ['ujr/']
   */
  readonly secretNamePrefixes?: readonly string[];

  /**
   * Customer managed KMS keys of those parameters and secrets (the AWS managed keys need no grant).
   *
   * @default none
   */
  readonly secretKeys?: readonly kms.IKey[];

  /**
   * Retention of every log group (functions, containers, VPC flow logs).
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * What happens to the data when the stack is deleted: the data bucket, its access logs and the
   * three tables. With `RETAIN` the tables are also protected from deletion. `DESTROY` deletes
   * the tables, and the buckets only if they are empty.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly dataRemovalPolicy?: RemovalPolicy;

  /**
   * Objects under this prefix move to S3 Glacier Instant Retrieval after `archiveTransitionAfter`.
   *
   * @default 'archive/'
   */
  readonly archivePrefix?: string;

  /**
   * Age at which archived objects move to S3 Glacier Instant Retrieval.
   *
   * @default Duration.days(30)
   */
  readonly archiveTransitionAfter?: Duration;

  /**
   * The VPC of the containers. The default is a new VPC with public subnets only and no NAT
   * gateway, so that an idle deployment costs nothing: conductors and long tasks get public IPs
   * (no inbound rule lets anything in) and reach AWS APIs over the internet. With private subnets
   * (behind a NAT gateway or VPC endpoints) tasks have no public address, at the NAT's hourly cost.
   *
   * @default a new VPC: 2 AZs, public subnets only, no NAT gateway
   */
  readonly vpc?: ec2.IVpc;

  /**
   * The subnets of the containers.
   *
   * @default public subnets of the default VPC; private subnets with egress of a given `vpc`
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * Whether containers get a public IP (needed in public subnets without NAT).
   *
   * @default true with the default VPC, false with a given `vpc`
   */
  readonly assignPublicIp?: boolean;

  /**
   * The CloudWatch namespace of ujr's metrics (EMF, dimensions `service` and `jobType`).
   *
   * @default `ujr/<stack name>`
   */
  readonly metricsNamespace?: string;

  /**
   * The alarm on the task queue fires when its oldest message is older than this.
   *
   * @default Duration.minutes(30)
   */
  readonly maxMessageAge?: Duration;

  /**
   * The failure-rate alarm of a job type fires when failed / (succeeded + failed) over 15 minutes
   * reaches this share.
   *
   * @default 0.2
   */
  readonly failureRateThreshold?: number;
}

/** The defaults, in one place (the TSDoc above says the same). */
const DEFAULTS = {
  tick: Duration.minutes(1),
  schedulerMemorySize: 512,
  schedulerTimeout: Duration.minutes(2),
  workerMemorySize: 1024,
  workerTimeout: LAMBDA_MAX_TIMEOUT,
  workerBatchSize: 10,
  workerMaxBatchingWindow: Duration.seconds(1),
  workerMaxConcurrency: 10,
  maxReceiveCount: 5,
  conductorCpu: 256,
  conductorMemoryMiB: 512,
  maxConductors: 4,
  tasksPerConductor: 4,
  longTaskCpu: 1024,
  longTaskMemoryMiB: 2048,
  ssmParameterPrefixes: ['/ujr/'],
  secretNamePrefixes: ['ujr/'],
  logRetention: logs.RetentionDays.ONE_MONTH,
  archiveTransitionAfter: Duration.days(30),
  maxMessageAge: Duration.minutes(30),
  failureRateThreshold: 0.2,
} as const;

/** The log groups of a {@link JobRunner}, one per function and container kind. */
export interface JobRunnerLogGroups {
  readonly scheduler: logs.LogGroup;
  /** The follow-up planner's (the scheduler's code, invoked by the plan queue). */
  readonly planner: logs.LogGroup;
  readonly worker: logs.LogGroup;
  readonly conductor: logs.LogGroup;
  readonly longTask: logs.LogGroup;
}

/**
 * A ujr deployment: scheduler and worker Lambdas, task queue, tables, data bucket, Fargate
 * conductors and long tasks, monitoring. See the module comment for the parts.
 *
 * @example
 * ```ts
 * import { App, Stack } from 'aws-cdk-lib';
 * import { JobRunner } from 'ujr/cdk';
 *
 * const app = new App();
 * const stack = new Stack(app, 'Research');
 * new JobRunner(stack, 'Ujr', { jobs: 'jobs/index.ts', instances: 'jobs/instances.json', stackOutputs: true, alarmEmail: 'me@example.org' });
 * ```
 */
export class JobRunner extends Construct {
  readonly tables: { readonly [K in keyof TableNames]: dynamodb.Table };
  readonly dataBucket: s3.Bucket;
  readonly accessLogsBucket: s3.Bucket;
  readonly taskQueue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  /** Where EventBridge Scheduler puts ticks it could not deliver. */
  readonly tickDeadLetterQueue: sqs.Queue;
  /** Follow-up requests: workers and containers ask here for their instance to be planned again when tasks end. */
  readonly planQueue: sqs.Queue;
  readonly schedulerFunction: lambda.Function;
  /** The scheduler's code and role, invoked by the plan queue for follow-up plans (not reserved to one at a time as ticks are). */
  readonly plannerFunction: lambda.Function;
  readonly workerFunction: lambda.Function;
  readonly schedule: scheduler.Schedule;
  readonly logGroups: JobRunnerLogGroups;
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.Cluster;
  readonly conductorTaskDefinition: ecs.FargateTaskDefinition;
  readonly conductorService: ecs.FargateService;
  readonly longTaskDefinition: ecs.FargateTaskDefinition;
  readonly securityGroup: ec2.SecurityGroup;
  readonly monitoring: JobRunnerMonitoring;
  readonly metricsNamespace: string;
  /** The worker's batch task limit: batch tasks with a longer timeout run on Fargate. */
  readonly workerTaskLimit: Duration;
  /** The jobs module bundled into the code (absolute). */
  readonly jobsModule: string;
  /** The names of the job types of the jobs module. */
  readonly jobTypes: readonly string[];
  /** The container code fetched at start (`containerImage: 'stock'`): a CDK S3 asset of one file. */
  readonly containerCode?: s3assets.Asset;

  constructor(scope: Construct, id: string, props: JobRunnerProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const settings = resolveProps(props);
    this.jobsModule = jobsModuleOf(props);
    const inspected = inspectJobsOf(this.jobsModule, props.instances ?? [], props.limits);
    this.jobTypes = inspected.jobTypes;
    this.metricsNamespace = props.metricsNamespace ?? `ujr/${stack.stackName}`;
    const dataRemovalPolicy = props.dataRemovalPolicy ?? RemovalPolicy.RETAIN;

    // ---------------------------------------------------------------------------------------
    // Data: three tables and a bucket

    this.tables = {
      leases: tableOf(this, 'LeasesTable', TABLES.leases, dataRemovalPolicy),
      runs: tableOf(this, 'RunsTable', TABLES.runs, dataRemovalPolicy),
      instances: tableOf(this, 'InstancesTable', TABLES.instances, dataRemovalPolicy),
    };

    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogsBucket', {
      // Server access logging delivers with SSE-S3 only.
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(365) }],
      removalPolicy: dataRemovalPolicy,
    });

    this.dataBucket = new s3.Bucket(this, 'DataBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        {
          id: 'archive-to-glacier-instant-retrieval',
          prefix: props.archivePrefix ?? DEFAULT_ARCHIVE_PREFIX,
          transitions: [{ storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: settings.archiveTransitionAfter }],
        },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
      removalPolicy: dataRemovalPolicy,
    });
    this.logAccessOf(this.dataBucket, 'data/');

    // ---------------------------------------------------------------------------------------
    // Queues

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledge(this.deadLetterQueue, {
      'Serverless-SQSRedrivePolicy': 'This is the task queue\'s dead-letter queue: the end of the line, read by people and `ujr redrive`.',
    });

    const visibilityTimeout = Duration.seconds(settings.workerTimeout.toSeconds() * 6 + settings.workerMaxBatchingWindow.toSeconds());
    this.taskQueue = new sqs.Queue(this, 'TaskQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: settings.maxReceiveCount },
    });

    this.tickDeadLetterQueue = new sqs.Queue(this, 'TickDeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledge(this.tickDeadLetterQueue, {
      'AwsSolutions-SQS3': 'This is the dead-letter queue of the tick schedule; the alarm on it reports ticks EventBridge Scheduler could not deliver.',
      'Serverless-SQSRedrivePolicy': 'This is the tick schedule\'s dead-letter queue: undeliverable ticks end here, nothing reads them again.',
    });

    // Follow-up requests are a shortcut to a plan the next tick makes anyway: one that keeps
    // failing expires instead of going to a dead-letter queue.
    this.planQueue = new sqs.Queue(this, 'PlanQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(settings.schedulerTimeout.toSeconds() * 6),
      retentionPeriod: Duration.seconds(Math.max(60, settings.tick.toSeconds() * 2)),
    });
    acknowledge(this.planQueue, {
      'AwsSolutions-SQS3': 'Follow-up requests that keep failing expire (retention: two ticks): the tick plans every due instance anyway, so there is nothing to keep.',
      'Serverless-SQSRedrivePolicy': 'Follow-up requests that keep failing expire (retention: two ticks): the tick plans every due instance anyway, so there is nothing to keep.',
    });

    // ---------------------------------------------------------------------------------------
    // Network and containers

    const defaultVpc = props.vpc === undefined;
    this.vpc = props.vpc ?? this.defaultVpc(settings.logRetention);
    const subnets = this.vpc.selectSubnets(props.vpcSubnets ?? { subnetType: defaultVpc ? ec2.SubnetType.PUBLIC : ec2.SubnetType.PRIVATE_WITH_EGRESS });
    const assignPublicIp = props.assignPublicIp ?? defaultVpc;

    this.securityGroup = new ec2.SecurityGroup(this, 'ContainerSecurityGroup', {
      vpc: this.vpc,
      description: 'ujr conductors and long tasks: nothing inbound; outbound to AWS APIs and whatever the jobs fetch',
      allowAllOutbound: true,
    });

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: this.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });

    const architecture = props.containerArchitecture ?? ecs.CpuArchitecture.ARM64;
    const conductorLogs = this.logGroup('ConductorLogs', settings.logRetention);
    const longTaskLogs = this.logGroup('LongTaskLogs', settings.logRetention);

    const containerEnv: ContainerEnv = {
      ...this.dataEnv(),
      UJR_TASK_QUEUE_URL: this.taskQueue.queueUrl,
      UJR_DEAD_LETTER_QUEUE_URL: this.deadLetterQueue.queueUrl,
      UJR_PLAN_QUEUE_URL: this.planQueue.queueUrl,
      UJR_TASKS_PER_CONDUCTOR: String(settings.tasksPerConductor),
      UJR_CONDUCTOR_LEASE_TTL_MS: String(DEFAULT_CONDUCTOR_CONFIG.leaseTtlMs),
      UJR_CONDUCTOR_POLL_MS: String(DEFAULT_CONDUCTOR_CONFIG.pollMs),
      UJR_GRACE_MS: String(DEFAULT_CONDUCTOR_CONFIG.graceMs),
    };
    const runtimePlatform = { cpuArchitecture: architecture, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX };
    // One program for both task definitions: the container bundle over the user's job types.
    const program = containerProgram(this, {
      jobsModule: this.jobsModule,
      source: props.containerImage ?? 'stock',
      architecture,
      nodeImage: props.nodeImage ?? NODE_IMAGE,
      fetchImage: props.codeFetchImage ?? CODE_FETCH_IMAGE,
    });
    this.containerCode = program.kind === 'stock' ? program.asset : undefined;

    this.conductorTaskDefinition = new ecs.FargateTaskDefinition(this, 'ConductorTask', {
      cpu: settings.conductorCpu,
      memoryLimitMiB: settings.conductorMemoryMiB,
      runtimePlatform,
    });
    addProgram(this.conductorTaskDefinition, program, {
      id: 'Conductor',
      containerName: CONDUCTOR_CONTAINER,
      environment: containerEnv,
      logGroup: conductorLogs,
      streamPrefix: 'conductor',
    });

    this.longTaskDefinition = new ecs.FargateTaskDefinition(this, 'LongTask', {
      cpu: settings.longTaskCpu,
      memoryLimitMiB: settings.longTaskMemoryMiB,
      runtimePlatform,
    });
    // UJR_TASK_MESSAGE comes with each RunTask, as an override of this container's environment.
    addProgram(this.longTaskDefinition, program, {
      id: 'Task',
      containerName: LONG_TASK_CONTAINER,
      environment: containerEnv,
      logGroup: longTaskLogs,
      streamPrefix: 'long-task',
    });

    // The desired count is the scheduler's (UpdateService on every tick, from the continuous
    // tasks on the board). CloudFormation sets 0 when it creates the service and sends it again
    // only when a deploy changes the service (a new image, say): conductors then stop (SIGTERM,
    // continuous tasks are handed back to the board) and the next tick starts them again.
    this.conductorService = new ecs.FargateService(this, 'ConductorService', {
      cluster: this.cluster,
      taskDefinition: this.conductorTaskDefinition,
      desiredCount: 0,
      assignPublicIp,
      vpcSubnets: { subnets: subnets.subnets },
      securityGroups: [this.securityGroup],
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
    });

    // ---------------------------------------------------------------------------------------
    // Functions

    this.workerTaskLimit = Duration.millis(workerTaskLimitMs(settings.workerTimeout));

    const schedulerLogs = this.logGroup('SchedulerLogs', settings.logRetention);
    const workerLogs = this.logGroup('WorkerLogs', settings.logRetention);
    const plannerLogs = this.logGroup('PlannerLogs', settings.logRetention);
    this.logGroups = { scheduler: schedulerLogs, planner: plannerLogs, worker: workerLogs, conductor: conductorLogs, longTask: longTaskLogs };

    const schedulerEnv: EnvOf<typeof schedulerEnvSchema> = {
      ...this.dataEnv(),
      UJR_TASK_QUEUE_URL: this.taskQueue.queueUrl,
      UJR_DEAD_LETTER_QUEUE_URL: this.deadLetterQueue.queueUrl,
      UJR_WORKER_TASK_LIMIT_MS: String(this.workerTaskLimit.toMilliseconds()),
      UJR_TICK_MS: String(settings.tick.toMilliseconds()),
      UJR_CLUSTER: this.cluster.clusterName,
      UJR_CONDUCTOR_SERVICE: this.conductorService.serviceName,
      UJR_LONG_TASK_DEFINITION: this.longTaskDefinition.family,
      UJR_LONG_TASK_CONTAINER: LONG_TASK_CONTAINER,
      UJR_SUBNETS: subnets.subnetIds.join(','),
      UJR_SECURITY_GROUPS: this.securityGroup.securityGroupId,
      UJR_ASSIGN_PUBLIC_IP: String(assignPublicIp),
      UJR_TASKS_PER_CONDUCTOR: String(settings.tasksPerConductor),
      UJR_MAX_CONDUCTORS: String(settings.maxConductors),
    };

    this.schedulerFunction = new lambda.Function(this, 'SchedulerFunction', {
      description: 'ujr scheduler: plans the due instances on every tick and dispatches their tasks',
      ...LAMBDA_BASE,
      code: bundledCode('scheduler', this.jobsModule),
      handler: handlerOf('scheduler'),
      role: this.lambdaRole('SchedulerRole', schedulerLogs),
      logGroup: schedulerLogs,
      memorySize: settings.schedulerMemorySize,
      timeout: settings.schedulerTimeout,
      environment: schedulerEnv,
      ...(props.reserveSchedulerConcurrency === false ? {} : { reservedConcurrentExecutions: 1 }),
      // A failed tick is not replayed: the next one plans from the board again.
      retryAttempts: 0,
      maxEventAge: Duration.seconds(Math.max(60, settings.tick.toSeconds() * 2)),
    });

    // Follow-up plans: the scheduler's code and role, fed by the plan queue. Ticks stay one at a
    // time; follow-ups of different instances run side by side, each instance's one at a time
    // (its follow-up gate on the board).
    const schedulerRole = this.schedulerFunction.role;
    if (!schedulerRole) throw new Error('the scheduler function has no role');
    plannerLogs.grantWrite(schedulerRole);
    this.plannerFunction = new lambda.Function(this, 'PlannerFunction', {
      description: 'ujr planner: plans an instance again as soon as its tasks end (follow-up requests from the plan queue)',
      ...LAMBDA_BASE,
      code: bundledCode('scheduler', this.jobsModule),
      handler: handlerOf('scheduler'),
      role: schedulerRole,
      logGroup: plannerLogs,
      memorySize: settings.schedulerMemorySize,
      timeout: settings.schedulerTimeout,
      environment: schedulerEnv,
    });
    this.plannerFunction.addEventSource(
      new SqsEventSource(this.planQueue, { batchSize: 10, reportBatchItemFailures: true, maxConcurrency: PLANNER_MAX_CONCURRENCY }),
    );
    acknowledge(this.plannerFunction, {
      'Serverless-LambdaDLQ': 'The planner is invoked by its SQS event source mapping only; a request that keeps failing expires with the plan queue\'s retention, and the tick plans the instance.',
      'Serverless-LambdaEventSourceMappingDestination': 'A follow-up request that keeps failing expires with the plan queue\'s retention: the tick plans the instance anyway.',
    });

    const workerEnv: EnvOf<typeof workerEnvSchema> = {
      ...this.dataEnv(),
      UJR_TASK_QUEUE_URL: this.taskQueue.queueUrl,
      UJR_DEAD_LETTER_QUEUE_URL: this.deadLetterQueue.queueUrl,
      UJR_PLAN_QUEUE_URL: this.planQueue.queueUrl,
      UJR_MAX_RECEIVE_COUNT: String(settings.maxReceiveCount),
      UJR_SAFETY_MARGIN_MS: String(DEFAULT_WORKER_CONFIG.safetyMarginMs),
      UJR_GRACE_MS: String(DEFAULT_WORKER_CONFIG.graceMs),
    };

    this.workerFunction = new lambda.Function(this, 'WorkerFunction', {
      description: 'ujr worker: runs the batch tasks dispatched to the task queue',
      ...LAMBDA_BASE,
      code: bundledCode('worker', this.jobsModule),
      handler: handlerOf('worker'),
      role: this.lambdaRole('WorkerRole', workerLogs),
      logGroup: workerLogs,
      memorySize: settings.workerMemorySize,
      timeout: settings.workerTimeout,
      environment: workerEnv,
    });
    this.workerFunction.addEventSource(
      new SqsEventSource(this.taskQueue, {
        batchSize: settings.workerBatchSize,
        maxBatchingWindow: settings.workerMaxBatchingWindow,
        reportBatchItemFailures: true,
        maxConcurrency: settings.workerMaxConcurrency,
      }),
    );
    acknowledge(this.workerFunction, {
      'Serverless-LambdaDLQ': 'The worker is invoked by its SQS event source mapping, never asynchronously: the task queue\'s redrive policy is its dead-letter queue.',
      'Serverless-LambdaEventSourceMappingDestination':
        'SQS event source mappings take no on-failure destination; a message that keeps failing goes to the task queue\'s dead-letter queue by its redrive policy.',
    });
    acknowledge(this.schedulerFunction, {
      'Serverless-LambdaDLQ': 'A failed tick is dropped on purpose (see LambdaAsyncFailureDestination): there is nothing to replay.',
      'Serverless-LambdaAsyncFailureDestination':
        'A failed tick is dropped on purpose (retryAttempts 0): the next tick plans from the board again. The scheduler-errors and missed-ticks alarms report failures; ticks EventBridge Scheduler cannot deliver go to the schedule\'s own DLQ.',
    });

    // ---------------------------------------------------------------------------------------
    // The tick

    const tickRole = new iam.Role(this, 'TickRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }),
    });
    this.schedule = new scheduler.Schedule(this, 'TickSchedule', {
      description: 'ujr tick: invokes the scheduler with {}',
      schedule: scheduler.ScheduleExpression.rate(settings.tick),
      target: new schedulerTargets.LambdaInvoke(this.schedulerFunction, {
        role: tickRole,
        input: scheduler.ScheduleTargetInput.fromObject({}),
        retryAttempts: 2,
        maxEventAge: Duration.minutes(5),
        deadLetterQueue: this.tickDeadLetterQueue,
      }),
    });
    acknowledgeWildcardResources(tickRole, [`${this.schedulerFunction.functionArn}:*`], 'The target grant of EventBridge Scheduler covers the scheduler function\'s versions and aliases (lambda:InvokeFunction on <arn>:*), of this one function only.');

    // ---------------------------------------------------------------------------------------
    // Permissions

    const runtimes: iam.IGrantable[] = [this.schedulerFunction, this.workerFunction, this.conductorTaskDefinition.taskRole, this.longTaskDefinition.taskRole];
    for (const grantee of runtimes) {
      for (const role of Object.keys(TABLES) as (keyof TableNames)[]) grantTableData(this.tables[role], TABLES[role], grantee);
      // Plans only read objects (PlanContext.objects); tasks, reverts and conductors write them.
      grantObjects(this.dataBucket, grantee, grantee === this.schedulerFunction ? 'read' : 'readWrite');
      this.grantSecrets(grantee, settings.ssmParameterPrefixes, settings.secretNamePrefixes, props.secretKeys ?? []);
    }
    // Dispatch; the worker's delayed retries; poison messages recorded and sent to the DLQ.
    this.taskQueue.grantSendMessages(this.schedulerFunction);
    this.taskQueue.grantSendMessages(this.workerFunction);
    this.deadLetterQueue.grantSendMessages(this.workerFunction);
    // A long task runs its retries itself but sends its last failure to the DLQ like the worker.
    this.taskQueue.grantSendMessages(this.longTaskDefinition.taskRole);
    this.deadLetterQueue.grantSendMessages(this.longTaskDefinition.taskRole);
    this.grantFleet(this.schedulerFunction);
    // Follow-up requests when tasks end.
    for (const sender of [this.workerFunction, this.conductorTaskDefinition.taskRole, this.longTaskDefinition.taskRole]) this.planQueue.grantSendMessages(sender);

    // ---------------------------------------------------------------------------------------
    // The instance configuration, written at every deploy

    this.seedInstances(inspected.entries, inspected.limits, settings.logRetention);

    // ---------------------------------------------------------------------------------------
    // Monitoring

    this.monitoring = new JobRunnerMonitoring(this, 'Monitoring', {
      namespace: this.metricsNamespace,
      jobTypes: [...this.jobTypes],
      schedulerFunction: this.schedulerFunction,
      workerFunction: this.workerFunction,
      taskQueue: this.taskQueue,
      deadLetterQueue: this.deadLetterQueue,
      tickDeadLetterQueue: this.tickDeadLetterQueue,
      cluster: this.cluster,
      conductorService: this.conductorService,
      tick: settings.tick,
      maxMessageAge: settings.maxMessageAge,
      failureRateThreshold: settings.failureRateThreshold,
      logRetention: settings.logRetention,
      ...(props.alarmEmail === undefined ? {} : { alarmEmail: props.alarmEmail }),
    });

    if (props.stackOutputs) this.addStackOutputs();
  }

  /** The outputs the CLI reads, at the stack's top level under the keys of ./outputs.ts. */
  private addStackOutputs(): void {
    const stack = Stack.of(this);
    const taken = Object.values(STACK_OUTPUTS).find((key) => stack.node.tryFindChild(key) !== undefined);
    if (taken !== undefined) {
      throw new JobRunnerPropsError(`JobRunner ${this.node.path}: stackOutputs: the stack already holds an output ${taken} (another runner's?); ask one runner per stack for the outputs the CLI reads`);
    }
    const values: Record<StackOutputName, string> = {
      region: Aws.REGION,
      leasesTable: this.tables.leases.tableName,
      runsTable: this.tables.runs.tableName,
      instancesTable: this.tables.instances.tableName,
      dataBucket: this.dataBucket.bucketName,
      taskQueueUrl: this.taskQueue.queueUrl,
      taskQueueArn: this.taskQueue.queueArn,
      deadLetterQueueUrl: this.deadLetterQueue.queueUrl,
      deadLetterQueueArn: this.deadLetterQueue.queueArn,
      tickDeadLetterQueueUrl: this.tickDeadLetterQueue.queueUrl,
      schedulerFunction: this.schedulerFunction.functionName,
      workerFunction: this.workerFunction.functionName,
      schedulerLogGroup: this.logGroups.scheduler.logGroupName,
      workerLogGroup: this.logGroups.worker.logGroupName,
      conductorLogGroup: this.logGroups.conductor.logGroupName,
      longTaskLogGroup: this.logGroups.longTask.logGroupName,
      cluster: this.cluster.clusterName,
      conductorService: this.conductorService.serviceName,
      longTaskDefinition: this.longTaskDefinition.family,
      metricsNamespace: this.metricsNamespace,
      dashboard: this.monitoring.dashboard.dashboardName,
      alarmTopic: this.monitoring.alarmTopic.topicArn,
    };
    for (const [name, value] of Object.entries(values) as [StackOutputName, string][]) {
      new CfnOutput(stack, STACK_OUTPUTS[name], { value, description: OUTPUT_DESCRIPTIONS[name] });
    }
  }

  /**
   * Server access logging of `bucket` into the access-log bucket, delivered under a bucket policy
   * (what the `serverAccessLogsBucket` prop does only under the `serverAccessLogsUseBucketPolicy`
   * feature flag; written out here so the construct works in any app, whatever its flags).
   */
  private logAccessOf(bucket: s3.Bucket, prefix: string): void {
    (bucket.node.defaultChild as s3.CfnBucket).loggingConfiguration = { destinationBucketName: this.accessLogsBucket.bucketName, logFilePrefix: prefix };
    this.accessLogsBucket.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('logging.s3.amazonaws.com')],
        actions: ['s3:PutObject'],
        resources: [this.accessLogsBucket.arnForObjects(`${prefix}*`)],
        conditions: { ArnLike: { 'aws:SourceArn': bucket.bucketArn }, StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    );
  }

  /** The variables every runtime reads: tables, bucket, metrics. */
  private dataEnv() {
    return {
      UJR_LEASES_TABLE: this.tables.leases.tableName,
      UJR_RUNS_TABLE: this.tables.runs.tableName,
      UJR_INSTANCES_TABLE: this.tables.instances.tableName,
      UJR_DATA_BUCKET: this.dataBucket.bucketName,
      UJR_S3_FORCE_PATH_STYLE: 'false',
      UJR_METRICS_NAMESPACE: this.metricsNamespace,
      UJR_INSTANCES_MAX_AGE_MS: String(60_000),
    };
  }

  private logGroup(id: string, retention: logs.RetentionDays): logs.LogGroup {
    return new logs.LogGroup(this, id, { retention });
  }

  /** A Lambda role that may write its own log group, and nothing else yet (no AWSLambdaBasicExecutionRole: it may create any log group). */
  private lambdaRole(id: string, logGroup: logs.LogGroup): iam.Role {
    const role = new iam.Role(this, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    logGroup.grantWrite(role);
    acknowledge(role, {
      'AwsSolutions-IAM5[Resource::*]': 'X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource-level permissions.',
    });
    return role;
  }

  /** The default VPC: public subnets in two AZs, no NAT gateway (no hourly cost), flow logs of rejected traffic. */
  private defaultVpc(retention: logs.RetentionDays): ec2.Vpc {
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
      // Nothing uses the default security group; restricting it would add a custom-resource Lambda.
      restrictDefaultSecurityGroup: false,
    });
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(this, 'FlowLogs', { retention })),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
    return vpc;
  }

  /** Reading the SSM parameters and secrets under the prefixes (instance params' `$secret` references). */
  private grantSecrets(grantee: iam.IGrantable, ssmPrefixes: readonly string[], secretPrefixes: readonly string[], keys: readonly kms.IKey[]): void {
    const stack = Stack.of(this);
    const parameters = ssmPrefixes.map((prefix) =>
      stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: `${prefix.replace(/^\/+/, '')}*`, arnFormat: ArnFormat.SLASH_RESOURCE_NAME }),
    );
    const secrets = secretPrefixes.map((prefix) => stack.formatArn({ service: 'secretsmanager', resource: 'secret', resourceName: `${prefix}*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME }));
    if (parameters.length > 0) iam.Grant.addToPrincipal({ grantee, actions: ['ssm:GetParameter'], resourceArns: parameters });
    if (secrets.length > 0) iam.Grant.addToPrincipal({ grantee, actions: ['secretsmanager:GetSecretValue'], resourceArns: secrets });
    for (const key of keys) key.grantDecrypt(grantee);
    acknowledgeWildcardResources(
      roleOf(grantee),
      [...parameters, ...secrets],
      'Instance params may reference any SSM parameter or secret under the configured prefixes ({ "$secret": ... }); the prefix is the boundary.',
    );
  }

  /** What the scheduler does to the fleet: size the conductor service, run long tasks. */
  private grantFleet(grantee: iam.IGrantable): void {
    const stack = Stack.of(this);
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['ecs:DescribeServices', 'ecs:UpdateService'],
      resourceArns: [this.conductorService.serviceArn],
    });
    // RunTask names the family; ECS runs its latest active revision.
    const runTaskArn = stack.formatArn({ service: 'ecs', resource: 'task-definition', resourceName: `${this.longTaskDefinition.family}:*`, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ecs:RunTask'],
        resources: [runTaskArn],
        conditions: { ArnEquals: { 'ecs:cluster': this.cluster.clusterArn } },
      }),
    );
    acknowledgeWildcardResources(roleOf(grantee), [runTaskArn], 'RunTask runs the latest revision of the long-task family: every revision of this one family, in this cluster only.');
    const executionRole = this.longTaskDefinition.executionRole;
    if (!executionRole) throw new JobRunnerPropsError('the long-task definition has no execution role; it needs one to pull the image');
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [this.longTaskDefinition.taskRole.roleArn, executionRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
      }),
    );
  }

  /**
   * One custom resource per instance: an UpdateItem of its config item at create and update (as
   * ./instances.ts renders it), nothing at delete, so that the configuration outlives the stack
   * as the retained tables do.
   */
  private seedInstances(entries: readonly SeedEntry[], limits: { [name: string]: Json } | undefined, retention: logs.RetentionDays): void {
    if (entries.length === 0 && limits === undefined) return;
    const seed = new Construct(this, 'Seed');
    const logGroup = new logs.LogGroup(seed, 'Logs', { retention });
    const role = new iam.Role(seed, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    logGroup.grantWrite(role);
    iam.Grant.addToPrincipal({ grantee: role, actions: ['dynamodb:UpdateItem'], resourceArns: [this.tables.instances.tableArn] });
    /** A custom resource that sends this UpdateItem at create and update, nothing at delete. */
    const seedItem = (id: string, resourceType: string, parameters: unknown, physicalId: string) => {
      const call: cr.AwsSdkCall = {
        service: 'DynamoDB',
        action: 'UpdateItem',
        parameters,
        physicalResourceId: cr.PhysicalResourceId.of(physicalId),
        logging: cr.Logging.withDataHidden(),
      };
      const resource = new cr.AwsCustomResource(seed, id, { resourceType, onCreate: call, onUpdate: call, role, logGroup, installLatestAwsSdk: false, timeout: Duration.minutes(2) });
      resource.node.addDependency(role);
    };
    for (const entry of entries) seedItem(entry.id, 'Custom::UjrInstanceConfig', seedUpdateItem(this.tables.instances.tableName, entry), entry.id);
    // The shared limits' definitions, one item written whole (the limits prop or the file's
    // "limits"), read with the instances. '#limits': no instance id starts with '#', so no
    // instance's resource has this id.
    if (limits !== undefined) seedItem('#limits', 'Custom::UjrLimits', seedLimitsUpdateItem(this.tables.instances.tableName, limits), 'limits');
    // The provider is a singleton function of the stack (one per stack, whatever the number of instances).
    const provider = Stack.of(this).node.tryFindChild(`AWS${cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace(/-/g, '')}`);
    if (provider) {
      acknowledge(provider, {
        'Serverless-LambdaDLQ': 'CloudFormation invokes the seeding function synchronously and reports its failure as the deploy\'s.',
        'Serverless-LambdaTracing': 'A deploy-time custom resource (CDK\'s AwsCustomResource); its calls are in CloudFormation\'s events and the function\'s log.',
        'Serverless-LambdaDefaultMemorySize': 'CDK\'s AwsCustomResource provider: one small UpdateItem per instance at deploy.',
      });
    }
  }
}

/** Lambda settings shared by both functions: the newest Node.js runtime, ARM64, active tracing. */
/** Follow-up planner invocations at once (the SQS event source's lower limit is 2). */
const PLANNER_MAX_CONCURRENCY = 4;

const LAMBDA_BASE = {
  runtime: lambda.Runtime.NODEJS_24_X,
  architecture: lambda.Architecture.ARM_64,
  tracing: lambda.Tracing.ACTIVE,
} as const;

/**
 * The job types' names, the validated instance entries and the shared limits to seed (the `limits`
 * prop or the file's); a module that cannot be loaded is named as the `jobs` prop.
 */
function inspectJobsOf(jobsModule: string, instances: readonly InstanceEntry[] | string, limitsProp: LimitsConfig | undefined) {
  const source = readInstances(instances);
  // Checked here too (the child process checks the file's with the instances): the limits are seeded as written.
  const limits = loadSeedLimits(source, limitsProp);
  try {
    return { ...inspectJobs(jobsModule, source), limits };
  } catch (error) {
    if (error instanceof JobsModuleError) throw new JobsModuleError(`JobRunner: jobs: ${error.message}`, { cause: error });
    throw error;
  }
}

/** The absolute path of the `jobs` prop's module, refused with a clear message when missing. */
function jobsModuleOf(props: JobRunnerProps): string {
  const given: unknown = props.jobs;
  if (typeof given !== 'string' || given === '') {
    throw new JobRunnerPropsError("JobRunner: jobs is required: the path of the module whose default export lists your job types (e.g. jobs: 'jobs/index.ts')");
  }
  try {
    return resolveJobsModule(given);
  } catch (error) {
    if (error instanceof JobsModuleError) throw new JobsModuleError(`JobRunner: jobs: ${error.message}`, { cause: error });
    throw error;
  }
}

function attributeOf(key: KeyAttribute): dynamodb.Attribute {
  return { name: key.name, type: key.type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER };
}

/** A table exactly as `definition` (core/adapters/aws/tables.ts) says: keys, indexes, projections, TTL. */
function tableOf(scope: Construct, id: string, definition: TableDefinition, removalPolicy: RemovalPolicy): dynamodb.Table {
  const table = new dynamodb.Table(scope, id, {
    partitionKey: attributeOf(definition.partitionKey),
    ...(definition.sortKey ? { sortKey: attributeOf(definition.sortKey) } : {}),
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    // tables.ts: TTL, where a table has it at all, only collects garbage; correctness never waits for it.
    ...(definition.timeToLiveAttribute === null ? {} : { timeToLiveAttribute: definition.timeToLiveAttribute }),
    removalPolicy,
    deletionProtection: removalPolicy === RemovalPolicy.RETAIN,
  });
  for (const index of definition.globalSecondaryIndexes) {
    table.addGlobalSecondaryIndex({
      indexName: index.indexName,
      partitionKey: attributeOf(index.partitionKey),
      ...(index.sortKey ? { sortKey: attributeOf(index.sortKey) } : {}),
      projectionType: index.projection === 'ALL' ? dynamodb.ProjectionType.ALL : dynamodb.ProjectionType.KEYS_ONLY,
    });
  }
  return table;
}

/** The adapter's calls on a table and on each of its indexes, by name (no `index/*`). */
function grantTableData(table: dynamodb.Table, definition: TableDefinition, grantee: iam.IGrantable): void {
  iam.Grant.addToPrincipal({
    grantee,
    actions: [...DYNAMODB_DATA_ACTIONS],
    resourceArns: [table.tableArn, ...definition.globalSecondaryIndexes.map((index) => `${table.tableArn}/index/${index.indexName}`)],
  });
}

/** The object store's calls: list the bucket and get its objects, and with `readWrite` put and delete them. */
function grantObjects(bucket: s3.Bucket, grantee: iam.IGrantable, access: 'read' | 'readWrite'): void {
  iam.Grant.addToPrincipal({ grantee, actions: [...S3_BUCKET_ACTIONS], resourceArns: [bucket.bucketArn] });
  const objects = bucket.arnForObjects('*');
  const actions = access === 'read' ? S3_OBJECT_READ_ACTIONS : S3_OBJECT_ACTIONS;
  iam.Grant.addToPrincipal({ grantee, actions: [...actions], resourceArns: [objects] });
  const what = access === 'read' ? 'reads' : 'reads and writes';
  acknowledgeWildcardResources(roleOf(grantee), [objects], `The object store ${what} any key of the data bucket (jobs choose their keys); the grant covers this bucket's objects only.`);
}

/** The role behind a grantee, where its policies are (all of ours are roles). */
function roleOf(grantee: iam.IGrantable): iam.IRole {
  const principal = grantee.grantPrincipal;
  if (!(principal instanceof iam.Role)) throw new JobRunnerPropsError(`expected a role to grant to, got a ${principal.constructor.name}`);
  return principal;
}

interface Settings {
  tick: Duration;
  schedulerMemorySize: number;
  schedulerTimeout: Duration;
  workerMemorySize: number;
  workerTimeout: Duration;
  workerBatchSize: number;
  workerMaxBatchingWindow: Duration;
  workerMaxConcurrency: number;
  maxReceiveCount: number;
  conductorCpu: number;
  conductorMemoryMiB: number;
  maxConductors: number;
  tasksPerConductor: number;
  longTaskCpu: number;
  longTaskMemoryMiB: number;
  ssmParameterPrefixes: readonly string[];
  secretNamePrefixes: readonly string[];
  logRetention: logs.RetentionDays;
  archiveTransitionAfter: Duration;
  maxMessageAge: Duration;
  failureRateThreshold: number;
}

/**
 * The scheduler's `UJR_WORKER_TASK_LIMIT_MS` for a worker timeout: batch tasks with a longer timeout
 * run on Fargate. The worker needs its timeout ≥ limit + safety margin + grace (worker.ts); the
 * start headroom keeps a task of exactly the limit from being refused for want of a few ms.
 */
export function workerTaskLimitMs(workerTimeout: Duration): number {
  return workerTimeout.toMilliseconds() - DEFAULT_WORKER_CONFIG.safetyMarginMs - DEFAULT_WORKER_CONFIG.graceMs - WORKER_START_HEADROOM.toMilliseconds();
}

/** The props with their defaults, checked where a wrong value would only fail at deploy or at run time. */
function resolveProps(props: JobRunnerProps): Settings {
  const settings: Settings = {
    tick: props.tick ?? DEFAULTS.tick,
    schedulerMemorySize: props.schedulerMemorySize ?? DEFAULTS.schedulerMemorySize,
    schedulerTimeout: props.schedulerTimeout ?? DEFAULTS.schedulerTimeout,
    workerMemorySize: props.workerMemorySize ?? DEFAULTS.workerMemorySize,
    workerTimeout: props.workerTimeout ?? DEFAULTS.workerTimeout,
    workerBatchSize: props.workerBatchSize ?? DEFAULTS.workerBatchSize,
    workerMaxBatchingWindow: props.workerMaxBatchingWindow ?? DEFAULTS.workerMaxBatchingWindow,
    workerMaxConcurrency: props.workerMaxConcurrency ?? DEFAULTS.workerMaxConcurrency,
    maxReceiveCount: props.maxReceiveCount ?? DEFAULTS.maxReceiveCount,
    conductorCpu: props.conductorCpu ?? DEFAULTS.conductorCpu,
    conductorMemoryMiB: props.conductorMemoryMiB ?? DEFAULTS.conductorMemoryMiB,
    maxConductors: props.maxConductors ?? DEFAULTS.maxConductors,
    tasksPerConductor: props.tasksPerConductor ?? DEFAULTS.tasksPerConductor,
    longTaskCpu: props.longTaskCpu ?? DEFAULTS.longTaskCpu,
    longTaskMemoryMiB: props.longTaskMemoryMiB ?? DEFAULTS.longTaskMemoryMiB,
    ssmParameterPrefixes: props.ssmParameterPrefixes ?? DEFAULTS.ssmParameterPrefixes,
    secretNamePrefixes: props.secretNamePrefixes ?? DEFAULTS.secretNamePrefixes,
    logRetention: props.logRetention ?? DEFAULTS.logRetention,
    archiveTransitionAfter: props.archiveTransitionAfter ?? DEFAULTS.archiveTransitionAfter,
    maxMessageAge: props.maxMessageAge ?? DEFAULTS.maxMessageAge,
    failureRateThreshold: props.failureRateThreshold ?? DEFAULTS.failureRateThreshold,
  };
  const fail = (message: string): never => {
    throw new JobRunnerPropsError(`JobRunner: ${message}`);
  };
  const tickMinutes = settings.tick.toSeconds() / 60;
  if (!Number.isInteger(tickMinutes) || tickMinutes < 1) fail(`tick must be a whole number of minutes (EventBridge Scheduler's rate), got ${settings.tick.toHumanString()}`);
  const timeoutMs = settings.workerTimeout.toMilliseconds();
  if (timeoutMs > LAMBDA_MAX_TIMEOUT.toMilliseconds()) fail(`workerTimeout is at most 15 minutes (Lambda's limit), got ${settings.workerTimeout.toHumanString()}`);
  if (workerTaskLimitMs(settings.workerTimeout) < 1000) {
    const reserved = timeoutMs - workerTaskLimitMs(settings.workerTimeout);
    fail(`workerTimeout must leave batch tasks at least a second beyond the worker's safety margin, grace and start headroom (${reserved} ms), got ${timeoutMs} ms`);
  }
  if (settings.workerTimeout.toSeconds() * 6 + settings.workerMaxBatchingWindow.toSeconds() > SQS_MAX_VISIBILITY.toSeconds()) {
    fail('6× workerTimeout plus workerMaxBatchingWindow exceeds SQS\'s 12-hour visibility timeout; shorten them');
  }
  if (settings.maxReceiveCount < 5) fail(`maxReceiveCount must be at least 5 (a task message's retries and duplicate deliveries need room), got ${settings.maxReceiveCount}`);
  if (!Number.isInteger(settings.workerBatchSize) || settings.workerBatchSize < 1 || settings.workerBatchSize > 10_000) fail(`workerBatchSize must be 1–10,000, got ${settings.workerBatchSize}`);
  if (settings.workerBatchSize > 10 && settings.workerMaxBatchingWindow.toSeconds() === 0) fail('a workerBatchSize above 10 needs a workerMaxBatchingWindow above 0');
  if (settings.workerMaxConcurrency < 2 || settings.workerMaxConcurrency > 1000) fail(`workerMaxConcurrency must be 2–1000 (SQS event source limits), got ${settings.workerMaxConcurrency}`);
  if (settings.tasksPerConductor < 1) fail(`tasksPerConductor must be at least 1, got ${settings.tasksPerConductor}`);
  if (settings.maxConductors < 0) fail(`maxConductors must be 0 or more, got ${settings.maxConductors}`);
  if (settings.failureRateThreshold <= 0 || settings.failureRateThreshold > 1) fail(`failureRateThreshold is a share in (0, 1], got ${settings.failureRateThreshold}`);
  const source: unknown = props.containerImage ?? 'stock';
  if (source !== 'stock' && source !== 'docker') fail(`containerImage is 'stock' (a public Node.js image, no Docker needed) or 'docker' (an image built at deploy), got ${JSON.stringify(source)}`);
  return settings;
}
