import { afterEach, describe, expect, it, vi } from 'vitest';
import { lambdaContext, md5OfBody, sqsEvent, sqsRecord, TEST_QUEUE_ARN } from '../helpers/sqs-events.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('SQS event factories', () => {
  it('builds a first delivery shaped as Lambda sends it, with the MD5 of the body', () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });

    const record = sqsRecord({ task: 'fetch' });

    expect(record).toEqual({
      messageId: expect.stringMatching(/^[0-9a-f-]{36}$/) as string,
      receiptHandle: expect.any(String) as string,
      body: '{"task":"fetch"}',
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: '1700000000000',
        SenderId: expect.any(String) as string,
        ApproximateFirstReceiveTimestamp: '1700000000000',
      },
      messageAttributes: {},
      md5OfBody: md5OfBody('{"task":"fetch"}'),
      eventSource: 'aws:sqs',
      eventSourceARN: TEST_QUEUE_ARN,
      awsRegion: 'us-east-1',
    });
    expect(md5OfBody('hello')).toBe('5d41402abc4b2a76b9719d911017c592');
  });

  it('merges attribute overrides and takes the region from the queue ARN', () => {
    const record = sqsRecord('x', {
      messageId: 'm-1',
      attributes: { ApproximateReceiveCount: '4' },
      eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:q',
    });

    expect(record).toMatchObject({ messageId: 'm-1', attributes: { ApproximateReceiveCount: '4', SentTimestamp: expect.any(String) as string }, awsRegion: 'eu-west-1' });
    expect(sqsEvent([record])).toEqual({ Records: [record] });
  });

  it('gives a context whose remaining time counts down with the clock and never goes below 0', () => {
    vi.useFakeTimers({ now: 0 });
    const context = lambdaContext({ remainingMs: 1_000, functionName: 'worker' });

    vi.advanceTimersByTime(400);
    const midway = context.getRemainingTimeInMillis();
    vi.advanceTimersByTime(5_000);

    expect(midway).toBe(600);
    expect(context.getRemainingTimeInMillis()).toBe(0);
    expect(context).toMatchObject({ functionName: 'worker', invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:worker', logGroupName: '/aws/lambda/worker' });
    expect(() => context.succeed('x')).toThrow(/return a promise/);
  });
});
