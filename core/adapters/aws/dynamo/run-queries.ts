/**
 * The Queries of the runs table's indexes (tables.ts), built from a `RunQuery`: queue order
 * (`byLive`: newest first) and recency order (`byTask`: successes under `S#`
 * apart from the rest under `R#`, most recent first), with the filters the key does
 * not cover; the two orders runs are compared in; and {@link PageStream}, a paginated read whose
 * head can be looked at before it is taken (to merge streams).
 */
import type { NativeAttributeValue, QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import type { RunQuery } from '../../../ports/store.js';
import type { RunRecord, RunStatus } from '../../../types.js';
import { numberKey } from '../dynamo-items.js';
import { runIndex } from '../tables.js';
import { Expr } from './expressions.js';

/** The same status filter as a set; `undefined` for any status. */
export function statusSet(status: RunQuery['status']): Set<RunStatus> | undefined {
  if (status === undefined) return undefined;
  return new Set(Array.isArray(status) ? status : [status]);
}

/** Whether `a` comes after `b` in the order of `lastRun`: recency, then the greater id. */
export function newer(a: RunRecord | { id: string; queuedAt: number; endedAt?: number }, b: { id: string; queuedAt: number; endedAt?: number }): boolean {
  const ra = a.endedAt ?? a.queuedAt;
  const rb = b.endedAt ?? b.queuedAt;
  return ra > rb || (ra === rb && a.id > b.id);
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

/** A Query of a recency index's `S#` (successes) or `R#` (the rest) runs, most recent first. */
export function recencyQuery(
  runsTable: string,
  index: 'byTask',
  keyValue: string,
  prefix: 'S' | 'R',
  query: RunQuery,
  statuses: Set<RunStatus> | undefined,
  pageSize: number,
): QueryCommandInput {
  const { partitionKey, sortKey } = runIndex(index);
  const e = new Expr();
  // A run's recency is never before its queue time, so `since` bounds the key too.
  const lower = query.since !== undefined && query.since > 0 ? `${prefix}#${numberKey(Math.floor(query.since), 'since')}` : `${prefix}#`;
  const filters = runFilters(e, query, { task: false, instanceId: false, statuses });
  return {
    TableName: runsTable,
    IndexName: index,
    KeyConditionExpression: `${e.n(partitionKey.name)} = ${e.v(keyValue)} AND ${e.n(sortKey.name)} BETWEEN ${e.v(lower)} AND ${e.v(`${prefix}$`)}`,
    ScanIndexForward: false,
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

/** A paginated read in progress: items ahead, fetched a page at a time. */
export class PageStream<T> {
  private buffer: T[] = [];
  private startKey: Record<string, NativeAttributeValue> | undefined;
  private done = false;

  constructor(private readonly fetch: (startKey: Record<string, NativeAttributeValue> | undefined) => Promise<{ items: T[]; lastKey: Record<string, NativeAttributeValue> | undefined }>) {}

  async peek(): Promise<T | undefined> {
    while (this.buffer.length === 0 && !this.done) {
      const page = await this.fetch(this.startKey);
      this.buffer = page.items;
      this.startKey = page.lastKey;
      if (!page.lastKey) this.done = true;
    }
    return this.buffer[0];
  }

  shift(): void {
    this.buffer.shift();
  }
}
