/**
 * The Queries of runs (tables.ts), built from a `RunQuery`: a task's partition of the runs
 * table and the sparse `byLive` index, both newest first by queue time, with the filters the key
 * does not cover; and the order runs are compared in (`listRuns` and `lastRun` share it).
 */
import type { QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import type { RunQuery } from '../../../ports/store.js';
import type { RunRecord, RunStatus } from '../../../types.js';
import { RUN_SK_END, RUN_SK_PREFIX, numberKey, runSk } from '../dynamo-items.js';
import { runIndex } from '../tables.js';
import { Expr } from './expressions.js';

/** The same status filter as a set; `undefined` for any status. */
export function statusSet(status: RunQuery['status']): Set<RunStatus> | undefined {
  if (status === undefined) return undefined;
  return new Set(Array.isArray(status) ? status : [status]);
}

/** Whether `a` comes after `b` in the order of `listRuns` and `lastRun`: queued later, then the greater id. */
export function newer(a: { id: string; queuedAt: number }, b: { id: string; queuedAt: number }): boolean {
  return a.queuedAt > b.queuedAt || (a.queuedAt === b.queuedAt && a.id > b.id);
}

/** The order of `listRuns`: queued later first, ties by the greater id. */
export function queuedOrder(a: RunRecord, b: RunRecord): number {
  return b.queuedAt - a.queuedAt || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0);
}

/** A Query of one run index in queue order (newest first), with the query's filters. */
export function queuedQuery(runsTable: string, index: 'byLive', keyValue: string, query: RunQuery, pageSize: number): QueryCommandInput {
  const { partitionKey, sortKey } = runIndex(index);
  const e = new Expr();
  let key = `${e.n(partitionKey.name)} = ${e.v(keyValue)}`;
  const lower = query.since !== undefined && query.since > 0 ? numberKey(Math.floor(query.since), 'since') : undefined;
  // A cursor (`before`) bounds the key as "queued no later than its run" and filters the ties.
  const until = Math.min(query.until ?? Infinity, query.before !== undefined ? query.before.queuedAt + 1 : Infinity);
  const upper = until <= 999_999_999_999_999 ? numberKey(Math.ceil(until), 'until') : undefined;
  // `<time>#<id>` keys: `<= upper` leaves out every run queued at `upper` or later.
  if (lower !== undefined && upper !== undefined) key += ` AND ${e.n(sortKey.name)} BETWEEN ${e.v(lower)} AND ${e.v(upper)}`;
  else if (lower !== undefined) key += ` AND ${e.n(sortKey.name)} >= ${e.v(lower)}`;
  else if (upper !== undefined) key += ` AND ${e.n(sortKey.name)} < ${e.v(upper)}`;
  const filters = runFilters(e, query, { task: true, instanceId: true, statuses: statusSet(query.status) });
  return {
    TableName: runsTable,
    IndexName: index,
    KeyConditionExpression: key,
    ScanIndexForward: false,
    Limit: filters ? Math.max(pageSize, 25) : pageSize,
    ...(filters ? { FilterExpression: filters } : {}),
    ...e.params(),
  };
}

/**
 * A Query of a task's partition of the runs table (`pk`), newest first: strongly consistent, the
 * key bounded by `since`, `until` and the cursor (`before`), the instance and task filtered too
 * (the partition is named by a hash of both). `undefined` when the bounds leave no key between them.
 */
export function taskQuery(runsTable: string, pk: string, query: RunQuery, pageSize: number): QueryCommandInput | undefined {
  const e = new Expr();
  const lower = query.since !== undefined && query.since > 0 ? `${RUN_SK_PREFIX}${numberKey(Math.floor(query.since), 'since')}` : RUN_SK_PREFIX;
  // `run#<time>` sorts before every key of a run queued at that time, so it bounds `until` as it is.
  let upper = query.until !== undefined && query.until <= 999_999_999_999_999 ? `${RUN_SK_PREFIX}${numberKey(Math.max(0, Math.ceil(query.until)), 'until')}` : RUN_SK_END;
  // The cursor's own key is the bound (BETWEEN includes it; the filter leaves it out).
  if (query.before !== undefined && query.before.queuedAt >= 0 && query.before.queuedAt <= 999_999_999_999_999) {
    const cursor = runSk(Math.floor(query.before.queuedAt), query.before.id);
    if (cursor < upper) upper = cursor;
  }
  if (upper < lower) return undefined;
  const filters = runFilters(e, query, { task: true, instanceId: true, statuses: statusSet(query.status) });
  return {
    TableName: runsTable,
    KeyConditionExpression: `${e.n('pk')} = ${e.v(pk)} AND ${e.n('sk')} BETWEEN ${e.v(lower)} AND ${e.v(upper)}`,
    ScanIndexForward: false,
    ConsistentRead: true,
    Limit: filters ? Math.max(pageSize, 25) : pageSize,
    ...(filters ? { FilterExpression: filters } : {}),
    ...e.params(),
  };
}

/** The FilterExpression of a run query's filters that the key does not cover. */
export function runFilters(
  e: Expr,
  query: Omit<RunQuery, 'limit'>,
  cover: { task: boolean; instanceId: boolean; statuses: Set<RunStatus> | undefined },
): string | undefined {
  const parts: string[] = [];
  if (cover.instanceId && query.instanceId !== undefined) parts.push(`${e.n('instanceId')} = ${e.v(query.instanceId)}`);
  if (cover.task && query.task !== undefined) parts.push(`${e.n('task')} = ${e.v(query.task)}`);
  if (cover.statuses) parts.push(`${e.n('status')} IN (${[...cover.statuses].map((s) => e.v(s)).join(', ')})`);
  if (query.since !== undefined) parts.push(`${e.n('queuedAt')} >= ${e.v(query.since)}`);
  if (query.until !== undefined) parts.push(`${e.n('queuedAt')} < ${e.v(query.until)}`);
  if (query.before !== undefined) {
    const at = e.v(query.before.queuedAt);
    parts.push(`(${e.n('queuedAt')} < ${at} OR (${e.n('queuedAt')} = ${at} AND ${e.n('id')} < ${e.v(query.before.id)}))`);
  }
  // The item's `input` is the run's input as compact JSON, the text `inputContains` is matched in.
  if (query.inputContains !== undefined) parts.push(`contains(${e.n('input')}, ${e.v(query.inputContains)})`);
  return parts.length > 0 ? parts.join(' AND ') : undefined;
}
