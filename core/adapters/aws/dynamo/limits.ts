/**
 * Limits on DynamoDB (issue 15): one item per bucket in the instances table, key `instanceId` =
 * `limit#<name>#<key>`, `kind` = `bucket`, holding the bucket state of core/ports/limit-buckets.ts
 * and a `version` that every change of tokens or slots increments.
 *
 * A decision reads the bucket items (strongly consistent), applies the shared arithmetic, and
 * writes the next states conditioned on the versions it read: one conditional UpdateItem for a
 * request naming one limit, a TransactWriteItems (all or nothing) for more. A write that lost a
 * race gets the item as it is now (one limit) or reads again (several), and decides again, a
 * bounded number of times with jittered backoff. Renewals and releases touch only their holder's
 * slot (conditioned on it, no read) and increment the version, so that a decision that read the
 * slots before them cannot write back a stale set. Refusals only `ADD refused 1`, which no
 * condition reads, so waiting callers never make granting ones conflict.
 *
 * Costs (items stay well under 1 KB): a granted one-limit acquire is one consistent GetItem
 * (1 RCU) and one UpdateItem (1 WCU); a refused one, the GetItem and an unconditional UpdateItem
 * (1 WCU). With n limits: one BatchGetItem (n RCU) and one TransactWriteItems (2n WCU). Each lost
 * race adds one write (and, for n > 1, one read). Renew and release: one UpdateItem (1 WCU) per slot.
 */
import { BatchGetCommand, GetCommand, TransactWriteCommand, UpdateCommand, type NativeAttributeValue } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { byBucket, decideAcquire, decideBackoff, describeBucket, type BucketState } from '../../../ports/limit-buckets.js';
import {
  checkLimitName,
  checkLimitRequest,
  type LimitGrant,
  type LimitPermit,
  type LimitRef,
  type LimitRequest,
  type LimitState,
  type LimitStore,
} from '../../../ports/limits.js';
import { DynamoStoreError, cancellationCodes, storeError } from './errors.js';
import { Expr } from './expressions.js';
import { TableCalls, type TableCallsOptions } from './table-calls.js';

/** The `kind` of a bucket item in the instances table. */
export const BUCKET_KIND = 'bucket';

/** Rounds of read-decide-write when other writers keep changing a bucket under a request. */
const ATTEMPTS = 25;

/** The key of a bucket's item. */
export function bucketKey(ref: LimitRef): { instanceId: string; kind: string } {
  return { instanceId: `limit#${ref.name}#${ref.key}`, kind: BUCKET_KIND };
}

const bucketItemSchema = z.looseObject({
  limitName: z.string(),
  limitKey: z.string(),
  tokens: z.number().optional(),
  updatedAt: z.number().optional(),
  blockedUntil: z.number().optional(),
  holders: z.record(z.string(), z.number()).optional(),
  rate: z.object({ count: z.number(), perMs: z.number(), burst: z.number() }).optional(),
  concurrency: z.number().optional(),
  granted: z.number().optional(),
  refused: z.number().optional(),
  throttledMs: z.number().optional(),
  version: z.number().optional(),
});

/** A bucket item as read: its state and the version a write is conditioned on (0: no version yet). */
interface StoredBucket {
  state: BucketState;
  version: number;
}

function parseBucket(item: Record<string, unknown>, table: string): StoredBucket & { ref: LimitRef } {
  const parsed = bucketItemSchema.safeParse(item);
  if (!parsed.success) {
    throw new DynamoStoreError(
      `limit bucket item ${JSON.stringify(item)} in table ${table} is malformed (${parsed.error.message}); delete the item to reset the bucket`,
      table,
      'read a limit bucket',
      { retryable: false },
    );
  }
  const data = parsed.data;
  const state: BucketState = {
    updatedAt: data.updatedAt ?? 0,
    blockedUntil: data.blockedUntil ?? 0,
    holders: data.holders ?? {},
    granted: data.granted ?? 0,
    refused: data.refused ?? 0,
    throttledMs: data.throttledMs ?? 0,
  };
  if (data.tokens !== undefined) state.tokens = data.tokens;
  if (data.rate !== undefined) state.rate = data.rate;
  if (data.concurrency !== undefined) state.concurrency = data.concurrency;
  return { ref: { name: data.limitName, key: data.limitKey }, state, version: data.version ?? 0 };
}

/** A conditional update of one bucket item, as UpdateItem and TransactWriteItems both take it. */
interface BucketUpdate {
  TableName: string;
  Key: Record<string, NativeAttributeValue>;
  UpdateExpression: string;
  ConditionExpression: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, NativeAttributeValue>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Full jitter: a random wait up to a bound that doubles per attempt, capped at 200 ms. */
function jitterMs(attempt: number): number {
  return Math.random() * Math.min(200, 5 * 2 ** attempt);
}

/**
 * The DynamoDB {@link LimitStore}, over the tables of a `DynamoStore` (made by {@link dynamoLimits}).
 *
 * @example
 * ```ts
 * const limits = dynamoLimits({ client, tables });
 * const grant = await limits.acquireLimits(
 *   { holder: runId, ttlMs: 30_000, limits: [{ name: 'api', key: 'cred-1', rate: { count: 300, perMs: 900_000, burst: 300 } }] },
 *   Date.now(),
 * );
 * ```
 */
export class DynamoLimits implements LimitStore {
  constructor(private readonly calls: TableCalls) {}

  async acquireLimits(request: LimitRequest, now: number): Promise<LimitGrant> {
    checkLimitRequest(request);
    let known: (StoredBucket | undefined)[] | undefined;
    for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
      if (attempt > 0) await sleep(jitterMs(attempt));
      const stored = known ?? (await this.readBuckets(request.limits));
      known = undefined;
      const decision = decideAcquire(request, stored.map((s) => s?.state), now);
      if (!decision.granted) {
        await this.countRefusal(request.limits[decision.index] as LimitRef);
        return decision.grant;
      }
      if (request.limits.length === 1) {
        const [spec] = request.limits as [LimitRef];
        const written = await this.writeBucket(spec, decision.next[0] as BucketState, stored[0]?.version ?? 0);
        if (written === true) return decision.grant;
        known = [written];
      } else {
        const writes = request.limits.map((spec, index) => this.bucketUpdate(spec, decision.next[index] as BucketState, stored[index]?.version ?? 0));
        if (await this.transact(writes)) return decision.grant;
      }
    }
    // Still contended after every attempt: a hot bucket. Nothing was taken; ask again shortly.
    const [first] = request.limits;
    const ref = first ?? { name: '', key: '' };
    return { granted: false, retryAt: now + 50 + Math.round(jitterMs(ATTEMPTS)), waitingOn: { name: ref.name, key: ref.key, reason: first?.rate ? 'rate' : 'concurrency' } };
  }

  async renewLimits(permit: LimitPermit, ttlMs: number, now: number): Promise<boolean> {
    const { doc, tables } = this.calls;
    const renewed = await Promise.all(
      permit.slots.map(async (slot) => {
        const e = new Expr();
        const slotPath = `${e.n('holders')}.${e.n(permit.holder)}`;
        const result = await this.calls.conditional('instances', 'UpdateItem (renew a limit slot)', () =>
          doc.send(
            new UpdateCommand({
              TableName: tables.instances,
              Key: bucketKey(slot),
              UpdateExpression: `SET ${slotPath} = ${e.v(now + ttlMs)} ADD ${e.n('version')} ${e.v(1)}`,
              ConditionExpression: `${slotPath} > ${e.v(now)}`,
              ...e.params(),
            }),
          ),
        );
        return result.ok;
      }),
    );
    return renewed.every(Boolean);
  }

  async releaseLimits(permit: LimitPermit, _now: number): Promise<void> {
    const { doc, tables } = this.calls;
    await Promise.all(
      permit.slots.map(async (slot) => {
        const e = new Expr();
        const slotPath = `${e.n('holders')}.${e.n(permit.holder)}`;
        // Refused when the holder holds no slot there (released already, or pruned once expired).
        await this.calls.conditional('instances', 'UpdateItem (release a limit slot)', () =>
          doc.send(
            new UpdateCommand({
              TableName: tables.instances,
              Key: bucketKey(slot),
              UpdateExpression: `REMOVE ${slotPath} ADD ${e.n('version')} ${e.v(1)}`,
              ConditionExpression: `attribute_exists(${slotPath})`,
              ...e.params(),
            }),
          ),
        );
      }),
    );
  }

  async backoffLimit(name: string, key: string, untilMs: number, now: number): Promise<void> {
    checkLimitName(name);
    const ref = { name, key };
    let known: StoredBucket | undefined;
    for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
      if (attempt > 0) await sleep(jitterMs(attempt));
      const stored = known ?? (await this.readBuckets([ref]))[0];
      known = undefined;
      const next = decideBackoff(stored?.state, untilMs, now);
      if (!next) return;
      const written = await this.writeBucket(ref, next, stored?.version ?? 0);
      if (written === true) return;
      known = written;
    }
    throw storeError(new Error(`the bucket kept changing under ${ATTEMPTS} attempts`), this.calls.tables, 'instances', `UpdateItem (back off limit ${name}/${key})`);
  }

  async listLimitStates(now: number): Promise<LimitState[]> {
    const e = new Expr();
    const states: LimitState[] = [];
    const items = this.calls.scanItems('instances', 'Scan (list limit buckets)', {
      TableName: this.calls.tables.instances,
      FilterExpression: `${e.n('kind')} = ${e.v(BUCKET_KIND)}`,
      ConsistentRead: true,
      ...e.params(),
    });
    for await (const item of items) {
      const { ref, state } = parseBucket(item, this.calls.tables.instances);
      states.push(describeBucket(ref, state, now));
    }
    return states.sort(byBucket);
  }

  /** The buckets' items, strongly consistent, in the order given (`undefined`: none yet). */
  private async readBuckets(refs: readonly LimitRef[]): Promise<(StoredBucket | undefined)[]> {
    const { doc, tables } = this.calls;
    if (refs.length === 1) {
      const [ref] = refs as [LimitRef];
      const output = await this.calls.call('instances', 'GetItem (read a limit bucket)', () =>
        doc.send(new GetCommand({ TableName: tables.instances, Key: bucketKey(ref), ConsistentRead: true })),
      );
      return [output.Item ? parseBucket(output.Item, tables.instances) : undefined];
    }
    const found = new Map<string, StoredBucket>();
    let keys: Record<string, NativeAttributeValue>[] = refs.map(bucketKey);
    for (let attempt = 0; keys.length > 0; attempt += 1) {
      if (attempt > 0) await this.calls.backoff(attempt, 'instances', 'BatchGetItem', `${keys.length} limit buckets`);
      const request = keys;
      const output = await this.calls.call('instances', 'BatchGetItem (read limit buckets)', () =>
        doc.send(new BatchGetCommand({ RequestItems: { [tables.instances]: { Keys: request, ConsistentRead: true } } })),
      );
      for (const item of output.Responses?.[tables.instances] ?? []) {
        const bucket = parseBucket(item, tables.instances);
        found.set(bucketKey(bucket.ref).instanceId, bucket);
      }
      keys = output.UnprocessedKeys?.[tables.instances]?.Keys ?? [];
    }
    return refs.map((ref) => found.get(bucketKey(ref).instanceId));
  }

  /**
   * The update that writes `state` over the version read (`0`: the item has none yet). Every
   * field but `refused` (added to without a condition by refusals) is set, the version incremented.
   */
  private bucketUpdate(ref: LimitRef, state: BucketState, version: number): BucketUpdate {
    const e = new Expr();
    const sets = [
      `${e.n('limitName')} = ${e.v(ref.name)}`,
      `${e.n('limitKey')} = ${e.v(ref.key)}`,
      `${e.n('updatedAt')} = ${e.v(state.updatedAt)}`,
      `${e.n('blockedUntil')} = ${e.v(state.blockedUntil)}`,
      `${e.n('holders')} = ${e.v(state.holders)}`,
      `${e.n('granted')} = ${e.v(state.granted)}`,
      `${e.n('throttledMs')} = ${e.v(state.throttledMs)}`,
      `${e.n('version')} = ${e.v(version + 1)}`,
    ];
    if (state.tokens !== undefined) sets.push(`${e.n('tokens')} = ${e.v(state.tokens)}`);
    if (state.rate !== undefined) sets.push(`${e.n('rate')} = ${e.v(state.rate)}`);
    if (state.concurrency !== undefined) sets.push(`${e.n('concurrency')} = ${e.v(state.concurrency)}`);
    const condition = version === 0 ? `attribute_not_exists(${e.n('version')})` : `${e.n('version')} = ${e.v(version)}`;
    return {
      TableName: this.calls.tables.instances,
      Key: bucketKey(ref),
      UpdateExpression: `SET ${sets.join(', ')}`,
      ConditionExpression: condition,
      ...e.params(),
    };
  }

  /** Writes one bucket over the version read: `true`, or the bucket as it is now (another writer won). */
  private async writeBucket(ref: LimitRef, state: BucketState, version: number): Promise<true | StoredBucket | undefined> {
    const update = this.bucketUpdate(ref, state, version);
    const result = await this.calls.conditional('instances', 'UpdateItem (take from a limit bucket)', () =>
      this.calls.doc.send(new UpdateCommand({ ...update, ReturnValuesOnConditionCheckFailure: 'ALL_OLD' })),
    );
    if (result.ok) return true;
    return result.item ? parseBucket(result.item, this.calls.tables.instances) : undefined;
  }

  /** All the updates or none: `false` when a condition failed or another transaction held an item. */
  private async transact(updates: BucketUpdate[]): Promise<boolean> {
    try {
      await this.calls.doc.send(new TransactWriteCommand({ TransactItems: updates.map((Update) => ({ Update })) }));
      return true;
    } catch (error) {
      if (error instanceof Error && error.name === 'TransactionCanceledException') {
        const codes = cancellationCodes(error, updates.length);
        if (codes.some((code) => code === 'ConditionalCheckFailed' || code === 'TransactionConflict')) return false;
      }
      throw storeError(error, this.calls.tables, 'instances', 'TransactWriteItems (take from limit buckets)');
    }
  }

  /** Counts a refusal on the bucket that refused: an addition no condition reads, so it races with nothing. */
  private async countRefusal(ref: LimitRef): Promise<void> {
    const e = new Expr();
    await this.calls.call('instances', 'UpdateItem (count a limit refusal)', () =>
      this.calls.doc.send(
        new UpdateCommand({
          TableName: this.calls.tables.instances,
          Key: bucketKey(ref),
          UpdateExpression: `SET ${e.n('limitName')} = ${e.v(ref.name)}, ${e.n('limitKey')} = ${e.v(ref.key)} ADD ${e.n('refused')} ${e.v(1)}`,
          ...e.params(),
        }),
      ),
    );
  }
}

/**
 * The limit store over the tables a `DynamoStore` with the same options uses, for code that has
 * no `DynamoStore` (a `DynamoStore` carries one as `limits`, which the worker Lambda takes from).
 *
 * @example
 * ```ts
 * const limits = dynamoLimits({ client, tables });
 * await limits.acquireLimits({ holder: runId, ttlMs: 60_000, limits: [{ name: 'api', key: 'lab-1', rate: { count: 300, perMs: 900_000, burst: 300 } }] }, Date.now());
 * ```
 */
export function dynamoLimits(options: TableCallsOptions): DynamoLimits {
  return new DynamoLimits(new TableCalls(options));
}
