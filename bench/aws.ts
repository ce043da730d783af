/**
 * Benchmarks of the AWS runtime on the emulators (not a test; run by hand, see BENCHMARKS.md):
 *
 *   npm run bench:aws
 *   npm run bench:aws -- --tasks 2000 --planner-tasks 20000 --init-runs 11 --pipeline-items 100
 *
 * 1. **API calls per task** in steady state: `--tasks` trivial tasks (bench/aws-jobs.ts) through a
 *    scheduler tick → SQS → the worker handler (Lambda's SQS event source played by
 *    test/helpers/sqs-event-source.ts, batches of 10), every AWS call counted by SDK middleware on
 *    the clients the runtime is built with, by command. DynamoDB calls are sent with
 *    `ReturnConsumedCapacity: INDEXES`, so DynamoDB Local reports the write and read units each
 *    one consumed, table and index apart. Then a tick where every returned task is already leased
 *    (posted, not run): what re-planning costs. Costs per million tasks at on-demand prices.
 * 2. **Planner throughput**: one tick that posts `--planner-tasks` new tasks (plan, peek, post,
 *    SendMessageBatch), in a child process of its own so that its RSS and heap are the
 *    scheduler's alone (the SQS emulator runs in this process).
 * 3. **Bundles**: size of each handler bundle (build/bundle.ts, over the example jobs) and the
 *    time a fresh `node` process takes to `import()` it with the environment set, median of
 *    `--init-runs`.
 * 4. **Follow-up plans**: a three-stage pipeline (bench/aws-jobs.ts `bench-stages`,
 *    `--pipeline-items` items, default 20) from one tick to its last stage through follow-up
 *    plans only: the worker's requests go to a plan queue read by the planner (the scheduler's
 *    handler) through a second played event source mapping. Stage-to-stage start latency (next
 *    stage's handler start − previous stage's handler end, from the run records) p50/p99, and
 *    every call the follow-ups add (the planner's clients are counted apart from the worker's,
 *    the plan-queue sends by a wrapper) with its cost per million tasks.
 * 5. **A shared limit** (issue 15): phase 1's tasks again, each taking one rate limit that never
 *    refuses (`bench-limited`), the worker's calls counted: what a limit adds per task.
 *
 * The emulators are started here with the functions of test/servers/emulators.ts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DeleteTableCommand, DynamoDBClient, GetItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { z } from 'zod';
import { bundleAll } from '../build/bundle.js';
import { runKey } from '../core/adapters/aws/dynamo-items.js';
import { DynamoStore } from '../core/adapters/aws/dynamo-store.js';
import { parseEnv, schedulerEnvSchema, workerEnvSchema } from '../core/adapters/aws/env.js';
import { makeSchedulerHandler, makeWorkerHandler } from '../core/adapters/aws/handlers.js';
import { schedulerRuntime, workerRuntime } from '../core/adapters/aws/runtime.js';
import { createTables, TABLES } from '../core/adapters/aws/tables.js';
import { dispatchMessageSchema } from '../core/cloud/messages.js';
import { silentTelemetry } from '../core/cloud/ports.js';
import { SqsEventSource, type SqsLambdaHandler } from '../test/helpers/sqs-event-source.js';
import { EMULATOR_CREDENTIALS, EMULATOR_REGION, startDynamoDbLocal, startS3Emulator, startSqsEmulator, type RunningServer } from '../test/servers/emulators.js';
import jobs, { stagesPlanTime } from './aws-jobs.js';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '1000' },
    'planner-tasks': { type: 'string', default: '10000' },
    'init-runs': { type: 'string', default: '7' },
    'pipeline-items': { type: 'string', default: '20' },
    /** Internal: run one phase in this (child) process. */
    phase: { type: 'string' },
  },
});
const TASKS = Number(values.tasks);
const PLANNER_TASKS = Number(values['planner-tasks']);
const INIT_RUNS = Number(values['init-runs']);
const PIPELINE_ITEMS = Number(values['pipeline-items']);

/** On-demand prices, us-east-1, as of 2026-11. */
const PRICE = {
  dynamoWriteUnit: 0.625 / 1e6,
  dynamoReadUnit: 0.125 / 1e6,
  sqsRequest: 0.4 / 1e6,
  lambdaGbSecond: 0.0000166667,
  lambdaRequest: 0.2 / 1e6,
  stepFunctionsTransition: 25 / 1e6,
};
const WORKER_MEMORY_GB = 0.5;
const BATCH_SIZE = 10;
/** Targets from the issue. */
/** Issue 13: at most $3 per million batch tasks (which leaves room for about 4 write units a task). */
const TARGET = { costPerMillion: 3, sqsPerTask: 0.35, readsPerLeasedTask: 1 / 25, bundleBytes: 1_000_000, initMs: 150 };

const endpointsSchema = z.object({ dynamodb: z.string().url(), sqs: z.string().url(), s3: z.string().url() });
type Endpoints = z.infer<typeof endpointsSchema>;

// ---------------------------------------------------------------------------------------------
// Counting AWS calls

const capacitySchema = z.object({
  TableName: z.string().optional(),
  CapacityUnits: z.number().optional(),
  Table: z.object({ CapacityUnits: z.number().optional() }).optional(),
  GlobalSecondaryIndexes: z.record(z.string(), z.object({ CapacityUnits: z.number().optional() })).optional(),
});
const capacityOutputSchema = z.looseObject({ ConsumedCapacity: z.union([capacitySchema, z.array(capacitySchema)]).optional() });
const batchInputSchema = z.looseObject({
  RequestItems: z.record(z.string(), z.union([z.array(z.unknown()), z.looseObject({ Keys: z.array(z.unknown()) })])).optional(),
  TransactItems: z.array(z.unknown()).optional(),
  Entries: z.array(z.unknown()).optional(),
});
const receiveOutputSchema = z.looseObject({ Messages: z.array(z.unknown()).optional() });

/** DynamoDB commands that accept ReturnConsumedCapacity. */
const CAPACITY_COMMANDS = new Set(['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem', 'BatchGetItem', 'BatchWriteItem', 'Query', 'Scan', 'TransactWriteItems', 'TransactGetItems']);
const WRITE_COMMANDS = new Set(['PutItem', 'UpdateItem', 'DeleteItem']);
const ITEM_BATCH_COMMANDS = new Set(['BatchWriteItem', 'TransactWriteItems', 'BatchGetItem', 'SendMessageBatch', 'DeleteMessageBatch']);

interface Units {
  table: number;
  indexes: number;
  byIndex: Record<string, number>;
}

/**
 * What AWS charges for a transactional write, against what DynamoDB Local (the pinned jar)
 * reports. Measured here on that jar: one Put of a sub-1 KB item in a TransactWriteItems reports 4
 * units on the table and 4 on each index it writes, a ConditionCheck 4; AWS charges 2 write units
 * per KB per item for the table (prepare and commit), and an index write inside a transaction
 * costs what it costs outside one (1 per KB), as captured against DynamoDB itself by the
 * dynamodb-conformance suite (nubo-db/dynoxide#188). Every other call is reported as AWS charges.
 */
const AWS_TRANSACT_FACTOR = { table: 2 / 4, index: 1 / 4 };

/** Write units of one kind of call (`UpdateItem leases`, `TransactWriteItems runs`, `… runs.byInstance`). */
interface CallUnits {
  /** As DynamoDB Local reported them. */
  local: number;
  /** As AWS charges them (see AWS_TRANSACT_FACTOR). */
  aws: number;
}

/** What one set of clients called, by `<service>:<command>` (the `Command` suffix dropped). */
class ApiTally {
  calls: Record<string, number> = {};
  /** Items carried by batch calls (BatchWriteItem, TransactWriteItems, BatchGetItem, Send/DeleteMessageBatch). */
  items: Record<string, number> = {};
  /** DynamoDB capacity units as DynamoDB Local reported them, writes and reads apart. */
  writeUnits: Units = { table: 0, indexes: 0, byIndex: {} };
  readUnits: Units = { table: 0, indexes: 0, byIndex: {} };
  /** Write units by call and table (`UpdateItem leases`), and by index written (`TransactWriteItems runs.byInstance`). */
  writesByCall: Record<string, CallUnits> = {};
  /** Write units as AWS charges them (table + indexes). */
  awsWriteUnits = 0;
  emptyReceives = 0;

  reset(): void {
    this.calls = {};
    this.items = {};
    this.writeUnits = { table: 0, indexes: 0, byIndex: {} };
    this.readUnits = { table: 0, indexes: 0, byIndex: {} };
    this.writesByCall = {};
    this.awsWriteUnits = 0;
    this.emptyReceives = 0;
  }

  snapshot(): TallySnapshot {
    return structuredClone({
      calls: this.calls,
      items: this.items,
      writeUnits: this.writeUnits,
      readUnits: this.readUnits,
      writesByCall: this.writesByCall,
      awsWriteUnits: this.awsWriteUnits,
      emptyReceives: this.emptyReceives,
    });
  }

  /** `command` may carry the table after a space: `UpdateItem leases`. */
  call(service: string, command: string, input: unknown): void {
    const key = `${service}:${command}`;
    this.calls[key] = (this.calls[key] ?? 0) + 1;
    if (!ITEM_BATCH_COMMANDS.has(command.split(' ')[0] ?? '')) return;
    const parsed = batchInputSchema.safeParse(input);
    if (!parsed.success) return;
    const { RequestItems, TransactItems, Entries } = parsed.data;
    let count = (TransactItems?.length ?? 0) + (Entries?.length ?? 0);
    for (const requests of Object.values(RequestItems ?? {})) count += Array.isArray(requests) ? requests.length : requests.Keys.length;
    this.items[key] = (this.items[key] ?? 0) + count;
  }

  capacity(command: string, output: unknown, roleOf: (table: string) => string): void {
    const parsed = capacityOutputSchema.safeParse(output);
    if (!parsed.success || parsed.data.ConsumedCapacity === undefined) return;
    const writes = WRITE_COMMANDS.has(command) || command === 'BatchWriteItem' || command === 'TransactWriteItems';
    const units = writes ? this.writeUnits : this.readUnits;
    const transact = command === 'TransactWriteItems';
    const list = Array.isArray(parsed.data.ConsumedCapacity) ? parsed.data.ConsumedCapacity : [parsed.data.ConsumedCapacity];
    const note = (key: string, local: number, factor: number) => {
      if (!writes) return;
      const entry = (this.writesByCall[key] ??= { local: 0, aws: 0 });
      entry.local += local;
      entry.aws += local * factor;
      this.awsWriteUnits += local * factor;
    };
    for (const consumed of list) {
      const role = roleOf(consumed.TableName ?? '?');
      const tableUnits = consumed.Table?.CapacityUnits ?? consumed.CapacityUnits ?? 0;
      units.table += tableUnits;
      note(`${command} ${role}`, tableUnits, transact ? AWS_TRANSACT_FACTOR.table : 1);
      for (const [name, index] of Object.entries(consumed.GlobalSecondaryIndexes ?? {})) {
        const key = `${role}.${name}`;
        units.indexes += index.CapacityUnits ?? 0;
        units.byIndex[key] = (units.byIndex[key] ?? 0) + (index.CapacityUnits ?? 0);
        note(`${command} ${key}`, index.CapacityUnits ?? 0, transact ? AWS_TRANSACT_FACTOR.index : 1);
      }
    }
  }

  receive(output: unknown): void {
    const parsed = receiveOutputSchema.safeParse(output);
    if (parsed.success && (parsed.data.Messages?.length ?? 0) === 0) this.emptyReceives += 1;
  }
}

type TallySnapshot = Pick<ApiTally, 'calls' | 'items' | 'writeUnits' | 'readUnits' | 'writesByCall' | 'awsWriteUnits' | 'emptyReceives'>;

const commandOf = (name: string | undefined) => (name ?? 'Unknown').replace(/Command$/, '');
const COUNTER = { step: 'initialize', name: 'ujrBenchApiCounter' } as const;

const tableInputSchema = z.looseObject({ TableName: z.string().optional(), RequestItems: z.record(z.string(), z.unknown()).optional() });

/** `UpdateItem leases`: the command and the role of the table(s) it names. */
function dynamoKey(command: string, input: unknown, roleOf: (table: string) => string): string {
  const parsed = tableInputSchema.safeParse(input);
  const tables = parsed.success ? [...(parsed.data.TableName ? [parsed.data.TableName] : []), ...Object.keys(parsed.data.RequestItems ?? {})] : [];
  return tables.length > 0 ? `${command} ${[...new Set(tables.map(roleOf))].join('+')}` : command;
}

function countedDynamoDb(endpoint: string, tally: ApiTally, roleOf: (table: string) => string): DynamoDBClient {
  const client = new DynamoDBClient({ endpoint, region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS, maxAttempts: 10 });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = commandOf(context.commandName);
      if (CAPACITY_COMMANDS.has(command)) Object.assign(args.input, { ReturnConsumedCapacity: 'INDEXES' });
      tally.call('dynamodb', dynamoKey(command, args.input, roleOf), args.input);
      const result = await next(args);
      tally.capacity(command, result.output, roleOf);
      return result;
    },
    COUNTER,
  );
  return client;
}

function countedSqs(endpoint: string, tally: ApiTally): SQSClient {
  const client = new SQSClient({ endpoint, region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = commandOf(context.commandName);
      tally.call('sqs', command, args.input);
      const result = await next(args);
      if (command === 'ReceiveMessage') tally.receive(result.output);
      return result;
    },
    COUNTER,
  );
  return client;
}

function countedS3(endpoint: string, tally: ApiTally): S3Client {
  const client = new S3Client({ endpoint, region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS, forcePathStyle: true });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      tally.call('s3', commandOf(context.commandName), args.input);
      return next(args);
    },
    COUNTER,
  );
  return client;
}

// ---------------------------------------------------------------------------------------------
// A deployment on the emulators (test/helpers/aws-stack.ts needs vitest; this one does not)

class BenchStack {
  private readonly suffix = randomBytes(4).toString('hex');
  readonly names = {
    leases: `ujr-bench-leases-${this.suffix}`,
    runs: `ujr-bench-runs-${this.suffix}`,
    instances: `ujr-bench-instances-${this.suffix}`,
    bucket: `ujr-bench-data-${this.suffix}`,
    queue: `ujr-bench-tasks-${this.suffix}`,
    deadLetterQueue: `ujr-bench-dlq-${this.suffix}`,
    planQueue: `ujr-bench-plans-${this.suffix}`,
  };
  /** The runtime's calls. */
  readonly tally = new ApiTally();
  /** The calls of the event source mapping (Lambda's, on AWS) and of this harness. */
  readonly mappingTally = new ApiTally();
  readonly clients: { dynamodb: DynamoDBClient; sqs: SQSClient; s3: S3Client };
  readonly mappingSqs: SQSClient;
  queueUrl = '';
  deadLetterQueueUrl = '';
  /** Set by `withPlanQueue`: follow-up requests (phase 4). */
  planQueueUrl = '';

  constructor(private readonly endpoints: Endpoints) {
    this.clients = {
      dynamodb: countedDynamoDb(endpoints.dynamodb, this.tally, (table) => this.roleOf(table)),
      sqs: countedSqs(endpoints.sqs, this.tally),
      s3: countedS3(endpoints.s3, this.tally),
    };
    this.mappingSqs = countedSqs(endpoints.sqs, this.mappingTally);
  }

  /** `leases`, `runs` or `instances` for this stack's tables. */
  roleOf(table: string): string {
    const role = (['leases', 'runs', 'instances'] as const).find((name) => this.names[name] === table);
    return role ?? table;
  }

  async create(): Promise<this> {
    const tables = { leases: this.names.leases, runs: this.names.runs, instances: this.names.instances };
    await createTables(this.clients.dynamodb, tables);
    await this.clients.s3.send(new CreateBucketCommand({ Bucket: this.names.bucket }));
    this.deadLetterQueueUrl = (await this.clients.sqs.send(new CreateQueueCommand({ QueueName: this.names.deadLetterQueue }))).QueueUrl ?? '';
    const dlqArn = (await this.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: this.deadLetterQueueUrl, AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn;
    this.queueUrl =
      (
        await this.clients.sqs.send(
          new CreateQueueCommand({
            QueueName: this.names.queue,
            Attributes: { VisibilityTimeout: '120', RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 5 }) },
          }),
        )
      ).QueueUrl ?? '';
    return this;
  }

  /** Adds the plan queue, as the CDK stack has it, so that the worker asks for follow-up plans. */
  async withPlanQueue(): Promise<this> {
    this.planQueueUrl = (await this.clients.sqs.send(new CreateQueueCommand({ QueueName: this.names.planQueue, Attributes: { VisibilityTimeout: '60' } }))).QueueUrl ?? '';
    return this;
  }

  /** What the CDK stack gives the functions, without an ECS cluster (nothing here is continuous or long). */
  env(): Record<string, string> {
    return {
      UJR_LEASES_TABLE: this.names.leases,
      UJR_RUNS_TABLE: this.names.runs,
      UJR_INSTANCES_TABLE: this.names.instances,
      UJR_DATA_BUCKET: this.names.bucket,
      UJR_S3_FORCE_PATH_STYLE: 'true',
      UJR_TASK_QUEUE_URL: this.queueUrl,
      UJR_DEAD_LETTER_QUEUE_URL: this.deadLetterQueueUrl,
      ...(this.planQueueUrl ? { UJR_PLAN_QUEUE_URL: this.planQueueUrl } : {}),
    };
  }

  /** The environment of a child process that loads a bundle. */
  processEnv(): Record<string, string> {
    return {
      ...this.env(),
      AWS_REGION: EMULATOR_REGION,
      AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: this.endpoints.dynamodb,
      AWS_ENDPOINT_URL_SQS: this.endpoints.sqs,
      AWS_ENDPOINT_URL_S3: this.endpoints.s3,
      AWS_ENDPOINT_URL_ECS: 'http://127.0.0.1:9',
    };
  }

  private options() {
    return { jobs, clients: this.clients, serviceName: 'ujr-bench', telemetry: silentTelemetry };
  }

  scheduler(clients = this.clients) {
    return schedulerRuntime(parseEnv(schedulerEnvSchema, this.env(), 'bench scheduler'), { ...this.options(), clients });
  }

  /** Clients whose calls are counted in `tally` (the follow-up planner's, apart from the worker's). */
  countedClients(tally: ApiTally) {
    return { dynamodb: countedDynamoDb(this.endpoints.dynamodb, tally, (table) => this.roleOf(table)), sqs: countedSqs(this.endpoints.sqs, tally), s3: countedS3(this.endpoints.s3, tally) };
  }

  worker() {
    return workerRuntime(parseEnv(workerEnvSchema, this.env(), 'bench worker'), this.options());
  }

  store(): DynamoStore {
    return new DynamoStore({ client: this.clients.dynamodb, tables: { leases: this.names.leases, runs: this.names.runs, instances: this.names.instances } });
  }

  async seed(entries: unknown[]): Promise<void> {
    const store = this.store();
    for (const entry of entries) await store.putInstanceEntry(entry);
  }

  async queueDepth(): Promise<number> {
    const result = await this.clients.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: this.queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
    );
    return Number(result.Attributes?.ApproximateNumberOfMessages ?? 0) + Number(result.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
  }

  async destroy(): Promise<void> {
    await Promise.allSettled([
      ...[this.names.leases, this.names.runs, this.names.instances].map((TableName) => this.clients.dynamodb.send(new DeleteTableCommand({ TableName }))),
      this.clients.sqs.send(new DeleteQueueCommand({ QueueUrl: this.queueUrl })),
      this.clients.sqs.send(new DeleteQueueCommand({ QueueUrl: this.deadLetterQueueUrl })),
      ...(this.planQueueUrl ? [this.clients.sqs.send(new DeleteQueueCommand({ QueueUrl: this.planQueueUrl }))] : []),
    ]);
  }
}

// ---------------------------------------------------------------------------------------------
// Item sizes, as DynamoDB counts them (attribute names plus values)

function valueBytes(value: AttributeValue): number {
  if (value.S !== undefined) return Buffer.byteLength(value.S);
  if (value.N !== undefined) return Math.ceil(value.N.replace(/^-|\.|^0+/g, '').length / 2) + 1;
  if (value.B !== undefined) return value.B.length;
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (value.M !== undefined) return 3 + Object.entries(value.M).reduce((sum, [name, inner]) => sum + 1 + Buffer.byteLength(name) + valueBytes(inner), 0);
  if (value.L !== undefined) return 3 + value.L.reduce((sum, inner) => sum + 1 + valueBytes(inner), 0);
  if (value.SS !== undefined) return value.SS.reduce((sum, s) => sum + Buffer.byteLength(s), 0);
  if (value.NS !== undefined) return value.NS.reduce((sum, n) => sum + n.length, 0);
  return 0;
}

function itemBytes(item: Record<string, AttributeValue> | undefined): number {
  return Object.entries(item ?? {}).reduce((sum, [name, value]) => sum + Buffer.byteLength(name) + valueBytes(value), 0);
}

// ---------------------------------------------------------------------------------------------
// Phase 1: API calls per task

interface ApiResult {
  tasks: number;
  tick: TallySnapshot;
  tickMs: number;
  worker: TallySnapshot;
  mapping: TallySnapshot;
  invocations: number;
  handlerMs: number[];
  drainMs: number;
  leasedTick: TallySnapshot;
  leasedTickMs: number;
  leaseItemBytes: number;
  releasedLeaseItemBytes: number;
  runItemBytes: number;
}

/** Times each invocation; notes the first batch item failure, which ends the benchmark. */
function timed(handler: SqsLambdaHandler, durations: number[], failures: unknown[]): SqsLambdaHandler {
  return async (event, context) => {
    const started = performance.now();
    try {
      const response = await handler(event, context);
      if (response && response.batchItemFailures.length > 0) failures.push(response);
      return response;
    } catch (error) {
      failures.push(error);
      throw error;
    } finally {
      durations.push(performance.now() - started);
    }
  };
}

async function apiCalls(endpoints: Endpoints): Promise<ApiResult> {
  // Steady state: one tick posts every task, the worker runs them all.
  const stack = await new BenchStack(endpoints).create();
  const idle = await new BenchStack(endpoints).create();
  try {
    await stack.seed([{ id: 'bench', job: 'bench-fanout', params: { count: TASKS }, schedule: '1m' }]);
    const { scheduler } = stack.scheduler();
    const { worker, telemetry } = stack.worker();
    stack.tally.reset();
    let started = performance.now();
    const report = await scheduler.tick();
    const tickMs = performance.now() - started;
    if (report.dispatched.queue !== TASKS) throw new Error(`the tick queued ${report.dispatched.queue} of ${TASKS} tasks: ${JSON.stringify(report)}`);
    const tick = stack.tally.snapshot();
    stack.tally.reset();
    stack.mappingTally.reset();
    const handlerMs: number[] = [];
    const failures: unknown[] = [];
    const source = new SqsEventSource({
      client: stack.mappingSqs,
      queueUrl: stack.queueUrl,
      handler: timed(makeWorkerHandler({ worker, telemetry }), handlerMs, failures),
      batchSize: BATCH_SIZE,
      // The worker Lambda's timeout: Lambda's longest, as a task may take the 14 minutes of UJR_WORKER_TASK_LIMIT_MS.
      functionTimeoutMs: 15 * 60_000,
    });
    started = performance.now();
    const invocations = await source.drain({ timeoutMs: 30 * 60_000, until: () => failures.length > 0 });
    const drainMs = performance.now() - started;
    if (failures.length > 0) throw new Error(`the worker failed a delivery: ${JSON.stringify(failures[0]) ?? String(failures[0])}`);
    const workerTally = stack.tally.snapshot();
    const mapping = stack.mappingTally.snapshot();
    const runs = await stack.store().listRuns({ instanceId: 'bench', limit: TASKS + 10 });
    const succeeded = new Set(runs.filter((run) => run.status === 'succeeded').map((run) => run.signature));
    if (runs.length !== TASKS || succeeded.size !== TASKS) throw new Error(`expected ${TASKS} succeeded runs, found ${runs.length} runs, ${succeeded.size} succeeded`);
    const sample = runs[0];
    if (!sample) throw new Error('no run to read back');
    const key = runKey(sample);
    const runItem = (await stack.clients.dynamodb.send(new GetItemCommand({ TableName: stack.names.runs, Key: { pk: { S: key.pk }, sk: { S: key.sk } } }))).Item;
    const released = (await stack.clients.dynamodb.send(new GetItemCommand({ TableName: stack.names.leases, Key: { signature: { S: sample.signature } } }))).Item;
    if (!runItem || !released) throw new Error('could not read back a run item and its lease item');

    // Re-planning: every returned task is already leased (posted, not run). `1s` is due on every tick.
    await idle.seed([{ id: 'bench-leased', job: 'bench-fanout', params: { count: TASKS }, schedule: '1s' }]);
    const idleScheduler = idle.scheduler().scheduler;
    const first = await idleScheduler.tick();
    idle.tally.reset();
    started = performance.now();
    const second = await idleScheduler.tick();
    const leasedTickMs = performance.now() - started;
    const leasedTick = idle.tally.snapshot();
    if (first.dispatched.queue !== TASKS || second.deduplicated !== TASKS || second.dispatched.queue !== 0) {
      throw new Error(`the second tick should find all ${TASKS} tasks leased: first ${JSON.stringify(first)}, second ${JSON.stringify(second)}`);
    }
    const received = await idle.mappingSqs.send(new ReceiveMessageCommand({ QueueUrl: idle.queueUrl, MaxNumberOfMessages: 1 }));
    const message = dispatchMessageSchema.parse(JSON.parse(received.Messages?.[0]?.Body ?? '{}'));
    const posted = (await idle.clients.dynamodb.send(new GetItemCommand({ TableName: idle.names.leases, Key: { signature: { S: message.signature } } }))).Item;
    return {
      tasks: TASKS,
      tick,
      tickMs,
      worker: workerTally,
      mapping,
      invocations: invocations.length,
      handlerMs,
      drainMs,
      leasedTick,
      leasedTickMs,
      leaseItemBytes: itemBytes(posted),
      releasedLeaseItemBytes: itemBytes(released),
      runItemBytes: itemBytes(runItem),
    };
  } finally {
    await Promise.all([stack.destroy(), idle.destroy()]);
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 2: planner throughput (child process)

const plannerResultSchema = z.object({
  tasks: z.number(),
  tickMs: z.number(),
  baselineRss: z.number(),
  peakRss: z.number(),
  baselineHeap: z.number(),
  peakHeap: z.number(),
  /** CPU time of the scheduler process during the tick (user + system). */
  cpuMs: z.number(),
  calls: z.record(z.string(), z.number()),
});
type PlannerResult = z.infer<typeof plannerResultSchema>;

async function plannerPhase(endpoints: Endpoints): Promise<PlannerResult> {
  const stack = await new BenchStack(endpoints).create();
  try {
    await stack.seed([{ id: 'bench-planner', job: 'bench-fanout', params: { count: PLANNER_TASKS }, schedule: '1m' }]);
    const { scheduler } = stack.scheduler();
    stack.tally.reset();
    const baseline = process.memoryUsage();
    let peakRss = baseline.rss;
    let peakHeap = baseline.heapUsed;
    // process.memoryUsage() walks the heap's spaces (about 0.1 ms): RSS, which is cheap, every 5 ms, the heap every 50 ms.
    let samples = 0;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      if (++samples % 10 === 0) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    }, 5);
    const cpu = process.cpuUsage();
    const started = performance.now();
    const report = await scheduler.tick();
    const tickMs = performance.now() - started;
    const cpuUsed = process.cpuUsage(cpu);
    clearInterval(sampler);
    const usage = process.memoryUsage();
    peakRss = Math.max(peakRss, usage.rss);
    peakHeap = Math.max(peakHeap, usage.heapUsed);
    const calls = stack.tally.snapshot().calls;
    const depth = await stack.queueDepth();
    if (report.dispatched.queue !== PLANNER_TASKS || depth !== PLANNER_TASKS) {
      throw new Error(`the tick should queue ${PLANNER_TASKS} tasks; it dispatched ${report.dispatched.queue}, the queue holds ${depth}`);
    }
    return { tasks: PLANNER_TASKS, tickMs, baselineRss: baseline.rss, peakRss, baselineHeap: baseline.heapUsed, peakHeap, cpuMs: (cpuUsed.user + cpuUsed.system) / 1000, calls };
  } finally {
    await stack.destroy();
  }
}

/** Runs a phase of this script in a child process; its last stdout line is the result. */
async function childPhase(phase: string, endpoints: Endpoints): Promise<unknown> {
  const child = spawn(process.execPath, ['--no-warnings', '--import', 'tsx', fileURLToPath(import.meta.url), '--phase', phase, '--planner-tasks', String(PLANNER_TASKS)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, UJR_BENCH_ENDPOINTS: JSON.stringify(endpoints) },
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) throw new Error(`the ${phase} phase exited with code ${code}:\n${stdout}`);
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last);
}

// ---------------------------------------------------------------------------------------------
// Phase 3: bundle sizes and module init time

const INIT_DRIVER = `
import { pathToFileURL } from 'node:url';
const started = performance.now();
await import(pathToFileURL(process.argv[2]).href);
const ms = performance.now() - started;
process.stdout.write('UJR_INIT_MS ' + ms + '\\n', () => process.exit(0));
`;

interface BundleFigures {
  name: string;
  bytes: number;
  initBytes: number;
  files: number;
  initMs: number[];
}

async function importOnce(driver: string, file: string, env: Record<string, string>): Promise<number> {
  const child = spawn(process.execPath, ['--no-warnings', driver, file], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', ...env } });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const match = /UJR_INIT_MS (\d+(\.\d+)?)/.exec(out);
  if (code !== 0 || !match?.[1]) throw new Error(`importing ${file} failed (exit ${code}):\n${out}`);
  return Number(match[1]);
}

async function bundleFigures(endpoints: Endpoints): Promise<BundleFigures[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ujr-bench-bundles-'));
  const stack = await new BenchStack(endpoints).create();
  try {
    // The example pipeline's job types, as this repository deploys them (infra/app.ts).
    const built = await bundleAll(join(dir, 'dist'), { jobs: fileURLToPath(new URL('../jobs/index.ts', import.meta.url)) });
    const driver = join(dir, 'init-driver.mjs');
    writeFileSync(driver, INIT_DRIVER);
    const figures = built.map((result) => ({ name: result.name, bytes: result.bytes, initBytes: result.initBytes, files: result.files.length, initMs: [] as number[] }));
    // Round-robin, so that a burst of load on the machine does not land on one bundle only.
    for (let run = 0; run < INIT_RUNS; run += 1) {
      for (const [index, result] of built.entries()) figures[index]?.initMs.push(await importOnce(driver, result.file, stack.processEnv()));
    }
    return figures;
  } finally {
    await stack.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 4: a three-stage pipeline through follow-up plans

interface PipelineResult {
  items: number;
  /** Next stage's handler start − previous stage's handler end, per item and stage change (ms). */
  latencies: number[];
  totalMs: number;
  workerInvocations: number;
  planner: TallySnapshot;
  plannerMapping: TallySnapshot;
  plannerInvocations: number;
  plannerMs: number[];
  /** Of the planner's time, what bench-stages' own plans took (their history reads). */
  jobPlanMs: number;
  followUpSends: number;
  /** Follow-up requests handed to the planner (duplicates included). */
  requestsDelivered: number;
}

async function pipelinePhase(endpoints: Endpoints): Promise<PipelineResult> {
  const stack = await (await new BenchStack(endpoints).create()).withPlanQueue();
  try {
    await stack.seed([{ id: 'bench-pipeline', job: 'bench-stages', params: { items: PIPELINE_ITEMS }, schedule: '1h' }]);
    const { scheduler } = stack.scheduler();
    const plannerTally = new ApiTally();
    const plannerMappingTally = new ApiTally();
    const planner = stack.scheduler(stack.countedClients(plannerTally));
    const { worker, telemetry, planQueue } = stack.worker();
    if (!planQueue) throw new Error('the worker has no plan queue: UJR_PLAN_QUEUE_URL did not reach it');
    let followUpSends = 0;
    const countingPlanQueue = { send: (messages: Parameters<typeof planQueue.send>[0]) => ((followUpSends += 1), planQueue.send(messages)) };
    const failures: unknown[] = [];
    const workerMs: number[] = [];
    const plannerMs: number[] = [];
    let requestsDelivered = 0;
    const plannerHandler = makeSchedulerHandler({ scheduler: planner.scheduler, telemetry: silentTelemetry });
    const workerSource = new SqsEventSource({ client: stack.mappingSqs, queueUrl: stack.queueUrl, handler: timed(makeWorkerHandler({ worker, telemetry, planQueue: countingPlanQueue }), workerMs, failures), batchSize: BATCH_SIZE, functionTimeoutMs: 15 * 60_000, idleDelayMs: 5 });
    const planSource = new SqsEventSource({
      client: countedSqs(endpoints.sqs, plannerMappingTally),
      queueUrl: stack.planQueueUrl,
      handler: timed((event) => {
        requestsDelivered += event.Records.length;
        return plannerHandler(event);
      }, plannerMs, failures),
      batchSize: 10,
      functionTimeoutMs: 15 * 60_000,
      functionName: 'ujr-planner',
      idleDelayMs: 5,
    });
    const started = performance.now();
    const report = await scheduler.tick();
    if (report.dispatched.queue !== PIPELINE_ITEMS) throw new Error(`the tick should post stage a of ${PIPELINE_ITEMS} items: ${JSON.stringify(report)}`);
    stagesPlanTime.ms = 0;
    // Lambda runs several batches at once: four pollers of each queue.
    workerSource.start({ concurrency: 4 });
    planSource.start({ concurrency: 2 });
    const store = stack.store();
    const deadline = Date.now() + 5 * 60_000;
    let runs = await store.listRuns({ instanceId: 'bench-pipeline', limit: PIPELINE_ITEMS * 3 + 10 });
    while (runs.filter((run) => run.task === 'c' && run.status === 'succeeded').length < PIPELINE_ITEMS) {
      if (failures.length > 0) throw new Error(`a delivery failed: ${JSON.stringify(failures[0]) ?? String(failures[0])}`);
      if (Date.now() > deadline) throw new Error(`the pipeline did not finish within 5 minutes: ${runs.length} runs`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      runs = await store.listRuns({ instanceId: 'bench-pipeline', limit: PIPELINE_ITEMS * 3 + 10 });
    }
    const totalMs = performance.now() - started;
    await Promise.all([workerSource.stop(), planSource.stop()]);
    if (runs.length !== PIPELINE_ITEMS * 3 || runs.some((run) => run.status !== 'succeeded')) throw new Error(`expected ${PIPELINE_ITEMS * 3} succeeded runs, found ${runs.length}`);
    const at = (task: string, i: number) => runs.find((run) => run.task === task && (run.input as { i: number }).i === i);
    const latencies: number[] = [];
    for (let i = 0; i < PIPELINE_ITEMS; i += 1) {
      for (const [from, to] of [['a', 'b'], ['b', 'c']] as const) {
        const ended = at(from, i)?.endedAt;
        const next = at(to, i)?.startedAt;
        if (ended === undefined || next === undefined) throw new Error(`item ${i}: stage ${from} or ${to} has no times`);
        latencies.push(next - ended);
      }
    }
    return {
      items: PIPELINE_ITEMS,
      latencies,
      totalMs,
      workerInvocations: workerMs.length,
      planner: plannerTally.snapshot(),
      plannerMapping: plannerMappingTally.snapshot(),
      plannerInvocations: plannerMs.length,
      plannerMs,
      jobPlanMs: stagesPlanTime.ms,
      followUpSends,
      requestsDelivered,
    };
  } finally {
    await stack.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 5: what a shared limit adds per task on the queue route

interface LimitResult {
  tasks: number;
  worker: TallySnapshot;
  /** The bucket afterwards: every task granted, none refused (the rate is far above the drain's). */
  granted: number;
  refused: number;
}

/**
 * Phase 1's tasks again, each taking one rate limit (`bench-api`, 1,000,000 a second, burst as many: never
 * refused), and only the worker's calls counted: what the limit adds is the difference.
 */
async function limitPhase(endpoints: Endpoints): Promise<LimitResult> {
  const stack = await new BenchStack(endpoints).create();
  try {
    await stack.seed([{ id: 'bench-limited', job: 'bench-limited', params: { count: TASKS }, schedule: '1h' }]);
    await stack.store().putLimits({ 'bench-api': { rate: 1_000_000, per: '1s', burst: 1_000_000 } });
    const report = await stack.scheduler().scheduler.tick();
    if (report.dispatched.queue !== TASKS) throw new Error(`the tick queued ${report.dispatched.queue} of ${TASKS} limited tasks: ${JSON.stringify(report)}`);
    stack.tally.reset();
    const { worker, telemetry } = stack.worker();
    const failures: unknown[] = [];
    const source = new SqsEventSource({ client: stack.mappingSqs, queueUrl: stack.queueUrl, handler: timed(makeWorkerHandler({ worker, telemetry }), [], failures), batchSize: BATCH_SIZE, functionTimeoutMs: 15 * 60_000 });
    await source.drain({ timeoutMs: 30 * 60_000, until: () => failures.length > 0 });
    if (failures.length > 0) throw new Error(`the worker failed a limited delivery: ${JSON.stringify(failures[0]) ?? String(failures[0])}`);
    const snapshot = stack.tally.snapshot();
    const runs = await stack.store().listRuns({ instanceId: 'bench-limited', limit: TASKS + 10 });
    if (runs.length !== TASKS || runs.some((run) => run.status !== 'succeeded')) throw new Error(`expected ${TASKS} succeeded limited runs, found ${runs.length}`);
    const [bucket] = await stack.store().limits.listLimitStates(Date.now());
    return { tasks: TASKS, worker: snapshot, granted: bucket?.granted ?? 0, refused: bucket?.refused ?? 0 };
  } finally {
    await stack.destroy();
  }
}

function printLimit(limited: LimitResult, api: ApiResult): void {
  const n = limited.tasks;
  const per = (value: number, of: number) => value / of;
  const reads = (t: TallySnapshot) => t.readUnits.table + t.readUnits.indexes;
  // Bucket items stay well under 1 KB, so each write to them is one write unit, and AWS charges it
  // whether its condition held or not (a lost race too); DynamoDB Local reports no capacity for a
  // failed condition, so these are counted by request.
  const rows: [string, number, number][] = [
    ['DynamoDB write requests', dynamoWrites(limited.worker), dynamoWrites(api.worker)],
    ['  of them to the instances table (bucket items: 1 write unit each, condition held or not)', dynamoWrites(limited.worker, 'instances'), dynamoWrites(api.worker, 'instances')],
    ['DynamoDB read requests', dynamoReadCalls(limited.worker), dynamoReadCalls(api.worker)],
    ['DynamoDB read units', reads(limited.worker), reads(api.worker)],
  ];
  const writeUnits = per(dynamoWrites(limited.worker, 'instances'), n) - per(dynamoWrites(api.worker, 'instances'), api.tasks);
  const readUnits = per(reads(limited.worker), n) - per(reads(api.worker), api.tasks);
  console.log(`\n5. A shared limit on the queue route: phase 1's ${fmt(n)} tasks, each taking one rate limit that never refuses (worker calls only; one invocation at a time, its ${BATCH_SIZE} tasks asking one after the other)`);
  console.log(
    table([
      ['per task', 'with the limit', 'without (phase 1)', 'added'],
      ...rows.map(([label, withLimit, without]) => [label, fmt(per(withLimit, n), 3), fmt(per(without, api.tasks), 3), fmt(per(withLimit, n) - per(without, api.tasks), 3)]),
    ]),
  );
  console.log('   worker calls: ' + Object.entries(limited.worker.calls).map(([k, v]) => `${k} ${v}`).join(', '));
  console.log(`   bucket afterwards: granted ${fmt(limited.granted)}, refused ${fmt(limited.refused)}; a grant is 1 read and 1 write, each lost race on the bucket 1 write more`);
  console.log(`   the limit adds ${money(1e6 * (writeUnits * PRICE.dynamoWriteUnit + readUnits * PRICE.dynamoReadUnit))} per million tasks (a refusal adds a read, a write and a SendMessage more, and a heartbeat write (the first by a bucket) or half a read unit (later ones))`);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function printPipeline(pipeline: PipelineResult, baseCost: number): void {
  const tasks = pipeline.items * 3;
  const p = pipeline.planner;
  // The posts of stages b and c (the lease items) are what a tick would
  // write anyway, counted in phase 1's cost per task; what follow-ups add is the rest.
  const postUnits = Object.entries(p.writesByCall)
    .filter(([key]) => key.startsWith('UpdateItem leases'))
    .reduce((sum, [, units]) => sum + units.aws, 0);
  const writeUnits = p.awsWriteUnits - postUnits;
  const readUnits = p.readUnits.table + p.readUnits.indexes;
  const mappingCalls = countOf(pipeline.plannerMapping.calls, 'sqs', ['ReceiveMessage', 'DeleteMessageBatch']) - pipeline.plannerMapping.emptyReceives;
  const sqsRequests = pipeline.followUpSends + countOf(p.calls, 'sqs', ['SendMessageBatch', 'SendMessage']) + mappingCalls;
  const p50 = percentile(pipeline.latencies, 50);
  const p99 = percentile(pipeline.latencies, 99);
  const plannerMean = mean(pipeline.plannerMs);
  const million = 1e6;
  const perMillion = (value: number) => (value / tasks) * million;
  const costs: [string, number][] = [
    ['DynamoDB writes', perMillion(writeUnits) * PRICE.dynamoWriteUnit],
    ['DynamoDB reads', perMillion(readUnits) * PRICE.dynamoReadUnit],
    ['SQS', perMillion(sqsRequests) * PRICE.sqsRequest],
    ['Lambda planner, requests', perMillion(pipeline.plannerInvocations) * PRICE.lambdaRequest],
    ['Lambda planner, duration', perMillion(pipeline.plannerInvocations) * (plannerMean / 1000) * WORKER_MEMORY_GB * PRICE.lambdaGbSecond],
  ];
  // The job's own plans (their history reads, mostly) are the job's cost, not the follow-ups'.
  const jobDuration = perMillion(pipeline.jobPlanMs / 1000) * WORKER_MEMORY_GB * PRICE.lambdaGbSecond;
  console.log(`\n4. Follow-up plans: a three-stage pipeline (bench-stages, ${pipeline.items} items, ${tasks} tasks), one tick, then only follow-ups; 4 worker and 2 planner pollers`);
  console.log(
    table([
      ['measure', 'value', 'target', ''],
      ['stage-to-stage start latency p50 (next handler start − previous handler end)', `${fmt(p50, 0)} ms`, '<= 1000 ms', verdict(p50 <= 1000)],
      ['stage-to-stage start latency p99', `${fmt(p99, 0)} ms`, '<= 3000 ms', verdict(p99 <= 3000)],
      ['max', `${fmt(Math.max(...pipeline.latencies), 0)} ms`, '', ''],
      ['whole pipeline, tick to last success', `${fmt(pipeline.totalMs / 1000, 2)} s`, '', ''],
      ['follow-up requests sent (one per worker invocation with ended tasks) / planner invocations', `${pipeline.followUpSends} / ${pipeline.plannerInvocations}`, '', ''],
      // Each follow-up plan that got through its gate reads the instance's status once.
      ['follow-up requests delivered / plans made (gate claimed)', `${pipeline.requestsDelivered} / ${countOf(p.calls, 'dynamodb', ['GetItem'], 'instances')}`, '', ''],
      ['DynamoDB write requests per task: posts (a tick would make them) / follow-up gate and status', `${fmt(dynamoWrites(p, 'leases') / tasks, 3)} / ${fmt(dynamoWrites(p, 'instances') / tasks, 3)}`, '', ''],
      ['extra DynamoDB write units / read units per task (reads: the plans\' history reads)', `${fmt(writeUnits / tasks, 3)} / ${fmt(readUnits / tasks, 3)}`, '', ''],
      ['extra SQS requests per task (plan queue send, receive, delete)', fmt(sqsRequests / tasks, 3), '', ''],
      ['planner invocation duration (mean) / of it, the job\'s own plans', `${fmt(plannerMean, 0)} ms / ${fmt(pipeline.jobPlanMs / pipeline.plannerInvocations, 0)} ms`, '', ''],
    ]),
  );
  console.log('   planner calls: ' + Object.entries(p.calls).map(([k, v]) => `${k} ${v}`).join(', '));
  console.log('   (the posts of stages b and c are the work a tick would do anyway; everything else above is what follow-ups add)');
  console.log(table([['follow-up cost per million tasks', 'cost'], ...costs.map(([item, cost]) => [item, money(cost)]), ['total', money(costs.reduce((s, [, c]) => s + c, 0))]]));
  // What any job pays with follow-ups on: phase 1's tasks plus what follow-ups add, but what this
  // job's own plans cost (bench-stages checks each item's stages on every plan): their reads, and
  // the planner's time they took.
  const followUps = costs.filter(([item]) => item !== 'DynamoDB reads').reduce((sum, [, cost]) => sum + cost, 0) - jobDuration;
  const withFollowUps = baseCost + followUps;
  console.log(
    table([
      ['cost per million batch tasks', 'cost', 'target', ''],
      ['follow-ups alone, the job\'s own plans apart', money(followUps), '', ''],
      ['this job\'s own plans: their reads and planner time', money((costs.find(([item]) => item === 'DynamoDB reads')?.[1] ?? 0) + jobDuration), '', ''],
      ['with follow-up plans on (phase 1 + follow-ups, the job\'s own plans apart)', money(withFollowUps), `<= ${money(TARGET.costPerMillion)}`, verdict(withFollowUps <= TARGET.costPerMillion)],
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// Report

/** The sum of the entries keyed `<service>:<command>` or `<service>:<command> <table>`, for these commands (and that table). */
function countOf(record: Record<string, number>, service: string, commands: string[], table?: string): number {
  let count = 0;
  for (const [key, value] of Object.entries(record)) {
    const [call = '', on] = key.split(' ');
    const [svc, command = ''] = call.split(':');
    if (svc === service && commands.includes(command) && (table === undefined || on === table)) count += value;
  }
  return count;
}
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? NaN) : ((sorted[middle - 1] ?? NaN) + (sorted[middle] ?? NaN)) / 2;
};
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const fmt = (value: number, digits = 3) => value.toLocaleString('en-US', { maximumFractionDigits: digits });
const money = (value: number) => `$${value.toFixed(value < 1 ? 3 : 2)}`;
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

function table(rows: (string | number)[][]): string {
  const text = rows.map((row) => row.map(String));
  const widths = text[0]?.map((_, column) => Math.max(...text.map((row) => row[column]?.length ?? 0))) ?? [];
  return text.map((row) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ')).join('\n');
}

/** Write requests: single-item writes, and each item of a batch or transaction. */
function dynamoWrites(t: TallySnapshot, table?: string): number {
  return countOf(t.calls, 'dynamodb', ['PutItem', 'UpdateItem', 'DeleteItem'], table) + countOf(t.items, 'dynamodb', ['BatchWriteItem', 'TransactWriteItems'], table);
}

function dynamoReadCalls(t: TallySnapshot): number {
  return countOf(t.calls, 'dynamodb', ['GetItem', 'BatchGetItem', 'Query', 'Scan', 'TransactGetItems']);
}

/** Prints phase 1 and returns its cost per million tasks. */
function printApi(api: ApiResult, planner: PlannerResult): number {
  const n = api.tasks;
  const both = (key: string) => (api.tick.calls[key] ?? 0) + (api.worker.calls[key] ?? 0);
  const writeRequests = dynamoWrites(api.tick) + dynamoWrites(api.worker);
  // The instance's status (lastPlannedAt) is written once per planned instance and tick, whatever
  // its task count; the note that a task has runs, once per task name and worker container.
  const perTickWrites = dynamoWrites(api.tick, 'instances') + dynamoWrites(api.worker, 'instances');
  const perTaskWrites = (writeRequests - perTickWrites) / n;
  const writeUnits = api.tick.writeUnits.table + api.tick.writeUnits.indexes + api.worker.writeUnits.table + api.worker.writeUnits.indexes;
  const indexWriteUnits = api.tick.writeUnits.indexes + api.worker.writeUnits.indexes;
  const awsWriteUnits = api.tick.awsWriteUnits + api.worker.awsWriteUnits;
  const readUnits = api.tick.readUnits.table + api.tick.readUnits.indexes + api.worker.readUnits.table + api.worker.readUnits.indexes;
  const ours = countOf(api.tick.calls, 'sqs', ['SendMessageBatch', 'SendMessage']) + countOf(api.worker.calls, 'sqs', ['SendMessageBatch', 'SendMessage']);
  const mappingCalls = countOf(api.mapping.calls, 'sqs', ['ReceiveMessage', 'DeleteMessageBatch']) - api.mapping.emptyReceives;
  const leased = api.leasedTick;
  const leasedReadCalls = dynamoReadCalls(leased);
  const leasedReadUnits = leased.readUnits.table + leased.readUnits.indexes;
  const handlerMean = mean(api.handlerMs);

  console.log(`\n1. AWS API calls per task, steady state: ${fmt(n)} trivial tasks, 1 tick, ${api.invocations} worker invocations (batch ${BATCH_SIZE})`);
  console.log(
    table([
      ['call', 'tick', 'worker', 'per task'],
      ...[...new Set([...Object.keys(api.tick.calls), ...Object.keys(api.worker.calls)])]
        .sort()
        .map((key) => [key + (api.tick.items[key] ?? api.worker.items[key] ? ` (${fmt((api.tick.items[key] ?? 0) + (api.worker.items[key] ?? 0))} items)` : ''), api.tick.calls[key] ?? 0, api.worker.calls[key] ?? 0, fmt(both(key) / n, 4)]),
      ...Object.keys(api.mapping.calls)
        .sort()
        .map((key) => [`${key} (event source mapping${key.endsWith('GetQueueAttributes') ? ': this harness only' : ''})`, 0, api.mapping.calls[key] ?? 0, fmt((api.mapping.calls[key] ?? 0) / n, 4)]),
    ]),
  );
  console.log(`   empty ReceiveMessage at the end of the drain: ${api.mapping.emptyReceives}`);
  console.log(
    table([
      ['measure', 'per task', 'target', ''],
      ['DynamoDB write requests per task (+ per planned instance and tick, per task name and container)', `${fmt(perTaskWrites, 3)} (+ ${perTickWrites})`, '', ''],
      [`  amortised over these ${fmt(n)} tasks`, fmt(writeRequests / n, 4), '', ''],
      ['DynamoDB write units (table + GSI, as DynamoDB Local counts)', fmt(writeUnits / n, 3), '', ''],
      ['  of which GSI write units', fmt(indexWriteUnits / n, 3), '', ''],
      ['DynamoDB write units as AWS charges them (transactions: 2 per KB and item, GSIs 1)', fmt(awsWriteUnits / n, 3), '', ''],
      ['DynamoDB read requests', fmt((dynamoReadCalls(api.tick) + dynamoReadCalls(api.worker)) / n, 4), '', ''],
      ['DynamoDB read units', fmt(readUnits / n, 4), '', ''],
      ['SQS requests, ujr (SendMessageBatch)', fmt(ours / n, 4), '', ''],
      ['SQS requests, event source mapping (non-empty Receive + DeleteBatch)', fmt(mappingCalls / n, 4), '', ''],
      ['SQS requests, total', fmt((ours + mappingCalls) / n, 4), `<= ${TARGET.sqsPerTask}`, verdict((ours + mappingCalls) / n <= TARGET.sqsPerTask)],
      ['worker handler duration per invocation (mean, ms)', fmt(handlerMean, 1), '', ''],
      ['tick time (ms) / drain time (ms)', `${fmt(api.tickMs, 0)} / ${fmt(api.drainMs, 0)}`, '', ''],
    ]),
  );
  console.log('   write units per task, by call and by table or index written (AWS: as AWS charges them)');
  console.log(
    table([
      ['call', 'tick (local)', 'worker (local)', 'per task (local)', 'per task (AWS)'],
      ...[...new Set([...Object.keys(api.tick.writesByCall), ...Object.keys(api.worker.writesByCall)])].sort().map((key) => {
        const tick = api.tick.writesByCall[key] ?? { local: 0, aws: 0 };
        const worker = api.worker.writesByCall[key] ?? { local: 0, aws: 0 };
        return [key, fmt(tick.local / n, 3), fmt(worker.local / n, 3), fmt((tick.local + worker.local) / n, 3), fmt((tick.aws + worker.aws) / n, 3)];
      }),
      ['total', fmt((api.tick.writeUnits.table + api.tick.writeUnits.indexes) / n, 3), fmt((api.worker.writeUnits.table + api.worker.writeUnits.indexes) / n, 3), fmt(writeUnits / n, 3), fmt(awsWriteUnits / n, 3)],
    ]),
  );
  console.log(`   item sizes: lease item while posted ${api.leaseItemBytes} B, after release ${api.releasedLeaseItemBytes} B; run item ${api.runItemBytes} B (write unit = 1 KB)`);
  console.log(
    `   GSIs (core/adapters/aws/tables.ts): leases.${TABLES.leases.globalSecondaryIndexes.map((i) => `${i.indexName} (${i.projection})`).join(', ')}; runs.${TABLES.runs.globalSecondaryIndexes.map((i) => `${i.indexName} (${i.projection})`).join(', ')}`,
  );

  console.log(`\n   Re-planning ${fmt(n)} tasks that are all still leased (second tick, nothing new): ${fmt(api.leasedTickMs, 0)} ms`);
  console.log(
    table([
      ['call', 'count', 'per leased task', 'target'],
      ...Object.keys(leased.calls)
        .sort()
        .map((key) => [key + (leased.items[key] ? ` (${fmt(leased.items[key] ?? 0)} items)` : ''), leased.calls[key] ?? 0, fmt((leased.calls[key] ?? 0) / n, 4), '']),
      ['DynamoDB read requests', leasedReadCalls, fmt(leasedReadCalls / n, 4), `<= ${fmt(TARGET.readsPerLeasedTask, 3)} ${verdict(leasedReadCalls / n <= TARGET.readsPerLeasedTask)}`],
      ['DynamoDB read units', fmt(leasedReadUnits, 1), fmt(leasedReadUnits / n, 4), `<= ${fmt(TARGET.readsPerLeasedTask, 3)} ${verdict(leasedReadUnits / n <= TARGET.readsPerLeasedTask)}`],
      ['DynamoDB write requests', dynamoWrites(leased), fmt(dynamoWrites(leased) / n, 4), ''],
    ]),
  );

  // Costs per million tasks.
  const million = 1e6;
  const perTask = (value: number) => (value / n) * million;
  const invocations = million / BATCH_SIZE;
  const plannerSecondsPerTask = planner.tickMs / 1000 / planner.tasks;
  const costs: [string, number, string][] = [
    ['DynamoDB writes', perTask(awsWriteUnits) * PRICE.dynamoWriteUnit, `${fmt(awsWriteUnits / n, 2)} WRU/task as AWS charges (DynamoDB Local reports ${fmt(writeUnits / n, 2)})`],
    ['DynamoDB reads', perTask(readUnits) * PRICE.dynamoReadUnit, `${fmt(readUnits / n, 3)} RRU/task`],
    ['SQS', perTask(ours + mappingCalls) * PRICE.sqsRequest, `${fmt((ours + mappingCalls) / n, 3)} requests/task`],
    ['Lambda worker, duration', invocations * (handlerMean / 1000) * WORKER_MEMORY_GB * PRICE.lambdaGbSecond, `${fmt(handlerMean, 0)} ms per batch of ${BATCH_SIZE} at ${WORKER_MEMORY_GB * 1024} MB`],
    ['Lambda worker, requests', invocations * PRICE.lambdaRequest, `${fmt(invocations)} invocations`],
    ['Lambda scheduler, duration', million * plannerSecondsPerTask * WORKER_MEMORY_GB * PRICE.lambdaGbSecond, `${fmt(plannerSecondsPerTask * 1000, 3)} ms of tick per task at 512 MB`],
  ];
  const total = costs.reduce((s, [, cost]) => s + cost, 0);
  console.log('\n   Cost per million tasks, on-demand, us-east-1');
  console.log(table([['item', 'cost', 'basis'], ...costs.map(([item, cost, basis]) => [item, money(cost), basis]), ['total', money(total), 'before follow-up plans (phase 4 adds them)'], ['Step Functions Standard, 1 transition per task', money(million * PRICE.stepFunctionsTransition), 'orchestration alone, before Lambda'], ['Step Functions Standard, 3 transitions per task', money(3 * million * PRICE.stepFunctionsTransition), '']]));
  return total;
}

function printPlanner(planner: PlannerResult): void {
  const mib = (bytes: number) => `${fmt(bytes / 2 ** 20, 0)} MiB`;
  console.log(`\n2. Planner: ${fmt(planner.tasks)} new tasks in one tick (plan, peek, post, SendMessageBatch), separate process`);
  console.log(
    table([
      ['measure', 'value'],
      ['tick time', `${fmt(planner.tickMs / 1000, 2)} s`],
      ['tasks/s', fmt(planner.tasks / (planner.tickMs / 1000), 0)],
      ['scheduler process CPU during the tick', `${fmt(planner.cpuMs / 1000, 2)} s, ${fmt(planner.cpuMs / planner.tasks, 2)} ms per task (${fmt((planner.cpuMs / planner.tickMs) * 100, 0)}% of one core)`],
      ['RSS before / peak', `${mib(planner.baselineRss)} / ${mib(planner.peakRss)}`],
      ['heap used before / peak', `${mib(planner.baselineHeap)} / ${mib(planner.peakHeap)}`],
      ['calls', Object.entries(planner.calls).map(([k, v]) => `${k.replace(/^[a-z0-9]+:/, '')} ${v}`).join(', ')],
    ]),
  );
}

function printBundles(bundles: BundleFigures[]): void {
  console.log(`\n3. Bundles (minified ESM, all .mjs files; source maps not counted) and module init (import() in a fresh node, ${INIT_RUNS} runs)`);
  console.log(
    table([
      ['bundle', 'bytes', 'loaded at init', 'files', 'init median', 'min', 'max', 'size', 'init'],
      ...bundles.map((b) => [
        b.name,
        fmt(b.bytes),
        fmt(b.initBytes),
        b.files,
        `${fmt(median(b.initMs), 0)} ms`,
        `${fmt(Math.min(...b.initMs), 0)} ms`,
        `${fmt(Math.max(...b.initMs), 0)} ms`,
        verdict(b.bytes < TARGET.bundleBytes),
        verdict(median(b.initMs) <= TARGET.initMs),
      ]),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------

if (values.phase === 'planner') {
  const endpoints = endpointsSchema.parse(JSON.parse(process.env.UJR_BENCH_ENDPOINTS ?? '{}'));
  console.log(JSON.stringify(await plannerPhase(endpoints)));
  process.exit(0);
} else {
  const servers: RunningServer[] = [];
  try {
    const [dynamodb, sqs, s3] = await Promise.all([startDynamoDbLocal(), startSqsEmulator(), startS3Emulator()]);
    servers.push(dynamodb, sqs, s3);
    const endpoints: Endpoints = { dynamodb: dynamodb.endpoint, sqs: sqs.endpoint, s3: s3.endpoint };
    const cpu = cpus();
    console.log(
      `ujr AWS runtime on the emulators (DynamoDB Local, local-aws-sqs, s3rver); Node ${process.version}, ${cpu.length} × ${cpu[0]?.model ?? 'CPU'}, ` +
        `${fmt(totalmem() / 2 ** 30, 0)} GiB; load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    );
    const api = await apiCalls(endpoints);
    const planner = plannerResultSchema.parse(await childPhase('planner', endpoints));
    const bundles = await bundleFigures(endpoints);
    const pipeline = await pipelinePhase(endpoints);
    const limited = await limitPhase(endpoints);
    const baseCost = printApi(api, planner);
    printPlanner(planner);
    printBundles(bundles);
    printPipeline(pipeline, baseCost);
    printLimit(limited, api);
    console.log(`\nload average at end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
  }
  // The SDK's keep-alive sockets and the emulators' timers would hold the process open.
  process.exit(0);
}
