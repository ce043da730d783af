/**
 * The composition root on AWS: builds the board, object store, queue, fleet, telemetry and
 * instance directory from the validated environment, with injectable SDK clients (tests pass
 * clients pointed at the emulators; Lambda builds real ones once per cold start).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ECSClient } from '@aws-sdk/client-ecs';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { Conductor, DEFAULT_CONDUCTOR_CONFIG } from '../../cloud/conductor.js';
import { InstanceDirectory, type ParamsResolver } from '../../cloud/instances.js';
import { secretsResolver } from '../../cloud/secrets.js';
import type { Fleet, Telemetry } from '../../cloud/ports.js';
import { DEFAULT_SCHEDULER_CONFIG, Scheduler } from '../../cloud/scheduler.js';
import { DEFAULT_WORKER_CONFIG, TaskWorker } from '../../cloud/worker.js';
import type { Executor } from '../../engine/executor.js';
import type { JobType } from '../../types.js';
import { DynamoStore } from './dynamo-store.js';
import { EcsFleet } from './ecs-fleet.js';
import type { ContainerEnv, SchedulerEnv, WorkerEnv } from './env.js';
import { S3ObjectStore } from './s3-objects.js';
import { AwsSecretSource } from './secrets.js';
import { SqsPlanQueue } from './sqs-plan-queue.js';
import { SqsTaskQueue } from './sqs-queue.js';
import { PowertoolsTelemetry } from './telemetry.js';

export interface AwsClients {
  dynamodb: DynamoDBClient;
  sqs: SQSClient;
  s3: S3Client;
  ecs: ECSClient;
}

type CommonEnv = Pick<
  SchedulerEnv,
  'UJR_LEASES_TABLE' | 'UJR_RUNS_TABLE' | 'UJR_INSTANCES_TABLE' | 'UJR_DATA_BUCKET' | 'UJR_S3_FORCE_PATH_STYLE' | 'UJR_METRICS_NAMESPACE' | 'UJR_INSTANCES_MAX_AGE_MS'
>;

export interface RuntimeOptions {
  jobs: readonly JobType[];
  clients?: Partial<AwsClients>;
  /** Default: `{ "$secret": ... }` references resolved from SSM Parameter Store and Secrets Manager. */
  resolveParams?: ParamsResolver;
  now?: () => number;
  serviceName: string;
  /** Default: Powertools Logger and Metrics (JSON lines and EMF on stdout). */
  telemetry?: Telemetry;
  /** Where the conductor runs its handlers (containers/main.ts: a process per task). Default: in its own event loop. */
  conductorExecutor?: Executor;
}

function common(env: CommonEnv, options: RuntimeOptions) {
  const now = options.now ?? Date.now;
  // DynamoDB throttles under bursts; its SDK v2 default was 10 attempts, kept here.
  const dynamodb = options.clients?.dynamodb ?? new DynamoDBClient({ maxAttempts: 10 });
  const s3 = options.clients?.s3 ?? new S3Client({ forcePathStyle: env.UJR_S3_FORCE_PATH_STYLE === 'true' });
  const board = new DynamoStore({
    client: dynamodb,
    tables: { leases: env.UJR_LEASES_TABLE, runs: env.UJR_RUNS_TABLE, instances: env.UJR_INSTANCES_TABLE },
    now,
  });
  const objects = new S3ObjectStore({ client: s3, bucket: env.UJR_DATA_BUCKET });
  const telemetry = options.telemetry ?? new PowertoolsTelemetry({ namespace: env.UJR_METRICS_NAMESPACE, serviceName: options.serviceName });
  const instances = new InstanceDirectory({
    catalog: board,
    jobs: options.jobs,
    maxAgeMs: env.UJR_INSTANCES_MAX_AGE_MS,
    now,
    resolveParams: options.resolveParams ?? secretsResolver(new AwsSecretSource()),
  });
  return { now, board, objects, telemetry, instances };
}

function queueOf(env: Pick<WorkerEnv, 'UJR_TASK_QUEUE_URL' | 'UJR_DEAD_LETTER_QUEUE_URL'>, options: RuntimeOptions) {
  return new SqsTaskQueue({
    client: options.clients?.sqs ?? new SQSClient({}),
    queueUrl: env.UJR_TASK_QUEUE_URL,
    deadLetterQueueUrl: env.UJR_DEAD_LETTER_QUEUE_URL,
    // With an SQS endpoint configured (an emulator) both URLs are sent to it (./queue-url.ts); a malformed one is refused by name.
    names: { queueUrl: 'UJR_TASK_QUEUE_URL', deadLetterQueueUrl: 'UJR_DEAD_LETTER_QUEUE_URL' },
  });
}

/** Without a cluster the fleet has no conductors to size; continuous tasks wait on the board, said once per tick. */
function fleetOf(env: Pick<SchedulerEnv, 'UJR_CLUSTER' | 'UJR_CONDUCTOR_SERVICE' | 'UJR_LONG_TASK_DEFINITION' | 'UJR_LONG_TASK_CONTAINER' | 'UJR_SUBNETS' | 'UJR_SECURITY_GROUPS' | 'UJR_ASSIGN_PUBLIC_IP'>, options: RuntimeOptions): Fleet {
  if (!env.UJR_CLUSTER || !env.UJR_CONDUCTOR_SERVICE) {
    return {
      setConductors: () => Promise.resolve(),
      runLongTask: (message) =>
        Promise.reject(new Error(`task "${message.task}" needs a Fargate container but UJR_CLUSTER and UJR_CONDUCTOR_SERVICE are not set`)),
    };
  }
  return new EcsFleet({
    client: options.clients?.ecs ?? new ECSClient({}),
    cluster: env.UJR_CLUSTER,
    conductorService: env.UJR_CONDUCTOR_SERVICE,
    ...(env.UJR_LONG_TASK_DEFINITION && env.UJR_SUBNETS
      ? {
          longTask: {
            taskDefinition: env.UJR_LONG_TASK_DEFINITION,
            containerName: env.UJR_LONG_TASK_CONTAINER,
            subnets: env.UJR_SUBNETS,
            securityGroups: env.UJR_SECURITY_GROUPS ?? [],
            assignPublicIp: env.UJR_ASSIGN_PUBLIC_IP === 'true',
          },
        }
      : {}),
  });
}

export function schedulerRuntime(env: SchedulerEnv, options: RuntimeOptions) {
  const base = common(env, options);
  const scheduler = new Scheduler({
    ...base,
    limits: base.board.limits,
    queue: queueOf(env, options),
    fleet: fleetOf(env, options),
    config: {
      ...DEFAULT_SCHEDULER_CONFIG,
      tickMs: env.UJR_TICK_MS,
      workerTaskLimitMs: env.UJR_WORKER_TASK_LIMIT_MS,
      tasksPerConductor: env.UJR_TASKS_PER_CONDUCTOR,
      maxConductors: env.UJR_MAX_CONDUCTORS,
    },
  });
  return { ...base, scheduler };
}

/** The plan queue, when the deployment has one (follow-up plans when tasks end). */
function planQueueOf(env: Pick<WorkerEnv, 'UJR_PLAN_QUEUE_URL'>, options: RuntimeOptions): SqsPlanQueue | undefined {
  if (env.UJR_PLAN_QUEUE_URL === undefined) return undefined;
  return new SqsPlanQueue({ client: options.clients?.sqs ?? new SQSClient({}), queueUrl: env.UJR_PLAN_QUEUE_URL, name: 'UJR_PLAN_QUEUE_URL' });
}

export function workerRuntime(env: WorkerEnv, options: RuntimeOptions) {
  const base = common(env, options);
  const queue = queueOf(env, options);
  const planQueue = planQueueOf(env, options);
  const worker = new TaskWorker({ ...base, queue, limits: base.board.limits, config: {
      ...DEFAULT_WORKER_CONFIG,
      maxReceiveCount: env.UJR_MAX_RECEIVE_COUNT,
      safetyMarginMs: env.UJR_SAFETY_MARGIN_MS,
      graceMs: env.UJR_GRACE_MS,
    },
  });
  return { ...base, queue, worker, planQueue };
}

export function containerRuntime(env: ContainerEnv, options: RuntimeOptions) {
  const base = common(env, options);
  const queue = queueOf(env, options);
  const planQueue = planQueueOf(env, options);
  const conductor = new Conductor({
    ...base,
    limits: base.board.limits,
    executor: options.conductorExecutor,
    planQueue,
    config: {
      ...DEFAULT_CONDUCTOR_CONFIG,
      capacity: env.UJR_TASKS_PER_CONDUCTOR,
      leaseTtlMs: env.UJR_CONDUCTOR_LEASE_TTL_MS,
      pollMs: env.UJR_CONDUCTOR_POLL_MS,
      graceMs: env.UJR_GRACE_MS,
    },
  });
  return { ...base, queue, conductor, planQueue, limits: base.board.limits };
}
