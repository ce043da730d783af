/**
 * The DynamoDB store's calls to the SDK, shared by every aggregate: the document client, the
 * table names, the store's clock and how many conditional writes one call keeps in flight; and
 * the wrappers every SDK call goes through. Failures become {@link DynamoStoreError}s naming the
 * table and the operation; a failed condition is an outcome, not an error; a cancelled
 * transaction says which actions failed their condition, and conflicts with other transactions
 * are retried with backoff; paginated reads are async generators; keys and items a batch call
 * leaves unprocessed (throttling) are retried with exponential backoff. Throttled calls are
 * retried by the SDK itself (its `maxAttempts`).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DynamoDBDocumentClient,
  QueryCommand,
  ScanCommand,
  TransactWriteCommand,
  type NativeAttributeValue,
  type QueryCommandInput,
  type ScanCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { mapLimit } from '../../../concurrency.js';
import type { StoreError } from '../../../errors.js';
import { plainItem, type Item } from '../dynamo-items.js';
import type { TableNames } from '../tables.js';
import { DynamoStoreError, cancellationCodes, isAttributeMap, isConditionalCheckFailed, storeError, type TableRole } from './errors.js';

/** Conditional writes in flight at once for the requests of one call. */
const DEFAULT_CONCURRENCY = 16;
/** DynamoDB's limits per batch call. */
export const BATCH_GET_KEYS = 100;
const BATCH_WRITE_ITEMS = 25;
/** Batch calls in flight at once. */
export const BATCH_CONCURRENCY = 8;
/** Attempts at the keys or items a batch call left unprocessed (throttling), backing off. */
const BATCH_ATTEMPTS = 10;
/** Attempts at a transaction that conflicted with another one on the same item, backing off. */
const TRANSACT_ATTEMPTS = 8;

/** The outcome of a conditional write: its output, or the item that failed the condition (when returned). */
export type Conditional<T> = { ok: true; value: T } | { ok: false; item: Record<string, unknown> | undefined };

/** The outcome of a transaction: applied, or the indexes of the actions whose condition failed. */
export type Transacted = { ok: true } | { ok: false; refused: boolean; failed: number[] };

/** A Put or a Delete of a BatchWriteItem. */
export type BatchWriteRequest = { PutRequest: { Item: Item } } | { DeleteRequest: { Key: Item } };

export interface TableCallsOptions {
  /** A plain client is wrapped in a document client (undefined values removed). */
  client: DynamoDBDocumentClient | DynamoDBClient;
  tables: TableNames;
  /** The store's clock. Default `Date.now`. */
  now?: () => number;
  /** Conditional writes in flight at once for the requests of one call. Default 16. */
  concurrency?: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Exponential backoff with jitter for the `attempt`-th retry of unprocessed batch work. */
function backoffMs(attempt: number): number {
  return Math.min(2000, 25 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The SDK calls of the store, over its three tables. */
export class TableCalls {
  readonly doc: DynamoDBDocumentClient;
  readonly tables: TableNames;
  readonly now: () => number;
  readonly concurrency: number;

  constructor(options: TableCallsOptions) {
    this.doc =
      options.client instanceof DynamoDBDocumentClient
        ? options.client
        : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });
    this.tables = { ...options.tables };
    this.now = options.now ?? Date.now;
    this.concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  }

  /** Runs an SDK call, turning its failures into {@link DynamoStoreError}s. */
  async call<T>(role: TableRole, operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.storeError(error, role, operation);
    }
  }

  /** Runs a conditional SDK call: a failed condition is an outcome, not an error. */
  async conditional<T>(role: TableRole, operation: string, run: () => Promise<T>): Promise<Conditional<T>> {
    try {
      return { ok: true, value: await run() };
    } catch (error) {
      if (isConditionalCheckFailed(error)) {
        return { ok: false, item: isAttributeMap(error.Item) ? plainItem(error.Item) : undefined };
      }
      throw this.storeError(error, role, operation);
    }
  }

  /**
   * Runs a TransactWriteItems. `leaseIndex`: the action whose failed condition means the fence
   * was refused (`-1`: any failed condition is a refusal). Other failed conditions come back as
   * `failed` (their indexes); conflicts with other transactions are retried with backoff.
   */
  async transact(operation: string, actions: Record<string, unknown>[], leaseIndex: number): Promise<Transacted> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: actions }));
        return { ok: true };
      } catch (error) {
        if (!(error instanceof Error) || error.name !== 'TransactionCanceledException') throw this.storeError(error, 'runs', operation);
        const codes = cancellationCodes(error, actions.length);
        const failed = codes.flatMap((code, i) => (code === 'ConditionalCheckFailed' ? [i] : []));
        if (failed.length > 0) return { ok: false, refused: leaseIndex < 0 || failed.includes(leaseIndex), failed };
        if (attempt + 1 >= TRANSACT_ATTEMPTS) throw this.storeError(error, 'runs', operation);
        await sleep(backoffMs(attempt));
      }
    }
  }

  /** Every item a Query finds, a page at a time. */
  queryItems(role: TableRole, operation: string, input: QueryCommandInput): AsyncGenerator<Item> {
    return this.pages(role, operation, (startKey) => this.doc.send(new QueryCommand({ ...input, ...startKey })));
  }

  /** Every item a Scan finds, a page at a time. */
  scanItems(role: TableRole, operation: string, input: ScanCommandInput): AsyncGenerator<Item> {
    return this.pages(role, operation, (startKey) => this.doc.send(new ScanCommand({ ...input, ...startKey })));
  }

  /** Sends a paged request until DynamoDB says there is no more, yielding each page's items. */
  private async *pages(
    role: TableRole,
    operation: string,
    send: (startKey: { ExclusiveStartKey?: Record<string, NativeAttributeValue> }) => Promise<{ Items?: Item[]; LastEvaluatedKey?: Record<string, NativeAttributeValue> }>,
  ): AsyncGenerator<Item> {
    let startKey: Record<string, NativeAttributeValue> | undefined;
    do {
      const page = await this.call(role, operation, () => send(startKey ? { ExclusiveStartKey: startKey } : {}));
      yield* page.Items ?? [];
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  /** Puts and deletes on a table, 25 per BatchWriteItem, unprocessed items retried. */
  async batchWrite(role: TableRole, requests: BatchWriteRequest[]): Promise<void> {
    const table = this.tables[role];
    await mapLimit(chunks(requests, BATCH_WRITE_ITEMS), BATCH_CONCURRENCY, async (chunk) => {
      let pending: typeof requests = chunk;
      for (let attempt = 0; pending.length > 0; attempt += 1) {
        if (attempt > 0) await this.backoff(attempt, role, 'BatchWriteItem', `${pending.length} items`);
        const request = pending;
        const output = await this.call(role, 'BatchWriteItem (write items)', () =>
          this.doc.send(new BatchWriteCommand({ RequestItems: { [table]: request } })),
        );
        pending = [];
        for (const unprocessed of output.UnprocessedItems?.[table] ?? []) {
          if (unprocessed.PutRequest?.Item) pending.push({ PutRequest: { Item: unprocessed.PutRequest.Item } });
          else if (unprocessed.DeleteRequest?.Key) pending.push({ DeleteRequest: { Key: unprocessed.DeleteRequest.Key } });
        }
      }
    });
  }

  /** Waits before the `attempt`-th retry of what a batch call left unprocessed; fails past the last attempt. */
  async backoff(attempt: number, role: TableRole, operation: string, what: string): Promise<void> {
    if (attempt >= BATCH_ATTEMPTS) {
      throw new DynamoStoreError(
        `DynamoDB left ${what} unprocessed in ${operation} on table ${this.tables[role]} after ${BATCH_ATTEMPTS} attempts (throttled): raise the table's capacity or use on-demand billing, and try again`,
        this.tables[role],
        operation,
      );
    }
    await sleep(backoffMs(attempt));
  }

  private storeError(error: unknown, role: TableRole, operation: string): StoreError {
    return storeError(error, this.tables, role, operation);
  }
}
