/**
 * A whole ujr deployment on the emulators, for integration tests: the three DynamoDB tables on
 * DynamoDB Local, the task queue and its DLQ (redrive after maxReceiveCount) on the SQS emulator,
 * the data bucket on s3rver, and ECS mocked at the SDK edge (no emulator exists). The runtime is
 * built through the same composition root as the Lambda functions (core/adapters/aws/runtime.ts).
 */
import { DynamoDBClient, DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { ECSClient, DescribeServicesCommand, RunTaskCommand, UpdateServiceCommand } from '@aws-sdk/client-ecs';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoStore } from '../../core/adapters/aws/dynamo-store.js';
import { containerEnvSchema, parseEnv, schedulerEnvSchema, workerEnvSchema } from '../../core/adapters/aws/env.js';
import { containerRuntime, schedulerRuntime, workerRuntime, type RuntimeOptions } from '../../core/adapters/aws/runtime.js';
import { createTables } from '../../core/adapters/aws/tables.js';
import { dispatchMessageSchema, type DispatchMessage } from '../../core/cloud/messages.js';
import { LIVE_STATUSES, type JobType, type RunRecord } from '../../core/types.js';
import { RecordingTelemetry } from './telemetry.js';
import { EMULATOR_CREDENTIALS, EMULATOR_REGION } from '../servers/emulators.js';
import { emulatorClientConfig, emulatorEndpoint, uniqueName } from '../servers/endpoints.js';

export interface StackOptions {
  /** The task queue's redrive maxReceiveCount. Default 3. */
  maxReceiveCount?: number;
  /** The task queue's visibility timeout. Default 5 s. */
  visibilityTimeoutSec?: number;
  /** Conductor containers wanted by ECS, as the mock reports it. Default 0. */
  conductors?: number;
  /** Share of DynamoDB calls (0..1) that fail with a ThrottlingException before reaching DynamoDB Local. */
  throttle?: number;
  /** A plan queue (follow-up requests when tasks end), as the CDK stack has. Default false. */
  planQueue?: boolean;
}

export class LocalAwsStack {
  readonly names = {
    leases: uniqueName('ujr-leases'),
    runs: uniqueName('ujr-runs'),
    instances: uniqueName('ujr-instances'),
    bucket: uniqueName('ujr-data'),
    queue: uniqueName('ujr-tasks'),
    deadLetterQueue: uniqueName('ujr-dlq'),
    planQueue: uniqueName('ujr-plans'),
  };
  queueUrl = '';
  /** The plan queue's URL, when the stack has one (`planQueue: true`). */
  planQueueUrl = '';
  deadLetterQueueUrl = '';
  readonly clients = {
    dynamodb: new DynamoDBClient({ ...emulatorClientConfig('dynamodb'), maxAttempts: 10 }),
    sqs: new SQSClient(emulatorClientConfig('sqs')),
    s3: new S3Client(emulatorClientConfig('s3')),
    ecs: new ECSClient({ region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS }),
  };
  readonly ecs = mockClient(this.clients.ecs);
  /** The conductor service's desired count as the scheduler last set it. */
  desiredConductors: number;
  /** Messages the scheduler asked ECS to run as long tasks. */
  readonly longTasks: DispatchMessage[] = [];
  store!: DynamoStore;

  /** DynamoDB calls refused with a ThrottlingException so far. */
  throttled = 0;

  constructor(private readonly options: StackOptions = {}) {
    this.desiredConductors = options.conductors ?? 0;
    const share = options.throttle ?? 0;
    if (share > 0) {
      // Inside the SDK's retry loop (after the retry middleware), so the SDK retries as it would on AWS.
      let seed = 42;
      const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      this.clients.dynamodb.middlewareStack.add(
        (next) => (args) => {
          if (random() < share) {
            this.throttled += 1;
            const error = Object.assign(new Error('Rate of requests exceeds the allowed throughput (injected)'), {
              name: 'ThrottlingException',
              $fault: 'client',
              $metadata: { httpStatusCode: 400 },
            });
            return Promise.reject(error);
          }
          return next(args);
        },
        { step: 'finalizeRequest', priority: 'low', name: 'injectThrottling' },
      );
    }
  }

  async create(): Promise<this> {
    await createTables(this.clients.dynamodb, this.names);
    await this.clients.s3.send(new CreateBucketCommand({ Bucket: this.names.bucket }));
    const dlq = await this.clients.sqs.send(new CreateQueueCommand({ QueueName: this.names.deadLetterQueue }));
    this.deadLetterQueueUrl = dlq.QueueUrl ?? '';
    const dlqArn = await this.queueArn(this.deadLetterQueueUrl);
    const queue = await this.clients.sqs.send(
      new CreateQueueCommand({
        QueueName: this.names.queue,
        Attributes: {
          VisibilityTimeout: String(this.options.visibilityTimeoutSec ?? 5),
          RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: this.options.maxReceiveCount ?? 3 }),
        },
      }),
    );
    this.queueUrl = queue.QueueUrl ?? '';
    if (this.options.planQueue) {
      const plans = await this.clients.sqs.send(new CreateQueueCommand({ QueueName: this.names.planQueue, Attributes: { VisibilityTimeout: '5' } }));
      this.planQueueUrl = plans.QueueUrl ?? '';
    }
    this.store = new DynamoStore({ client: this.clients.dynamodb, tables: this.tables() });
    this.ecs.on(DescribeServicesCommand).callsFake(() => ({ services: [{ serviceName: 'conductors', desiredCount: this.desiredConductors }] }));
    this.ecs.on(UpdateServiceCommand).callsFake((input: { desiredCount?: number }) => {
      this.desiredConductors = input.desiredCount ?? this.desiredConductors;
      return { service: { desiredCount: this.desiredConductors } };
    });
    this.ecs.on(RunTaskCommand).callsFake((input: { overrides?: { containerOverrides?: { environment?: { name?: string; value?: string }[] }[] } }) => {
      const value = input.overrides?.containerOverrides?.[0]?.environment?.find((e) => e.name === 'UJR_TASK_MESSAGE')?.value ?? '{}';
      this.longTasks.push(dispatchMessageSchema.parse(JSON.parse(value)));
      return { tasks: [{ taskArn: `arn:aws:ecs:us-east-1:123456789012:task/ujr/${this.longTasks.length}` }], failures: [] };
    });
    return this;
  }

  tables() {
    return { leases: this.names.leases, runs: this.names.runs, instances: this.names.instances };
  }

  /** The environment the CDK stack gives the functions and containers, pointed at these resources. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      UJR_LEASES_TABLE: this.names.leases,
      UJR_RUNS_TABLE: this.names.runs,
      UJR_INSTANCES_TABLE: this.names.instances,
      UJR_DATA_BUCKET: this.names.bucket,
      UJR_S3_FORCE_PATH_STYLE: 'true',
      UJR_TASK_QUEUE_URL: this.queueUrl,
      UJR_DEAD_LETTER_QUEUE_URL: this.deadLetterQueueUrl,
      UJR_CLUSTER: 'ujr',
      UJR_CONDUCTOR_SERVICE: 'conductors',
      UJR_LONG_TASK_DEFINITION: 'ujr-long-task',
      UJR_SUBNETS: 'subnet-1',
      UJR_SECURITY_GROUPS: 'sg-1',
      UJR_MAX_RECEIVE_COUNT: String(this.options.maxReceiveCount ?? 3),
      // The worker Lambda's timeout in these tests is 60 s; tasks get at most this much of it.
      UJR_WORKER_TASK_LIMIT_MS: '20000',
      UJR_INSTANCES_MAX_AGE_MS: '0',
      ...(this.planQueueUrl ? { UJR_PLAN_QUEUE_URL: this.planQueueUrl } : {}),
      ...extra,
    };
  }

  /** Environment for a child process (a conductor or worker): the above plus the SDK's endpoints and fake credentials. */
  processEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      ...this.env(extra),
      AWS_REGION: EMULATOR_REGION,
      AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: emulatorEndpoint('dynamodb'),
      AWS_ENDPOINT_URL_SQS: emulatorEndpoint('sqs'),
      AWS_ENDPOINT_URL_S3: emulatorEndpoint('s3'),
      // ECS has no emulator: a child process must not reach it (the scheduler runs in the test process).
      AWS_ENDPOINT_URL_ECS: 'http://127.0.0.1:9',
      POWERTOOLS_DEV: 'false',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
  }

  /** What the runtimes built here logged and counted. */
  readonly telemetry = new RecordingTelemetry();

  private runtimeOptions(jobs: readonly JobType[], extra: Partial<RuntimeOptions> = {}): RuntimeOptions {
    return { jobs, clients: this.clients, serviceName: 'ujr-test', telemetry: this.telemetry, ...extra };
  }

  /** How far the schedulers built here run ahead of real time (see `advanceSchedulerClock`). */
  private schedulerClockOffsetMs = 0;

  /** Moves the schedulers' clock on, so instances fall due without waiting for real time to pass. */
  advanceSchedulerClock(ms: number): void {
    this.schedulerClockOffsetMs += ms;
  }

  scheduler(jobs: readonly JobType[], env: Record<string, string> = {}, extra: Partial<RuntimeOptions> = {}) {
    return schedulerRuntime(
      parseEnv(schedulerEnvSchema, this.env(env), 'scheduler'),
      this.runtimeOptions(jobs, { now: () => Date.now() + this.schedulerClockOffsetMs, ...extra }),
    );
  }

  worker(jobs: readonly JobType[], env: Record<string, string> = {}, extra: Partial<RuntimeOptions> = {}) {
    return workerRuntime(parseEnv(workerEnvSchema, this.env(env), 'worker'), this.runtimeOptions(jobs, extra));
  }

  container(jobs: readonly JobType[], env: Record<string, string> = {}, extra: Partial<RuntimeOptions> = {}) {
    return containerRuntime(parseEnv(containerEnvSchema, this.env(env), 'container'), this.runtimeOptions(jobs, extra));
  }

  /** Writes instance entries into the instances table, as the deployment's seeding does. */
  async seedInstances(entries: unknown[]): Promise<void> {
    for (const entry of entries) await this.store.putInstanceEntry(entry);
  }

  async queueDepth(url = this.queueUrl): Promise<number> {
    const result = await this.clients.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed'] }),
    );
    const a = result.Attributes ?? {};
    return Number(a.ApproximateNumberOfMessages ?? 0) + Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) + Number(a.ApproximateNumberOfMessagesDelayed ?? 0);
  }

  /**
   * Runs left queued, running or retrying without a live lease of their own (same owner and token,
   * unexpired at `now`): what the sweeper must leave none of.
   */
  async orphanedRuns(now = Date.now()): Promise<RunRecord[]> {
    const live = await this.store.listRuns({ status: [...LIVE_STATUSES], limit: 10_000 });
    const orphans: RunRecord[] = [];
    for (const run of live) {
      const lease = await this.store.getLease(run.signature);
      if (!(lease && lease.owner === run.runner && lease.token === run.fencingToken && lease.expiresAt > now)) orphans.push(run);
    }
    return orphans;
  }

  /** Takes every message out of the dead-letter queue. */
  async drainDeadLetters(): Promise<{ body: string; reason: string | undefined }[]> {
    const out: { body: string; reason: string | undefined }[] = [];
    for (;;) {
      const result = await this.clients.sqs.send(
        new ReceiveMessageCommand({ QueueUrl: this.deadLetterQueueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ['All'], WaitTimeSeconds: 0, VisibilityTimeout: 600 }),
      );
      const messages = result.Messages ?? [];
      if (messages.length === 0) return out;
      for (const message of messages) out.push({ body: message.Body ?? '', reason: message.MessageAttributes?.reason?.StringValue });
    }
  }

  private async queueArn(url: string): Promise<string> {
    const result = await this.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
    return result.Attributes?.QueueArn ?? '';
  }

  async destroy(): Promise<void> {
    this.ecs.restore();
    await Promise.allSettled([
      ...Object.values(this.tables()).map((TableName) => this.clients.dynamodb.send(new DeleteTableCommand({ TableName }))),
      this.clients.sqs.send(new DeleteQueueCommand({ QueueUrl: this.queueUrl })),
      this.clients.sqs.send(new DeleteQueueCommand({ QueueUrl: this.deadLetterQueueUrl })),
      ...(this.planQueueUrl ? [this.clients.sqs.send(new DeleteQueueCommand({ QueueUrl: this.planQueueUrl }))] : []),
    ]);
  }
}
