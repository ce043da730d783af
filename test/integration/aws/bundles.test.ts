/**
 * The deployable bundles (build/bundle.ts) run: each is built once, then loaded by a plain `node`
 * child process (no tsx, no node_modules next to it, the environment the CDK stack would give it,
 * pointed at the emulators), exactly as Lambda or ECS would load it. What a bundle can get wrong
 * that the in-process tests cannot see: ESM/CommonJS interop, dynamic requires, files left out,
 * modules read at init, names lost to minification, the size budget.
 *
 * The bundles embed the example job types (jobs/index.ts), so the tests use the `summary` job:
 * its `report` task reads per-file statistics under `processed/<source>/` and writes a report.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BUNDLE_BUDGET_BYTES, bundleAll, type BundleName, type BundleResult } from '../../../build/bundle.js';
import { tickReportSchema } from '../../../core/cloud/scheduler.js';
import jobs from '../../../jobs/index.js';
import { UjrProcess } from '../../fixtures/cli/sandbox.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
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

let dir: string;
let bundles: Record<BundleName, BundleResult>;
let stack: LocalAwsStack;
const processes = new Set<UjrProcess>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ujr-bundles-'));
  const built = await bundleAll(join(dir, 'dist'));
  bundles = Object.fromEntries(built.map((result) => [result.name, result])) as Record<BundleName, BundleResult>;
  writeFileSync(join(dir, 'lambda-driver.mjs'), LAMBDA_DRIVER);
}, 60_000);

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
async function invoke(name: 'worker' | 'scheduler', event: unknown, env: Record<string, string>): Promise<unknown> {
  const eventFile = join(dir, `event-${name}-${Date.now()}.json`);
  writeFileSync(eventFile, JSON.stringify(event));
  const proc = startNode([join(dir, 'lambda-driver.mjs'), bundles[name].file, '60000', eventFile], env);
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
  // Measured 2026-11-22 (all .mjs files of a bundle, source maps not counted): scheduler 977,007 B,
  // worker 946,603 B, container 945,030 B; loaded at init 884,384 B, 853,980 B, 852,407 B (the rest
  // are chunks imported only when needed, such as the SDK's SSO and STS credential providers).
  it.each(['scheduler', 'worker', 'container'] as const)('%s: no better-sqlite3, and under the 1 MB budget', (name) => {
    const result = bundles[name];

    const inputs = Object.keys(result.metafile.inputs);
    const text = result.files.map((file) => readFileSync(file, 'utf8'));

    expect(inputs.filter((input) => input.includes('better-sqlite3'))).toEqual([]);
    expect(text.filter((code) => code.includes('better-sqlite3'))).toEqual([]);
    expect(result.bytes).toBeLessThan(BUNDLE_BUDGET_BYTES);
    expect(result.bytes).toBe(text.reduce((sum, code) => sum + Buffer.byteLength(code), 0));
  });
});
