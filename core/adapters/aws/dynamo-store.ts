/**
 * The DynamoDB adapter of the Store port and of the board (core/cloud/board.ts), over three
 * tables laid out in ./tables.ts. Every decision a lease takes is one conditional write, and
 * nothing here reads before it writes.
 *
 * **Fenced writes.** What a holder writes under its lease (run records, log lines, checkpoint,
 * release: a `FencedWrites` group, `finish`, `repost` with the ended attempt) is applied only
 * while the lease item still has the holder's owner and token, checked in the same write:
 * - a group that touches only the lease item (a checkpoint, a release, both) is one
 *   `UpdateItem` conditioned on owner and token (one write unit, as before fencing);
 * - a group with run records or log lines is one `TransactWriteItems`: the lease item's update
 *   (checkpoint, release) or else a `ConditionCheck` on it, plus the Puts. Transactions cost two
 *   write units per item, so a batch task's `finish` (run record + release) costs 2 + 2 units
 *   for the items where it cost 1 + 1; index writes are not doubled. A group of more than 100
 *   actions is split: log lines go first, each part carrying the lease condition, and the part
 *   with the run records and the lease update goes last. A refused lease condition refuses the
 *   group (its fence goes to `refused`), a part already applied stays (log lines only).
 * - a run Put is conditioned on "no item, or its status is live": a final record is never
 *   replaced. When that condition alone fails the transaction, the group is applied again
 *   without that record.
 *
 * **The sweeper** (`sweep`) finds live runs through the sparse `byLive` index of the runs table
 * (`liveKey` is set only while a run is queued, running or retrying, so a final record never
 * writes it), and board entries a claimer started through `byRoute` (a worker writes no record
 * until its attempt ends, so a dead worker's run exists only on the board). It reads their
 * leases by `BatchGetItem`, 100 keys a call: those of live runs consistently, the other board
 * entries eventually consistent (0.5 read unit per leased entry and tick; every write for them is
 * conditioned on the lease as read), and ends each run whose lease is not live:
 * one `UpdateItem` (status still live, same holder), in a transaction with the release of the
 * lease when it expired still naming the run's holder (still expired, same owner and token).
 * No Scan: a tick's sweep costs two Queries and the reads of what is leased.
 *
 * **Leases table (the board).** One item per signature, never deleted: its `token` is the
 * signature's fencing token and must never go back, so release only clears the owner
 * (`owner` removed, `expiresAt` 0) and the task, keeping token, run id, instance, task name and
 * the signature's last checkpoint, which lives in the same item. That is what lets a grant
 * return the checkpoint with no further read: `acquireLeases` and `post` are one `UpdateItem`
 * per signature, conditioned on "no owner, or expired", that increments the token
 * (`if_not_exists(token, 0) + 1`) and returns the old item (`ALL_OLD`): the checkpoint, and the
 * lease taken over when it had an owner. A refusal returns the holder the same way
 * (`ReturnValuesOnConditionCheckFailure`). Requests of one call run 16 at a time; those for one
 * signature run one after another, in the order given.
 * `claim`, `heartbeat`, `saveCheckpoint`, `repost` and `requestStop` are single updates fenced on
 * token (and owner), `finish` a fenced transaction (above); a claim returns the whole entry
 * (`ALL_NEW`), a heartbeat returns `stopRequested` as an updated value. The sparse, keys-only
 * `byRoute` index (partition = route, set while leased) lists what is leased on each route;
 * leases taken through the plain Store port carry no task and sit in a `runner` partition, which
 * `listActiveLeases` reads and `listRoute` never does. `peek` reads only lease items, 100 keys a
 * `BatchGetItem`, eventually consistent: a stale answer costs a refused `post`, never a double run.
 *
 * **Runs table.** A run is `run#<id>`/`run`, its log lines `run#<id>`/`log#<seq>` (so pruning a run
 * empties one partition), triggers `trigger`/`<at>#<ulid>`, what became of a trigger
 * `trigger#<id>`/`result`. Runs are indexed four ways (see
 * tables.ts): by signature and by instance+task in recency order, successes (`S#`) apart from
 * the rest (`R#`), so that `lastRun` (the planner's run history) is one or two single-item
 * queries; by instance and by UTC day in queue order for `listRuns`. `listRuns` without
 * instance or signature walks day partitions backwards from `until` (or the store's clock plus
 * a day) to `since`, or 400 days back without `since`: runs queued before that window are not
 * listed. `listRuns` by signature or instance+task reads the recency index and stops once no
 * unread run can rank: a run is never queued after it ended, give or take one minute of clock
 * skew between machines. No index orders all runs (or an instance's) by recency, so `lastRun`
 * with only an instance reads that instance's partition and `lastRun` with neither instance nor
 * signature is a Scan; no caller in ujr asks for either. `pruneRuns` is a Scan too (maintenance).
 *
 * **Instances table.** Per instance: the configuration entry (`config`, with UI overrides in
 * `overrides`), the status (`status`) and state keys (`state#<key>`);
 * `loadInstancesAndStatus` reads entries and statuses in one paginated Scan.
 *
 * Reads are strongly consistent except `peek` (see above). JSON values are stored as JSON text
 * (dynamo-items.ts). `ConditionalCheckFailedException` is recognised by name; every other SDK
 * failure becomes a {@link DynamoStoreError} naming the table and the operation. Throttled
 * calls are retried by the SDK (its `maxAttempts`); keys and items a batch call leaves
 * unprocessed are retried here with exponential backoff.
 */
import { DynamoDBClient, type AttributeValue } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
  type NativeAttributeValue,
  type QueryCommandInput,
  type ScanCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { monotonicFactory } from 'ulid';
import { z } from 'zod';
import type { Board, BoardEntry, ClaimRequest, HeartbeatResult, PeekResult, PostRequest, RepostRequest, Route } from '../../cloud/board.js';
import { mapLimit, mapLimitInKeyOrder } from '../../concurrency.js';
import { StoreError } from '../../errors.js';
import type {
  Checkpoint,
  CommitResult,
  FencedWrites,
  InstanceStatus,
  Lease,
  LeaseGrant,
  LeaseRef,
  LeaseRequest,
  RunQuery,
  SweptRun,
  Trigger,
  TriggerResult,
  WriteBatch,
} from '../../ports/store.js';
import { parseJson } from '../../signature.js';
import { LIVE_STATUSES, TERMINAL_STATUSES, type Json, type LogLine, type Progress, type RunRecord, type RunStatus } from '../../types.js';
import { baseRun } from '../../cloud/attempt.js';
import { leaseBacksRun, sweepReleases, sweptRun } from '../../ports/fencing.js';
import { matchesRunQuery, runRecency } from '../run-query.js';
import {
  CONFIG_KIND,
  DAY_MS,
  LEASE_ATTRIBUTES,
  LIVE_KEY,
  LOG_SK_END,
  RUN_BRIEF_ATTRIBUTES,
  RUN_SK,
  STATUS_KIND,
  TASK_ATTRIBUTES,
  TRIGGER_PK,
  checkpointAttribute,
  checkpointOf,
  dayKey,
  defined,
  entryOf,
  entryOfConfigItem,
  leaseOf,
  logItem,
  logOf,
  logSk,
  numberKey,
  parseLeaseItem,
  plainItem,
  recencyKey,
  runBriefOf,
  runItem,
  runOf,
  runPk,
  stateKind,
  stateOf,
  statusItem,
  statusOf,
  taskAttributes,
  taskKey,
  TRIGGER_RESULT_SK,
  triggerItem,
  triggerOf,
  triggerResultItem,
  triggerResultOf,
  triggerResultPk,
  type Item,
} from './dynamo-items.js';
import { LEASE_ROUTE_KEYS, LEASES_TABLE, runIndex, type TableNames } from './tables.js';

/** Conditional writes in flight at once for the requests of one call. */
const DEFAULT_CONCURRENCY = 16;
/** DynamoDB's limits per batch call. */
const BATCH_GET_KEYS = 100;
const BATCH_WRITE_ITEMS = 25;
/** Batch calls in flight at once. */
const BATCH_CONCURRENCY = 8;
/** Attempts at the keys or items a batch call left unprocessed (throttling), backing off. */
const BATCH_ATTEMPTS = 10;
/** How far `listRuns` without instance or signature looks back without `since`, and at most. */
const DEFAULT_HISTORY_DAYS = 400;
const MAX_HISTORY_DAYS = 3660;
/** Day partitions `listRuns` queries at once, at most (the window doubles from 1). */
const MAX_DAY_WINDOW = 32;
/** Clock skew between machines tolerated when a run's end time bounds its queue time. */
const CLOCK_SKEW_MS = 60_000;
/** DynamoDB's limit of actions in one TransactWriteItems. */
const TRANSACT_ITEMS = 100;
/** Attempts at a transaction that conflicted with another one on the same item, backing off. */
const TRANSACT_ATTEMPTS = 8;

/** Table roles, for messages and for the operation wrappers. */
type TableRole = keyof TableNames;

/** A failure of DynamoDB, naming the table and the operation, the SDK's error kept as `cause`. */
export class DynamoStoreError extends StoreError {
  override readonly retryable: boolean;

  constructor(
    message: string,
    readonly table: string,
    readonly operation: string,
    options: { cause?: unknown; retryable?: boolean } = {},
  ) {
    super(message, { cause: options.cause });
    this.retryable = options.retryable ?? true;
  }
}

export interface DynamoStoreOptions {
  /** A plain client is wrapped in a document client (undefined values removed). */
  client: DynamoDBDocumentClient | DynamoDBClient;
  tables: TableNames;
  /** The clock `listRuns` walks back from when no `until` is given. Default `Date.now`. */
  now?: () => number;
  /** Conditional writes in flight at once for the requests of one call. Default 16. */
  concurrency?: number;
}

/** The configuration overrides of an instance: a value replaces the entry's field, `undefined` drops the override. */
export type InstanceOverride = Record<string, Json | undefined>;

/** Builds the placeholders of one request's expressions. */
class Expr {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, unknown> = {};
  private readonly placeholders = new Map<string, string>();
  private count = 0;

  /** The `#name` placeholder of an attribute name. */
  n(attribute: string): string {
    let placeholder = this.placeholders.get(attribute);
    if (!placeholder) {
      placeholder = /^[A-Za-z][A-Za-z0-9]*$/.test(attribute) ? `#${attribute}` : `#k${this.placeholders.size}`;
      this.placeholders.set(attribute, placeholder);
      this.names[placeholder] = attribute;
    }
    return placeholder;
  }

  /** The `:v` placeholder of a value. */
  v(value: unknown): string {
    const placeholder = `:v${this.count++}`;
    this.values[placeholder] = value;
    return placeholder;
  }

  /** `ExpressionAttributeNames` and `ExpressionAttributeValues`, leaving out empty ones (DynamoDB refuses them). */
  params(): { ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues?: Record<string, unknown> } {
    return {
      ...(Object.keys(this.names).length > 0 ? { ExpressionAttributeNames: this.names } : {}),
      ...(Object.keys(this.values).length > 0 ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}

/** `SET a, b REMOVE c` from its parts (either may be empty, not both). */
function updateExpression(sets: readonly string[], removes: readonly string[]): string {
  const parts: string[] = [];
  if (sets.length > 0) parts.push(`SET ${sets.join(', ')}`);
  if (removes.length > 0) parts.push(`REMOVE ${removes.join(', ')}`);
  return parts.join(' ');
}

/** The fencing condition: owner and token both still match. */
function fenced(e: Expr, ref: LeaseRef): string {
  return `${e.n('owner')} = ${e.v(ref.owner)} AND ${e.n('token')} = ${e.v(ref.token)}`;
}

/** The outcome of a conditional write: its output, or the item that failed the condition (when returned). */
type Conditional<T> = { ok: true; value: T } | { ok: false; item: Record<string, unknown> | undefined };

/** A grant's write: the token it gave and the item before it, or the item of the holder that refused it. */
type GrantWrite = { granted: true; token: number; old: ReturnType<typeof parseLeaseItem> } | { granted: false; holder: ReturnType<typeof parseLeaseItem> };

/** The same status filter as a set; `undefined` for any status. */
function statusSet(status: RunQuery['status']): Set<RunStatus> | undefined {
  if (status === undefined) return undefined;
  return new Set(Array.isArray(status) ? status : [status]);
}

/** Whether `a` comes after `b` in the order of `lastRun`: recency, then the greater id. */
function newer(a: RunRecord | { id: string; queuedAt: number; endedAt?: number }, b: { id: string; queuedAt: number; endedAt?: number }): boolean {
  const ra = a.endedAt ?? a.queuedAt;
  const rb = b.endedAt ?? b.queuedAt;
  return ra > rb || (ra === rb && a.id > b.id);
}

/** The order of `listRuns`: queued later first, ties by the greater id. */
function queuedOrder(a: RunRecord, b: RunRecord): number {
  return b.queuedAt - a.queuedAt || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Exponential backoff with jitter for the `attempt`-th retry of unprocessed batch work. */
function backoffMs(attempt: number): number {
  return Math.min(2000, 25 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

/** The key that orders lease calls: requests for one signature are answered in the order given. */
function bySignature(item: { signature: string }): string {
  return item.signature;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** One item per key, the last one given (a batch may carry the same record twice). */
function lastByKey<T>(items: readonly T[], key: (item: T) => string): T[] {
  const map = new Map<string, T>();
  for (const item of items) {
    const k = key(item);
    map.delete(k);
    map.set(k, item);
  }
  return [...map.values()];
}

function isConditionalCheckFailed(error: unknown): error is Error & { Item?: unknown } {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}

/**
 * The reason code of each action of a cancelled transaction, in order: from
 * `CancellationReasons` when the SDK parsed them, else from the message
 * ("… specific reasons [ConditionalCheckFailed, None]").
 */
function cancellationCodes(error: Error & { CancellationReasons?: unknown }, count: number): string[] {
  const reasons = error.CancellationReasons;
  if (Array.isArray(reasons) && reasons.length === count) {
    return reasons.map((reason: unknown) => (typeof reason === 'object' && reason !== null && 'Code' in reason && typeof reason.Code === 'string' ? reason.Code : 'None'));
  }
  const listed = /\[([^\]]*)\]\s*$/.exec(error.message)?.[1];
  return listed ? listed.split(',').map((code) => code.trim()) : [];
}

function isAttributeMap(value: unknown): value is Record<string, AttributeValue> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'object' && v !== null);
}

const NOT_RETRYABLE = new Set(['ValidationException', 'ResourceNotFoundException', 'AccessDeniedException', 'UnrecognizedClientException', 'SerializationException']);
const THROTTLED = new Set(['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded']);

const entryIdSchema = z.looseObject({ id: z.string().min(1) });

/** A paginated read in progress: items ahead, fetched a page at a time. */
class PageStream<T> {
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

/**
 * The DynamoDB adapter of the {@link Board} (and so of the Store port), over the three tables of
 * ./tables.ts. SDK clients are injected; the store never reads the environment. `close` leaves
 * the client open: it belongs to the caller.
 *
 * @example
 * ```ts
 * const client = new DynamoDBClient({});
 * const board = new DynamoStore({ client, tables: { leases: 'ujr-leases', runs: 'ujr-runs', instances: 'ujr-instances' } });
 * const [grant] = await board.acquireLeases(
 *   [{ signature: 'a/collect/x', owner: 'runner-1', ttlMs: 30_000, runId: 'r1', instanceId: 'a', task: 'collect' }],
 *   Date.now(),
 * );
 * ```
 */
export class DynamoStore implements Board {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tables: TableNames;
  private readonly now: () => number;
  private readonly concurrency: number;
  /** Orders triggers added at the same `at` as they came in. */
  private readonly nextTriggerOrder = monotonicFactory();

  constructor(options: DynamoStoreOptions) {
    this.doc =
      options.client instanceof DynamoDBDocumentClient
        ? options.client
        : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });
    this.tables = { ...options.tables };
    this.now = options.now ?? Date.now;
    this.concurrency = Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY);
  }

  // -------------------------------------------------------------------------------------------
  // Leases (Store)

  async acquireLeases(requests: LeaseRequest[], now: number): Promise<LeaseGrant[]> {
    return mapLimitInKeyOrder(requests, this.concurrency, bySignature, async (request): Promise<LeaseGrant> => {
      const lease: Lease = {
        signature: request.signature,
        owner: request.owner,
        expiresAt: now + request.ttlMs,
        token: 0,
        runId: request.runId,
        instanceId: request.instanceId,
        task: request.task,
      };
      const write = await this.grant(lease, { routeKey: 'runner' }, now, request.notReleasedSince);
      if (!write.granted) return { granted: false, holder: this.holderLease(write.holder, request.signature) };
      const grant: LeaseGrant = { granted: true, lease: { ...lease, token: write.token } };
      if (write.old?.owner !== undefined) {
        const takenOver = leaseOf(write.old, this.tables.leases);
        if (takenOver) grant.takenOver = takenOver;
      }
      const checkpoint = checkpointOf(write.old);
      if (checkpoint) grant.checkpoint = checkpoint;
      return grant;
    });
  }

  async renewLeases(refs: LeaseRef[], ttlMs: number, now: number): Promise<boolean[]> {
    return mapLimitInKeyOrder(refs, this.concurrency, bySignature, async (ref) => {
      const e = new Expr();
      const result = await this.conditional('leases', 'UpdateItem (renew a lease)', () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.leases,
            Key: { signature: ref.signature },
            UpdateExpression: `SET ${e.n('expiresAt')} = ${e.v(now + ttlMs)}`,
            ConditionExpression: fenced(e, ref),
            ...e.params(),
          }),
        ),
      );
      return result.ok;
    });
  }

  async getLease(signature: string): Promise<Lease | undefined> {
    return leaseOf(await this.readLeaseItem(signature, 'GetItem (read a lease)', LEASE_ATTRIBUTES), this.tables.leases);
  }

  async listActiveLeases(now: number): Promise<Lease[]> {
    const signatures = (await Promise.all(LEASE_ROUTE_KEYS.map((route) => this.routeSignatures(route)))).flat();
    const items = await this.batchGetLeases(signatures, LEASE_ATTRIBUTES, true);
    const leases: Lease[] = [];
    for (const item of items) {
      const lease = leaseOf(parseLeaseItem(item, this.tables.leases), this.tables.leases);
      if (lease && lease.owner !== null && lease.expiresAt > now) leases.push(lease);
    }
    return leases.sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
  }

  // -------------------------------------------------------------------------------------------
  // Board

  async peek(signatures: string[], now: number): Promise<PeekResult> {
    const items = await this.batchGetLeases([...new Set(signatures)], [...LEASE_ATTRIBUTES, ...TASK_ATTRIBUTES, 'releasedAt'], false);
    const held = new Map<string, BoardEntry>();
    const releasedAt = new Map<string, number>();
    for (const item of items) {
      const lease = parseLeaseItem(item, this.tables.leases);
      const entry = entryOf(lease, this.tables.leases, false);
      if (entry && entry.expiresAt > now) held.set(entry.signature, entry);
      else if (lease?.releasedAt !== undefined) releasedAt.set(lease.signature, lease.releasedAt);
    }
    return { held, releasedAt };
  }

  async post(requests: PostRequest[], now: number): Promise<LeaseGrant[]> {
    return mapLimitInKeyOrder(requests, this.concurrency, bySignature, async (request): Promise<LeaseGrant> => {
      const lease: Lease = {
        signature: request.signature,
        owner: request.owner,
        expiresAt: now + request.ttlMs,
        token: 0,
        runId: request.runId,
        instanceId: request.instanceId,
        task: request.task,
      };
      const write = await this.grant(lease, taskAttributes(request), now, request.notReleasedSince);
      if (!write.granted) {
        const holder = entryOf(write.holder, this.tables.leases, false) ?? this.holderLease(write.holder, request.signature);
        return { granted: false, holder };
      }
      const grant: LeaseGrant = { granted: true, lease: { ...lease, token: write.token } };
      if (write.old?.owner !== undefined) {
        // The whole entry it replaced, so the caller can record the interrupted run.
        const takenOver = entryOf(write.old, this.tables.leases, false) ?? leaseOf(write.old, this.tables.leases);
        if (takenOver) grant.takenOver = takenOver;
      }
      const checkpoint = checkpointOf(write.old);
      if (checkpoint) grant.checkpoint = checkpoint;
      return grant;
    });
  }

  async claim(request: ClaimRequest): Promise<BoardEntry | undefined> {
    const e = new Expr();
    const expected =
      request.owner !== undefined
        ? `${e.n('owner')} = ${e.v(request.owner)}`
        : `attribute_exists(${e.n('owner')}) AND ${e.n('expiresAt')} <= ${e.v(request.now)}`;
    const result = await this.conditional('leases', 'UpdateItem (claim a board entry)', () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.tables.leases,
          Key: { signature: request.signature },
          UpdateExpression: updateExpression(
            [
              `${e.n('owner')} = ${e.v(request.newOwner)}`,
              `${e.n('token')} = ${e.n('token')} + ${e.v(1)}`,
              `${e.n('expiresAt')} = ${e.v(request.now + request.ttlMs)}`,
              `${e.n('startedAt')} = ${e.v(request.now)}`,
              ...(request.runId !== undefined ? [`${e.n('runId')} = ${e.v(request.runId)}`] : []),
              ...(request.origin !== undefined ? [`${e.n('origin')} = ${e.v(request.origin)}`] : []),
            ],
            [],
          ),
          // Only an entry with a task can be claimed (not a lease taken through acquireLeases).
          ConditionExpression: `${e.n('token')} = ${e.v(request.token)} AND ${expected} AND attribute_exists(${e.n('jobType')})`,
          ReturnValues: 'ALL_NEW',
          ...e.params(),
        }),
      ),
    );
    if (!result.ok) return undefined;
    const entry = entryOf(parseLeaseItem(result.value.Attributes, this.tables.leases), this.tables.leases);
    if (!entry) throw new StoreError(`claimed board entry ${request.signature} in table ${this.tables.leases} but it has no complete task; it was not posted by this adapter`);
    return entry;
  }

  async heartbeat(ref: LeaseRef, ttlMs: number, now: number, progress?: Progress): Promise<HeartbeatResult> {
    const e = new Expr();
    const sets = [
      `${e.n('expiresAt')} = ${e.v(now + ttlMs)}`,
      // Written only when absent, so that the update returns it (UPDATED_NEW) without a read.
      `${e.n('stopRequested')} = if_not_exists(${e.n('stopRequested')}, ${e.v(false)})`,
    ];
    if (progress !== undefined) sets.push(`${e.n('progress')} = ${e.v(JSON.stringify(progress))}`);
    const result = await this.conditional('leases', 'UpdateItem (heartbeat)', () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.tables.leases,
          Key: { signature: ref.signature },
          UpdateExpression: updateExpression(sets, []),
          ConditionExpression: fenced(e, ref),
          ReturnValues: 'UPDATED_NEW',
          ...e.params(),
        }),
      ),
    );
    if (!result.ok) return { held: false, stopRequested: false };
    return { held: true, stopRequested: result.value.Attributes?.stopRequested === true };
  }

  async saveCheckpoint(ref: LeaseRef, checkpoint: Checkpoint): Promise<boolean> {
    const e = new Expr();
    const result = await this.conditional('leases', 'UpdateItem (save a checkpoint)', () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.tables.leases,
          Key: { signature: ref.signature },
          UpdateExpression: `SET ${e.n('checkpoint')} = ${e.v(checkpointAttribute(checkpoint))}`,
          ConditionExpression: fenced(e, ref),
          ...e.params(),
        }),
      ),
    );
    return result.ok;
  }

  async finish(ref: LeaseRef, run: RunRecord): Promise<boolean> {
    const { refused } = await this.commit({ fenced: [{ fence: ref, runs: [run], release: true }] });
    return refused.length === 0;
  }

  async repost(ref: LeaseRef, next: RepostRequest, ended?: RunRecord): Promise<number | undefined> {
    const e = new Expr();
    const update = {
      TableName: this.tables.leases,
      Key: { signature: ref.signature },
      UpdateExpression: updateExpression(
        [
          `${e.n('owner')} = ${e.v(next.owner)}`,
          `${e.n('token')} = ${e.n('token')} + ${e.v(1)}`,
          `${e.n('expiresAt')} = ${e.v(next.now + next.ttlMs)}`,
          `${e.n('runId')} = ${e.v(next.runId)}`,
          `${e.n('attempt')} = ${e.v(next.attempt)}`,
          `${e.n('origin')} = ${e.v(next.origin)}`,
          `${e.n('queuedAt')} = ${e.v(next.now)}`,
          ...(next.previousRunId !== undefined ? [`${e.n('previousRunId')} = ${e.v(next.previousRunId)}`] : []),
        ],
        [e.n('startedAt'), e.n('progress'), ...(next.previousRunId === undefined ? [e.n('previousRunId')] : [])],
      ),
      ConditionExpression: fenced(e, ref),
      ...e.params(),
    };
    if (ended) {
      // The ended attempt's record and the repost, fenced together: the condition held on
      // `token`, so the new token is the old one plus one.
      const outcome = await this.transact('TransactWriteItems (record an attempt and repost its entry)', [{ Update: update }, this.runPut(ended)], 0);
      return outcome.ok ? ref.token + 1 : undefined;
    }
    const result = await this.conditional('leases', 'UpdateItem (repost a board entry)', () =>
      this.doc.send(new UpdateCommand({ ...update, ReturnValues: 'UPDATED_NEW' })),
    );
    if (!result.ok) return undefined;
    const token: unknown = result.value.Attributes?.token;
    if (typeof token !== 'number') throw new StoreError(`reposted board entry ${ref.signature} in table ${this.tables.leases} but DynamoDB returned no token`);
    return token;
  }

  async listRoute(route: Route): Promise<BoardEntry[]> {
    const signatures = await this.routeSignatures(route);
    const items = await this.batchGetLeases(signatures, [...LEASE_ATTRIBUTES, ...TASK_ATTRIBUTES], true);
    const entries: BoardEntry[] = [];
    for (const item of items) {
      const entry = entryOf(parseLeaseItem(item, this.tables.leases), this.tables.leases, false);
      // Released or reposted elsewhere between the index query and the read: not on this route now.
      if (entry && entry.route === route) entries.push(entry);
    }
    return entries.sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
  }

  async requestStop(signature: string, token: number): Promise<void> {
    const e = new Expr();
    await this.conditional('leases', 'UpdateItem (request a stop)', () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.tables.leases,
          Key: { signature },
          UpdateExpression: `SET ${e.n('stopRequested')} = ${e.v(true)}`,
          ConditionExpression: `${e.n('token')} = ${e.v(token)} AND attribute_exists(${e.n('owner')})`,
          ...e.params(),
        }),
      ),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Batches of writes

  async commit(batch: WriteBatch): Promise<CommitResult> {
    const unfenced: Item[] = [
      ...(batch.triggers ?? []).map((trigger) => triggerItem(trigger, this.nextTriggerOrder())),
      ...lastByKey(batch.triggerResults ?? [], (result) => result.id).map(triggerResultItem),
    ];
    const [applied] = await Promise.all([
      // Groups of one signature in the order given: a release must not overtake the writes before it.
      mapLimitInKeyOrder(batch.fenced ?? [], this.concurrency, (group) => group.fence.signature, (group) => this.applyFenced(group, batch.at ?? this.now())),
      this.batchWrite('runs', unfenced.map((Item) => ({ PutRequest: { Item } }))),
    ]);
    const refused: LeaseRef[] = [];
    (batch.fenced ?? []).forEach((group, i) => {
      if (!applied[i]) refused.push(group.fence);
    });
    return { refused };
  }

  /**
   * Ends every live run whose lease is not live at `now`, and every board entry a claimer started
   * whose lease expired without a record (a worker that died mid-task writes none). Each run is
   * one conditional write (still live, same holder), in one transaction with the release of its
   * lease when that lease expired still naming the run's holder (still expired, same owner and
   * token), so that a holder waking up later finds its fence gone. Live runs come from the sparse
   * `byLive` index (eventually consistent: the conditions decide), board entries from `byRoute`.
   */
  async sweep(now: number): Promise<SweptRun[]> {
    const liveRuns: RunRecord[] = [];
    const { partitionKey } = runIndex('byLive');
    const e = new Expr();
    const live: QueryCommandInput = {
      TableName: this.tables.runs,
      IndexName: 'byLive',
      KeyConditionExpression: `${e.n(partitionKey.name)} = ${e.v(LIVE_KEY)}`,
      ...e.params(),
    };
    const [, routed] = await Promise.all([
      (async () => {
        for await (const run of this.queryRuns(live)) liveRuns.push(run);
      })(),
      Promise.all((['queue', 'conductor', 'fargate'] as const).map((route) => this.routeSignatures(route))),
    ]);
    const ofLiveRuns = new Set(liveRuns.map((run) => run.signature));
    const onlyRouted = [...new Set(routed.flat())].filter((signature) => !ofLiveRuns.has(signature));
    // A live run's lease is read consistently: a lease that moved past the run's owner and token
    // never comes back to them, so the run may be ended without a condition on the lease, but a
    // stale read could show the state before the run's own grant. Board entries without a run are
    // read eventually consistent (half the read units): each of their writes is conditioned on the
    // lease as read, so a stale read only fails a condition or defers the entry to the next sweep.
    const attributes = [...LEASE_ATTRIBUTES, ...TASK_ATTRIBUTES];
    const items = (await Promise.all([this.batchGetLeases([...ofLiveRuns], attributes, true), this.batchGetLeases(onlyRouted, attributes, false)])).flat();
    const leaseItems = new Map<string, NonNullable<ReturnType<typeof parseLeaseItem>>>();
    for (const item of items) {
      const parsed = parseLeaseItem(item, this.tables.leases);
      if (parsed) leaseItems.set(parsed.signature, parsed);
    }
    type Candidate = { run: RunRecord; lease: Lease | undefined; fromBoard: boolean };
    const candidates: Candidate[] = [];
    const seen = new Set<string>();
    for (const run of liveRuns) {
      const item = leaseItems.get(run.signature);
      const lease = leaseOf(item, this.tables.leases);
      seen.add(run.id);
      if (leaseBacksRun(lease, run, now)) continue;
      candidates.push({ run, lease, fromBoard: false });
    }
    for (const item of leaseItems.values()) {
      const entry = entryOf(item, this.tables.leases, false);
      // Only entries a claimer started: one only posted for a dispatcher has no run yet.
      if (!entry || entry.startedAt === undefined || entry.expiresAt > now || seen.has(entry.runId)) continue;
      // What its claimer would have recorded as it started (a dead worker recorded nothing).
      const run = baseRun(entry, entry.owner, entry.startedAt);
      if (entry.progress !== undefined) run.progress = entry.progress;
      candidates.push({ run, lease: leaseOf(item, this.tables.leases), fromBoard: true });
    }
    const swept = await mapLimit(candidates, this.concurrency, async ({ run, lease, fromBoard }): Promise<SweptRun | undefined> => {
      const ended = sweptRun(run, lease, Math.max(now, run.startedAt ?? run.queuedAt));
      const heldByRun = sweepReleases(lease, run);
      const actions: Record<string, unknown>[] = [];
      if (fromBoard) {
        actions.push(this.runPut(ended));
      } else {
        const u = new Expr();
        actions.push({
          Update: {
            TableName: this.tables.runs,
            Key: { pk: runPk(run.id), sk: RUN_SK },
            UpdateExpression: updateExpression(
              [
                `${u.n('status')} = ${u.v('interrupted')}`,
                `${u.n('endedAt')} = ${u.v(ended.endedAt)}`,
                `${u.n('error')} = ${u.v(JSON.stringify(ended.error))}`,
                `${u.n('recencyKey')} = ${u.v(recencyKey(ended))}`,
              ],
              [u.n('liveKey')],
            ),
            ConditionExpression: `${u.n('status')} IN (${LIVE_STATUSES.map((status) => u.v(status)).join(', ')}) AND ${u.n('runner')} = ${u.v(run.runner)} AND ${u.n('fencingToken')} = ${u.v(run.fencingToken)}`,
            ...u.params(),
          },
        });
      }
      if (heldByRun) actions.push({ Update: this.sweepRelease({ signature: run.signature, owner: run.runner, token: run.fencingToken }, now) });
      const outcome =
        actions.length === 1 && !fromBoard
          ? await this.conditional('runs', 'UpdateItem (sweep a run)', () => this.doc.send(new UpdateCommand(actions[0]!.Update as ConstructorParameters<typeof UpdateCommand>[0])))
          : await this.transact('TransactWriteItems (sweep a run and release its lease)', actions, -1);
      return outcome.ok ? { run: ended, lease } : undefined;
    });
    return swept.filter((run): run is SweptRun => run !== undefined);
  }

  /** Applies one fenced group; `false` when its lease was not current (nothing of it applied). */
  private async applyFenced(group: FencedWrites, at: number): Promise<boolean> {
    const { fence } = group;
    let runs = lastByKey(group.runs ?? [], (run) => run.id);
    const logs = lastByKey(group.logs ?? [], (line) => `${line.runId}\u0000${line.seq}`).map(logItem);
    const leaseWrite = group.checkpoint !== undefined || group.release === true;
    const leaseOnly = async (): Promise<boolean> => {
      // Nothing but the lease item: one conditional update, or a read when there is nothing to write.
      if (!leaseWrite) {
        const lease = await this.readLeaseItem(fence.signature, 'GetItem (check a fence)', ['signature', 'owner', 'token']);
        return lease?.owner === fence.owner && lease.token === fence.token;
      }
      const update = this.fencedLeaseUpdate(group, at);
      const result = await this.conditional('leases', 'UpdateItem (fenced checkpoint or release)', () => this.doc.send(new UpdateCommand(update)));
      return result.ok;
    };
    // Log lines first, the run records last, with the checkpoint and release: every part carries
    // the lease condition, and a part past the first 100 actions goes before the last one.
    for (;;) {
      if (runs.length === 0 && logs.length === 0) return leaseOnly();
      const puts = [...logs.map((Item) => ({ Put: { TableName: this.tables.runs, Item } })), ...runs.map((run) => this.runPut(run))];
      const parts: Record<string, unknown>[][] = [];
      for (let end = puts.length; end > 0; end -= TRANSACT_ITEMS - 1) parts.unshift(puts.slice(Math.max(0, end - (TRANSACT_ITEMS - 1)), end));
      let ok = true;
      let finalRuns: string[] | undefined;
      for (const [i, part] of parts.entries()) {
        const last = i === parts.length - 1;
        const lease = last && leaseWrite ? { Update: this.fencedLeaseUpdate(group, at) } : { ConditionCheck: this.fenceCheck(fence) };
        const outcome = await this.transact('TransactWriteItems (fenced writes)', [lease, ...part], 0);
        if (outcome.ok) continue;
        if (outcome.refused) return false;
        // A run already final is never replaced: leave it out and apply the rest.
        finalRuns = outcome.failed.map((index) => part[index - 1]).flatMap((action) => {
          const item = (action as { Put?: { Item?: Item } } | undefined)?.Put?.Item;
          return item && item.sk === RUN_SK && typeof item.id === 'string' ? [item.id] : [];
        });
        ok = false;
        break;
      }
      if (ok) return true;
      if (!finalRuns || finalRuns.length === 0) throw new StoreError(`a fenced write of ${fence.signature} was cancelled for no reason this adapter knows; try again`);
      const drop = new Set(finalRuns);
      runs = runs.filter((run) => !drop.has(run.id));
    }
  }

  /** A Put of a run record that never replaces a final one. */
  private runPut(run: RunRecord): Record<string, unknown> {
    const e = new Expr();
    return {
      Put: {
        TableName: this.tables.runs,
        Item: runItem(run),
        ConditionExpression: `attribute_not_exists(${e.n('pk')}) OR ${e.n('status')} IN (${LIVE_STATUSES.map((status) => e.v(status)).join(', ')})`,
        ...e.params(),
      },
    };
  }

  private fenceCheck(ref: LeaseRef): Record<string, unknown> {
    const e = new Expr();
    return { TableName: this.tables.leases, Key: { signature: ref.signature }, ConditionExpression: fenced(e, ref), ...e.params() };
  }

  /** The lease item's update of a fenced group: its checkpoint and, with `release`, the release. */
  private fencedLeaseUpdate(group: FencedWrites, at: number): ConstructorParameters<typeof UpdateCommand>[0] {
    const e = new Expr();
    const sets: string[] = [];
    const removes: string[] = [];
    if (group.checkpoint) sets.push(`${e.n('checkpoint')} = ${e.v(checkpointAttribute({ ...group.checkpoint, signature: group.fence.signature }))}`);
    if (group.release) {
      sets.push(`${e.n('expiresAt')} = ${e.v(0)}`, `${e.n('releasedAt')} = ${e.v(at)}`);
      removes.push(e.n('owner'), ...TASK_ATTRIBUTES.map((name) => e.n(name)));
    }
    return {
      TableName: this.tables.leases,
      Key: { signature: group.fence.signature },
      UpdateExpression: updateExpression(sets, removes),
      ConditionExpression: fenced(e, group.fence),
      ...e.params(),
    };
  }

  /**
   * Runs a TransactWriteItems. `leaseIndex`: the action whose failed condition means the fence
   * was refused (`-1`: any failed condition is a refusal). Other failed conditions come back as
   * `failed` (their indexes); conflicts with other transactions are retried with backoff.
   */
  private async transact(
    operation: string,
    actions: Record<string, unknown>[],
    leaseIndex: number,
  ): Promise<{ ok: true } | { ok: false; refused: boolean; failed: number[] }> {
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

  // -------------------------------------------------------------------------------------------
  // Runs

  async getRun(id: string): Promise<RunRecord | undefined> {
    const output = await this.call('runs', 'GetItem (read a run)', () =>
      this.doc.send(new GetCommand({ TableName: this.tables.runs, Key: { pk: runPk(id), sk: RUN_SK }, ConsistentRead: true })),
    );
    return output.Item === undefined ? undefined : runOf(output.Item, this.tables.runs);
  }

  async listRuns(query: RunQuery): Promise<RunRecord[]> {
    const limit = Math.floor(query.limit ?? 100);
    const statuses = statusSet(query.status);
    if (!(limit > 0) || statuses?.size === 0) return [];
    if (query.until !== undefined && query.until <= 0) return [];
    let runs: RunRecord[];
    if (query.signature !== undefined) {
      runs = await this.listByRecency('bySignature', query.signature, query, limit);
    } else if (query.instanceId !== undefined && query.task !== undefined) {
      runs = await this.listByRecency('byTask', taskKey(query.instanceId, query.task), query, limit);
    } else if (query.instanceId !== undefined) {
      runs = await this.listByQueued('byInstance', query.instanceId, query, limit);
    } else {
      runs = await this.listByDay(query, limit);
    }
    return runs.filter((run) => matchesRunQuery(run, query)).sort(queuedOrder).slice(0, limit);
  }

  async lastRun(query: Omit<RunQuery, 'limit' | 'since' | 'until'>): Promise<RunRecord | undefined> {
    const statuses = statusSet(query.status);
    if (statuses?.size === 0) return undefined;
    if (query.signature !== undefined) return this.lastByRecency('bySignature', query.signature, query);
    if (query.instanceId !== undefined && query.task !== undefined) {
      return this.lastByRecency('byTask', taskKey(query.instanceId, query.task), query);
    }
    // No index orders these by recency; no caller in ujr asks for them on a hot path.
    const candidates =
      query.instanceId !== undefined
        ? this.queryRuns(this.queuedQuery('byInstance', query.instanceId, query, 1000))
        : this.scanRuns(query);
    let best: RunRecord | undefined;
    for await (const run of candidates) {
      if (matchesRunQuery(run, query) && (!best || newer(run, best))) best = run;
    }
    return best;
  }

  async getLogs(runId: string, afterSeq = 0): Promise<LogLine[]> {
    const first = afterSeq < 0 ? 0 : Math.floor(afterSeq) + 1;
    if (first > 999_999_999_999_999) return [];
    const e = new Expr();
    const input: QueryCommandInput = {
      TableName: this.tables.runs,
      KeyConditionExpression: `${e.n('pk')} = ${e.v(runPk(runId))} AND ${e.n('sk')} BETWEEN ${e.v(logSk(first))} AND ${e.v(LOG_SK_END)}`,
      ConsistentRead: true,
      ...e.params(),
    };
    const lines: LogLine[] = [];
    for await (const item of this.queryItems('runs', 'Query (read logs)', input)) {
      const line = logOf(item, this.tables.runs);
      if (line.seq > afterSeq) lines.push(line);
    }
    return lines;
  }

  async pruneRuns(endedBefore: number): Promise<number> {
    const e = new Expr();
    const input: ScanCommandInput = {
      TableName: this.tables.runs,
      FilterExpression: `${e.n('sk')} = ${e.v(RUN_SK)}`,
      ProjectionExpression: RUN_BRIEF_ATTRIBUTES.map((a) => e.n(a)).join(', '),
      ConsistentRead: true,
      ...e.params(),
    };
    const briefs = [];
    for await (const item of this.scanItems('runs', 'Scan (find runs to prune)', input)) briefs.push(runBriefOf(item, this.tables.runs));
    // The latest success of each signature stays, in the order of lastRun.
    const latestSuccess = new Map<string, (typeof briefs)[number]>();
    for (const run of briefs) {
      if (run.status !== 'succeeded') continue;
      const best = latestSuccess.get(run.signature);
      if (!best || newer(run, best)) latestSuccess.set(run.signature, run);
    }
    const keep = new Set([...latestSuccess.values()].map((run) => run.id));
    const doomed = briefs.filter(
      (run) => TERMINAL_STATUSES.has(run.status) && run.endedAt !== undefined && run.endedAt < endedBefore && !keep.has(run.id),
    );
    const keys = (
      await mapLimit(doomed, BATCH_CONCURRENCY, async (run) => {
        const k = new Expr();
        const partition: QueryCommandInput = {
          TableName: this.tables.runs,
          KeyConditionExpression: `${k.n('pk')} = ${k.v(runPk(run.id))}`,
          ProjectionExpression: `${k.n('pk')}, ${k.n('sk')}`,
          ConsistentRead: true,
          ...k.params(),
        };
        const found: Item[] = [];
        for await (const item of this.queryItems('runs', 'Query (list a pruned run’s items)', partition)) {
          const { pk, sk }: { pk?: unknown; sk?: unknown } = item;
          if (typeof pk === 'string' && typeof sk === 'string') found.push({ pk, sk });
        }
        return found;
      })
    ).flat();
    await this.batchWrite('runs', keys.map((Key) => ({ DeleteRequest: { Key } })));
    return doomed.length;
  }

  // -------------------------------------------------------------------------------------------
  // Checkpoints, state, statuses, triggers

  async getCheckpoint(signature: string): Promise<Checkpoint | undefined> {
    return checkpointOf(await this.readLeaseItem(signature, 'GetItem (read a checkpoint)', ['signature', 'checkpoint']));
  }

  async getState(instanceId: string, key: string): Promise<Json | undefined> {
    const output = await this.call('instances', 'GetItem (read instance state)', () =>
      this.doc.send(new GetCommand({ TableName: this.tables.instances, Key: { instanceId, kind: stateKind(key) }, ConsistentRead: true })),
    );
    return output.Item === undefined ? undefined : stateOf(output.Item, this.tables.instances);
  }

  async setState(instanceId: string, key: string, value: Json | undefined): Promise<void> {
    const Key = { instanceId, kind: stateKind(key) };
    if (value === undefined) {
      await this.call('instances', 'DeleteItem (delete instance state)', () => this.doc.send(new DeleteCommand({ TableName: this.tables.instances, Key })));
      return;
    }
    await this.call('instances', 'PutItem (write instance state)', () =>
      this.doc.send(new PutCommand({ TableName: this.tables.instances, Item: { ...Key, value: JSON.stringify(value) } })),
    );
  }

  async getInstanceStatus(instanceId: string): Promise<InstanceStatus | undefined> {
    const output = await this.call('instances', 'GetItem (read an instance status)', () =>
      this.doc.send(new GetCommand({ TableName: this.tables.instances, Key: { instanceId, kind: STATUS_KIND }, ConsistentRead: true })),
    );
    return output.Item === undefined ? undefined : statusOf(output.Item, this.tables.instances);
  }

  async listInstanceStatus(): Promise<InstanceStatus[]> {
    return (await this.scanInstances([STATUS_KIND])).statuses;
  }

  async setInstanceStatus(instanceId: string, status: InstanceStatus | undefined): Promise<void> {
    if (status === undefined) {
      await this.call('instances', 'DeleteItem (clear an instance status)', () =>
        this.doc.send(new DeleteCommand({ TableName: this.tables.instances, Key: { instanceId, kind: STATUS_KIND } })),
      );
      return;
    }
    await this.call('instances', 'PutItem (write an instance status)', () =>
      this.doc.send(new PutCommand({ TableName: this.tables.instances, Item: statusItem({ ...status, instanceId }) })),
    );
  }

  async addTrigger(trigger: Trigger): Promise<void> {
    await this.call('runs', 'PutItem (add a trigger)', () =>
      this.doc.send(new PutCommand({ TableName: this.tables.runs, Item: triggerItem(trigger, this.nextTriggerOrder()) })),
    );
  }

  async getTriggerResult(id: string): Promise<TriggerResult | undefined> {
    const output = await this.call('runs', 'GetItem (read a trigger result)', () =>
      this.doc.send(new GetCommand({ TableName: this.tables.runs, Key: { pk: triggerResultPk(id), sk: TRIGGER_RESULT_SK }, ConsistentRead: true })),
    );
    return output.Item === undefined ? undefined : triggerResultOf(output.Item, this.tables.runs);
  }

  async takeTriggers(limit: number): Promise<Trigger[]> {
    const count = Math.floor(limit);
    if (!(count > 0)) return [];
    const taken: Trigger[] = [];
    let startKey: Record<string, NativeAttributeValue> | undefined;
    do {
      const e = new Expr();
      const page = await this.call('runs', 'Query (list triggers)', () =>
        this.doc.send(
          new QueryCommand({
            TableName: this.tables.runs,
            KeyConditionExpression: `${e.n('pk')} = ${e.v(TRIGGER_PK)}`,
            ConsistentRead: true,
            Limit: count - taken.length,
            ...(startKey ? { ExclusiveStartKey: startKey } : {}),
            ...e.params(),
          }),
        ),
      );
      const found = (page.Items ?? []).map((item) => triggerOf(item, this.tables.runs));
      // Each trigger goes to whoever deletes it: one that another caller deleted first is skipped.
      const mine = await mapLimit(found, this.concurrency, async ({ sk, trigger }) => {
        const d = new Expr();
        const result = await this.conditional('runs', 'DeleteItem (take a trigger)', () =>
          this.doc.send(
            new DeleteCommand({
              TableName: this.tables.runs,
              Key: { pk: TRIGGER_PK, sk },
              ConditionExpression: `attribute_exists(${d.n('pk')})`,
              ...d.params(),
            }),
          ),
        );
        return result.ok ? trigger : undefined;
      });
      for (const trigger of mine) if (trigger) taken.push(trigger);
      startKey = page.LastEvaluatedKey;
    } while (startKey && taken.length < count);
    return taken;
  }

  // -------------------------------------------------------------------------------------------
  // Instances table

  /**
   * Writes an instance's configuration entry (a JSON object with a string `id`), replacing the
   * one stored and keeping the instance's overrides.
   */
  async putInstanceEntry(entry: unknown): Promise<void> {
    const parsed = entryIdSchema.safeParse(entry);
    if (!parsed.success) {
      throw new StoreError(`an instance entry must be an object with a non-empty string "id"; got ${describe(entry)}`);
    }
    const config = toJsonObject(parsed.data, `instance entry "${parsed.data.id}"`);
    const e = new Expr();
    await this.call('instances', 'UpdateItem (write an instance entry)', () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.tables.instances,
          Key: { instanceId: parsed.data.id, kind: CONFIG_KIND },
          UpdateExpression: `SET ${e.n('config')} = ${e.v(config)}, ${e.n('overrides')} = if_not_exists(${e.n('overrides')}, ${e.v({})})`,
          ...e.params(),
        }),
      ),
    );
  }

  /**
   * Overrides fields of an instance's entry (the status page's switches): the effective entry is
   * `{ ...config, ...overrides }`. A field set to `undefined` drops its override.
   */
  async setInstanceOverride(instanceId: string, patch: InstanceOverride): Promise<void> {
    const entries = Object.entries(patch);
    if (entries.length === 0) return;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      // Into the overrides map, when there is one.
      const e = new Expr();
      const sets: string[] = [];
      const removes: string[] = [];
      for (const [field, value] of entries) {
        const path = `${e.n('overrides')}.${e.n(field)}`;
        if (value === undefined) removes.push(path);
        else sets.push(`${path} = ${e.v(toJsonValue(value, `override "${field}" of instance "${instanceId}"`))}`);
      }
      const merged = await this.conditional('instances', 'UpdateItem (override instance fields)', () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.instances,
            Key: { instanceId, kind: CONFIG_KIND },
            UpdateExpression: updateExpression(sets, removes),
            ConditionExpression: `attribute_exists(${e.n('config')}) AND attribute_exists(${e.n('overrides')})`,
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            ...e.params(),
          }),
        ),
      );
      if (merged.ok) return;
      if (merged.item?.config === undefined) {
        throw new StoreError(`instance "${instanceId}" has no entry in table ${this.tables.instances}; write its entry (putInstanceEntry) before overriding its fields`);
      }
      // An entry written by other code, without an overrides map yet: create it whole.
      const c = new Expr();
      const created = await this.conditional('instances', 'UpdateItem (override instance fields)', () =>
        this.doc.send(
          new UpdateCommand({
            TableName: this.tables.instances,
            Key: { instanceId, kind: CONFIG_KIND },
            UpdateExpression: `SET ${c.n('overrides')} = ${c.v(defined(toJsonObject(patch, `overrides of instance "${instanceId}"`)))}`,
            ConditionExpression: `attribute_exists(${c.n('config')}) AND attribute_not_exists(${c.n('overrides')})`,
            ...c.params(),
          }),
        ),
      );
      if (created.ok) return;
    }
    throw new StoreError(`could not override fields of instance "${instanceId}": its entry kept changing; try again`);
  }

  /** Every instance's effective entry (`{ ...config, ...overrides }`), unvalidated. */
  async listInstanceEntries(): Promise<Record<string, unknown>[]> {
    return (await this.scanInstances([CONFIG_KIND])).entries;
  }

  /** Entries and statuses of every instance, in one paginated Scan (the scheduler's every tick). */
  async loadInstancesAndStatus(): Promise<{ entries: Record<string, unknown>[]; statuses: InstanceStatus[] }> {
    return this.scanInstances([CONFIG_KIND, STATUS_KIND]);
  }

  /** Leaves the client open: it belongs to the caller. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  // -------------------------------------------------------------------------------------------
  // Lease writes

  /**
   * Grants `lease` if nobody holds it or its holder expired: one conditional update that
   * increments the token, sets the lease and `attributes`, and removes the task attributes not
   * set (so a lease never carries a previous task's fields).
   */
  private async grant(lease: Lease, attributes: Item, now: number, notReleasedSince?: number): Promise<GrantWrite> {
    const e = new Expr();
    const set: Item = {
      owner: lease.owner,
      expiresAt: lease.expiresAt,
      runId: lease.runId,
      instanceId: lease.instanceId,
      task: lease.task,
      ...attributes,
    };
    const sets = [`${e.n('token')} = if_not_exists(${e.n('token')}, ${e.v(0)}) + ${e.v(1)}`];
    for (const [name, value] of Object.entries(set)) sets.push(`${e.n(name)} = ${e.v(value)}`);
    const removes = TASK_ATTRIBUTES.filter((name) => !(name in set)).map((name) => e.n(name));
    const result = await this.conditional('leases', 'UpdateItem (grant a lease)', () =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.tables.leases,
          Key: { signature: lease.signature },
          UpdateExpression: updateExpression(sets, removes),
          ConditionExpression:
            `(attribute_not_exists(${e.n('owner')}) OR ${e.n('expiresAt')} <= ${e.v(now)})` +
            (notReleasedSince === undefined ? '' : ` AND (attribute_not_exists(${e.n('releasedAt')}) OR ${e.n('releasedAt')} < ${e.v(notReleasedSince)})`),
          ReturnValues: 'ALL_OLD',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          ...e.params(),
        }),
      ),
    );
    if (!result.ok) {
      const holder = result.item ? parseLeaseItem(result.item, this.tables.leases) : await this.readLeaseItem(lease.signature, 'GetItem (read a lease holder)');
      return { granted: false, holder };
    }
    const old = parseLeaseItem(result.value.Attributes, this.tables.leases);
    // The condition held, so nobody wrote in between: the token is the old one plus one.
    return { granted: true, token: (old?.token ?? 0) + 1, old };
  }

  private holderLease(item: ReturnType<typeof parseLeaseItem>, signature: string): Lease {
    const holder = leaseOf(item, this.tables.leases);
    if (!holder) throw new StoreError(`lease ${signature} in table ${this.tables.leases} was refused but has no holder; try again`);
    return holder;
  }

  /** One lease item, strongly consistent; only `attributes` when given. */
  private async readLeaseItem(signature: string, operation: string, attributes?: readonly string[]): Promise<ReturnType<typeof parseLeaseItem>> {
    const e = new Expr();
    const projection = attributes && { ProjectionExpression: attributes.map((name) => e.n(name)).join(', ') };
    const output = await this.call('leases', operation, () =>
      this.doc.send(new GetCommand({ TableName: this.tables.leases, Key: { signature }, ConsistentRead: true, ...projection, ...e.params() })),
    );
    return parseLeaseItem(output.Item, this.tables.leases);
  }

  /**
   * The sweeper's release of an expired lease still held by `ref`: clears the owner and the task,
   * keeps token and checkpoint, and only if the lease expired by `expiredBy`. It leaves
   * `releasedAt` alone: the task did not end, so no plan can have missed its end.
   */
  private sweepRelease(ref: LeaseRef, expiredBy: number): ConstructorParameters<typeof UpdateCommand>[0] {
    const e = new Expr();
    return {
      TableName: this.tables.leases,
      Key: { signature: ref.signature },
      UpdateExpression: updateExpression([`${e.n('expiresAt')} = ${e.v(0)}`], [e.n('owner'), ...TASK_ATTRIBUTES.map((name) => e.n(name))]),
      ConditionExpression: `${fenced(e, ref)} AND ${e.n('expiresAt')} <= ${e.v(expiredBy)}`,
      ...e.params(),
    };
  }

  /** Signatures in a route's partition of the `byRoute` index. */
  private async routeSignatures(route: string): Promise<string[]> {
    const [index] = LEASES_TABLE.globalSecondaryIndexes;
    const e = new Expr();
    const input: QueryCommandInput = {
      TableName: this.tables.leases,
      IndexName: index.indexName,
      KeyConditionExpression: `${e.n(index.partitionKey.name)} = ${e.v(route)}`,
      ...e.params(),
    };
    const signatures: string[] = [];
    for await (const item of this.queryItems('leases', `Query (list the ${route} route)`, input)) {
      if (typeof item.signature === 'string') signatures.push(item.signature);
    }
    return signatures;
  }

  /** Lease items of `signatures` (those that exist), 100 keys per BatchGetItem, unprocessed keys retried. */
  private async batchGetLeases(signatures: readonly string[], attributes: readonly string[], consistent: boolean): Promise<Item[]> {
    const table = this.tables.leases;
    const pages = await mapLimit(chunks(signatures, BATCH_GET_KEYS), BATCH_CONCURRENCY, async (chunk) => {
      const e = new Expr();
      const projection = attributes.map((a) => e.n(a)).join(', ');
      let keys: Record<string, NativeAttributeValue>[] = chunk.map((signature) => ({ signature }));
      const items: Item[] = [];
      for (let attempt = 0; keys.length > 0; attempt += 1) {
        if (attempt > 0) await this.backoff(attempt, 'leases', 'BatchGetItem', `${keys.length} keys`);
        const request = keys;
        const output = await this.call('leases', 'BatchGetItem (read leases)', () =>
          this.doc.send(
            new BatchGetCommand({
              RequestItems: {
                [table]: { Keys: request, ProjectionExpression: projection, ConsistentRead: consistent, ExpressionAttributeNames: e.names },
              },
            }),
          ),
        );
        items.push(...(output.Responses?.[table] ?? []));
        keys = output.UnprocessedKeys?.[table]?.Keys ?? [];
      }
      return items;
    });
    return pages.flat();
  }

  /** Puts and deletes on a table, 25 per BatchWriteItem, unprocessed items retried. */
  private async batchWrite(
    role: TableRole,
    requests: ({ PutRequest: { Item: Item } } | { DeleteRequest: { Key: Item } })[],
  ): Promise<void> {
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

  private async backoff(attempt: number, role: TableRole, operation: string, what: string): Promise<void> {
    if (attempt >= BATCH_ATTEMPTS) {
      throw new DynamoStoreError(
        `DynamoDB left ${what} unprocessed in ${operation} on table ${this.tables[role]} after ${BATCH_ATTEMPTS} attempts (throttled): raise the table's capacity or use on-demand billing, and try again`,
        this.tables[role],
        operation,
      );
    }
    await sleep(backoffMs(attempt));
  }

  // -------------------------------------------------------------------------------------------
  // Run queries

  /** A Query of one run index in queue order (newest first), with the query's filters. */
  private queuedQuery(index: 'byInstance' | 'byDay', keyValue: string, query: RunQuery, pageSize: number): QueryCommandInput {
    const { partitionKey, sortKey } = runIndex(index);
    const e = new Expr();
    let key = `${e.n(partitionKey.name)} = ${e.v(keyValue)}`;
    const lower = query.since !== undefined && query.since > 0 ? numberKey(Math.floor(query.since), 'since') : undefined;
    const upper = query.until !== undefined && query.until <= 999_999_999_999_999 ? numberKey(Math.ceil(query.until), 'until') : undefined;
    // `<time>#<id>` keys: `<= upper` leaves out every run queued at `upper` or later.
    if (lower !== undefined && upper !== undefined) key += ` AND ${e.n(sortKey.name)} BETWEEN ${e.v(lower)} AND ${e.v(upper)}`;
    else if (lower !== undefined) key += ` AND ${e.n(sortKey.name)} >= ${e.v(lower)}`;
    else if (upper !== undefined) key += ` AND ${e.n(sortKey.name)} < ${e.v(upper)}`;
    const filters = this.runFilters(e, query, { task: index === 'byDay', instanceId: false, statuses: statusSet(query.status) });
    return {
      TableName: this.tables.runs,
      IndexName: index,
      KeyConditionExpression: key,
      ScanIndexForward: false,
      Limit: filters ? Math.max(pageSize, 25) : pageSize,
      ...(filters ? { FilterExpression: filters } : {}),
      ...e.params(),
    };
  }

  /** A Query of a recency index's `S#` (successes) or `R#` (the rest) runs, most recent first. */
  private recencyQuery(
    index: 'bySignature' | 'byTask',
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
    const filters = this.runFilters(e, query, { task: index === 'bySignature', instanceId: index === 'bySignature', statuses });
    return {
      TableName: this.tables.runs,
      IndexName: index,
      KeyConditionExpression: `${e.n(partitionKey.name)} = ${e.v(keyValue)} AND ${e.n(sortKey.name)} BETWEEN ${e.v(lower)} AND ${e.v(`${prefix}$`)}`,
      ScanIndexForward: false,
      Limit: filters ? Math.max(pageSize, 25) : pageSize,
      ...(filters ? { FilterExpression: filters } : {}),
      ...e.params(),
    };
  }

  /** The FilterExpression of a run query's filters that the key does not cover. */
  private runFilters(
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
    return parts.length > 0 ? parts.join(' AND ') : undefined;
  }

  /** The newest `limit` runs of a recency index partition by queue time. */
  private async listByRecency(index: 'bySignature' | 'byTask', keyValue: string, query: RunQuery, limit: number): Promise<RunRecord[]> {
    const streams = this.recencyStreams(index, keyValue, query, Math.min(1000, Math.max(limit, 10)));
    const picked: RunRecord[] = [];
    for (;;) {
      const heads = await Promise.all(streams.map((stream) => stream.peek()));
      let best = -1;
      heads.forEach((head, i) => {
        const current = heads[best];
        if (head && (!current || newer(head, current))) best = i;
      });
      const head = heads[best];
      const stream = streams[best];
      if (!head || !stream) break;
      // Unread runs ended (or were queued) no later than `head`, so were queued no later than
      // that plus the clock skew: once the last of `limit` picked was queued after it, stop.
      const last = picked[limit - 1];
      if (last && last.queuedAt > runRecency(head) + CLOCK_SKEW_MS) break;
      stream.shift();
      picked.push(head);
      picked.sort(queuedOrder);
      if (picked.length > limit) picked.pop();
    }
    return picked;
  }

  /** The most recent run of a recency index partition: the newer of the first success and the first other. */
  private async lastByRecency(
    index: 'bySignature' | 'byTask',
    keyValue: string,
    query: Omit<RunQuery, 'limit' | 'since' | 'until'>,
  ): Promise<RunRecord | undefined> {
    const heads = await Promise.all(this.recencyStreams(index, keyValue, query, 1).map((stream) => stream.peek()));
    let best: RunRecord | undefined;
    for (const head of heads) if (head && (!best || newer(head, best))) best = head;
    return best;
  }

  private recencyStreams(
    index: 'bySignature' | 'byTask',
    keyValue: string,
    query: RunQuery,
    pageSize: number,
  ): PageStream<RunRecord>[] {
    const statuses = statusSet(query.status);
    const others = statuses && new Set([...statuses].filter((status) => status !== 'succeeded'));
    const streams: PageStream<RunRecord>[] = [];
    if (!statuses || statuses.has('succeeded')) {
      streams.push(this.runStream(this.recencyQuery(index, keyValue, 'S', query, undefined, pageSize)));
    }
    if (!others || others.size > 0) {
      streams.push(this.runStream(this.recencyQuery(index, keyValue, 'R', query, others, pageSize)));
    }
    return streams;
  }

  /** Up to `limit` runs of one queue-ordered index partition, newest first. */
  private async listByQueued(index: 'byInstance' | 'byDay', keyValue: string, query: RunQuery, limit: number): Promise<RunRecord[]> {
    const runs: RunRecord[] = [];
    for await (const run of this.queryRuns(this.queuedQuery(index, keyValue, query, Math.min(1000, limit)))) {
      runs.push(run);
      if (runs.length >= limit) break;
    }
    return runs;
  }

  /**
   * Walks day partitions backwards until `limit` runs are found: from the day of `until` (or of
   * the store's clock plus a day) to the day of `since`, or 400 days back without `since`. Days
   * are queried a window at a time, the window doubling from 1 to 32 while days come up short.
   */
  private async listByDay(query: RunQuery, limit: number): Promise<RunRecord[]> {
    const upper = Math.min(this.now() + DAY_MS, query.until ?? Number.POSITIVE_INFINITY);
    const floor = upper - (query.since !== undefined ? MAX_HISTORY_DAYS : DEFAULT_HISTORY_DAYS) * DAY_MS;
    const lower = Math.max(0, floor, query.since ?? 0);
    if (upper < lower) return [];
    const firstDay = Math.floor(upper / DAY_MS);
    const lastDay = Math.floor(lower / DAY_MS);
    const runs: RunRecord[] = [];
    let width = 1;
    for (let day = firstDay; day >= lastDay && runs.length < limit; ) {
      const days: number[] = [];
      for (let d = day; d > day - width && d >= lastDay; d -= 1) days.push(d);
      const remaining = limit - runs.length;
      const found = await Promise.all(days.map((d) => this.listByQueued('byDay', dayKey(d * DAY_MS), query, remaining)));
      for (const dayRuns of found) for (const run of dayRuns) if (runs.length < limit) runs.push(run);
      day -= days.length;
      width = Math.min(width * 2, MAX_DAY_WINDOW);
    }
    return runs;
  }

  private runStream(input: QueryCommandInput): PageStream<RunRecord> {
    return new PageStream(async (startKey) => {
      const page = await this.call('runs', `Query (${input.IndexName ?? 'table'})`, () =>
        this.doc.send(new QueryCommand({ ...input, ...(startKey ? { ExclusiveStartKey: startKey } : {}) })),
      );
      return { items: (page.Items ?? []).map((item) => runOf(item, this.tables.runs)), lastKey: page.LastEvaluatedKey };
    });
  }

  private async *queryRuns(input: QueryCommandInput): AsyncGenerator<RunRecord> {
    for await (const item of this.queryItems('runs', `Query (${input.IndexName ?? 'table'})`, input)) yield runOf(item, this.tables.runs);
  }

  /** Every run item matching the query's filters: a Scan, for queries no index serves. */
  private async *scanRuns(query: Omit<RunQuery, 'limit'>): AsyncGenerator<RunRecord> {
    const e = new Expr();
    const filters = [`${e.n('sk')} = ${e.v(RUN_SK)}`];
    const more = this.runFilters(e, query, { task: true, instanceId: true, statuses: statusSet(query.status) });
    if (more) filters.push(more);
    const input: ScanCommandInput = { TableName: this.tables.runs, FilterExpression: filters.join(' AND '), ConsistentRead: true, ...e.params() };
    for await (const item of this.scanItems('runs', 'Scan (runs without an index)', input)) yield runOf(item, this.tables.runs);
  }

  // -------------------------------------------------------------------------------------------
  // Instances

  private async scanInstances(kinds: readonly string[]): Promise<{ entries: Record<string, unknown>[]; statuses: InstanceStatus[] }> {
    const e = new Expr();
    const input: ScanCommandInput = {
      TableName: this.tables.instances,
      FilterExpression: `${e.n('kind')} IN (${kinds.map((kind) => e.v(kind)).join(', ')})`,
      ConsistentRead: true,
      ...e.params(),
    };
    const entries: Record<string, unknown>[] = [];
    const statuses: InstanceStatus[] = [];
    for await (const item of this.scanItems('instances', 'Scan (instance entries and statuses)', input)) {
      if (item.kind === STATUS_KIND) statuses.push(statusOf(item, this.tables.instances));
      else if (item.kind === CONFIG_KIND) {
        const entry = entryOfConfigItem(item, this.tables.instances);
        if (entry) entries.push(entry);
      }
    }
    return { entries, statuses };
  }

  // -------------------------------------------------------------------------------------------
  // Calls

  private async *queryItems(role: TableRole, operation: string, input: QueryCommandInput): AsyncGenerator<Item> {
    let startKey: Record<string, NativeAttributeValue> | undefined;
    do {
      const page = await this.call(role, operation, () =>
        this.doc.send(new QueryCommand({ ...input, ...(startKey ? { ExclusiveStartKey: startKey } : {}) })),
      );
      yield* page.Items ?? [];
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  private async *scanItems(role: TableRole, operation: string, input: ScanCommandInput): AsyncGenerator<Item> {
    let startKey: Record<string, NativeAttributeValue> | undefined;
    do {
      const page = await this.call(role, operation, () =>
        this.doc.send(new ScanCommand({ ...input, ...(startKey ? { ExclusiveStartKey: startKey } : {}) })),
      );
      yield* page.Items ?? [];
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  /** Runs an SDK call, turning its failures into {@link DynamoStoreError}s. */
  private async call<T>(role: TableRole, operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.storeError(error, role, operation);
    }
  }

  /** Runs a conditional SDK call: a failed condition is an outcome, not an error. */
  private async conditional<T>(role: TableRole, operation: string, run: () => Promise<T>): Promise<Conditional<T>> {
    try {
      return { ok: true, value: await run() };
    } catch (error) {
      if (isConditionalCheckFailed(error)) {
        return { ok: false, item: isAttributeMap(error.Item) ? plainItem(error.Item) : undefined };
      }
      throw this.storeError(error, role, operation);
    }
  }

  private storeError(error: unknown, role: TableRole, operation: string): StoreError {
    if (error instanceof StoreError) return error;
    const table = this.tables[role];
    const name = error instanceof Error ? error.name : 'Error';
    const message = error instanceof Error ? error.message : String(error);
    let advice: string;
    if (name === 'ResourceNotFoundException') {
      advice = `the table or one of its indexes does not exist in this account and region; deploy the stack, or check the ${role} table name given to the store`;
    } else if (name === 'AccessDeniedException' || name === 'UnrecognizedClientException') {
      advice = `${message}; grant the role dynamodb:${operation.split(' ')[0] ?? operation} on the table and its indexes, or check the credentials in use`;
    } else if (THROTTLED.has(name)) {
      advice = `throttled after the SDK's retries (${message}); raise the table's capacity, use on-demand billing or raise the client's maxAttempts, and try again`;
    } else if (name === 'ValidationException') {
      advice = `DynamoDB refused the request: ${message}`;
    } else {
      advice = `${name}: ${message}`;
    }
    return new DynamoStoreError(`DynamoDB ${operation} on table ${table} failed: ${advice}`, table, operation, {
      cause: error,
      retryable: !NOT_RETRYABLE.has(name),
    });
  }
}

/** A JSON object copy of `value` (undefined fields and functions dropped, as JSON does). */
function toJsonObject(value: object, what: string): Record<string, Json> {
  const json = toJsonValue(value, what);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new StoreError(`${what} must be a JSON object`);
  return json;
}

function toJsonValue(value: unknown, what: string): Json {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new StoreError(`${what} cannot be stored: it is not JSON (${(error as Error).message})`, { cause: error });
  }
  if (text === undefined) throw new StoreError(`${what} cannot be stored: it is not JSON`);
  return parseJson(text);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object without a string "id"' : `a ${typeof value}`;
}
