/**
 * Retries: attempts, backoff, revert, and what errors mean for them (MemoryStore, inline tasks).
 */
import { describe, expect, it } from 'vitest';
import { defineJob } from '../../../core/define.js';
import { NonRetryableError, SkipError } from '../../../core/errors.js';
import { backoffDelay, DEFAULT_RETRY, mergeRetry } from '../../../core/retry.js';
import type { ErrorInfo, RetryPolicy, TaskSpec } from '../../../core/types.js';
import { Executions, instance, noParams, until, useHarnesses, waitFor, waitForRun, withStatus } from '../../helpers/runner.js';

const { harness } = useHarnesses();

class FetchFailedError extends Error {
  override name = 'FetchFailedError';
}

/** A job with one task `fetch` whose handler is `run`, returned once per plan until it ended. */
function oneTaskJob(
  name: string,
  run: (attempt: number) => unknown,
  options: { retry?: Partial<RetryPolicy>; spec?: Partial<TaskSpec>; revert?: (error: ErrorInfo) => void } = {},
) {
  return defineJob({
    name,
    params: noParams,
    async getRunnableTasks(ctx) {
      if (await ctx.history.lastRun({ task: 'fetch' })) return [];
      return [{ task: 'fetch', input: { url: 'https://example.org/a' }, ...options.spec }];
    },
    tasks: {
      fetch: {
        retry: options.retry ?? { attempts: 1 },
        run: (_input: { url: string }, tctx) => run(tctx.attempt),
        ...(options.revert ? { revert: (_input: unknown, error: ErrorInfo) => options.revert?.(error) } : {}),
      },
    },
  });
}

describe('retries', () => {
  it('retries a failing task with backoff, then fails it, one run record per attempt', async () => {
    const job = oneTaskJob(
      'failing',
      (attempt) => {
        throw new FetchFailedError(`upstream answered 503 (attempt ${attempt})`);
      },
      { retry: { attempts: 3, backoffMs: 20, factor: 2, jitter: 0 } },
    );
    const h = harness({ jobs: [job], instances: [instance('failing-1', 'failing')] });

    const stats = await h.runner.runOnce();

    const records = (await h.store.listRuns({ instanceId: 'failing-1' })).sort((a, b) => a.attempt - b.attempt);
    expect(records.map((r) => [r.attempt, r.status, r.origin])).toEqual([
      [1, 'failed', 'schedule'],
      [2, 'failed', 'retry'],
      [3, 'failed', 'retry'],
    ]);
    // Each failed attempt names the next one, which names it back; the last one names none.
    expect(records.map((r) => [r.previousRunId, r.nextRunId])).toEqual([
      [undefined, records[1]?.id],
      [records[0]?.id, records[2]?.id],
      [records[1]?.id, undefined],
    ]);
    expect(records.map((r) => r.error?.message)).toEqual([1, 2, 3].map((n) => `upstream answered 503 (attempt ${n})`));
    expect(new Set(records.map((r) => r.id)).size).toBe(3);
    expect(new Set(records.map((r) => r.signature)).size).toBe(1);
    expect(records.every((r) => r.maxAttempts === 3)).toBe(true);
    const [first, second, last] = records as [(typeof records)[0], (typeof records)[0], (typeof records)[0]];
    // The backoff separates the attempts: 20 ms, then 40 ms (1 ms of timer slack).
    expect((second.startedAt ?? 0) - (first.endedAt ?? 0)).toBeGreaterThanOrEqual(19);
    expect((last.startedAt ?? 0) - (second.endedAt ?? 0)).toBeGreaterThanOrEqual(39);
    expect(last.error?.name).toBe('FetchFailedError');
    expect(last.error?.message).toBe('upstream answered 503 (attempt 3)');
    expect(last.error?.stack).toContain('retries.test.ts');
    expect(stats).toMatchObject({ failed: 1, retried: 2, succeeded: 0 });
  });

  it('keeps one lease through the attempts: every attempt carries the same fencing token', async () => {
    const job = oneTaskJob(
      'same-lease',
      (attempt) => {
        if (attempt < 3) throw new Error('not yet');
        return 'third time lucky';
      },
      { retry: { attempts: 3, backoffMs: 5, jitter: 0 } },
    );
    const h = harness({ jobs: [job], instances: [instance('same-lease-1', 'same-lease')] });

    await h.runner.runOnce();

    const records = await h.store.listRuns({ instanceId: 'same-lease-1' });
    expect(records.map((r) => r.status).sort()).toEqual(['failed', 'failed', 'succeeded']);
    expect(new Set(records.map((r) => r.fencingToken))).toEqual(new Set([1]));
  });

  it('reverts exactly once, after the last attempt failed', async () => {
    const executions = new Executions();
    const reverts: { error: ErrorInfo; attemptsBefore: number }[] = [];
    const job = oneTaskJob(
      'reverting',
      () =>
        executions.around('fetch', () => {
          throw new FetchFailedError('disk full');
        }),
      {
        retry: { attempts: 3, backoffMs: 5, jitter: 0 },
        revert: (error) => reverts.push({ error, attemptsBefore: executions.ended.length }),
      },
    );
    const h = harness({ jobs: [job], instances: [instance('reverting-1', 'reverting')] });

    await h.runner.runOnce();

    expect(reverts).toHaveLength(1);
    expect(reverts[0]?.attemptsBefore).toBe(3);
    expect(reverts[0]?.error).toMatchObject({ name: 'FetchFailedError', message: 'disk full' });
    const last = withStatus(h.runs, 'failed').find((r) => r.nextRunId === undefined);
    expect(last?.attempt).toBe(3);
    const logs = await h.store.getLogs(last?.id ?? '');
    expect(logs.map((l) => l.message)).toContain('reverted after the last attempt failed');
  });

  it('does not revert a task that succeeds on a later attempt', async () => {
    let reverts = 0;
    const job = oneTaskJob(
      'recovering',
      (attempt) => {
        if (attempt === 1) throw new Error('flaky');
        return 'ok';
      },
      { retry: { attempts: 3, backoffMs: 5, jitter: 0 }, revert: () => (reverts += 1) },
    );
    const h = harness({ jobs: [job], instances: [instance('recovering-1', 'recovering')] });

    await h.runner.runOnce();

    expect(withStatus(h.runs, 'succeeded')).toHaveLength(1);
    expect(reverts).toBe(0);
  });

  it('holds the lease through the backoff, so a second runner on the same store is refused the task', async () => {
    const executions = new Executions();
    // Both runners' plans hand the task back whatever the history says.
    const job = defineJob({
      name: 'backing-off',
      params: noParams,
      getRunnableTasks: () => [{ task: 'fetch', input: { url: 'https://example.org/b' } }],
      tasks: {
        fetch: {
          retry: { attempts: 2, backoffMs: 400, jitter: 0 },
          run: (_input: { url: string }, tctx) =>
            executions.around('fetch', () => {
              if (tctx.attempt === 1) throw new Error('try later');
              return 'ok';
            }),
        },
      },
    });
    const a = harness({ jobs: [job], instances: [instance('bo-1', 'backing-off')] });
    const retrying = waitForRun(a.runner, (r) => r.status === 'retrying');
    await a.runner.start();
    // The second attempt waits out its backoff as `retrying`, holding the first one's lease.
    const firstAttempt = await retrying;
    expect(firstAttempt.attempt).toBe(2);
    await until(async () => (await a.store.getRun(firstAttempt.id))?.status === 'retrying', 2_000, 'the retrying record');

    const lease = await a.store.getLease(firstAttempt.signature);
    expect(lease?.owner).toBe(a.runner.owner);
    expect(lease?.token).toBe(firstAttempt.fencingToken);

    const b = harness({ jobs: [job], instances: [instance('bo-1', 'backing-off')], shared: a.store });
    let startedWhenRefused = -1;
    const refused = waitFor<[string, string, string | null]>(b.runner, 'deduplicated', () => {
      startedWhenRefused = executions.started.length;
      return true;
    });
    const stats = await b.runner.runOnce();
    const [, signature, holder] = await refused;

    expect(signature).toBe(firstAttempt.signature);
    expect(holder).toBe(a.runner.owner);
    expect(startedWhenRefused).toBe(1);
    expect(stats.deduplicated).toBe(1);
    expect(b.runs).toEqual([]);

    const second = await waitForRun(a.runner, (r) => r.status === 'succeeded');
    expect(second.attempt).toBe(2);
    expect(second.runner).toBe(a.runner.owner);
    expect(executions.overlaps).toEqual([]);
  });

  it('fails at once on a NonRetryableError', async () => {
    let calls = 0;
    const job = oneTaskJob(
      'fatal',
      () => {
        calls += 1;
        throw new NonRetryableError('the API key was revoked');
      },
      { retry: { attempts: 5, backoffMs: 5, jitter: 0 } },
    );
    const h = harness({ jobs: [job], instances: [instance('fatal-1', 'fatal')] });

    await h.runner.runOnce();

    expect(calls).toBe(1);
    const records = await h.store.listRuns({ instanceId: 'fatal-1' });
    expect(records.map((r) => [r.attempt, r.status, r.error?.name])).toEqual([[1, 'failed', 'NonRetryableError']]);
  });

  it('marks a run skipped on a SkipError, without retry or revert', async () => {
    let calls = 0;
    let reverts = 0;
    const job = oneTaskJob(
      'skipping',
      () => {
        calls += 1;
        throw new SkipError('no new data since the last run');
      },
      { retry: { attempts: 3, backoffMs: 5, jitter: 0 }, revert: () => (reverts += 1) },
    );
    const h = harness({ jobs: [job], instances: [instance('skipping-1', 'skipping')] });

    const stats = await h.runner.runOnce();

    expect(calls).toBe(1);
    expect(reverts).toBe(0);
    const records = await h.store.listRuns({ instanceId: 'skipping-1' });
    expect(records.map((r) => [r.status, r.error?.message])).toEqual([['skipped', 'no new data since the last run']]);
    expect(stats).toMatchObject({ skipped: 1, failed: 0 });
  });

  it('lets the retry of a spec win over the handler’s', async () => {
    let calls = 0;
    const job = oneTaskJob(
      'overridden',
      () => {
        calls += 1;
        throw new Error('always');
      },
      { retry: { attempts: 5, backoffMs: 5, jitter: 0 }, spec: { retry: { attempts: 2 } } },
    );
    const h = harness({ jobs: [job], instances: [instance('overridden-1', 'overridden')] });

    await h.runner.runOnce();

    expect(calls).toBe(2);
    const records = await h.store.listRuns({ instanceId: 'overridden-1' });
    expect(records.map((r) => [r.attempt, r.maxAttempts, r.status]).sort()).toEqual([
      [1, 2, 'failed'],
      [2, 2, 'failed'],
    ]);
  });
});

describe('backoffDelay', () => {
  const policy: RetryPolicy = { attempts: 10, backoffMs: 100, factor: 3, maxBackoffMs: 1_000, jitter: 0 };

  it('waits backoffMs after the first attempt and grows by the factor per attempt', () => {
    expect(backoffDelay(policy, 1, () => 0.5)).toBe(100);
    expect(backoffDelay(policy, 2, () => 0.5)).toBe(300);
    expect(backoffDelay(policy, 3, () => 0.5)).toBe(900);
  });

  it('caps each delay at maxBackoffMs', () => {
    expect(backoffDelay(policy, 4, () => 0.5)).toBe(1_000);
    expect(backoffDelay(policy, 40, () => 0.5)).toBe(1_000);
  });

  it('draws the jitter share at random, within [delay × (1 − jitter), delay]', () => {
    const jittered = { ...policy, jitter: 0.2 };
    expect(backoffDelay(jittered, 2, () => 0)).toBe(240);
    expect(backoffDelay(jittered, 2, () => 0.5)).toBe(270);
    expect(backoffDelay(jittered, 2, () => 0.999_999)).toBe(300);
    expect(backoffDelay({ ...policy, jitter: 1 }, 1, () => 0)).toBe(0);
    // A jitter outside 0..1 is clamped.
    expect(backoffDelay({ ...policy, jitter: 5 }, 1, () => 0.25)).toBe(25);
  });
});

describe('mergeRetry', () => {
  it('layers the handler’s policy over the default and the spec’s over the handler’s', () => {
    expect(mergeRetry({ attempts: 5, backoffMs: 10 }, { attempts: 2 })).toEqual({ ...DEFAULT_RETRY, attempts: 2, backoffMs: 10 });
  });

  it('ignores keys given as undefined', () => {
    expect(mergeRetry({ attempts: 5 }, { attempts: undefined, factor: 4 })).toEqual({ ...DEFAULT_RETRY, attempts: 5, factor: 4 });
  });
});
