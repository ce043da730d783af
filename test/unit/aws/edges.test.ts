/**
 * The AWS edges without a network: environment validation at cold start, the scheduler's event
 * schema, dispatch message parsing, and the EMF lines Powertools Metrics writes per job type.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseEnv, schedulerEnvSchema, workerEnvSchema } from '../../../core/adapters/aws/env.js';
import { schedulerEventSchema } from '../../../core/adapters/aws/handlers.js';
import { PowertoolsTelemetry } from '../../../core/adapters/aws/telemetry.js';
import { PoisonMessageError, RuntimeConfigError } from '../../../core/cloud/errors.js';
import { parseDispatchMessage } from '../../../core/cloud/messages.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('environment at cold start', () => {
  it('names every missing or malformed variable at once', () => {
    const env = { UJR_LEASES_TABLE: 'leases', UJR_TASK_QUEUE_URL: 'not a url', UJR_MAX_RECEIVE_COUNT: 'five' };

    const error = (() => {
      try {
        parseEnv(workerEnvSchema, env, 'worker function');
      } catch (e) {
        return e;
      }
      return undefined;
    })();

    expect(error).toBeInstanceOf(RuntimeConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/^the worker function cannot start: /);
    for (const name of ['UJR_RUNS_TABLE is not set', 'UJR_INSTANCES_TABLE is not set', 'UJR_DATA_BUCKET is not set', 'UJR_DEAD_LETTER_QUEUE_URL is not set', 'UJR_TASK_QUEUE_URL:', 'UJR_MAX_RECEIVE_COUNT:']) {
      expect(message).toContain(name);
    }
    expect(message).not.toContain('UJR_LEASES_TABLE');
  });

  it('fills defaults and splits lists', () => {
    const env = parseEnv(
      schedulerEnvSchema,
      {
        UJR_LEASES_TABLE: 'l',
        UJR_RUNS_TABLE: 'r',
        UJR_INSTANCES_TABLE: 'i',
        UJR_DATA_BUCKET: 'b',
        UJR_TASK_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/q',
        UJR_DEAD_LETTER_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/1/d',
        UJR_SUBNETS: 'subnet-a, subnet-b,',
      },
      'scheduler',
    );

    expect(env).toMatchObject({ UJR_WORKER_TASK_LIMIT_MS: 14 * 60_000, UJR_TICK_MS: 60_000, UJR_SUBNETS: ['subnet-a', 'subnet-b'], UJR_METRICS_NAMESPACE: 'ujr' });
  });
});

describe('scheduler events', () => {
  it('accepts a tick and an ad-hoc run, and refuses anything else', () => {
    expect(schedulerEventSchema.safeParse({}).success).toBe(true);
    expect(schedulerEventSchema.safeParse({ tick: true }).success).toBe(true);
    expect(schedulerEventSchema.safeParse({ instanceId: 'a', task: 'b', input: { n: [1, null] } }).success).toBe(true);
    expect(schedulerEventSchema.safeParse({ instanceId: '' }).success).toBe(false);
    expect(schedulerEventSchema.safeParse({ instance: 'a' }).success).toBe(false);
  });
});

describe('dispatch messages', () => {
  it('parses what the scheduler sends and names what is wrong otherwise', () => {
    const message = { v: 1, signature: 's', token: 3, owner: 'queue:r', instanceId: 'i', task: 't', runId: 'r', attempt: 1, timeoutMs: 1000 };

    expect(parseDispatchMessage(JSON.stringify(message))).toEqual(message);
    expect(() => parseDispatchMessage('{')).toThrow(PoisonMessageError);
    expect(() => parseDispatchMessage(JSON.stringify({ ...message, token: -1 }))).toThrow(/token: .*ujr only reads messages its scheduler sent/);
  });
});

/** What the process writes to stdout and console.log from now on (the EMF lines, the logs). */
function capturedOutput(): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args.map(String).join(' '));
  });
  return lines;
}

describe('Powertools telemetry', () => {
  it('writes one EMF line per job type with the counts and durations of the invocation', () => {
    const lines = capturedOutput();
    const telemetry = new PowertoolsTelemetry({ namespace: 'ujr-test', serviceName: 'ujr-worker' });

    telemetry.count('started', 'processor', 2);
    telemetry.count('succeeded', 'processor');
    telemetry.count('failed', 'archiver');
    telemetry.duration('processor', 120);
    telemetry.flush();
    telemetry.flush();

    const emf = lines.filter((line) => line.includes('"_aws"')).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(emf).toHaveLength(2);
    const processor = emf.find((line) => line.jobType === 'processor');
    expect(processor).toMatchObject({ service: 'ujr-worker', started: 2, succeeded: 1, duration: 120 });
    expect(JSON.stringify(processor)).toContain('"Namespace":"ujr-test"');
    expect(emf.find((line) => line.jobType === 'archiver')).toMatchObject({ failed: 1 });
  });

  it('writes one EMF line per shared limit: its scarcest bucket, the slots held, the totals of its buckets', () => {
    const lines = capturedOutput();
    const telemetry = new PowertoolsTelemetry({ namespace: 'ujr-test', serviceName: 'ujr-scheduler' });
    const rate = { count: 10, perMs: 1000, burst: 10 };

    telemetry.limits([
      { name: 'api', key: 'lab-1', rate, tokens: 7.5, held: 0, granted: 12, refused: 1, throttledMs: 0 },
      { name: 'api', key: 'lab-2', rate, tokens: 0.25, held: 0, granted: 30, refused: 4, throttledMs: 2000 },
      { name: 'archive-host', key: 'example.org', concurrency: 3, held: 2, granted: 5, refused: 0, throttledMs: 0 },
    ]);
    telemetry.flush();
    telemetry.flush();

    const emf = lines.filter((line) => line.includes('"_aws"')).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(emf).toHaveLength(2);
    expect(emf.find((line) => line.limit === 'api')).toMatchObject({ limitTokens: 0.25, limitHeld: 0, limitGranted: 42, limitRefused: 5, limitThrottledMs: 2000 });
    const host = emf.find((line) => line.limit === 'archive-host');
    expect(host).toMatchObject({ limitHeld: 2, limitGranted: 5, limitRefused: 0 });
    expect(host).not.toHaveProperty('limitTokens');
  });
});
