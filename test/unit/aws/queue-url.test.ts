/**
 * The queue-URL rule (core/adapters/aws/queue-url.ts) without a network: with an SQS endpoint
 * configured, queue URLs are rebuilt on it; without one they are used as given; malformed values
 * are refused naming where they were set. The SDK reads the environment and a config file only.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { configuredSqsEndpoint, parseQueueUrl, QueueAddress, queueUrlOnEndpoint, QueueUrlError } from '../../../core/adapters/aws/queue-url.js';
import { SqsTaskQueue } from '../../../core/adapters/aws/sqs-queue.js';
import type { DispatchMessage } from '../../../core/cloud/messages.js';
import { ConfigError } from '../../../core/errors.js';

const AWS_QUEUE = 'https://sqs.us-east-1.amazonaws.com/000000000000/ujr-tasks';
const AWS_DLQ = 'https://sqs.us-east-1.amazonaws.com/000000000000/ujr-dlq';
const LOCALSTACK = 'http://localhost:4566';

let scratch: string;

/** A client as the runtime builds one (no endpoint option); fake credentials, never used. */
function plainClient(extra: { endpoint?: string; ignoreConfiguredEndpointUrls?: boolean } = {}): SQSClient {
  return new SQSClient({ region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, ...extra });
}

function thrown(act: () => unknown): unknown {
  try {
    act();
  } catch (error) {
    return error;
  }
  return undefined;
}

function message(runId: string): DispatchMessage {
  return { v: 1, signature: 'sig', token: 1, owner: 'dispatcher', instanceId: 'inst', task: 'task', runId, attempt: 1, timeoutMs: 1000 };
}

beforeEach(() => {
  scratch = mkdtempSync(join(tmpdir(), 'ujr-queue-url-'));
  // Nothing from the machine running the tests: no endpoint variables, no shared config file.
  vi.stubEnv('AWS_ENDPOINT_URL', undefined);
  vi.stubEnv('AWS_ENDPOINT_URL_SQS', undefined);
  vi.stubEnv('AWS_IGNORE_CONFIGURED_ENDPOINT_URLS', undefined);
  vi.stubEnv('AWS_PROFILE', undefined);
  vi.stubEnv('AWS_CONFIG_FILE', join(scratch, 'no-config'));
  vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', join(scratch, 'no-credentials'));
});

afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(scratch, { recursive: true, force: true });
});

describe('the rule', () => {
  it('uses a queue URL exactly as given when no SQS endpoint is configured', () => {
    expect(queueUrlOnEndpoint(AWS_QUEUE, 'UJR_TASK_QUEUE_URL', undefined)).toBe(AWS_QUEUE);
  });

  it('rebuilds a queue URL on another host on the endpoint, keeping /<account>/<queue-name>', () => {
    const endpoint = { url: new URL(LOCALSTACK), source: 'AWS_ENDPOINT_URL' };

    expect(queueUrlOnEndpoint(AWS_QUEUE, 'UJR_TASK_QUEUE_URL', endpoint)).toBe('http://localhost:4566/000000000000/ujr-tasks');
  });

  it("rebuilds LocalStack's own host-style URLs on an endpoint of localhost", () => {
    const endpoint = { url: new URL(LOCALSTACK), source: 'AWS_ENDPOINT_URL' };

    expect(queueUrlOnEndpoint('http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/q', 'X', endpoint)).toBe('http://localhost:4566/000000000000/q');
  });

  it('keeps a queue URL already on the endpoint unchanged', () => {
    const endpoint = { url: new URL('http://127.0.0.1:9324/'), source: 'AWS_ENDPOINT_URL_SQS' };
    const onEndpoint = 'http://127.0.0.1:9324/000000000000/ujr-tasks';

    expect(queueUrlOnEndpoint(onEndpoint, 'UJR_TASK_QUEUE_URL', endpoint)).toBe(onEndpoint);
  });

  it("takes the endpoint's scheme and port too (the origin, not only the host name)", () => {
    const endpoint = { url: new URL('https://sqs.us-east-1.amazonaws.com:8443'), source: 'AWS_ENDPOINT_URL_SQS' };

    expect(queueUrlOnEndpoint(AWS_QUEUE, 'X', endpoint)).toBe('https://sqs.us-east-1.amazonaws.com:8443/000000000000/ujr-tasks');
  });

  it('refuses a value that is not a URL, naming the variable and the expected form', () => {
    const error = thrown(() => parseQueueUrl('ujr-tasks', 'UJR_TASK_QUEUE_URL'));

    expect(error).toBeInstanceOf(QueueUrlError);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(
      'UJR_TASK_QUEUE_URL is not a URL ("ujr-tasks"); set it to the queue\'s URL, https://sqs.<region>.amazonaws.com/<account>/<queue-name>',
    );
  });

  it('refuses a URL that is not http(s) or has no /<account>/<queue-name> path', () => {
    expect((thrown(() => parseQueueUrl('sqs://queue/1/q', 'UJR_DEAD_LETTER_QUEUE_URL')) as Error).message).toMatch(/^UJR_DEAD_LETTER_QUEUE_URL \(sqs:\/\/queue\/1\/q\) is not an http\(s\) URL/);
    expect((thrown(() => parseQueueUrl('https://sqs.us-east-1.amazonaws.com/ujr-tasks', 'UJR_TASK_QUEUE_URL')) as Error).message).toMatch(
      /^UJR_TASK_QUEUE_URL \(https:\/\/sqs\.us-east-1\.amazonaws\.com\/ujr-tasks\) is not a queue URL: its path must end in \/<account>\/<queue-name>/,
    );
  });

  it('refuses a malformed queue URL even when an endpoint would rebuild it', () => {
    const endpoint = { url: new URL(LOCALSTACK), source: 'AWS_ENDPOINT_URL' };

    expect(() => queueUrlOnEndpoint('not a url', 'UJR_TASK_QUEUE_URL', endpoint)).toThrow(/^UJR_TASK_QUEUE_URL is not a URL/);
  });
});

describe('the configured SQS endpoint, as the SDK resolves it', () => {
  it('is none when neither the client nor the environment sets one', async () => {
    expect(await configuredSqsEndpoint(plainClient())).toBeUndefined();
  });

  it("is the client's endpoint option", async () => {
    const endpoint = await configuredSqsEndpoint(plainClient({ endpoint: 'http://127.0.0.1:9324' }));

    expect(endpoint?.url.origin).toBe('http://127.0.0.1:9324');
    expect(endpoint?.source).toBe("the SQS client's endpoint option");
  });

  it('is AWS_ENDPOINT_URL_SQS, ahead of AWS_ENDPOINT_URL', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL', 'http://127.0.0.1:4566');
    vi.stubEnv('AWS_ENDPOINT_URL_SQS', 'http://127.0.0.1:9324');

    const endpoint = await configuredSqsEndpoint(plainClient());

    expect(endpoint).toEqual({ url: new URL('http://127.0.0.1:9324'), source: 'AWS_ENDPOINT_URL_SQS' });
  });

  it('is AWS_ENDPOINT_URL when no SQS-specific variable is set', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL', LOCALSTACK);

    expect(await configuredSqsEndpoint(plainClient())).toEqual({ url: new URL(LOCALSTACK), source: 'AWS_ENDPOINT_URL' });
  });

  it("is endpoint_url of the shared config file's profile", async () => {
    const file = join(scratch, 'config');
    writeFileSync(file, '[default]\nendpoint_url = http://127.0.0.1:4510\n');
    vi.stubEnv('AWS_CONFIG_FILE', file);

    const endpoint = await configuredSqsEndpoint(plainClient());

    expect(endpoint?.url.origin).toBe('http://127.0.0.1:4510');
    expect(endpoint?.source).toBe('endpoint_url in the shared AWS config file (profile default)');
  });

  it('is none when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the client option turns configured endpoints off', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL_SQS', LOCALSTACK);

    expect(await configuredSqsEndpoint(plainClient({ ignoreConfiguredEndpointUrls: true }))).toBeUndefined();
    vi.stubEnv('AWS_IGNORE_CONFIGURED_ENDPOINT_URLS', 'true');
    expect(await configuredSqsEndpoint(plainClient())).toBeUndefined();
  });

  it('reads the environment itself should the SDK stop exposing its configured endpoint', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL_SQS', LOCALSTACK);
    const client = plainClient();
    Object.assign(client.config, { serviceConfiguredEndpoint: undefined });

    expect(await configuredSqsEndpoint(client)).toEqual({ url: new URL(LOCALSTACK), source: 'AWS_ENDPOINT_URL_SQS' });
  });

  it('refuses a configured endpoint that is not a URL, naming the variable', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL_SQS', 'not a url');

    await expect(configuredSqsEndpoint(plainClient())).rejects.toThrow(/^the SQS endpoint "not a url" \(AWS_ENDPOINT_URL_SQS\) is not a URL; set it to the emulator's address/);
  });
});

describe('QueueAddress', () => {
  it('refuses a malformed URL when built (at cold start), naming the variable', () => {
    expect(() => new QueueAddress(plainClient(), '', 'UJR_TASK_QUEUE_URL')).toThrow(QueueUrlError);
    expect(() => new QueueAddress(plainClient(), '', 'UJR_TASK_QUEUE_URL')).toThrow(/^UJR_TASK_QUEUE_URL is not a URL/);
  });

  it('gives the URL on the endpoint configured by the environment', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL_SQS', LOCALSTACK);

    expect(await new QueueAddress(plainClient(), AWS_QUEUE, 'UJR_TASK_QUEUE_URL').url()).toBe('http://localhost:4566/000000000000/ujr-tasks');
  });
});

describe('SqsTaskQueue', () => {
  it('sends batches, delayed retries and dead letters to the queues rebuilt on AWS_ENDPOINT_URL_SQS', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL_SQS', LOCALSTACK);
    const client = plainClient();
    const sqs = mockClient(client);
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    sqs.on(SendMessageCommand).resolves({});
    const queue = new SqsTaskQueue({ client, queueUrl: AWS_QUEUE, deadLetterQueueUrl: AWS_DLQ });

    const failures = await queue.send([message('r1'), message('r2')]);
    await queue.sendLater(message('r3'), 30);
    await queue.sendToDeadLetter(message('r4'), 'attempts exhausted');

    expect(failures).toEqual([]);
    expect(sqs.commandCalls(SendMessageBatchCommand).map((call) => call.args[0].input.QueueUrl)).toEqual(['http://localhost:4566/000000000000/ujr-tasks']);
    expect(sqs.commandCalls(SendMessageCommand).map((call) => call.args[0].input.QueueUrl)).toEqual([
      'http://localhost:4566/000000000000/ujr-tasks',
      'http://localhost:4566/000000000000/ujr-dlq',
    ]);
    sqs.restore();
  });

  it('sends to the URLs as given when no endpoint is configured', async () => {
    const client = plainClient();
    const sqs = mockClient(client);
    sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const queue = new SqsTaskQueue({ client, queueUrl: AWS_QUEUE, deadLetterQueueUrl: AWS_DLQ });

    await queue.send([message('r1')]);

    expect(sqs.commandCalls(SendMessageBatchCommand).map((call) => call.args[0].input.QueueUrl)).toEqual([AWS_QUEUE]);
    sqs.restore();
  });

  it('refuses a malformed URL when built, naming the variable it was given as', () => {
    const error = thrown(
      () =>
        new SqsTaskQueue({
          client: plainClient(),
          queueUrl: AWS_QUEUE,
          deadLetterQueueUrl: 'ujr-dlq',
          names: { queueUrl: 'UJR_TASK_QUEUE_URL', deadLetterQueueUrl: 'UJR_DEAD_LETTER_QUEUE_URL' },
        }),
    );

    expect(error).toBeInstanceOf(QueueUrlError);
    expect((error as Error).message).toMatch(/^UJR_DEAD_LETTER_QUEUE_URL is not a URL \("ujr-dlq"\)/);
  });
});
