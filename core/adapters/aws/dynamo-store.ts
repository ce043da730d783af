/**
 * The DynamoDB adapter of the Store port and of the board (core/cloud/board.ts), over three
 * tables laid out in ./tables.ts, item shapes in ./dynamo-items.ts. Every decision a lease takes
 * is one conditional write, and a task's way through the board (post, claim, heartbeat, finish)
 * reads nothing before it writes.
 *
 * {@link DynamoStore} is the one public class: a facade that composes the store's aggregates,
 * each in a module of ./dynamo/ that can be read (and built over a {@link TableCalls}) alone:
 * - ./dynamo/leases.ts: leases through the Store port, and the lease-item primitives (grant,
 *   reads, batched reads, the `byRoute` index) the board, the fenced writes and the sweeper use;
 * - ./dynamo/board.ts: the board's entries (post, peek, claim, heartbeat, checkpoint, finish,
 *   repost, list a route, request a stop);
 * - ./dynamo/fenced-writes.ts: write batches, fenced on the lease of each group (`commit`);
 * - ./dynamo/sweeper.ts: ends the runs whose holders are gone (`sweep`);
 * - ./dynamo/run-history.ts and ./dynamo/run-queries.ts: reading runs and logs back
 *   (`getRun`, `listRuns`, `lastRun`, `getLogs`); ./dynamo/run-pruning.ts: `pruneRuns`;
 *   ./dynamo/run-pointers.ts: the pointers a lease item keeps to its signature's runs;
 *   ./dynamo/run-instances.ts: which instances have runs (for queries that name none);
 * - ./dynamo/triggers.ts: triggers and their results;
 * - ./dynamo/instances.ts: configuration entries, overrides, statuses and state;
 * - ./dynamo/follow-ups.ts: each instance's follow-up gate (one follow-up plan at a time);
 * - ./dynamo/table-calls.ts, ./dynamo/expressions.ts, ./dynamo/errors.ts: the plumbing every
 *   aggregate shares (the client, SDK calls and their retries, expressions, error translation).
 *
 * JSON values are stored as JSON text (dynamo-items.ts). `ConditionalCheckFailedException` is
 * recognised by name; every other SDK failure becomes a {@link DynamoStoreError} naming the table
 * and the operation. Throttled calls are retried by the SDK (its `maxAttempts`); keys and items
 * a batch call leaves unprocessed are retried here with exponential backoff.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Board, BoardEntry, ClaimRequest, FollowUpGate, HeartbeatResult, PeekResult, PostRequest, RepostRequest, Route } from '../../cloud/board.js';
import type {
  Checkpoint,
  CommitResult,
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
import type { Json, LogLine, Progress, RunRecord } from '../../types.js';
import { BoardEntries } from './dynamo/board.js';
import { FencedWriter } from './dynamo/fenced-writes.js';
import { FollowUps } from './dynamo/follow-ups.js';
import { Instances, type InstanceOverride } from './dynamo/instances.js';
import { Leases } from './dynamo/leases.js';
import { DynamoLimits } from './dynamo/limits.js';
import { QueueManifests } from './dynamo/queue-manifests.js';
import { RunHistory } from './dynamo/run-history.js';
import { RunInstances } from './dynamo/run-instances.js';
import { RunPruner } from './dynamo/run-pruning.js';
import { Sweeper } from './dynamo/sweeper.js';
import { TableCalls } from './dynamo/table-calls.js';
import { Triggers } from './dynamo/triggers.js';
import type { TableNames } from './tables.js';

export { DynamoStoreError } from './dynamo/errors.js';
export type { InstanceOverride } from './dynamo/instances.js';

export interface DynamoStoreOptions {
  /** A plain client is wrapped in a document client (undefined values removed). */
  client: DynamoDBDocumentClient | DynamoDBClient;
  tables: TableNames;
  /** The clock `listRuns` walks back from when no `until` is given. Default `Date.now`. */
  now?: () => number;
  /** Conditional writes in flight at once for the requests of one call. Default 16. */
  concurrency?: number;
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
  private readonly leases: Leases;
  private readonly board: BoardEntries;
  private readonly writer: FencedWriter;
  private readonly sweeper: Sweeper;
  private readonly history: RunHistory;
  private readonly pruner: RunPruner;
  private readonly triggers: Triggers;
  private readonly instances: Instances;
  private readonly followUps: FollowUps;
  /** Shared limits (issue 15): one bucket item each in the instances table (./dynamo/limits.ts). */
  readonly limits: DynamoLimits;

  constructor(options: DynamoStoreOptions) {
    const calls = new TableCalls(options);
    const runInstances = new RunInstances(calls);
    this.leases = new Leases(calls, new QueueManifests(calls));
    this.triggers = new Triggers(calls);
    this.writer = new FencedWriter(calls, this.leases, this.triggers, runInstances);
    this.board = new BoardEntries(calls, this.leases, this.writer);
    this.history = new RunHistory(calls, runInstances);
    this.sweeper = new Sweeper(calls, this.leases, this.history, runInstances);
    this.pruner = new RunPruner(calls);
    this.instances = new Instances(calls);
    this.followUps = new FollowUps(calls);
    this.limits = new DynamoLimits(calls);
  }

  // Leases (Store): ./dynamo/leases.ts

  acquireLeases(requests: LeaseRequest[], now: number): Promise<LeaseGrant[]> {
    return this.leases.acquireLeases(requests, now);
  }

  renewLeases(refs: LeaseRef[], ttlMs: number, now: number): Promise<boolean[]> {
    return this.leases.renewLeases(refs, ttlMs, now);
  }

  getLease(signature: string): Promise<Lease | undefined> {
    return this.leases.getLease(signature);
  }

  listActiveLeases(now: number): Promise<Lease[]> {
    return this.leases.listActiveLeases(now);
  }

  getCheckpoint(signature: string): Promise<Checkpoint | undefined> {
    return this.leases.getCheckpoint(signature);
  }

  // Board: ./dynamo/board.ts

  peek(signatures: string[], now: number): Promise<PeekResult> {
    return this.board.peek(signatures, now);
  }

  post(requests: PostRequest[], now: number): Promise<LeaseGrant[]> {
    return this.board.post(requests, now);
  }

  claim(request: ClaimRequest): Promise<BoardEntry | undefined> {
    return this.board.claim(request);
  }

  heartbeat(ref: LeaseRef, ttlMs: number, now: number, progress?: Progress): Promise<HeartbeatResult> {
    return this.board.heartbeat(ref, ttlMs, now, progress);
  }

  saveCheckpoint(ref: LeaseRef, checkpoint: Checkpoint): Promise<boolean> {
    return this.board.saveCheckpoint(ref, checkpoint);
  }

  finish(ref: LeaseRef, run: RunRecord): Promise<boolean> {
    return this.board.finish(ref, run);
  }

  repost(ref: LeaseRef, next: RepostRequest, ended?: RunRecord): Promise<number | undefined> {
    return this.board.repost(ref, next, ended);
  }

  listRoute(route: Route): Promise<BoardEntry[]> {
    return this.board.listRoute(route);
  }

  requestStop(signature: string, token: number): Promise<void> {
    return this.board.requestStop(signature, token);
  }

  // Follow-up plans: ./dynamo/follow-ups.ts

  beginFollowUp(instanceId: string, requestedAt: number, now: number, ttlMs: number): Promise<FollowUpGate> {
    return this.followUps.begin(instanceId, requestedAt, now, ttlMs);
  }

  endFollowUp(instanceId: string, from: number): Promise<number | undefined> {
    return this.followUps.end(instanceId, from);
  }

  // Batches of writes and the sweeper: ./dynamo/fenced-writes.ts, ./dynamo/sweeper.ts

  commit(batch: WriteBatch): Promise<CommitResult> {
    return this.writer.commit(batch);
  }

  /** Ends every live run whose lease is not live at `now`, and every started board entry whose lease expired without a record. */
  sweep(now: number): Promise<SweptRun[]> {
    return this.sweeper.sweep(now);
  }

  // Runs: ./dynamo/run-history.ts, ./dynamo/run-pruning.ts

  getRun(id: string): Promise<RunRecord | undefined> {
    return this.history.getRun(id);
  }

  listRuns(query: RunQuery): Promise<RunRecord[]> {
    return this.history.listRuns(query);
  }

  lastRun(query: Omit<RunQuery, 'limit' | 'since' | 'until'>): Promise<RunRecord | undefined> {
    return this.history.lastRun(query);
  }

  getLogs(runId: string, afterSeq = 0): Promise<LogLine[]> {
    return this.history.getLogs(runId, afterSeq);
  }

  pruneRuns(endedBefore: number): Promise<number> {
    return this.pruner.pruneRuns(endedBefore);
  }

  // Triggers: ./dynamo/triggers.ts

  addTrigger(trigger: Trigger): Promise<void> {
    return this.triggers.addTrigger(trigger);
  }

  getTriggerResult(id: string): Promise<TriggerResult | undefined> {
    return this.triggers.getTriggerResult(id);
  }

  takeTriggers(limit: number): Promise<Trigger[]> {
    return this.triggers.takeTriggers(limit);
  }

  // Instances: ./dynamo/instances.ts

  getState(instanceId: string, key: string): Promise<Json | undefined> {
    return this.instances.getState(instanceId, key);
  }

  setState(instanceId: string, key: string, value: Json | undefined): Promise<void> {
    return this.instances.setState(instanceId, key, value);
  }

  getInstanceStatus(instanceId: string): Promise<InstanceStatus | undefined> {
    return this.instances.getInstanceStatus(instanceId);
  }

  listInstanceStatus(): Promise<InstanceStatus[]> {
    return this.instances.listInstanceStatus();
  }

  setInstanceStatus(instanceId: string, status: InstanceStatus | undefined): Promise<void> {
    return this.instances.setInstanceStatus(instanceId, status);
  }

  /**
   * Writes an instance's configuration entry (a JSON object with a string `id`), replacing the
   * one stored and keeping the instance's overrides.
   */
  putInstanceEntry(entry: unknown): Promise<void> {
    return this.instances.putInstanceEntry(entry);
  }

  /**
   * Overrides fields of an instance's entry (the status page's switches): the effective entry is
   * `{ ...config, ...overrides }`. A field set to `undefined` drops its override.
   */
  setInstanceOverride(instanceId: string, patch: InstanceOverride): Promise<void> {
    return this.instances.setInstanceOverride(instanceId, patch);
  }

  /** Every instance's effective entry (`{ ...config, ...overrides }`), unvalidated. */
  listInstanceEntries(): Promise<Record<string, unknown>[]> {
    return this.instances.listInstanceEntries();
  }

  /**
   * Entries and statuses of every instance, and the shared limits' definitions as written in the
   * instances file (unvalidated), in one paginated Scan (the scheduler's every tick).
   */
  loadInstancesAndStatus(): Promise<{ entries: Record<string, unknown>[]; statuses: InstanceStatus[]; limits?: unknown }> {
    return this.instances.loadInstancesAndStatus();
  }

  /** Replaces the shared limits' definitions (the instances file's `"limits"` object), as the deployment's seeding does. */
  putLimits(limits: Record<string, Json>): Promise<void> {
    return this.instances.putLimits(limits);
  }

  /** Leaves the client open: it belongs to the caller. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
