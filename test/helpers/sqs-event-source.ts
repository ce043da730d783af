/**
 * Plays Lambda's SQS event source mapping against a real queue (the SQS emulator does not run
 * mappings): receive a batch, hand it to the function as Lambda's `SQSEvent` with a `Context` that
 * counts down, delete what succeeded, leave what failed to come back after the visibility timeout,
 * and let the queue's redrive policy move a message to the DLQ after maxReceiveCount receives.
 *
 * What Lambda does and this player does too (ReportBatchItemFailures on):
 * - A returned `batchItemFailures` leaves those messages; the rest are deleted.
 * - A thrown error, a timeout, or an invalid response (an `itemIdentifier` that is empty or not a
 *   message of the batch) leaves the whole batch.
 * - Nothing is made visible early: failed messages return when their visibility timeout ends.
 *
 * What tests can ask for that Lambda only does by chance: `duplicateEveryMessage` hands each message
 * to the function twice (at-least-once delivery on purpose).
 *
 * Emulator notes (local-aws-sqs 2.0.2, see the report in sqs-event-source.test.ts): it ignores
 * `MessageSystemAttributeNames` (so the deprecated `AttributeNames` is sent, which real SQS accepts
 * too), and a long poll lasts until the batch is full or the wait ends, so polls here are short.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSMessageAttribute, SQSRecord } from 'aws-lambda';
import { lambdaContext, sqsRecord } from './sqs-events.js';

export type SqsLambdaHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

export interface SqsEventSourceOptions {
  client: SQSClient;
  queueUrl: string;
  handler: SqsLambdaHandler;
  /** Messages per event (Lambda: 1 to 10 000; more than 10 takes several receives). @default 10 */
  batchSize?: number;
  /** The visibility timeout asked on each receive. @default the queue's own */
  visibilityTimeoutSec?: number;
  /** The function's timeout: `getRemainingTimeInMillis()` counts down from it, and past it the batch fails. @default 30000 */
  functionTimeoutMs?: number;
  /**
   * Hands every received message to the function twice: in the same event (`true` or
   * `'same-batch'`, the copy appended after the batch, so an event can hold up to twice `batchSize`
   * records) or at the start of the next one (`'next-batch'`). Copies carry the same message id,
   * receipt handle and attributes; a message is left in the queue if either copy fails.
   * @default false
   */
  duplicateEveryMessage?: boolean | 'same-batch' | 'next-batch';
  /** Pause of a background poller or `drain` after an empty receive. @default 20 */
  idleDelayMs?: number;
  /** @default "ujr-worker" */
  functionName?: string;
}

export type InvocationOutcome = 'succeeded' | 'partial' | 'failed' | 'timed-out' | 'invalid-response';

/** One call of the function and what the mapping did after it. */
export interface Invocation {
  requestId: string;
  /** The records handed to the function, duplicates included. */
  records: SQSRecord[];
  outcome: InvocationOutcome;
  /** Message ids deleted from the queue. */
  deleted: string[];
  /** Message ids left in the queue, to come back after their visibility timeout. */
  left: string[];
  /** What the function threw, or why its response was refused. */
  error?: unknown;
}

function bytesOf(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  // local-aws-sqs answers binary attributes as { "0": 1, "1": 2 } instead of base64.
  if (typeof value === 'object' && value !== null) return Uint8Array.from(Object.values(value).map(Number));
  return new Uint8Array();
}

function lambdaAttribute(value: MessageAttributeValue): SQSMessageAttribute {
  return {
    ...(value.StringValue === undefined ? {} : { stringValue: value.StringValue }),
    ...(value.BinaryValue === undefined ? {} : { binaryValue: Buffer.from(bytesOf(value.BinaryValue)).toString('base64') }),
    stringListValues: value.StringListValues ?? [],
    binaryListValues: (value.BinaryListValues ?? []).map((item) => Buffer.from(bytesOf(item)).toString('base64')),
    dataType: value.DataType ?? 'String',
  };
}

/**
 * A received SQS message as Lambda puts it in an event: camel-cased fields, system attributes as
 * strings, message attributes with list fields, `eventSource` `aws:sqs`.
 */
export function recordOfMessage(message: Message, queueArn: string): SQSRecord {
  const attributes = Object.fromEntries(Object.entries(message.Attributes ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const messageAttributes = Object.fromEntries(Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [name, lambdaAttribute(value)]));
  const body = message.Body ?? '';
  return sqsRecord(body, {
    messageId: message.MessageId ?? randomUUID(),
    receiptHandle: message.ReceiptHandle ?? '',
    attributes,
    messageAttributes,
    ...(message.MD5OfBody === undefined ? {} : { md5OfBody: message.MD5OfBody }),
    ...(message.MD5OfMessageAttributes === undefined ? {} : { md5OfMessageAttributes: message.MD5OfMessageAttributes }),
    eventSourceARN: queueArn,
  });
}

/** Why Lambda would refuse a partial batch response, or `undefined` when it is valid. */
function responseProblem(response: unknown, ids: ReadonlySet<string>): string | undefined {
  if (response === undefined || response === null) return undefined;
  if (typeof response !== 'object') return `the function returned ${typeof response}, not { batchItemFailures }`;
  if (!('batchItemFailures' in response) || response.batchItemFailures === null || response.batchItemFailures === undefined) return undefined;
  const failures: unknown = response.batchItemFailures;
  if (!Array.isArray(failures)) return 'batchItemFailures is not an array';
  for (const failure of failures as unknown[]) {
    const id: unknown = typeof failure === 'object' && failure !== null && 'itemIdentifier' in failure ? failure.itemIdentifier : undefined;
    if (typeof id !== 'string' || id === '') return `batchItemFailures holds ${JSON.stringify(failure)}, without an itemIdentifier`;
    if (!ids.has(id)) return `batchItemFailures names ${JSON.stringify(id)}, which is not a message of the batch`;
  }
  return undefined;
}

function failedIds(response: SQSBatchResponse | void): Set<string> {
  return new Set((response?.batchItemFailures ?? []).map((failure) => failure.itemIdentifier));
}

/**
 * Lambda's SQS event source mapping, played by the test: {@link pollOnce} for one invocation,
 * {@link drain} until the queue is empty, {@link start}/{@link stop} for background pollers.
 *
 * @example
 * ```ts
 * const source = new SqsEventSource({ client: sqs, queueUrl, handler: makeWorkerHandler(deps), visibilityTimeoutSec: 1 });
 * await source.drain({ timeoutMs: 10_000 });
 * expect(source.invocations.map((i) => i.outcome)).toEqual(['succeeded']);
 * ```
 */
export class SqsEventSource {
  /** Every invocation so far, in the order they ended. */
  readonly invocations: Invocation[] = [];
  private readonly batchSize: number;
  private readonly functionTimeoutMs: number;
  private readonly idleDelayMs: number;
  private readonly duplicate: 'same-batch' | 'next-batch' | undefined;
  /** Copies waiting for the next event (`duplicateEveryMessage: 'next-batch'`). */
  private pendingCopies: SQSRecord[] = [];
  private queueArn: string | undefined;
  private pollers: Promise<void>[] = [];
  private stopping: AbortController | undefined;
  private readonly loopErrors: unknown[] = [];
  private alive = 0;

  constructor(private readonly options: SqsEventSourceOptions) {
    this.batchSize = options.batchSize ?? 10;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1 || this.batchSize > 10_000) {
      throw new RangeError(`batchSize ${options.batchSize} is out of Lambda's range 1 to 10000`);
    }
    this.functionTimeoutMs = options.functionTimeoutMs ?? 30_000;
    this.idleDelayMs = options.idleDelayMs ?? 20;
    const duplicate = options.duplicateEveryMessage;
    this.duplicate = duplicate === true ? 'same-batch' : duplicate === false ? undefined : duplicate;
  }

  /** Whether background pollers were started and not stopped (some may have given up, see {@link polling}). */
  get running(): boolean {
    return this.stopping !== undefined;
  }

  /** Background pollers still polling: a poller gives up on an SQS failure, which {@link stop} reports. */
  get polling(): number {
    return this.alive;
  }

  /**
   * Receives one batch and invokes the function with it, then deletes what succeeded. Returns the
   * invocation, or `undefined` when there was nothing to deliver.
   */
  async pollOnce(): Promise<Invocation | undefined> {
    const copies = this.pendingCopies.splice(0);
    let received: SQSRecord[];
    try {
      received = await this.receive();
    } catch (error) {
      this.pendingCopies.unshift(...copies);
      throw error;
    }
    if (copies.length === 0 && received.length === 0) return undefined;
    const records =
      this.duplicate === 'same-batch' ? [...received, ...received.map((record) => ({ ...record }))] : [...copies, ...received];
    const invocation = await this.invoke(records);
    if (this.duplicate === 'next-batch') this.pendingCopies.push(...received.map((record) => ({ ...record })));
    this.invocations.push(invocation);
    return invocation;
  }

  /**
   * Polls until `until()` holds or the queue is empty: no message visible, in flight or (unless
   * `includeDelayed: false`) delayed, and no duplicate waiting. Returns the invocations it made;
   * throws after `timeoutMs` saying what is still in the queue.
   */
  async drain(options: { until?: () => boolean; timeoutMs: number; includeDelayed?: boolean }): Promise<Invocation[]> {
    const deadline = Date.now() + options.timeoutMs;
    const made: Invocation[] = [];
    for (;;) {
      if (options.until?.()) return made;
      const invocation = await this.pollOnce();
      if (invocation) made.push(invocation);
      const depth = await this.depth();
      const waiting = depth.visible + depth.inFlight + (options.includeDelayed === false ? 0 : depth.delayed) + this.pendingCopies.length;
      if (waiting === 0) return made;
      if (Date.now() >= deadline) {
        throw new Error(
          `the queue was not drained within ${options.timeoutMs} ms: ${depth.visible} visible, ${depth.inFlight} in flight, ` +
            `${depth.delayed} delayed, ${this.pendingCopies.length} duplicates waiting${options.until ? ', and until() never held' : ''}; ` +
            `${made.length} invocations (${made.map((i) => i.outcome).join(', ') || 'none'}). A message that keeps failing ` +
            'comes back after each visibility timeout until the redrive policy moves it to the DLQ',
        );
      }
      if (!invocation) await sleep(this.idleDelayMs);
    }
  }

  /** Starts `concurrency` background pollers, like Lambda scaling its concurrent invocations. */
  start({ concurrency = 1 }: { concurrency?: number } = {}): void {
    if (this.stopping) throw new Error('the event source is already running; stop() it first');
    const stopping = new AbortController();
    this.stopping = stopping;
    this.pollers = Array.from({ length: concurrency }, () => this.pollLoop(stopping.signal));
  }

  /**
   * Stops the background pollers after their current invocation. Rejects with what made a poller
   * give up (an SQS failure, not a function error, which is an invocation outcome).
   */
  async stop(): Promise<void> {
    const stopping = this.stopping;
    if (!stopping) return;
    stopping.abort();
    await Promise.all(this.pollers);
    this.pollers = [];
    this.stopping = undefined;
    if (this.loopErrors.length > 0) {
      const errors = this.loopErrors.splice(0);
      throw new AggregateError(errors, `the SQS event source stopped polling: ${String(errors[0])}`);
    }
  }

  /**
   * The queue's ApproximateNumberOfMessages (`visible`), …NotVisible (`inFlight`: received, not
   * deleted) and …Delayed. local-aws-sqs counts in-flight messages in ApproximateNumberOfMessages
   * too, so there `visible` includes `inFlight`; the sum is 0 exactly when the queue is empty.
   */
  async depth(): Promise<{ visible: number; inFlight: number; delayed: number }> {
    const result = await this.options.client.send(
      new GetQueueAttributesCommand({
        QueueUrl: this.options.queueUrl,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed'],
      }),
    );
    const attributes = result.Attributes ?? {};
    return {
      visible: Number(attributes.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(attributes.ApproximateNumberOfMessagesNotVisible ?? 0),
      delayed: Number(attributes.ApproximateNumberOfMessagesDelayed ?? 0),
    };
  }

  private async pollLoop(signal: AbortSignal): Promise<void> {
    this.alive += 1;
    try {
      while (!signal.aborted) {
        const invocation = await this.pollOnce();
        if (!invocation) await sleep(this.idleDelayMs, undefined, { signal });
      }
    } catch (error) {
      if (!signal.aborted) this.loopErrors.push(error);
    } finally {
      this.alive -= 1;
    }
  }

  private async receive(): Promise<SQSRecord[]> {
    const queueArn = await this.arn();
    const records: SQSRecord[] = [];
    while (records.length < this.batchSize) {
      const result = await this.options.client.send(
        new ReceiveMessageCommand({
          QueueUrl: this.options.queueUrl,
          MaxNumberOfMessages: Math.min(10, this.batchSize - records.length),
          // local-aws-sqs ignores MessageSystemAttributeNames (and answers no attributes when both are sent).
          AttributeNames: ['All'],
          MessageAttributeNames: ['All'],
          WaitTimeSeconds: 0,
          ...(this.options.visibilityTimeoutSec === undefined ? {} : { VisibilityTimeout: this.options.visibilityTimeoutSec }),
        }),
      );
      const messages = result.Messages ?? [];
      // A message that came back in the same receive (the emulator does this) is delivered once here.
      for (const message of messages) {
        if (!records.some((record) => record.messageId === message.MessageId)) records.push(recordOfMessage(message, queueArn));
      }
      if (messages.length === 0 || this.batchSize <= 10) break;
    }
    return records;
  }

  private async invoke(records: SQSRecord[]): Promise<Invocation> {
    const context = lambdaContext({ remainingMs: this.functionTimeoutMs, functionName: this.options.functionName ?? 'ujr-worker' });
    const ids = new Set(records.map((record) => record.messageId));
    const base = { requestId: context.awsRequestId, records };
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timed-out'>((resolve) => {
      timer = setTimeout(() => resolve('timed-out'), this.functionTimeoutMs);
    });
    const running = this.options.handler({ Records: records }, context);
    let response: SQSBatchResponse | void;
    try {
      const first = await Promise.race([running, timedOut]);
      if (first === 'timed-out') {
        // Lambda would stop the function here; the test process cannot, so it waits for it to end
        // (keeping its work inside the test) and drops what it answers.
        await running.catch(() => undefined);
        return { ...base, outcome: 'timed-out', deleted: [], left: [...ids], error: new Error(`the function ran past its ${this.functionTimeoutMs} ms timeout`) };
      }
      response = first;
    } catch (error) {
      return { ...base, outcome: 'failed', deleted: [], left: [...ids], error };
    } finally {
      clearTimeout(timer);
    }
    const problem = responseProblem(response, ids);
    if (problem !== undefined) return { ...base, outcome: 'invalid-response', deleted: [], left: [...ids], error: new Error(problem) };
    const failed = failedIds(response);
    const succeeded = records.filter((record, index) => !failed.has(record.messageId) && records.findIndex((other) => other.messageId === record.messageId) === index);
    await this.delete(succeeded);
    return {
      ...base,
      outcome: failed.size === 0 ? 'succeeded' : failed.size === ids.size ? 'failed' : 'partial',
      deleted: succeeded.map((record) => record.messageId),
      left: [...failed],
    };
  }

  /** DeleteMessageBatch, 10 at a time. A handle that is no longer valid (a copy's) is not an error. */
  private async delete(records: SQSRecord[]): Promise<void> {
    for (let i = 0; i < records.length; i += 10) {
      const chunk = records.slice(i, i + 10);
      await this.options.client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.options.queueUrl,
          Entries: chunk.map((record, index) => ({ Id: String(index), ReceiptHandle: record.receiptHandle })),
        }),
      );
    }
  }

  private async arn(): Promise<string> {
    if (this.queueArn === undefined) {
      const result = await this.options.client.send(new GetQueueAttributesCommand({ QueueUrl: this.options.queueUrl, AttributeNames: ['QueueArn'] }));
      const arn = result.Attributes?.QueueArn;
      if (!arn) throw new Error(`GetQueueAttributes gave no QueueArn for ${this.options.queueUrl}`);
      this.queueArn = arn;
    }
    return this.queueArn;
  }
}
