/**
 * The SQS event source player against the SQS emulator (local-aws-sqs). What was seen of the
 * emulator while writing these, and is relied on or worked around:
 * - Redrive is its own: after a message's maxReceiveCount-th receive, it moves to the DLQ when that
 *   receive's visibility timeout ends (real SQS moves it on the next receive attempt instead).
 * - ChangeMessageVisibility counts as a receive (ApproximateReceiveCount grows), so a visibility
 *   change can push a message into the DLQ early; the player never changes visibility.
 * - `MessageSystemAttributeNames` is ignored (no attributes come back; none at all when
 *   `AttributeNames` is sent too); binary message attributes come back as { "0": 1, … }.
 * - A long poll returns only when the batch is full or the wait ends, and a message whose
 *   visibility ends during the wait comes back twice in the same answer.
 * - Deleting with an old receipt handle deletes the message (handles are decoded to message ids).
 * - ApproximateNumberOfMessages counts in-flight messages too (real SQS counts visible ones only).
 * - A message sent without a delay counts as delayed, not visible, until the emulator's 0 ms delay
 *   timer fires: a GetQueueAttributes answered first reads it in ApproximateNumberOfMessagesDelayed.
 */
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqsEventSource, type SqsEventSourceOptions } from '../../helpers/sqs-event-source.js';
import { md5OfBody } from '../../helpers/sqs-events.js';
import { until } from '../../helpers/runner.js';
import { emulatorClientConfig, uniqueName } from '../../servers/endpoints.js';

const client = new SQSClient(emulatorClientConfig('sqs'));
const MAX_RECEIVE_COUNT = 3;

let queueUrl: string;
let queueArn: string;
let deadLetterQueueUrl: string;
const sources: SqsEventSource[] = [];

async function arnOf(url: string): Promise<string> {
  const result = await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
  return result.Attributes?.QueueArn ?? '';
}

async function send(...bodies: string[]): Promise<void> {
  await client.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: bodies.map((body, index) => ({ Id: String(index), MessageBody: body })) }));
}

async function deadLetters(): Promise<string[]> {
  const result = await client.send(new ReceiveMessageCommand({ QueueUrl: deadLetterQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 60 }));
  return (result.Messages ?? []).map((message) => message.Body ?? '');
}

/** An event source on this test's queue (1 s visibility), stopped after the test. */
function eventSource(handler: SqsEventSourceOptions['handler'], options: Partial<SqsEventSourceOptions> = {}): SqsEventSource {
  const source = new SqsEventSource({ client, queueUrl, handler, visibilityTimeoutSec: 1, ...options });
  sources.push(source);
  return source;
}

/** Bodies of an event's records. */
function bodies(event: SQSEvent): string[] {
  return event.Records.map((record) => record.body);
}

beforeEach(async () => {
  const dlq = await client.send(new CreateQueueCommand({ QueueName: uniqueName('ujr-esm-dlq') }));
  deadLetterQueueUrl = dlq.QueueUrl ?? '';
  const queue = await client.send(
    new CreateQueueCommand({
      QueueName: uniqueName('ujr-esm'),
      Attributes: {
        VisibilityTimeout: '1',
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: await arnOf(deadLetterQueueUrl), maxReceiveCount: MAX_RECEIVE_COUNT }),
      },
    }),
  );
  queueUrl = queue.QueueUrl ?? '';
  queueArn = await arnOf(queueUrl);
});

afterEach(async () => {
  await Promise.all(sources.splice(0).map((source) => source.stop()));
  await Promise.allSettled([queueUrl, deadLetterQueueUrl].map((QueueUrl) => client.send(new DeleteQueueCommand({ QueueUrl }))));
});

afterAll(() => {
  client.destroy();
});

describe('SqsEventSource', () => {
  it("hands a batch to the function as Lambda's SQSEvent and deletes it when the function succeeds", async () => {
    await client.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: '{"task":"fetch"}',
        MessageAttributes: {
          origin: { DataType: 'String', StringValue: 'scheduler' },
          blob: { DataType: 'Binary', BinaryValue: new Uint8Array([1, 2]) },
        },
      }),
    );
    await send('second');
    const events: SQSEvent[] = [];
    const source = eventSource((event) => {
      events.push(event);
      return Promise.resolve();
    });
    const before = Date.now();

    const invocation = await source.pollOnce();

    expect(invocation?.outcome).toBe('succeeded');
    expect(events).toHaveLength(1);
    const [first, second] = events[0]?.Records ?? [];
    expect(first).toMatchObject({
      body: '{"task":"fetch"}',
      md5OfBody: md5OfBody('{"task":"fetch"}'),
      eventSource: 'aws:sqs',
      eventSourceARN: queueArn,
      awsRegion: 'us-east-1',
      attributes: { ApproximateReceiveCount: '1', SenderId: expect.any(String) as string },
      messageAttributes: {
        origin: { stringValue: 'scheduler', stringListValues: [], binaryListValues: [], dataType: 'String' },
        blob: { binaryValue: 'AQI=', stringListValues: [], binaryListValues: [], dataType: 'Binary' },
      },
      md5OfMessageAttributes: expect.stringMatching(/^[0-9a-f]{32}$/) as string,
    });
    expect(Number(first?.attributes.SentTimestamp)).toBeGreaterThanOrEqual(before - 1_000);
    expect(Number(first?.attributes.ApproximateFirstReceiveTimestamp)).toBeGreaterThanOrEqual(Number(first?.attributes.SentTimestamp));
    expect(second?.body).toBe('second');
    expect(second).not.toHaveProperty('md5OfMessageAttributes');
    expect(invocation?.deleted).toEqual([first?.messageId, second?.messageId]);
    expect(await source.depth()).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it('leaves reported batch item failures in the queue and delivers them again after the visibility timeout', async () => {
    await send('a', 'b', 'c');
    const receiveCounts: Record<string, string[]> = {};
    const source = eventSource((event) => {
      const failures = event.Records.filter((record) => {
        (receiveCounts[record.body] ??= []).push(record.attributes.ApproximateReceiveCount);
        return record.body === 'b' && record.attributes.ApproximateReceiveCount === '1';
      });
      return Promise.resolve({ batchItemFailures: failures.map((record) => ({ itemIdentifier: record.messageId })) });
    });

    const first = await source.pollOnce();

    expect(first?.outcome).toBe('partial');
    expect(first?.deleted).toHaveLength(2);
    expect(first?.left).toHaveLength(1);
    expect(await source.depth()).toMatchObject({ inFlight: 1 });

    const later = await source.drain({ timeoutMs: 10_000 });

    expect(later.map((invocation) => invocation.outcome)).toEqual(['succeeded']);
    expect(receiveCounts).toEqual({ a: ['1'], b: ['1', '2'], c: ['1'] });
  });

  it('leaves the whole batch when the function throws', async () => {
    await send('a', 'b');
    const source = eventSource(() => Promise.reject(new Error('boom')));

    const invocation = await source.pollOnce();

    expect(invocation).toMatchObject({ outcome: 'failed', deleted: [], error: new Error('boom') });
    expect(invocation?.left).toHaveLength(2);
    expect(await source.depth()).toMatchObject({ inFlight: 2 });
  });

  it('fails the whole batch, as Lambda does, when batchItemFailures names a message not in it', async () => {
    await send('a', 'b');
    const source = eventSource((): Promise<SQSBatchResponse> => Promise.resolve({ batchItemFailures: [{ itemIdentifier: 'not-a-message-id' }] }));

    const invocation = await source.pollOnce();

    expect(invocation?.outcome).toBe('invalid-response');
    expect(String(invocation?.error)).toContain('"not-a-message-id", which is not a message of the batch');
    expect(await source.depth()).toMatchObject({ inFlight: 2 });
  });

  it(`moves a message that always fails to the DLQ after maxReceiveCount (${MAX_RECEIVE_COUNT}) receives`, async () => {
    await send('poison', 'fine');
    const poisonReceives: string[] = [];
    const source = eventSource((event) => {
      const poison = event.Records.filter((record) => record.body === 'poison');
      poisonReceives.push(...poison.map((record) => record.attributes.ApproximateReceiveCount));
      return Promise.resolve({ batchItemFailures: poison.map((record) => ({ itemIdentifier: record.messageId })) });
    });

    await source.drain({ timeoutMs: 15_000 });

    expect(poisonReceives).toEqual(['1', '2', '3']);
    expect(source.invocations.flatMap((invocation) => invocation.deleted)).toHaveLength(1); // "fine", once
    expect(await deadLetters()).toEqual(['poison']);
    expect(await source.depth()).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it('counts the remaining time down from the function timeout, and leaves the batch when the function runs past it', async () => {
    await send('slow');
    const remaining: number[] = [];
    const source = eventSource(
      async (_event, context: Context) => {
        remaining.push(context.getRemainingTimeInMillis());
        // Work that takes longer than the function may run.
        await new Promise((resolve) => setTimeout(resolve, 300));
        remaining.push(context.getRemainingTimeInMillis());
      },
      { functionTimeoutMs: 200 },
    );

    const invocation = await source.pollOnce();

    expect(remaining[0]).toBeLessThanOrEqual(200);
    expect(remaining[0]).toBeGreaterThan(100);
    expect(remaining[1]).toBe(0);
    expect(invocation?.outcome).toBe('timed-out');
    expect(await source.depth()).toMatchObject({ inFlight: 1 });
  });

  it('hands every message twice in the same event with duplicateEveryMessage, and deletes it once', async () => {
    await send('a', 'b');
    const events: SQSEvent[] = [];
    const source = eventSource(
      (event) => {
        events.push(event);
        return Promise.resolve();
      },
      { duplicateEveryMessage: true },
    );

    const invocation = await source.pollOnce();

    expect(bodies(events[0] ?? { Records: [] }).sort()).toEqual(['a', 'a', 'b', 'b']);
    const ids = events[0]?.Records.map((record) => record.messageId) ?? [];
    expect(new Set(ids).size).toBe(2);
    expect(invocation?.deleted).toHaveLength(2);
    expect(await source.depth()).toEqual({ visible: 0, inFlight: 0, delayed: 0 });
  });

  it('keeps a message whose duplicate copy failed, even though the other copy succeeded', async () => {
    await send('a');
    let seen = 0;
    const source = eventSource(
      (event) => {
        const record = event.Records[1];
        seen += event.Records.length;
        return Promise.resolve({ batchItemFailures: seen === 2 && record ? [{ itemIdentifier: record.messageId }] : [] });
      },
      { duplicateEveryMessage: 'same-batch' },
    );

    const invocation = await source.pollOnce();

    expect(invocation?.outcome).toBe('failed');
    expect(invocation?.deleted).toEqual([]);
    expect(await source.depth()).toMatchObject({ inFlight: 1 });
  });

  it('hands the copy in the next event with duplicateEveryMessage "next-batch", after the original was deleted', async () => {
    await send('once');
    const events: SQSEvent[] = [];
    const processed = new Set<string>();
    let duplicatesSkipped = 0;
    const source = eventSource(
      (event) => {
        events.push(event);
        for (const record of event.Records) {
          if (processed.has(record.messageId)) duplicatesSkipped += 1;
          processed.add(record.messageId);
        }
        return Promise.resolve();
      },
      { duplicateEveryMessage: 'next-batch' },
    );

    const invocations = await source.drain({ timeoutMs: 5_000 });

    expect(invocations.map((invocation) => invocation.outcome)).toEqual(['succeeded', 'succeeded']);
    expect(events.map(bodies)).toEqual([['once'], ['once']]);
    expect(events[1]?.Records[0]?.messageId).toBe(events[0]?.Records[0]?.messageId);
    expect(events[1]?.Records[0]?.receiptHandle).toBe(events[0]?.Records[0]?.receiptHandle);
    expect(duplicatesSkipped).toBe(1);
  });

  it('runs concurrent pollers in the background until stopped', async () => {
    await send(...Array.from({ length: 10 }, (_, i) => `m${i}`));
    const handled: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    let release: () => void = () => undefined;
    const overlap = new Promise<void>((resolve) => (release = resolve));
    const source = eventSource(
      async (event) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        if (inFlight > 1) release();
        // The first invocation holds until a second one runs beside it (or gives up after 5 s).
        await Promise.race([overlap, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
        handled.push(...bodies(event));
        inFlight -= 1;
      },
      { batchSize: 2 },
    );

    source.start({ concurrency: 3 });
    await until(() => handled.length === 10, 10_000, 'all 10 messages handled');
    await source.stop();
    const invocationsAtStop = source.invocations.length;
    await send('after-stop');

    expect(maxInFlight).toBeGreaterThan(1);
    expect(handled.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`).sort());
    expect(source.running).toBe(false);
    expect(source.invocations).toHaveLength(invocationsAtStop);
    // Still queued and never received: visible, or delayed for the instant the emulator counts a new message so.
    const depth = await source.depth();
    expect(depth.visible + depth.delayed).toBe(1);
    expect(depth.inFlight).toBe(0);
  });

  it('stops with the SQS error that made a background poller give up', async () => {
    const source = eventSource(() => Promise.resolve());
    source.start({ concurrency: 2 });

    await client.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
    await until(() => source.polling === 0, 5_000, 'both pollers to give up');
    const error: unknown = await source.stop().catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(AggregateError);
    expect(String(error)).toMatch(/the SQS event source stopped polling: .*(QueueDoesNotExist|NonExistentQueue|does not exist)/);
  });

  it('waits for an until() condition instead of an empty queue when it holds first', async () => {
    await send('a', 'b', 'c');
    const handled: string[] = [];
    const source = eventSource(
      (event) => {
        handled.push(...bodies(event));
        return Promise.resolve();
      },
      { batchSize: 1 },
    );

    const invocations = await source.drain({ until: () => handled.includes('a') || handled.length >= 2, timeoutMs: 5_000 });

    expect(invocations.length).toBeGreaterThanOrEqual(1);
    expect(invocations.length).toBeLessThan(3);
    expect((await source.depth()).visible).toBeGreaterThan(0);
  });

  it('says what is left when the queue does not drain in time', async () => {
    await send('stuck');
    const source = eventSource(() => Promise.reject(new Error('always')));

    await expect(source.drain({ timeoutMs: 300 })).rejects.toThrow(/not drained within 300 ms: \d visible, 1 in flight, 0 delayed, 0 duplicates waiting; \d+ invocations \(failed/);
  });
});
