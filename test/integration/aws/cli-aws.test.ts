/**
 * The CLI's `--stack` mode against a deployment on the emulators: `main()` called in-process with
 * an Io that captures its output, the stack's outputs faked by a UJR_STACK_OUTPUTS file naming a
 * LocalAwsStack's tables and queues, and the AWS context built with clients for the emulators.
 *
 * - DynamoDB (store, board, instances table) and SQS (redrive) are the emulators.
 * - Lambda is mocked with aws-sdk-client-mock: an Invoke runs the real scheduler handler
 *   (makeSchedulerHandler over stack.scheduler(jobs)) in-process, as Lambda would, errors included.
 * - CloudWatch Logs has no emulator: it is mocked, and the test checks the log groups and filter
 *   pattern the CLI sends and what it prints of the lines it gets back.
 * - CloudFormation (DescribeStacks) is mocked for the stack-not-found and missing-output messages.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient, FilterLogEventsCommand, type FilteredLogEvent } from '@aws-sdk/client-cloudwatch-logs';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { mockClient, type AwsClientStub } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openAwsCliContext } from '../../../core/adapters/aws/cli-context.js';
import { makeSchedulerHandler, makeWorkerHandler } from '../../../core/adapters/aws/handlers.js';
import { loadStackOutputs, STACK_OUTPUTS, StackNotFoundError, type StackOutputs } from '../../../core/adapters/aws/stack-outputs.js';
import { main } from '../../../core/cli/main.js';
import { secretsResolver } from '../../../core/cloud/secrets.js';
import { RUN_STATUSES } from '../../../core/types.js';
import jobs from '../../fixtures/aws/jobs.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { SqsEventSource } from '../../helpers/sqs-event-source.js';
import { until } from '../../helpers/runner.js';
import { answerInvoke, payloadOf, type InvokeInput } from '../../helpers/lambda-invoke.js';
import { EMULATOR_CREDENTIALS, EMULATOR_REGION } from '../../servers/emulators.js';

const STACK = 'ujr-test';
const JOBS_MODULE = fileURLToPath(new URL('../../fixtures/aws/jobs.ts', import.meta.url));
const SCHEDULER_FUNCTION = 'ujr-test-Scheduler-1A2B3C';
const LOG_GROUPS = { worker: '/aws/lambda/ujr-test-Worker', conductor: '/ujr/ujr-test/conductor', scheduler: '/aws/lambda/ujr-test-Scheduler' };

const runSchema = z.looseObject({
  id: z.string(),
  instanceId: z.string(),
  task: z.string(),
  signature: z.string(),
  status: z.enum(RUN_STATUSES),
  origin: z.string(),
  queuedAt: z.number(),
  input: z.unknown(),
  error: z.object({ name: z.string(), message: z.string() }).optional(),
});
const runsSchema = z.array(runSchema);
/** The shape `ujr status --json` has locally (test/integration/cli.test.ts), plus the lease of what is on the board. */
const statusSchema = z.object({
  instances: z.array(
    z.object({
      instance: z.looseObject({ id: z.string(), job: z.string(), enabled: z.boolean() }),
      tasks: z.array(z.object({ task: z.string(), last: runSchema.optional() })),
    }),
  ),
  running: z.array(runSchema.extend({ lease: z.object({ route: z.string(), owner: z.string(), expiresAt: z.number() }) })),
  failures: runsSchema,
  problems: z.array(z.string()),
});
const jobsListSchema = z.object({
  instances: z.array(z.looseObject({ id: z.string(), job: z.string(), enabled: z.boolean() })),
  problems: z.array(z.string()),
});

interface Exit {
  code: number;
  stdout: string;
  stderr: string;
}

function expectExit(exit: Exit, code: number): void {
  expect(exit.code, `exit code ${exit.code}\n--- stdout ---\n${exit.stdout}\n--- stderr ---\n${exit.stderr}`).toBe(code);
}

let stack: LocalAwsStack;
let dir: string;
let outputsFile: string;
let outputs: StackOutputs;
let lambda: LambdaClient;
let lambdaMock: AwsClientStub<LambdaClient>;
let logs: CloudWatchLogsClient;
let logsMock: AwsClientStub<CloudWatchLogsClient>;

async function queueArn(url: string): Promise<string> {
  const result = await stack.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
  return result.Attributes?.QueueArn ?? '';
}

beforeEach(async () => {
  stack = await new LocalAwsStack({ maxReceiveCount: 3, visibilityTimeoutSec: 1 }).create();
  dir = await mkdtemp(join(tmpdir(), 'ujr-cli-aws-'));
  outputs = {
    [STACK_OUTPUTS.leasesTable]: stack.names.leases,
    [STACK_OUTPUTS.runsTable]: stack.names.runs,
    [STACK_OUTPUTS.instancesTable]: stack.names.instances,
    [STACK_OUTPUTS.dataBucket]: stack.names.bucket,
    [STACK_OUTPUTS.taskQueueUrl]: stack.queueUrl,
    [STACK_OUTPUTS.taskQueueArn]: await queueArn(stack.queueUrl),
    [STACK_OUTPUTS.deadLetterQueueUrl]: stack.deadLetterQueueUrl,
    [STACK_OUTPUTS.deadLetterQueueArn]: await queueArn(stack.deadLetterQueueUrl),
    [STACK_OUTPUTS.schedulerFunction]: SCHEDULER_FUNCTION,
    [STACK_OUTPUTS.schedulerLogGroup]: LOG_GROUPS.scheduler,
    [STACK_OUTPUTS.workerLogGroup]: LOG_GROUPS.worker,
    [STACK_OUTPUTS.conductorLogGroup]: LOG_GROUPS.conductor,
    [STACK_OUTPUTS.region]: EMULATOR_REGION,
  };
  // As `npx cdk deploy --outputs-file` writes it: outputs by stack name.
  outputsFile = join(dir, 'outputs.json');
  await writeFile(outputsFile, JSON.stringify({ [STACK]: outputs }, null, 2));
  lambda = new LambdaClient({ region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS });
  lambdaMock = mockClient(lambda);
  logs = new CloudWatchLogsClient({ region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS });
  logsMock = mockClient(logs);
});

afterEach(async () => {
  lambdaMock.restore();
  logsMock.restore();
  lambda.destroy();
  logs.destroy();
  await stack.destroy();
  await rm(dir, { recursive: true, force: true });
});

/** `ujr --stack ujr-test --jobs <fixture jobs> <args>`, in-process, against the emulators. */
async function ujr(args: string[], options: { outputsFile?: string; stack?: string | null } = {}): Promise<Exit> {
  const out: string[] = [];
  const err: string[] = [];
  const stackArgs = options.stack === null ? [] : ['--stack', options.stack ?? STACK];
  const code = await main(
    ['node', 'ujr', ...stackArgs, '--jobs', JOBS_MODULE, ...args],
    { out: (text) => out.push(text), err: (text) => err.push(text) },
    {
      openStack: (name) =>
        openAwsCliContext(name, {
          env: { UJR_STACK_OUTPUTS: options.outputsFile ?? outputsFile },
          clients: { dynamodb: stack.clients.dynamodb, sqs: stack.clients.sqs, lambda, logs },
        }),
    },
  );
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

async function ujrJson<T>(schema: z.ZodType<T>, args: string[]): Promise<T> {
  const exit = await ujr([...args, '--json']);
  expectExit(exit, 0);
  return schema.parse(JSON.parse(exit.stdout));
}

function workerSource(): SqsEventSource {
  const { worker, telemetry } = stack.worker(jobs);
  return new SqsEventSource({ client: stack.clients.sqs, queueUrl: stack.queueUrl, handler: makeWorkerHandler({ worker, telemetry }), functionTimeoutMs: 60_000 });
}

/** The JSON of an Invoke payload. */
/** Secrets resolved from a map, so no test reaches SSM. */
const resolveParams = secretsResolver({ get: (ref) => (ref.id === '/ujr/token' ? Promise.resolve('t0ken') : Promise.reject(new Error(`no parameter ${ref.id}`))) });

/**
 * Plays Lambda for the scheduler function: an Invoke runs the real handler in-process and answers
 * as Lambda does (the report as payload, or `FunctionError` with `errorType`/`errorMessage`).
 * Resolves `invoked` after each call.
 */
function playSchedulerFunction(): { events: unknown[]; invoked: () => Promise<void> } {
  const handler = makeSchedulerHandler(stack.scheduler(jobs, {}, { resolveParams }));
  const events: unknown[] = [];
  let signal: () => void = () => undefined;
  let next = new Promise<void>((resolve) => (signal = resolve));
  lambdaMock.on(InvokeCommand).callsFake(async (input: InvokeInput) => {
    try {
      return await answerInvoke(SCHEDULER_FUNCTION, handler, input, (event) => events.push(event));
    } finally {
      signal();
      next = new Promise<void>((resolve) => (signal = resolve));
    }
  });
  return { events, invoked: () => next };
}

describe('ujr status and runs --stack', () => {
  it('shows queued tasks from the board, then the runs the worker recorded, in the local shapes', async () => {
    // Prepare
    await stack.seedInstances([
      { id: 'fan', job: 'fanout', params: { count: 3 }, schedule: '1m' },
      { id: 'broken', job: 'fanout', params: { count: 1, failFatal: [0], attempts: 1 }, schedule: '1m' },
    ]);
    await stack.scheduler(jobs, {}, { resolveParams }).scheduler.tick();

    // Act: before any worker ran, and after one drained the queue
    const queued = await ujrJson(statusSchema, ['status']);
    const queuedText = await ujr(['status']);
    await workerSource().drain({ timeoutMs: 20_000 });
    const done = await ujrJson(statusSchema, ['status']);
    const doneText = await ujr(['status']);
    const runs = await ujrJson(runsSchema, ['runs', '--limit', '100']);
    const failedText = await ujr(['runs', '--status', 'failed']);
    const fanRuns = await ujrJson(runsSchema, ['runs', '--job', 'fan', '--task', 'item']);

    // Assess: queued tasks live on the board (no run record yet)
    expect(queued.running.map((run) => [run.instanceId, run.task, run.status, run.lease.route]).sort()).toEqual([
      ['broken', 'item', 'queued', 'queue'],
      ['fan', 'item', 'queued', 'queue'],
      ['fan', 'item', 'queued', 'queue'],
      ['fan', 'item', 'queued', 'queue'],
    ]);
    expect(queued.instances.map((i) => [i.instance.id, i.tasks.map((t) => [t.task, t.last?.status])])).toEqual([
      ['broken', [['item', undefined]]],
      ['fan', [['item', undefined]]],
    ]);
    expectExit(queuedText, 0);
    expect(queuedText.stdout).toMatch(/^running and queued:\nRUN\s+INSTANCE\s+TASK\s+STATUS\s+ATTEMPT\s+ROUTE\s+OWNER\s+STARTED\s+EXPIRES\s+SIGNATURE/m);
    expect(queuedText.stdout).toMatch(/^[\w-]+\s+fan\s+item\s+queued\s+1\/3\s+queue\s+/m);
    // after the worker: last runs, nothing on the board, the failure of the last day
    expect(done.instances.map((i) => [i.instance.id, i.instance.enabled, i.tasks.map((t) => [t.task, t.last?.status])])).toEqual([
      ['broken', true, [['item', 'failed']]],
      ['fan', true, [['item', 'succeeded']]],
    ]);
    expect(done.running).toEqual([]);
    expect(done.failures.map((run) => [run.instanceId, run.error?.name])).toEqual([['broken', 'NonRetryableError']]);
    expect(done.problems).toEqual([]);
    expectExit(doneText, 0);
    expect(doneText.stdout).toMatch(/^fan\s+fanout\s+enabled\s+item\s+succeeded /m);
    expect(doneText.stdout).toMatch(/^broken\s+fanout\s+enabled\s+item\s+failed /m);
    expect(doneText.stdout).toContain('nothing running');
    expect(doneText.stdout).toMatch(/failures in the last 24h:\n.*\n[\w-]+\s+broken\s+item\s+failed/);
    // runs: every record, filters served by the DynamoDB indexes
    expect(runs).toHaveLength(4);
    expect(runs.every((run) => run.origin === 'schedule')).toBe(true);
    expect(fanRuns.map((run) => run.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expectExit(failedText, 0);
    expect(failedText.stdout).toMatch(/^[\w-]+\s+broken\s+item\s+failed\s+1\/1 .*NonRetryableError: item 0 cannot be done/m);
  });
});

describe('ujr status --stack: shared limits', () => {
  it('lists the buckets the workers take from, with their level and what they refused', async () => {
    const now = Date.now();
    const rate = { count: 2, perMs: 60_000, burst: 2 };
    const take = (holder: string) => stack.store.limits.acquireLimits({ holder, ttlMs: 60_000, limits: [{ name: 'quota-api', key: 'lab-1', rate }] }, now);
    const grants = [await take('a'), await take('b'), await take('c')];

    const status = await ujrJson(z.object({ limits: z.array(z.looseObject({ name: z.string(), key: z.string(), granted: z.number(), refused: z.number(), tokens: z.number() })) }), ['status']);
    const text = await ujr(['status']);

    expect(grants.map((grant) => grant.granted)).toEqual([true, true, false]);
    expect(status.limits).toEqual([expect.objectContaining({ name: 'quota-api', key: 'lab-1', granted: 2, refused: 1 })]);
    expect(status.limits[0]?.tokens).toBeLessThan(1);
    expectExit(text, 0);
    expect(text.stdout).toMatch(/^limits:\n.*\n\s*quota-api\s+lab-1\s/m);
  });
});

describe('ujr jobs --stack', () => {
  it('disables and enables instances in the instances table, which the scheduler applies at its next tick', async () => {
    // Prepare
    await stack.seedInstances([
      { id: 'a', job: 'fanout', params: { count: 1 }, schedule: '1m' },
      { id: 'b', job: 'fanout', params: { count: 1 }, schedule: '1m' },
    ]);
    const { scheduler } = stack.scheduler(jobs, {}, { resolveParams });

    // Act
    const disable = await ujr(['jobs', 'disable', 'b']);
    const listed = await ujrJson(jobsListSchema, ['jobs', 'list']);
    const listText = await ujr(['jobs', 'list']);
    const whileDisabled = await scheduler.tick();
    const enable = await ujr(['jobs', 'enable', 'b']);
    const afterEnable = await scheduler.tick();
    const missing = await ujr(['jobs', 'disable', 'x']);

    // Assess
    expectExit(disable, 0);
    expect(disable.stdout).toBe('b disabled in stack "ujr-test" (the scheduler applies it at its next tick)');
    expect(listed.instances.map((i) => [i.id, i.job, i.enabled])).toEqual([
      ['a', 'fanout', true],
      ['b', 'fanout', false],
    ]);
    expect(listed.problems).toEqual([]);
    // params as validated by the job type, defaults filled in (as locally)
    expect(listText.stdout).toMatch(/^b\s+fanout\s+no\s+1m\s+ok\s+\{"attempts":3,"count":1,/m);
    expect(whileDisabled.planned).toEqual(['a']);
    expectExit(enable, 0);
    expect(enable.stdout).toContain('b enabled in stack "ujr-test"');
    // a was planned at the tick before and is not due again for a minute; b is due now
    expect(afterEnable.planned).toEqual(['b']);
    // the edit is an override: the entry as deployed is kept, so a redeploy does not undo it
    const entries = await stack.store.listInstanceEntries();
    expect(entries.find((e) => e.id === 'b')).toMatchObject({ enabled: true });
    expectExit(missing, 3);
    expect(missing.stderr).toContain('no job instance "x" in the instances table of stack "ujr-test"; known: a, b');
  });
});

describe('ujr trigger --stack', () => {
  it('invokes the scheduler function with the task and input; --wait follows the run until a worker ran it', async () => {
    // Prepare
    await stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 0 }, schedule: '1m' }]);
    const lambdaFn = playSchedulerFunction();

    // Act
    const triggering = ujr(['trigger', 'fan', 'item', '--input', '{"i":7}', '--wait', '--timeout', '20000']);
    await lambdaFn.invoked();
    await workerSource().drain({ timeoutMs: 20_000 });
    const trigger = await triggering;

    // Assess
    expectExit(trigger, 0);
    expect(trigger.stdout).toContain('triggered fan/item on stack "ujr-test": dispatched 1 (queue 1, conductor 0, fargate 0)');
    expect(trigger.stdout).toMatch(/^[\w-]+\s+fan\s+item\s+succeeded\s+1\/3/m);
    expect(lambdaFn.events).toEqual([{ instanceId: 'fan', task: 'item', input: { i: 7 } }]);
    const invoke = lambdaMock.commandCalls(InvokeCommand)[0]?.args[0].input;
    expect(invoke).toMatchObject({ FunctionName: SCHEDULER_FUNCTION, InvocationType: 'RequestResponse' });
    const runs = await stack.store.listRuns({ instanceId: 'fan' });
    expect(runs.map((run) => [run.task, run.origin, run.status, run.input])).toEqual([['item', 'manual', 'succeeded', { i: 7 }]]);
  });

  it('--wait follows a retried task from its failed attempt (nextRunId) to the attempt that succeeded, and exits 0', async () => {
    // Prepare
    await stack.seedInstances([{ id: 'flaky', job: 'fanout', params: { count: 1, failUntilAttempt: 2 }, schedule: '1h' }]);
    const lambdaFn = playSchedulerFunction();

    // Act
    const triggering = ujr(['trigger', 'flaky', '--wait', '--timeout', '20000']);
    await lambdaFn.invoked();
    await workerSource().drain({ timeoutMs: 20_000 });
    const trigger = await triggering;

    // Assess
    expectExit(trigger, 0);
    const runs = (await stack.store.listRuns({ instanceId: 'flaky' })).sort((a, b) => a.attempt - b.attempt);
    expect(runs.map((run) => [run.attempt, run.status])).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
    expect(runs[0]!.nextRunId).toBe(runs[1]!.id);
    expect(trigger.stdout).toMatch(new RegExp(`^${runs[1]!.id}\\s+flaky\\s+item\\s+succeeded\\s+2/3`, 'm'));
  });

  it('exits 1 when the triggered run fails, and without --wait only says what was dispatched', async () => {
    // Prepare
    await stack.seedInstances([{ id: 'bad', job: 'fanout', params: { count: 0, failFatal: [5], attempts: 1 }, schedule: '1m' }]);
    const lambdaFn = playSchedulerFunction();

    // Act
    const triggering = ujr(['trigger', 'bad', '--task', 'item', '--input', '{"i":5}', '--wait', '--timeout', '20000']);
    await lambdaFn.invoked();
    await workerSource().drain({ timeoutMs: 20_000 });
    const failed = await triggering;
    const again = await ujr(['trigger', 'bad', 'item', '--input', '{"i":6}', '--json']);

    // Assess
    expectExit(failed, 1);
    // an ad-hoc task has the default retry policy; a non-retryable error ends it at the first attempt
    expect(failed.stdout).toMatch(/^[\w-]+\s+bad\s+item\s+failed\s+1\/3 .*NonRetryableError: item 5 cannot be done/m);
    expectExit(again, 0);
    const report = z.object({ trigger: z.looseObject({ instanceId: z.string() }), report: z.looseObject({ dispatched: z.looseObject({ queue: z.number() }) }) }).parse(JSON.parse(again.stdout));
    expect(report).toMatchObject({ trigger: { instanceId: 'bad', task: 'item', input: { i: 6 } }, report: { dispatched: { queue: 1 } } });
    expect(await stack.queueDepth()).toBe(1);
  });

  it('refuses unknown instances and tasks before invoking, and reports what the scheduler function refused', async () => {
    // Prepare
    await stack.seedInstances([
      { id: 'fan', job: 'fanout', params: { count: 0 }, schedule: '1m' },
      // The CLI does not resolve secrets, so this entry only fails in the scheduler.
      { id: 'keyed', job: 'secretive', params: { token: { $secret: 'ssm:/ujr/missing' } }, schedule: '1m' },
    ]);
    playSchedulerFunction();

    // Act
    const unknownInstance = await ujr(['trigger', 'nobody']);
    const unknownTask = await ujr(['trigger', 'fan', 'dance']);
    const refused = await ujr(['trigger', 'keyed']);

    // Assess
    expectExit(unknownInstance, 3);
    expect(unknownInstance.stderr).toContain('no job instance "nobody" in the instances table of stack "ujr-test"; known: fan, keyed');
    expectExit(unknownTask, 3);
    expect(unknownTask.stderr).toContain('job type "fanout" has no task "dance"; its tasks: item');
    expect(lambdaMock.commandCalls(InvokeCommand).map((call) => payloadOf(call.args[0].input.Payload))).toEqual([
      { instanceId: 'keyed' },
    ]);
    expectExit(refused, 1);
    expect(refused.stderr).toContain(`the scheduler function ${SCHEDULER_FUNCTION} refused the request: Error: instance "keyed" is broken`);
  });
});

/** A line as Powertools Logger writes it to CloudWatch Logs. */
function powertoolsLine(level: string, message: string, at: number, fields: Record<string, unknown>): string {
  return JSON.stringify({ level, message, sampling_rate: 0, service: 'ujr-worker', timestamp: new Date(at).toISOString(), ...fields });
}

describe('ujr logs --stack', () => {
  it('searches every log group for the run id and prints time, level and message of each line, then the outcome', async () => {
    // Prepare: a run the worker recorded, and the lines CloudWatch Logs holds for it
    await stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 1 }, schedule: '1m' }]);
    await stack.scheduler(jobs, {}, { resolveParams }).scheduler.tick();
    await workerSource().drain({ timeoutMs: 20_000 });
    const [run] = await stack.store.listRuns({ instanceId: 'fan' });
    if (!run) throw new Error('the worker recorded no run');
    const fields = { runId: run.id, instanceId: 'fan', task: 'item', signature: run.signature };
    const t0 = run.startedAt ?? run.queuedAt;
    const byGroup: Record<string, FilteredLogEvent[][]> = {
      [LOG_GROUPS.scheduler]: [[{ eventId: 's1', timestamp: t0 - 50, message: powertoolsLine('INFO', 'dispatched', t0 - 50, fields) }]],
      // Two pages: the CLI follows nextToken.
      [LOG_GROUPS.worker]: [
        [{ eventId: 'w1', timestamp: t0, message: powertoolsLine('INFO', 'working on item 0', t0, fields) }],
        [
          { eventId: 'w2', timestamp: t0 + 20, message: powertoolsLine('WARN', 'slow disk', t0 + 20, { ...fields, error: 'EIO' }) },
          // JSON with the run id but not a Powertools line: printed as it is.
          { eventId: 'w3', timestamp: t0 + 30, message: JSON.stringify({ runId: run.id, note: 'custom' }) },
        ],
      ],
    };
    logsMock.on(FilterLogEventsCommand).callsFake((input: { logGroupName?: string; nextToken?: string }) => {
      const pages = byGroup[input.logGroupName ?? ''] ?? [[]];
      const index = input.nextToken ? Number(input.nextToken) : 0;
      return { events: pages[index] ?? [], ...(index + 1 < pages.length ? { nextToken: String(index + 1) } : {}) };
    });

    // Act
    const exit = await ujr(['logs', run.id]);

    // Assess: the search
    const calls = logsMock.commandCalls(FilterLogEventsCommand).map((call) => call.args[0].input);
    expect([...new Set(calls.map((input) => input.logGroupName))].sort()).toEqual([LOG_GROUPS.conductor, LOG_GROUPS.scheduler, LOG_GROUPS.worker].sort());
    expect(new Set(calls.map((input) => input.filterPattern))).toEqual(new Set([`{ $.runId = "${run.id}" }`]));
    expect(calls.every((input) => input.startTime === run.queuedAt - 5 * 60_000)).toBe(true);
    // the lines, oldest first, then the outcome
    expectExit(exit, 0);
    const time = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    expect(exit.stdout.split('\n')).toEqual([
      `${time(t0 - 50)} INFO  dispatched`,
      `${time(t0)} INFO  working on item 0`,
      `${time(t0 + 20)} WARN  slow disk: EIO`,
      `${time(t0 + 30)} ${JSON.stringify({ runId: run.id, note: 'custom' })}`,
      expect.stringMatching(/^succeeded after \d/),
    ]);
  });

  it('says when nothing was found: exit 3 for an unknown run id, a note about retention for a known one', async () => {
    // Prepare
    await stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 1 }, schedule: '1m' }]);
    await stack.scheduler(jobs, {}, { resolveParams }).scheduler.tick();
    await workerSource().drain({ timeoutMs: 20_000 });
    const [run] = await stack.store.listRuns({ instanceId: 'fan' });
    logsMock.on(FilterLogEventsCommand).resolves({ events: [] });

    // Act
    const unknown = await ujr(['logs', '01UNKNOWNRUN']);
    const silent = await ujr(['logs', run?.id ?? '']);

    // Assess
    expectExit(unknown, 3);
    expect(unknown.stderr).toContain(`no log line has runId "01UNKNOWNRUN" in ${LOG_GROUPS.worker}, ${LOG_GROUPS.conductor}, ${LOG_GROUPS.scheduler}, and no run has that id`);
    expect(unknown.stderr).toContain('retention');
    expectExit(silent, 0);
    expect(silent.stderr).toContain('the lines may have expired (log retention)');
    expect(silent.stdout).toMatch(/^succeeded after/);
  });
});

describe('ujr redrive --stack', () => {
  // local-aws-sqs implements StartMessageMoveTask and ListMessageMoveTasks, so this runs on the emulator.
  it('moves the dead-letter queue back to the task queue and lists the move task', async () => {
    // Prepare
    const body = JSON.stringify({ v: 1, note: 'dead letter' });
    await stack.clients.sqs.send(new SendMessageCommand({ QueueUrl: stack.deadLetterQueueUrl, MessageBody: body }));
    // The emulator counts a message as delayed until a 0 ms timer of its own fires, so a request
    // that reaches it first reads ApproximateNumberOfMessages 0 (redrive would find nothing to do).
    await until(
      async () => {
        const { Attributes } = await stack.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: stack.deadLetterQueueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
        return Attributes?.ApproximateNumberOfMessages === '1';
      },
      5_000,
      'the emulator to count the dead letter',
    );

    // Act
    const redrive = await ujr(['redrive']);
    const received: string[] = [];
    const deadline = Date.now() + 10_000;
    while (received.length === 0 && Date.now() < deadline) {
      // Short polls with a long visibility timeout: a long poll of the emulator can return a message
      // twice once its visibility timeout passes (see TOOLING.md).
      const result = await stack.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.queueUrl, WaitTimeSeconds: 0, VisibilityTimeout: 60, MaxNumberOfMessages: 10 }));
      for (const message of result.Messages ?? []) received.push(message.Body ?? '');
      if (received.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const status = await ujr(['redrive', '--status']);
    const empty = await ujr(['redrive']);

    // Assess
    expectExit(redrive, 0);
    expect(redrive.stdout).toContain('moving about 1 message from the dead-letter queue back to the task queue');
    expect(redrive.stdout).toMatch(/^task handle: \S+/m);
    expect(received).toEqual([body]);
    expect(await stack.queueDepth(stack.deadLetterQueueUrl)).toBe(0);
    expectExit(status, 0);
    expect(status.stdout).toMatch(/^STARTED\s+STATUS\s+MOVED\s+TO MOVE\s+FAILURE\s+HANDLE/m);
    expect(status.stdout).toMatch(/\s(RUNNING|COMPLETED)\s+1\s/);
    expectExit(empty, 0);
    expect(empty.stdout).toContain('is empty: nothing to redrive');
  });

  it('needs --stack', async () => {
    // Act
    const exit = await ujr(['redrive'], { stack: null });

    // Assess
    expectExit(exit, 2);
    expect(exit.stderr).toContain('ujr redrive works on a deployed stack: pass --stack <name>');
  });
});

describe('stack outputs and refused commands', () => {
  it('exits 2 naming a missing output, and a stack the outputs file does not hold', async () => {
    // Prepare: a flat outputs file without DeadLetterQueueArn, and a CDK one of another stack
    const { [STACK_OUTPUTS.deadLetterQueueArn]: _dropped, ...older } = outputs;
    const olderFile = join(dir, 'older.json');
    await writeFile(olderFile, JSON.stringify(older));

    // Act
    const missing = await ujr(['runs'], { outputsFile: olderFile });
    const otherStack = await ujr(['status'], { stack: 'ujr-prod' });

    // Assess
    expectExit(missing, 2);
    expect(missing.stderr).toContain(`has no output DeadLetterQueueArn: the stack predates this version of ujr`);
    expectExit(otherStack, 2);
    expect(otherStack.stderr).toContain('has no outputs of stack "ujr-prod"; it has "ujr-test"');
  });

  it('refuses --stack for run, which is local (ujr ui --stack is tested in ui-stack.test.ts)', async () => {
    // Act
    const run = await ujr(['run', '--once']);

    // Assess
    expectExit(run, 2);
    expect(run.stderr).toContain('ujr run is the local runner; on AWS the scheduler runs on its own');
  });

  it('reads outputs with DescribeStacks, naming region and profile when the stack does not exist', async () => {
    // Prepare
    const cloudformation = new CloudFormationClient({ region: 'eu-west-1', credentials: EMULATOR_CREDENTIALS });
    const cfn = mockClient(cloudformation);
    cfn
      .on(DescribeStacksCommand, { StackName: STACK })
      .resolves({ Stacks: [{ StackName: STACK, StackStatus: 'UPDATE_COMPLETE', CreationTime: new Date(), Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })) }] })
      .on(DescribeStacksCommand, { StackName: 'nope' })
      .rejects(Object.assign(new Error('Stack with id nope does not exist'), { name: 'ValidationError' }));

    try {
      // Act
      const found = await loadStackOutputs(STACK, { cloudformation, env: { AWS_PROFILE: 'research' } });
      const notFound = loadStackOutputs('nope', { cloudformation, env: { AWS_PROFILE: 'research' } });

      // Assess
      expect(found).toEqual(outputs);
      await expect(notFound).rejects.toThrow(StackNotFoundError);
      await expect(notFound).rejects.toThrow('no CloudFormation stack "nope" in region eu-west-1, profile research: deploy it with "npx cdk deploy"');
    } finally {
      cfn.restore();
      cloudformation.destroy();
    }
  });
});
