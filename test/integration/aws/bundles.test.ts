/**
 * The deployable bundles (build/bundle.ts) run: each is built once, then loaded by a plain `node`
 * child process (no tsx, no node_modules next to it, the environment the CDK stack would give it,
 * pointed at the emulators), exactly as Lambda or ECS would load it. What a bundle can get wrong
 * that the in-process tests cannot see: ESM/CommonJS interop, dynamic requires, files left out,
 * modules read at init, names lost to minification, the size budget.
 *
 * The bundles are built over a jobs module as the CDK construct builds them: the example job types
 * (jobs/index.ts), whose `summary` job's `report` task reads per-file statistics under
 * `processed/<source>/` and writes a report; and a user's project outside jobs/
 * (test/fixtures/user-project/), whose job imports from `ujr` and from a helper file of its own.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { bundle, BUNDLE_BUDGET_BYTES, bundleAll, type BundleName, type BundleResult } from '../../../build/bundle.js';
import { tickReportSchema } from '../../../core/cloud/scheduler.js';
import { ROOT } from '../../../core/package-root.js';
import jobs from '../../../jobs/index.js';
import userJobs from '../../fixtures/user-project/jobs.js';
import { UjrProcess } from '../../fixtures/cli/sandbox.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { EMULATOR_CREDENTIALS } from '../../servers/emulators.js';
import { pollFor } from '../../helpers/runner.js';
import { sqsEvent, sqsRecord } from '../../helpers/sqs-events.js';

const SUMMARY_INSTANCE = { id: 'metrics-summary', job: 'summary', params: { source: 'metrics' }, schedule: '1m' };

/** One file's statistics as the processor writes them (jobs/processor.ts, `fileStatsSchema`). */
const STATS = {
  source: 'metrics',
  file: 'collected/metrics/0001.jsonl',
  count: 3,
  malformed: 0,
  firstAt: 1_700_000_000_000,
  lastAt: 1_700_000_002_000,
  fields: { temperature: { count: 3, min: 20, mean: 21, max: 22 } },
};

/**
 * Loads a Lambda bundle and calls its handler once, as the Lambda runtime would: argv is the
 * bundle, the function's timeout in ms and a JSON file holding the event. Prints the handler's
 * answer on a line of its own, after whatever the handler logged.
 */
const LAMBDA_DRIVER = `
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const [bundle, timeoutMs, eventFile] = process.argv.slice(2);
const deadline = Date.now() + Number(timeoutMs);
const { handler } = await import(pathToFileURL(bundle).href);
const context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: 'ujr-bundle-test',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:ujr-bundle-test',
  memoryLimitInMB: '512',
  awsRequestId: randomUUID(),
  logGroupName: '/aws/lambda/ujr-bundle-test',
  logStreamName: 'bundle-test',
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
};
const result = await handler(JSON.parse(readFileSync(eventFile, 'utf8')), context);
// The SDK keeps sockets open; Lambda freezes the process here, a test process must exit.
process.stdout.write('\\nUJR_RESULT ' + JSON.stringify(result ?? null) + '\\n', () => process.exit(0));
`;

const batchResponseSchema = z.object({ batchItemFailures: z.array(z.object({ itemIdentifier: z.string() })) });

/** Imports a bundle as Lambda would and prints what its `handler` export is. */
const LOAD_DRIVER = `
import { pathToFileURL } from 'node:url';
const module = await import(pathToFileURL(process.argv[2]).href);
process.stdout.write('UJR_HANDLER ' + typeof module.handler + '\\n', () => process.exit(0));
`;

const USER_PROJECT = join(ROOT, 'test', 'fixtures', 'user-project');

let dir: string;
let bundles: Record<BundleName, BundleResult>;
let userBundles: Record<BundleName, BundleResult>;
let stack: LocalAwsStack;
const processes = new Set<UjrProcess>();

const byName = (built: BundleResult[]) => Object.fromEntries(built.map((result) => [result.name, result])) as Record<BundleName, BundleResult>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ujr-bundles-'));
  bundles = byName(await bundleAll(join(dir, 'dist'), { jobs: join(ROOT, 'jobs', 'index.ts') }));
  userBundles = byName(await bundleAll(join(dir, 'user'), { jobs: join(USER_PROJECT, 'jobs.ts') }));
  writeFileSync(join(dir, 'lambda-driver.mjs'), LAMBDA_DRIVER);
  writeFileSync(join(dir, 'load-driver.mjs'), LOAD_DRIVER);
}, 120_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  stack = await new LocalAwsStack().create();
});

afterEach(async () => {
  const running = [...processes];
  for (const proc of running) proc.signal('SIGKILL');
  await Promise.allSettled(running.map((proc) => proc.exited));
  processes.clear();
  await stack.destroy();
});

/** `node <args>` with exactly `env` (and PATH): no tsx, nothing inherited from the test process. */
function startNode(args: string[], env: Record<string, string>): UjrProcess {
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', ...env } });
  const proc = new UjrProcess(child, ['node', ...args]);
  processes.add(proc);
  return proc;
}

/** Waits for the process to exit, failing after `ms`. */
async function exitOf(proc: UjrProcess, ms = 30_000): Promise<Awaited<UjrProcess['exited']>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${ms} ms:\n${proc.describe()}`)), ms);
  });
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Invokes a Lambda bundle's handler with `event` in a fresh process; returns what the handler returned. */
async function invoke(name: 'worker' | 'scheduler', event: unknown, env: Record<string, string>, built: Record<BundleName, BundleResult> = bundles): Promise<unknown> {
  const eventFile = join(dir, `event-${name}-${Date.now()}.json`);
  writeFileSync(eventFile, JSON.stringify(event));
  const proc = startNode([join(dir, 'lambda-driver.mjs'), built[name].file, '60000', eventFile], env);
  const exit = await exitOf(proc);
  expect(exit.code, proc.describe()).toBe(0);
  const line = exit.stdout.split('\n').find((text) => text.startsWith('UJR_RESULT '));
  if (line === undefined) throw new Error(`the ${name} bundle's handler printed no result:\n${proc.describe()}`);
  return JSON.parse(line.slice('UJR_RESULT '.length));
}

/** The scheduler's environment without an ECS cluster: ECS has no emulator, so the fleet is a no-op. */
function withoutFleet(env: Record<string, string>): Record<string, string> {
  const { UJR_CLUSTER: _cluster, UJR_CONDUCTOR_SERVICE: _service, ...rest } = env;
  return rest;
}

async function putStats(): Promise<void> {
  await stack.clients.s3.send(new PutObjectCommand({ Bucket: stack.names.bucket, Key: 'processed/metrics/0001.json', Body: JSON.stringify(STATS) }));
}

describe('the worker bundle', () => {
  it('runs a dispatched task from an SQS event to a succeeded run record', async () => {
    await stack.seedInstances([SUMMARY_INSTANCE]);
    await putStats();
    const posted = await stack.scheduler(jobs).scheduler.runNow({ instanceId: 'metrics-summary', task: 'report', input: {} });
    const received = await stack.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: stack.queueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 1, AttributeNames: ['All'], VisibilityTimeout: 60 }),
    );
    const message = received.Messages?.[0];
    if (!message?.Body || !message.MessageId || !message.ReceiptHandle) throw new Error(`the queue held no dispatch message: ${JSON.stringify(received)}`);
    const event: SQSEvent = sqsEvent([sqsRecord(message.Body, { messageId: message.MessageId, receiptHandle: message.ReceiptHandle })]);

    const response = batchResponseSchema.parse(await invoke('worker', event, stack.processEnv()));

    expect(posted.dispatched.queue).toBe(1);
    expect(response.batchItemFailures).toEqual([]);
    const runs = await stack.store.listRuns({ instanceId: 'metrics-summary' });
    expect(runs.map((run) => [run.task, run.status])).toEqual([['report', 'succeeded']]);
    expect(runs[0]?.result).toMatchObject({ files: 1, samples: 3 });
    const report = await stack.clients.s3.send(new GetObjectCommand({ Bucket: stack.names.bucket, Key: 'reports/metrics/summary.json' }));
    expect(JSON.parse((await report.Body?.transformToString()) ?? '{}')).toMatchObject({ source: 'metrics', files: 1, samples: 3 });
    expect((await stack.store.getLease(runs[0]?.signature ?? ''))?.owner ?? null).toBeNull();
  });
});

describe('the scheduler bundle', () => {
  it('ticks: plans the due instance, records when it planned, and queues its task', async () => {
    await stack.seedInstances([SUMMARY_INSTANCE]);
    await putStats();
    const before = Date.now();

    const report = tickReportSchema.parse(await invoke('scheduler', {}, withoutFleet(stack.processEnv())));

    expect(report).toMatchObject({ planned: ['metrics-summary'], tasks: 1, dispatched: { queue: 1, conductor: 0, fargate: 0 }, rejected: 0 });
    const { statuses } = await stack.store.loadInstancesAndStatus();
    const status = statuses.find((s) => s.instanceId === 'metrics-summary');
    expect(status?.lastPlannedAt).toBeGreaterThanOrEqual(before);
    expect(await stack.queueDepth()).toBe(1);
  });
});

describe('the container bundle', () => {
  it('starts as a conductor without a task message and exits 0 on SIGTERM', async () => {
    const proc = startNode([bundles.container.file], stack.processEnv({ UJR_CONDUCTOR_POLL_MS: '200', UJR_GRACE_MS: '1000' }));
    await pollFor(() => {
      if (!proc.running) throw new Error(`the container exited before it started:\n${proc.describe()}`);
      return /conductor \S+ started/.exec(proc.stdout) ?? undefined;
    }, 20_000, 'the conductor to log that it started');

    proc.signal('SIGTERM');
    const exit = await exitOf(proc, 5_000);

    expect(exit.code, proc.describe()).toBe(0);
    expect(exit.stdout).toMatch(/conductor \S+ stopping/);
  });

  it("starts with the task role's credentials from the container credentials endpoint, as ECS serves them, when the environment holds none", async () => {
    // An endpoint on loopback (the HTTP provider allows it, as ECS's link-local one), answering as ECS does.
    let asked = 0;
    const endpoint = createServer((request, response) => {
      asked += 1;
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ AccessKeyId: EMULATOR_CREDENTIALS.accessKeyId, SecretAccessKey: EMULATOR_CREDENTIALS.secretAccessKey, Token: 'session', Expiration: new Date(Date.now() + 3_600_000).toISOString() }),
      );
    });
    await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
    const { AWS_ACCESS_KEY_ID: _key, AWS_SECRET_ACCESS_KEY: _secret, ...env } = stack.processEnv({ UJR_CONDUCTOR_POLL_MS: '200', UJR_GRACE_MS: '1000' });
    const credentialsUri = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/v2/credentials/task-role`;
    try {
      const proc = startNode([bundles.container.file], { ...env, AWS_CONTAINER_CREDENTIALS_FULL_URI: credentialsUri });
      await pollFor(() => {
        if (!proc.running) throw new Error(`the container exited before it started:\n${proc.describe()}`);
        // Started: its first poll of the board (a DynamoDB call, signed with those credentials) went through.
        return /conductor \S+ started/.exec(proc.stdout) && asked > 0 ? true : undefined;
      }, 20_000, 'the conductor to start with credentials from the endpoint');
      proc.signal('SIGTERM');
      const exit = await exitOf(proc, 5_000);

      expect(exit.code, proc.describe()).toBe(0);
      expect(exit.stderr).not.toMatch(/CredentialsProviderError|Could not load credentials/);
      expect(asked).toBeGreaterThan(0);
    } finally {
      await new Promise((resolve) => endpoint.close(resolve));
    }
  });

  it('refuses to start without UJR_LEASES_TABLE, naming it, with an error that kept its class name', async () => {
    const { UJR_LEASES_TABLE: _leases, ...env } = stack.processEnv();

    const exit = await exitOf(startNode([bundles.container.file], env), 20_000);

    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toContain('UJR_LEASES_TABLE is not set');
    // Minification must not rename error classes: run records and the runtime go by their names.
    expect(exit.stderr).toContain('RuntimeConfigError: the ujr container cannot start');
  });
});

describe('the bundles', () => {
  // Measured 2026-11-28 over the example jobs (all .mjs files of a bundle, source maps not
  // counted): scheduler 912,635 B, worker 880,823 B, container 895,572 B; no bundle carries the
  // SDK's SSO/STS credential chain (see build/bundle.ts), the container's code is one file.
  it.each([
    ['scheduler', 'example'],
    ['worker', 'example'],
    ['container', 'example'],
    ['scheduler', 'user'],
    ['worker', 'user'],
    ['container', 'user'],
  ] as const)('%s over the %s jobs: no better-sqlite3, and under the 1 MB budget', (name, jobsOf) => {
    const result = (jobsOf === 'example' ? bundles : userBundles)[name];

    const inputs = Object.keys(result.metafile.inputs);
    const text = result.files.map((file) => readFileSync(file, 'utf8'));

    expect(inputs.filter((input) => input.includes('better-sqlite3'))).toEqual([]);
    expect(text.filter((code) => code.includes('better-sqlite3'))).toEqual([]);
    expect(result.bytes).toBeLessThan(BUNDLE_BUDGET_BYTES);
    expect(result.bytes).toBe(text.reduce((sum, code) => sum + Buffer.byteLength(code), 0));
  });
});

describe('credentials', () => {
  it('the Lambda bundles take them from the environment Lambda sets; the container from the environment or the endpoint ECS serves, not the whole chain', () => {
    const inputsOf = (result: BundleResult, provider: RegExp) => Object.keys(result.metafile.inputs).filter((input) => provider.test(input));
    const chain = /node_modules[\\/]@aws-sdk[\\/](credential-provider-(node|sso|ini|process|web-identity|login)|nested-clients)[\\/]/;
    const http = /node_modules[\\/]@aws-sdk[\\/]credential-provider-http[\\/]/;
    const env = /node_modules[\\/]@aws-sdk[\\/]credential-provider-env[\\/]/;

    for (const name of ['scheduler', 'worker', 'container'] as const) expect(inputsOf(bundles[name], chain)).toEqual([]);
    expect(inputsOf(bundles.worker, http)).toEqual([]);
    expect(inputsOf(bundles.worker, env)).not.toEqual([]);
    expect(inputsOf(bundles.container, http)).not.toEqual([]);
    expect(inputsOf(bundles.container, env)).not.toEqual([]);
  });
});

/** The user's instances: one greets, two refuse with a NonRetryableError (ujr's own, and the project's subclass of it). */
const USER_INSTANCES = [
  { id: 'hello', job: 'greeter', params: { who: 'world' } },
  { id: 'refused', job: 'greeter', params: { who: 'nobody', refuse: 'ujr' } },
  { id: 'refused-own', job: 'greeter', params: { who: 'no one', refuse: 'own' } },
];

describe('the bundles of a user\'s project', () => {
  it.each(['scheduler', 'worker', 'container'] as const)('%s: hold the user\'s job and its helper file, and none of the example jobs', (name) => {
    const result = userBundles[name];
    const text = result.files.map((file) => readFileSync(file, 'utf8')).join('\n');
    const sources = result.sources.map((source) => relative(ROOT, source));

    expect(sources).toEqual(expect.arrayContaining(['test/fixtures/user-project/jobs.ts', 'test/fixtures/user-project/greeting.ts', 'core/index.ts']));
    expect(sources.filter((source) => source.startsWith('jobs/'))).toEqual([]);
    expect(text).toContain('ujr-user-project-greeting');
    expect(text).toContain('"greeter"');
    for (const example of ['"collector"', '"processor"', '"archiver"', '"summary"']) expect(text, example).not.toContain(example);
    // The examples' bundles, the other way round.
    expect(bundles[name].files.map((file) => readFileSync(file, 'utf8')).join('\n')).not.toContain('ujr-user-project-greeting');
  });

  it('has a worker bundle that loads in plain Node.js and exports its handler as a function', async () => {
    const proc = startNode([join(dir, 'load-driver.mjs'), userBundles.worker.file], stack.processEnv());

    const exit = await exitOf(proc);

    expect(exit.code, proc.describe()).toBe(0);
    expect(exit.stdout).toContain('UJR_HANDLER function');
  });

  it('runs the user\'s tasks in its worker bundle; a NonRetryableError (ujr\'s or a subclass) keeps its class name and is not retried', async () => {
    await stack.seedInstances(USER_INSTANCES);
    const { scheduler } = stack.scheduler(userJobs);
    for (const instance of USER_INSTANCES) await scheduler.runNow({ instanceId: instance.id, task: 'greet', input: {} });
    const received = await stack.clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: stack.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, AttributeNames: ['All'], VisibilityTimeout: 60 }),
    );
    const records = (received.Messages ?? []).map((message) => sqsRecord(message.Body ?? '', { messageId: message.MessageId ?? '', receiptHandle: message.ReceiptHandle ?? '' }));
    expect(records).toHaveLength(USER_INSTANCES.length);

    const response = batchResponseSchema.parse(await invoke('worker', sqsEvent(records), stack.processEnv(), userBundles));

    expect(response.batchItemFailures).toEqual([]);
    const runs = await stack.store.listRuns({ limit: 10 });
    const runOf = (instanceId: string) => runs.filter((run) => run.instanceId === instanceId);
    expect(runOf('hello').map((run) => [run.status, run.result])).toEqual([['succeeded', { greeting: 'ujr-user-project-greeting: hello, world' }]]);
    expect(runOf('refused').map((run) => [run.status, run.error?.name, run.attempt, run.maxAttempts, run.nextRunId])).toEqual([['failed', 'NonRetryableError', 1, 3, undefined]]);
    expect(runOf('refused-own').map((run) => [run.status, run.error?.name, run.attempt, run.nextRunId])).toEqual([['failed', 'GreetingRefusedError', 1, undefined]]);
    const greeting = await stack.clients.s3.send(new GetObjectCommand({ Bucket: stack.names.bucket, Key: 'greetings/hello.txt' }));
    expect(await greeting.Body?.transformToString()).toBe('ujr-user-project-greeting: hello, world');
  });
});

describe('bundling a user\'s project', () => {
  /** A project folder of its own under the test's directory: `files` by path, package folders included. */
  function project(name: string, files: Record<string, string>): string {
    const root = join(dir, name);
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return root;
  }

  const JOB = `
export const job = defineJob({
  name: 'shadowed',
  params: z.object({}),
  getRunnableTasks: () => [{ task: 'run', input: {} }],
  tasks: { run: { run: () => ({ dependency: DEPENDENCY_MARKER, zod: ZOD_MARKER }) } },
});
export default [job];
`;

  it('resolves the user\'s packages from the user\'s project and ujr\'s from ujr\'s, though both name one (zod)', async () => {
    const root = project('shadowing-project', {
      'node_modules/zod/package.json': JSON.stringify({ name: 'zod', version: '0.0.1', type: 'module', main: 'index.js' }),
      'node_modules/zod/index.js': "export const ZOD_MARKER = 'the-user-project-own-zod';\n",
      'node_modules/user-dependency/package.json': JSON.stringify({ name: 'user-dependency', version: '1.0.0', type: 'module', main: 'index.js' }),
      'node_modules/user-dependency/index.js': "export const DEPENDENCY_MARKER = 'the-user-project-dependency';\n",
      'jobs.ts': `import { defineJob, z } from 'ujr';\nimport { ZOD_MARKER } from 'zod';\nimport { DEPENDENCY_MARKER } from 'user-dependency';\n${JOB}`,
    });

    const result = await bundle('worker', join(dir, 'shadowing-out'), { jobs: join(root, 'jobs.ts') });

    const text = result.files.map((file) => readFileSync(file, 'utf8')).join('\n');
    expect(text).toContain('the-user-project-own-zod');
    expect(text).toContain('the-user-project-dependency');
    const inputs = Object.keys(result.metafile.inputs).map((input) => join(ROOT, input));
    expect(inputs.filter((input) => input.includes('/node_modules/zod/')).some((input) => input.startsWith(join(ROOT, 'node_modules', 'zod')))).toBe(true);
    const proc = startNode([join(dir, 'load-driver.mjs'), result.file], stack.processEnv());
    const exit = await exitOf(proc);
    expect(exit.code, proc.describe()).toBe(0);
    expect(exit.stdout).toContain('UJR_HANDLER function');
  });

  it.each([
    ['ujr/cdk', /imports "ujr\/cdk": ujr\/cdk is the CDK construct, for your CDK app where you synthesize, not for job code that runs on AWS; job code imports from "ujr" only/],
    ['ujr/testing', /imports "ujr\/testing": ujr\/testing holds test helpers, for your tests, not for job code that runs on AWS/],
  ])('refuses job code that imports %s, naming the file and saying why', async (specifier, message) => {
    const root = project(`imports-${specifier.replace('/', '-')}`, {
      'helper.ts': `import * as cdk from '${specifier}';\nexport const DEPENDENCY_MARKER = typeof cdk;\nexport const ZOD_MARKER = 'none';\n`,
      'jobs.ts': `import { defineJob, z } from 'ujr';\nimport { DEPENDENCY_MARKER, ZOD_MARKER } from './helper.js';\n${JOB}`,
    });

    const bundling = bundle('worker', join(dir, `out-${specifier.replace('/', '-')}`), { jobs: join(root, 'jobs.ts') });

    await expect(bundling).rejects.toThrow(message);
    await expect(bundling).rejects.toThrow(join(root, 'helper.ts'));
  });

  it('refuses a jobs module that does not exist, naming it', async () => {
    await expect(bundle('worker', join(dir, 'out-missing'), { jobs: join(dir, 'no-such-project', 'jobs.ts') })).rejects.toThrow(
      `the jobs module ${join(dir, 'no-such-project', 'jobs.ts')} does not exist: pass the path of the module whose default export lists your job types`,
    );
  });
});
