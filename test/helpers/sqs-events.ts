/**
 * Event factories for Lambda's SQS trigger: records, events and a Lambda `Context`, shaped as Lambda
 * hands them to a function (see https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html). Unit
 * tests of handlers build events here; the SQS event source player (sqs-event-source.ts) builds its
 * events from real messages with the same functions.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Context, SQSEvent, SQSRecord, SQSRecordAttributes } from 'aws-lambda';
import type { Json } from '../../core/types.js';

/** The queue records come from unless a test says otherwise. */
export const TEST_QUEUE_ARN = 'arn:aws:sqs:us-east-1:123456789012:ujr-tasks';

/** What a test may set on a record; `attributes` are merged into the defaults. */
export type SqsRecordOverrides = Partial<Omit<SQSRecord, 'attributes'>> & { attributes?: Partial<SQSRecordAttributes> };

/** The hex MD5 of a UTF-8 string, as SQS reports `MD5OfBody`. */
export function md5OfBody(body: string): string {
  return createHash('md5').update(body, 'utf8').digest('hex');
}

/** The region of an ARN (`arn:aws:sqs:<region>:…`). */
export function regionOfArn(arn: string): string {
  return arn.split(':')[3] ?? 'us-east-1';
}

/**
 * One SQS record as Lambda delivers it: a first delivery, sent and received now. A body that is not
 * a string is sent as its JSON text.
 *
 * @example
 * ```ts
 * const record = sqsRecord({ instanceId: 'a', task: 'fetch' }, { attributes: { ApproximateReceiveCount: '3' } });
 * ```
 */
export function sqsRecord(body: string | Json, overrides: SqsRecordOverrides = {}): SQSRecord {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const now = String(Date.now());
  const { attributes, ...rest } = overrides;
  const eventSourceARN = overrides.eventSourceARN ?? TEST_QUEUE_ARN;
  return {
    messageId: randomUUID(),
    receiptHandle: randomBytes(48).toString('base64'),
    body: text,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: now,
      SenderId: 'AROAEXAMPLEID:ujr-scheduler',
      ApproximateFirstReceiveTimestamp: now,
      ...attributes,
    },
    messageAttributes: {},
    md5OfBody: md5OfBody(text),
    eventSource: 'aws:sqs',
    eventSourceARN,
    awsRegion: regionOfArn(eventSourceARN),
    ...rest,
  };
}

/** An SQS event holding `records` (build them with {@link sqsRecord}). */
export function sqsEvent(records: SQSRecord[]): SQSEvent {
  return { Records: records };
}

export interface LambdaContextOptions {
  /** What `getRemainingTimeInMillis()` answers now; it counts down with `now`. Default 30 000. */
  remainingMs?: number;
  /** The clock it counts down with. Default `Date.now` (fake timers move it). */
  now?: () => number;
  /** Default `ujr-worker`. */
  functionName?: string;
  /** Default a fresh UUID. */
  awsRequestId?: string;
  /** Default `us-east-1`. */
  region?: string;
}

/**
 * A Lambda `Context` whose `getRemainingTimeInMillis()` counts down from `remainingMs` (never below
 * 0). The deprecated callback methods throw: handlers here return promises.
 *
 * @example
 * ```ts
 * await handler(sqsEvent([sqsRecord('{}')]), lambdaContext({ remainingMs: 1_000 }));
 * ```
 */
export function lambdaContext(options: LambdaContextOptions = {}): Context {
  const now = options.now ?? Date.now;
  const deadline = now() + (options.remainingMs ?? 30_000);
  const functionName = options.functionName ?? 'ujr-worker';
  const region = options.region ?? 'us-east-1';
  const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
  const deprecated = (name: string) => (): never => {
    throw new Error(`context.${name}() is the callback-era API; return a promise from the handler instead`);
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:123456789012:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: options.awsRequestId ?? randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `${day}/[$LATEST]${randomBytes(16).toString('hex')}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - now()),
    done: deprecated('done'),
    fail: deprecated('fail'),
    succeed: deprecated('succeed'),
  };
}
