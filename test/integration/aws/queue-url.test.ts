/**
 * The queue-URL rule against the SQS emulator: a runtime (and the CLI) configured with
 * AWS_ENDPOINT_URL_SQS and given queue URLs on AWS's own host send to the emulator. The clients
 * under test carry a guard that refuses, and records, any request to a host other than the
 * emulator's, so a call that would have left for AWS fails the test at once instead of reaching out.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateQueueCommand, DeleteQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openAwsCliContext } from '../../../core/adapters/aws/cli-context.js';
import { parseEnv, workerEnvSchema } from '../../../core/adapters/aws/env.js';
import { workerRuntime } from '../../../core/adapters/aws/runtime.js';
import { STACK_OUTPUTS } from '../../../core/adapters/aws/stack-outputs.js';
import { dispatchMessageSchema, type DispatchMessage } from '../../../core/cloud/messages.js';
import { RecordingTelemetry } from '../../helpers/telemetry.js';
import { EMULATOR_CREDENTIALS, EMULATOR_REGION } from '../../servers/emulators.js';
import { emulatorClientConfig, emulatorEndpoint, uniqueName } from '../../servers/endpoints.js';

const AWS_SQS = 'https://sqs.us-east-1.amazonaws.com';
const ACCOUNT = '000000000000';

/** Creates and reads the emulator's queues directly (explicit endpoint, emulator URLs). */
const admin = new SQSClient(emulatorClientConfig('sqs'));

let names: { queue: string; deadLetterQueue: string };
let emulatorUrls: { queue: string; deadLetterQueue: string };
let scratch: string;

/** A request the guard refused: it would have left for `origin`. */
class EscapedRequestError extends Error {
  constructor(readonly origin: string) {
    super(`a request would have left for ${origin}, not the SQS emulator`);
  }
}

/**
 * A client as the runtime builds one (no endpoint option: it follows AWS_ENDPOINT_URL_SQS), with
 * a guard between the SDK and the network: `origins` lists every request's origin; any not the
 * emulator's is refused before it is sent.
 */
function guardedClient(): { client: SQSClient; origins: string[]; warnings: string[] } {
  const warnings: string[] = [];
  const logger = { debug: () => {}, info: () => {}, warn: (text: unknown) => warnings.push(String(text)), error: () => {} };
  const client = new SQSClient({ region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS, maxAttempts: 1, logger });
  const allowed = new URL(emulatorEndpoint('sqs')).origin;
  const origins: string[] = [];
  client.middlewareStack.add(
    (next) => (args) => {
      const request = args.request as { protocol?: string; hostname?: string; port?: number };
      const origin = `${request.protocol ?? ''}//${request.hostname ?? ''}${request.port ? `:${request.port}` : ''}`;
      origins.push(origin);
      if (origin !== allowed) return Promise.reject(new EscapedRequestError(origin));
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'refuseRequestsOffTheEmulator' },
  );
  return { client, origins, warnings };
}

function message(runId: string): DispatchMessage {
  return { v: 1, signature: `sig-${runId}`, token: 1, owner: 'dispatcher', instanceId: 'inst', task: 'task', runId, attempt: 1, timeoutMs: 60_000 };
}

/** Every message in the emulator's queue at `url`, polling until `count` arrived or 10 s passed. */
async function receiveAll(url: string, count: number): Promise<{ body: DispatchMessage; reason: string | undefined }[]> {
  const out: { body: DispatchMessage; reason: string | undefined }[] = [];
  const deadline = Date.now() + 10_000;
  while (out.length < count && Date.now() < deadline) {
    const result = await admin.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, MessageAttributeNames: ['All'], WaitTimeSeconds: 1, VisibilityTimeout: 600 }));
    for (const m of result.Messages ?? []) {
      out.push({ body: dispatchMessageSchema.parse(JSON.parse(m.Body ?? '')), reason: m.MessageAttributes?.reason?.StringValue });
    }
  }
  return out;
}

beforeEach(async () => {
  names = { queue: uniqueName('ujr-url-tasks'), deadLetterQueue: uniqueName('ujr-url-dlq') };
  emulatorUrls = {
    queue: (await admin.send(new CreateQueueCommand({ QueueName: names.queue }))).QueueUrl ?? '',
    deadLetterQueue: (await admin.send(new CreateQueueCommand({ QueueName: names.deadLetterQueue }))).QueueUrl ?? '',
  };
  scratch = mkdtempSync(join(tmpdir(), 'ujr-queue-url-'));
  // The endpoint as a user sets it for an emulator; nothing else from the machine's AWS setup.
  vi.stubEnv('AWS_ENDPOINT_URL_SQS', emulatorEndpoint('sqs'));
  vi.stubEnv('AWS_ENDPOINT_URL', undefined);
  vi.stubEnv('AWS_IGNORE_CONFIGURED_ENDPOINT_URLS', undefined);
  vi.stubEnv('AWS_CONFIG_FILE', join(scratch, 'no-config'));
});

afterEach(async () => {
  vi.unstubAllEnvs();
  rmSync(scratch, { recursive: true, force: true });
  await Promise.allSettled(Object.values(emulatorUrls).map((QueueUrl) => admin.send(new DeleteQueueCommand({ QueueUrl }))));
});

describe('queue URLs on AWS with AWS_ENDPOINT_URL_SQS set to the emulator', () => {
  it('would go to AWS with the SDK alone: it sends to the queue URL host and only warns (the guard stops it)', async () => {
    const { client, origins, warnings } = guardedClient();

    const sent = client.send(new SendMessageCommand({ QueueUrl: `${AWS_SQS}/${ACCOUNT}/${names.queue}`, MessageBody: 'x' }));

    await expect(sent).rejects.toBeInstanceOf(EscapedRequestError);
    expect(origins).toEqual([AWS_SQS]);
    expect(warnings.join('\n')).toContain('using QueueUrl host as endpoint');
    client.destroy();
  });

  it("reach the emulator's queues through the worker runtime's queue, and no request goes to AWS", async () => {
    const { client, origins, warnings } = guardedClient();
    const env = parseEnv(
      workerEnvSchema,
      {
        UJR_LEASES_TABLE: 'leases',
        UJR_RUNS_TABLE: 'runs',
        UJR_INSTANCES_TABLE: 'instances',
        UJR_DATA_BUCKET: 'data',
        UJR_TASK_QUEUE_URL: `${AWS_SQS}/${ACCOUNT}/${names.queue}`,
        UJR_DEAD_LETTER_QUEUE_URL: `${AWS_SQS}/${ACCOUNT}/${names.deadLetterQueue}`,
      },
      'worker',
    );
    const { queue } = workerRuntime(env, { jobs: [], clients: { sqs: client }, serviceName: 'ujr-test', telemetry: new RecordingTelemetry() });

    const failures = await queue.send([message('r1'), message('r2')]);
    await queue.sendLater(message('r3'), 0);
    await queue.sendToDeadLetter(message('r4'), 'attempts exhausted');

    expect(failures).toEqual([]);
    const tasks = await receiveAll(emulatorUrls.queue, 3);
    expect(tasks.map((m) => m.body.runId).sort()).toEqual(['r1', 'r2', 'r3']);
    const deadLetters = await receiveAll(emulatorUrls.deadLetterQueue, 1);
    expect(deadLetters).toEqual([{ body: message('r4'), reason: 'attempts exhausted' }]);
    expect(origins).toHaveLength(3);
    expect(new Set(origins)).toEqual(new Set([new URL(emulatorEndpoint('sqs')).origin]));
    expect(warnings).toEqual([]);
    client.destroy();
  });

  it("reach the emulator's dead-letter queue from the CLI's --stack context (ujr redrive's depth)", async () => {
    const { client, origins } = guardedClient();
    const arn = (name: string) => `arn:aws:sqs:${EMULATOR_REGION}:${ACCOUNT}:${name}`;
    const outputsFile = join(scratch, 'outputs.json');
    writeFileSync(
      outputsFile,
      JSON.stringify({
        [STACK_OUTPUTS.leasesTable]: 'leases',
        [STACK_OUTPUTS.runsTable]: 'runs',
        [STACK_OUTPUTS.instancesTable]: 'instances',
        [STACK_OUTPUTS.dataBucket]: 'data',
        [STACK_OUTPUTS.taskQueueUrl]: `${AWS_SQS}/${ACCOUNT}/${names.queue}`,
        [STACK_OUTPUTS.taskQueueArn]: arn(names.queue),
        [STACK_OUTPUTS.deadLetterQueueUrl]: `${AWS_SQS}/${ACCOUNT}/${names.deadLetterQueue}`,
        [STACK_OUTPUTS.deadLetterQueueArn]: arn(names.deadLetterQueue),
        [STACK_OUTPUTS.schedulerFunction]: 'scheduler',
        [STACK_OUTPUTS.schedulerLogGroup]: '/aws/lambda/scheduler',
        [STACK_OUTPUTS.workerLogGroup]: '/aws/lambda/worker',
        [STACK_OUTPUTS.conductorLogGroup]: '/ujr/conductor',
        [STACK_OUTPUTS.region]: EMULATOR_REGION,
      }),
    );
    for (const body of ['a', 'b']) await admin.send(new SendMessageCommand({ QueueUrl: emulatorUrls.deadLetterQueue, MessageBody: body }));
    const aws = await openAwsCliContext('ujr', { clients: { sqs: client }, env: { UJR_STACK_OUTPUTS: outputsFile } });

    try {
      expect(await aws.deadLetterDepth()).toBe(2);
    } finally {
      aws.close();
    }
    expect(origins).toEqual([new URL(emulatorEndpoint('sqs')).origin]);
    client.destroy();
  });
});
