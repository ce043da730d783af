/**
 * The pure rules of an attempt's ending: how an outcome, the runner's reason for stopping it and
 * the state of its lease become its run's final status, and the cap on results.
 */
import { describe, expect, it } from 'vitest';
import { capResult, endingOf, refOf, type EndingContext } from '../../../core/engine/attempt.js';
import { failure, type AttemptOutcome } from '../../../core/engine/executor.js';
import {
  CancelledError,
  LeaseLostError,
  NonRetryableError,
  ShutdownError,
  SkipError,
  TaskTimeoutError,
} from '../../../core/errors.js';

/** A first attempt of three of a batch task that nothing stopped. */
function context(overrides: Partial<EndingContext> = {}): EndingContext {
  return {
    kind: 'batch',
    abortReason: undefined,
    lost: false,
    attempt: 1,
    maxAttempts: 3,
    noRetry: false,
    lostError: () => new LeaseLostError('the lease on sig-a (token 1) was lost'),
    ...overrides,
  };
}

const success: AttemptOutcome = { ok: true, result: { rows: 3 } };

describe('endingOf', () => {
  it('records a success as succeeded with its result, and without one when the handler returned nothing', () => {
    expect(endingOf(success, context())).toStrictEqual({ status: 'succeeded', result: { rows: 3 }, retry: false });
    expect(endingOf({ ok: true, result: undefined }, context())).toStrictEqual({ status: 'succeeded', retry: false });
  });

  it('counts a batch task that returned despite an abort as succeeded', () => {
    const ending = endingOf(success, context({ abortReason: new TaskTimeoutError(100) }));

    expect(ending).toStrictEqual({ status: 'succeeded', result: { rows: 3 }, retry: false });
  });

  it('records a continuous task that returned after being cancelled as cancelled, with the reason as error', () => {
    const reason = new CancelledError('the job stopped returning the task');

    const ending = endingOf(success, context({ kind: 'continuous', abortReason: reason }));

    expect(ending).toMatchObject({ status: 'cancelled', result: { rows: 3 }, retry: false });
    expect(ending.error).toMatchObject({ name: 'CancelledError', message: reason.message });
  });

  it('records a continuous task that returned after any other stop (a shutdown) as interrupted', () => {
    const ending = endingOf(success, context({ kind: 'continuous', abortReason: new ShutdownError() }));

    expect(ending.status).toBe('interrupted');
    expect(ending.error?.name).toBe('ShutdownError');
    expect(ending.retry).toBe(false);
  });

  it('records an attempt whose lease was lost as interrupted by a LeaseLostError, whatever it returned', () => {
    const lost = endingOf(success, context({ lost: true }));
    const aborted = endingOf(
      failure(new Error('boom')),
      context({ abortReason: new LeaseLostError('the lease on sig-a (token 1) moved on') }),
    );

    expect(lost.status).toBe('interrupted');
    expect(lost.error).toMatchObject({ name: 'LeaseLostError', message: 'the lease on sig-a (token 1) was lost' });
    expect(lost.result).toBeUndefined();
    expect(lost.retry).toBe(false);
    expect(aborted.status).toBe('interrupted');
    expect(aborted.error).toMatchObject({ name: 'LeaseLostError', message: 'the lease on sig-a (token 1) moved on' });
    expect(aborted.retry).toBe(false);
  });

  it('records a failure during shutdown as interrupted by one error: the shutdown with its own stack, what the handler threw as its cause', () => {
    const thrown = new Error('socket closed');
    const reason = new ShutdownError('SIGINT');

    const ending = endingOf(failure(thrown), context({ abortReason: reason }));

    expect(ending.status).toBe('interrupted');
    expect(ending.error).toStrictEqual({
      name: 'ShutdownError',
      message: 'interrupted by SIGINT: the runner is shutting down; the task will be planned again on the next start',
      stack: `${reason.stack}\nCaused by: ${thrown.stack}`,
    });
    expect(ending.error?.stack?.split('\n')[0]).toBe(`ShutdownError: ${reason.message}`);
    expect(ending.retry).toBe(false);
  });

  it('records how a task process ended (killed by a signal) as the cause of the runner’s reason, not as the error', () => {
    const processEnd = failure(Object.assign(new Error('the task process was killed by SIGKILL before the task finished'), { name: 'TaskProcessError' }));
    const reason = new TaskTimeoutError(100);

    const ending = endingOf(processEnd, context({ abortReason: reason }));

    expect(ending.error).toMatchObject({ name: 'TaskTimeoutError', message: reason.message });
    expect(ending.error?.stack).toMatch(/^TaskTimeoutError: task timed out after 100 ms/);
    expect(ending.error?.stack).toContain('\nCaused by: TaskProcessError: the task process was killed by SIGKILL');
  });

  it('does not repeat the runner’s reason as its own cause when the handler rethrew it (here rebuilt in a child process, without a stack)', () => {
    const reason = new ShutdownError();
    const rethrown = { ok: false as const, error: { name: 'ShutdownError', message: reason.message }, retryable: true, skip: false };

    const ending = endingOf(rethrown, context({ abortReason: reason }));

    expect(ending.error).toStrictEqual({ name: 'ShutdownError', message: reason.message, stack: reason.stack });
  });

  it('records a failure after a cancel as cancelled', () => {
    const ending = endingOf(failure(new Error('aborted')), context({ abortReason: new CancelledError('instance disabled') }));

    expect(ending).toMatchObject({ status: 'cancelled', error: { name: 'CancelledError', message: 'instance disabled' }, retry: false });
  });

  it('records a SkipError as skipped, without retry', () => {
    const ending = endingOf(failure(new SkipError('nothing new upstream')), context());

    expect(ending).toMatchObject({ status: 'skipped', error: { name: 'SkipError', message: 'nothing new upstream' }, retry: false });
  });

  it('retries a retryable failure with attempts left', () => {
    const ending = endingOf(failure(new Error('HTTP 503')), context({ attempt: 2 }));

    expect(ending).toMatchObject({ status: 'failed', error: { name: 'Error', message: 'HTTP 503' }, retry: true });
  });

  it('decides a stopped attempt’s retry by the runner’s reason, not by what the handler threw: a timeout is retried', () => {
    const ending = endingOf(failure(new NonRetryableError('aborted mid-write')), context({ abortReason: new TaskTimeoutError(100) }));

    expect(ending).toMatchObject({ status: 'failed', error: { name: 'TaskTimeoutError' }, retry: true });
  });

  it('records a skip thrown after the runner stopped the attempt as the stop, not as a skip', () => {
    const ending = endingOf(failure(new SkipError('nothing new upstream')), context({ abortReason: new TaskTimeoutError(100) }));

    expect(ending).toMatchObject({ status: 'failed', error: { name: 'TaskTimeoutError' } });
  });

  it.each([
    ['on the last attempt', failure(new Error('HTTP 503')), { attempt: 3 }],
    ['when retries are off', failure(new Error('HTTP 503')), { noRetry: true }],
    ['for a continuous task', failure(new Error('HTTP 503')), { kind: 'continuous' as const }],
    ['for a non-retryable error', failure(new NonRetryableError('bad credentials')), {}],
  ])('fails without retry %s', (_case, outcome, overrides) => {
    expect(endingOf(outcome, context(overrides))).toMatchObject({ status: 'failed', retry: false });
  });
});

describe('capResult', () => {
  it('turns a result over the cap, counted in UTF-8 bytes, into a ResultTooLargeError failure naming its size', () => {
    // "ééé" as JSON is 5 characters but 8 bytes.
    const capped = capResult({ ok: true, result: 'ééé' }, 7);

    expect(capped).toMatchObject({ ok: false, retryable: false, skip: false, error: { name: 'ResultTooLargeError' } });
    expect(capped.ok ? '' : capped.error.message).toContain('the result is 8 bytes, over the 7-byte cap');
  });

  it('keeps a result at or under the cap, an empty result and a failure as they are', () => {
    const atCap: AttemptOutcome = { ok: true, result: 'ééé' };
    const empty: AttemptOutcome = { ok: true, result: undefined };
    const failed = failure(new Error('boom'));

    expect(capResult(atCap, 8)).toBe(atCap);
    expect(capResult(empty, 0)).toBe(empty);
    expect(capResult(failed, 0)).toBe(failed);
  });

  it('makes an oversized result fail the attempt without retry', () => {
    const ending = endingOf(capResult({ ok: true, result: 'x'.repeat(100) }, 10), context());

    expect(ending).toMatchObject({ status: 'failed', error: { name: 'ResultTooLargeError' }, retry: false });
  });
});

describe('refOf', () => {
  it('keeps a lease’s signature, owner and token, a released lease naming no owner', () => {
    expect(refOf({ signature: 'sig-a', owner: 'runner-1', token: 4 })).toStrictEqual({ signature: 'sig-a', owner: 'runner-1', token: 4 });
    expect(refOf({ signature: 'sig-a', owner: null, token: 4 }).owner).toBe('');
  });
});
