/**
 * The store port: everything the engine persists. Adapters: memory (tests), SQLite (the embedded
 * default), DynamoDB (AWS). The engine never speaks SQL; every method here maps to a handful of
 * conditional writes or key lookups so that a key-value store can implement it.
 *
 * Writes of the hot path arrive batched (`commit`), so an adapter can put each batch in one
 * transaction (SQLite) or a few batch calls (DynamoDB).
 */
import type { LimitStore } from './limits.js';
import type { ErrorInfo, Json, LogLine, RunRecord, RunStatus } from '../types.js';

export interface Lease {
  signature: string;
  /** Runner id holding it; `null` once released. */
  owner: string | null;
  /** Epoch ms after which the lease may be taken over. */
  expiresAt: number;
  /** Incremented at every acquisition of this signature; never reused. */
  token: number;
  runId: string | null;
  instanceId: string;
  task: string;
}

export interface LeaseRequest {
  signature: string;
  owner: string;
  ttlMs: number;
  runId: string;
  instanceId: string;
  task: string;
  /**
   * Refuse if the lease was released at or after this time: the plan that returned the task read
   * the run history before then, so it may not know the task has just run. Checked in the same
   * conditional write as the grant, so no release can slip in between.
   */
  notReleasedSince?: number;
}

export type LeaseGrant =
  | {
      granted: true;
      lease: Lease;
      /** The expired lease this one took over, if any. */
      takenOver?: Lease;
      /**
       * The signature's last checkpoint, if any: read with the grant, so that starting a task
       * needs no further round trip (on DynamoDB it lives in the lease item).
       */
      checkpoint?: Checkpoint;
    }
  | { granted: false; holder: Lease };

/** Identifies a lease a runner holds: owner and fencing token must both still match. */
export interface LeaseRef {
  signature: string;
  owner: string;
  token: number;
}

export interface Checkpoint {
  signature: string;
  value: Json;
  runId: string;
  at: number;
}

/** An ad-hoc run request (`ujr trigger`), taken by one runner. */
export interface Trigger {
  id: string;
  instanceId: string;
  /** Without a task: plan the instance now. */
  task?: string;
  input?: Json;
  /**
   * A request to cancel this live run instead (the status page's Cancel): the runner holding it
   * ends it `cancelled`; `task` and `input` are then unset. Its result names the run, or says why not.
   */
  cancelRunId?: string;
  at: number;
}

export interface InstanceStatus {
  instanceId: string;
  retiredAt?: number;
  retiredReason?: string;
  /** The last failed plan, cleared by the next good one. */
  planError?: ErrorInfo & { at: number };
  /** When a runner last planned it on its schedule (ticks only, not follow-ups). */
  lastPlannedAt?: number;
}

/**
 * Writes made under one lease: applied only while that lease is current (same owner and token,
 * not released), checked in the same transaction or conditional write as the writes themselves.
 * A stale holder's writes are refused whole, never half applied.
 */
export interface FencedWrites {
  /** The lease these writes were made under. */
  fence: LeaseRef;
  /** Whole run records, inserted or replaced. A run already in a final state is never replaced. */
  runs?: RunRecord[];
  logs?: LogLine[];
  /** The signature's checkpoint (the fence's signature). */
  checkpoint?: Checkpoint;
  /** Releases the lease after the writes above (their final record above all). */
  release?: boolean;
}

/** One batch of writes, applied atomically where the adapter can. */
export interface WriteBatch {
  fenced?: FencedWrites[];
  /** The writer's clock (epoch ms), recorded as the release time of leases let go. Default: the store's. */
  at?: number;
  /** Ad-hoc run requests to add (unfenced: a stopping runner hands its triggers back). */
  triggers?: Trigger[];
  /** What became of triggers this runner took (unfenced). */
  triggerResults?: TriggerResult[];
}

/** What a commit did not apply. */
export interface CommitResult {
  /** Fences that were no longer current: none of their writes were applied. */
  refused: LeaseRef[];
}

/** What a runner did with a trigger it took: the runs its plan created, or why none. */
export interface TriggerResult {
  id: string;
  instanceId: string;
  at: number;
  /** Runs created for it (first attempts); empty when the plan returned nothing new. */
  runIds: string[];
  /** Why there are no runs, or what else the user should know. */
  note?: string;
}

/** A run the sweeper ended: its lease expired (or moved on) without a final record. */
export interface SweptRun {
  run: RunRecord;
  /** The lease as it was found: expired, released, or taken by a newer token. */
  lease: Lease | undefined;
}

export interface RunQuery {
  instanceId?: string;
  task?: string;
  signature?: string;
  status?: RunStatus | RunStatus[];
  /** queuedAt >= since */
  since?: number;
  /** queuedAt < until */
  until?: number;
  /**
   * A page's cursor (the runs explorer): only runs after this one in listRuns' order (newest
   * first by queuedAt, then id), i.e. `queuedAt < before.queuedAt`, or `queuedAt ===
   * before.queuedAt && id < before.id` (ids compared as strings, by UTF-16 code units). Pass the
   * last run of a page to get the next page: no run is lost or repeated when runs share a
   * queuedAt. listRuns only; lastRun does not take it.
   */
  before?: { queuedAt: number; id: string };
  /**
   * Only runs whose input, as stored (compact `JSON.stringify` of the input), contains this text:
   * a case-sensitive substring match (`"gamma"` finds `{"name":"gamma-1"}`, and `"name":"g` too).
   * Not indexed: adapters filter the runs the other fields select. listRuns only.
   */
  inputContains?: string;
  /** Newest first. Default 100. */
  limit?: number;
}

export interface Store {
  /**
   * Shared rate limits and concurrency caps on this store (issue 15): SQLite and memory have one;
   * a store without it cannot run tasks that name limits.
   */
  readonly limits?: LimitStore;
  /**
   * Takes each lease if nobody holds it or its holder's lease expired (at the store's `now`).
   * Each grant increments the signature's fencing token.
   */
  acquireLeases(requests: LeaseRequest[], now: number): Promise<LeaseGrant[]>;
  /** Extends leases still held (owner and token match); `false` where it was lost. */
  renewLeases(refs: LeaseRef[], ttlMs: number, now: number): Promise<boolean[]>;
  getLease(signature: string): Promise<Lease | undefined>;
  /** Leases with an owner whose expiry is after `now`. */
  listActiveLeases(now: number): Promise<Lease[]>;

  /**
   * Applies a batch: each fenced group only while its lease is current (else the group is
   * skipped whole and its fence returned in `refused`), triggers and trigger results as given.
   */
  commit(batch: WriteBatch): Promise<CommitResult>;

  /**
   * Ends every run left `queued`, `running` or `retrying` whose lease is no longer live at `now`
   * (expired, released, or taken by a newer token): the run becomes `interrupted` with a
   * `LeaseExpiredError`, and an expired lease still naming the run's holder is released, in the
   * same transaction, so that a holder waking up later finds its fence gone. Returns what it ended.
   */
  sweep(now: number): Promise<SweptRun[]>;

  getRun(id: string): Promise<RunRecord | undefined>;
  /** Newest first by queuedAt, ties by the greater id. */
  listRuns(query: RunQuery): Promise<RunRecord[]>;
  /**
   * The newest run matching, in listRuns' order: the greatest queuedAt, ties by the greater id,
   * whether or when it ended. `lastRun(q)` is always `listRuns({ ...q, limit: 1 })[0]`. Queue time
   * rather than end time, so that a stale run the sweeper ends late does not outrank the run that
   * took over from it, and so that an adapter can keep a task's runs in one key order for both
   * questions (DynamoDB: the table's own sort key, no secondary index).
   */
  lastRun(query: Omit<RunQuery, 'limit' | 'since' | 'until' | 'before' | 'inputContains'>): Promise<RunRecord | undefined>;
  getLogs(runId: string, afterSeq?: number): Promise<LogLine[]>;
  getCheckpoint(signature: string): Promise<Checkpoint | undefined>;

  getState(instanceId: string, key: string): Promise<Json | undefined>;
  /** `undefined` deletes the key. */
  setState(instanceId: string, key: string, value: Json | undefined): Promise<void>;

  getInstanceStatus(instanceId: string): Promise<InstanceStatus | undefined>;
  listInstanceStatus(): Promise<InstanceStatus[]>;
  /** Replaces the instance's status; `undefined` clears it. */
  setInstanceStatus(instanceId: string, status: InstanceStatus | undefined): Promise<void>;

  addTrigger(trigger: Trigger): Promise<void>;
  /** The result a runner recorded for a trigger it took, if any yet. */
  getTriggerResult(id: string): Promise<TriggerResult | undefined>;
  /** Removes and returns up to `limit` pending triggers, oldest first; each goes to one caller. */
  takeTriggers(limit: number): Promise<Trigger[]>;

  /**
   * Deletes ended runs (and their logs) that ended before `endedBefore`, except the latest
   * success of each signature (the one `lastRun` reports: newest by queuedAt, then id), which
   * run-history queries depend on. Returns how many went.
   */
  pruneRuns(endedBefore: number): Promise<number>;

  close(): Promise<void>;
}
