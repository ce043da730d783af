/**
 * The arithmetic of the run pointers a DynamoDB lease item keeps to its signature's runs
 * (core/adapters/aws/dynamo/run-pointers.ts): which run each pointer moves to, and which run a
 * newly written record names as written before it.
 */
import { describe, expect, it } from 'vitest';
import { advance, ahead, pointerSets } from '../../../core/adapters/aws/dynamo/run-pointers.js';
import { Expr } from '../../../core/adapters/aws/dynamo/expressions.js';
import { makeRun, T0 } from '../../helpers/records.js';

describe('run pointers', () => {
  it('orders runs as lastRun does: queued later first, then the greater id, a run equal to the pointer counting as ahead', () => {
    expect([ahead(T0 + 1, 'a', T0, 'z'), ahead(T0, 'b', T0, 'a'), ahead(T0, 'a', T0, 'a'), ahead(T0, 'a', T0, 'b'), ahead(T0 - 1, 'z', T0, 'a'), ahead(T0, 'a', undefined, undefined)]).toStrictEqual([
      true,
      true,
      true,
      false,
      false,
      true,
    ]);
  });

  it('moves the newest-run and newest-success pointers forward only, by queue time, and chains each new record to the head before it', () => {
    // The first ended last; the second was queued last, so it is the newest run.
    const first = makeRun('first', { status: 'succeeded', queuedAt: T0, endedAt: T0 + 100 });
    const second = makeRun('second', { status: 'failed', queuedAt: T0 + 10, endedAt: T0 + 50 });
    const older = makeRun('older', { status: 'succeeded', queuedAt: T0 - 10, endedAt: T0 + 200 });

    const { next, priors } = advance({ headRunId: 'zero', lastRunId: 'zero', lastRunAt: T0 - 5, lastSuccessId: 'zero', lastSuccessAt: T0 - 5 }, [first, second, older], new Set());

    expect(next).toStrictEqual({ headRunId: 'older', lastRunId: 'second', lastRunAt: T0 + 10, lastSuccessId: 'first', lastSuccessAt: T0 });
    expect(Object.fromEntries(priors)).toStrictEqual({ first: 'zero', second: 'first', older: 'second' });
  });

  it('keeps the prior of a record written before, and its place, as it ends', () => {
    const live = makeRun('live', { status: 'running', queuedAt: T0 });
    const ended = { ...live, status: 'succeeded' as const, endedAt: T0 + 30 };

    const { next, priors } = advance({ headRunId: 'live', lastRunId: 'live', lastRunAt: T0 }, [ended], new Set(['live']));

    expect(next).toStrictEqual({ headRunId: 'live', lastRunId: 'live', lastRunAt: T0, lastSuccessId: 'live', lastSuccessAt: T0 });
    expect(priors.size).toBe(0);
  });

  it('sets only the pointers that change', () => {
    const e = new Expr();

    const sets = pointerSets(e, { headRunId: 'a', lastRunId: 'a', lastRunAt: T0 }, { headRunId: 'a', lastRunId: 'b', lastRunAt: T0 + 1 });

    expect(sets).toStrictEqual(['#lastRunId = :v0', '#lastRunAt = :v1']);
    expect(e.values).toStrictEqual({ ':v0': 'b', ':v1': T0 + 1 });
  });
});
