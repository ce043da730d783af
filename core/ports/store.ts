/**
 * The store port: everything the engine persists. Adapters: memory (tests), SQLite (the embedded
 * default), DynamoDB (AWS). The engine never speaks SQL; every method here maps to a handful of
 * conditional writes or key lookups so that a key-value store can implement it.
 *
 * Writes of the hot path arrive batched (`commit`), so an adapter can put each batch in one
 * transaction (SQLite) or a few batch calls (DynamoDB).
 */
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

/** One batch of writes, applied atomically where the adapter can. */
export interface WriteBatch {
  /** Whole run records, inserted or replaced. */
  runs?: RunRecord[];
  logs?: LogLine[];
  checkpoints?: Checkpoint[];
  /** Released only if owner and token still match (fenced). */
  releases?: LeaseRef[];
  triggers?: Trigger[];
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
  /** Newest first. Default 100. */
  limit?: number;
}

export interface Store {
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

  commit(batch: WriteBatch): Promise<void>;

  getRun(id: string): Promise<RunRecord | undefined>;
  /** Newest first by queuedAt. */
  listRuns(query: RunQuery): Promise<RunRecord[]>;
  /** The newest run matching, by endedAt when it ended, else queuedAt. */
  lastRun(query: Omit<RunQuery, 'limit' | 'since' | 'until'>): Promise<RunRecord | undefined>;
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
  /** Removes and returns up to `limit` pending triggers, oldest first; each goes to one caller. */
  takeTriggers(limit: number): Promise<Trigger[]>;

  /**
   * Deletes ended runs (and their logs) that ended before `endedBefore`, except the latest
   * success of each signature, which run-history queries depend on. Returns how many went.
   */
  pruneRuns(endedBefore: number): Promise<number>;

  close(): Promise<void>;
}
