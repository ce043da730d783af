/**
 * The board: the lease table as the serverless runtime uses it. Each signature has one entry that
 * is its lease (owner, expiry, fencing token) and, while leased, the task itself (instance, task,
 * input, attempt, route), so that the message that dispatches it only has to name the signature
 * and the token it was posted with. Whoever claims an entry gets it with one conditional write
 * that also returns it; a duplicate or stale delivery finds the token moved on and is dropped.
 *
 * Entries are never deleted (the token must never go back); releasing clears the owner and the
 * task. On DynamoDB the board is the leases table (core/adapters/aws/dynamo-store.ts).
 *
 * Lifecycle of a batch task on AWS:
 *   scheduler `post` (owner = the dispatcher, token t)  → SQS message { signature, token: t }
 *   worker `claim({ signature, owner: dispatcher, token: t })` (token t+1, owner = the worker)
 *   worker ends: `finish` (run record + release, one transaction fenced on owner and token), or
 *   `repost` for the next attempt (the failed record written in the same transaction).
 * Every run record written under a lease is fenced by it: a holder whose token moved on writes
 * nothing; its run is recorded `interrupted` by whoever took the lease over, or by the sweeper
 * (`Store.sweep`, on every scheduler tick).
 * Continuous tasks are posted with route `conductor` and claimed by a conductor polling
 * `listRoute('conductor')`; an entry whose lease expired can be claimed by anyone who read it.
 */
import type { LimitRef } from '../ports/limits.js';
import type { Checkpoint, LeaseGrant, LeaseRef, Store } from '../ports/store.js';
import type { Json, Progress, RetryPolicy, RunOrigin, RunRecord, TaskKind } from '../types.js';

/** Where a leased task runs: the worker Lambda (via the queue), a conductor, or a one-off Fargate task. */
export type Route = 'queue' | 'conductor' | 'fargate';

/** The task part of an entry, written with the lease by `post` and `repost`. */
export interface BoardTask {
  runId: string;
  instanceId: string;
  jobType: string;
  task: string;
  kind: TaskKind;
  route: Route;
  input: Json;
  attempt: number;
  maxAttempts: number;
  origin: RunOrigin;
  queuedAt: number;
  /** The task's timeout (batch tasks). */
  timeoutMs?: number;
  /** The task's retry policy as planned (batch tasks), so the attempt that fails can schedule the next. */
  retry?: RetryPolicy;
  /** The attempt this one retries (set by `repost` for a retry). */
  previousRunId?: string;
  /**
   * The shared-limit buckets the task takes (issue 15), as the scheduler resolved them: whoever
   * starts it takes them first (the queue route's message carries them too).
   */
  limits?: LimitRef[];
  /** Not to be started before this time: a continuous task the API rate-limited waits for its Retry-After. */
  notBefore?: number;
}

/** One signature's entry while it is leased. */
export interface BoardEntry extends BoardTask {
  signature: string;
  owner: string;
  token: number;
  expiresAt: number;
  /** Set when a claimer started the handler. */
  startedAt?: number;
  checkpoint?: Checkpoint;
  progress?: Progress;
  /** Asked by the scheduler: the job no longer returns this continuous task, or its instance is off. */
  stopRequested?: boolean;
}

export interface PostRequest extends BoardTask {
  signature: string;
  owner: string;
  ttlMs: number;
  /**
   * Refuse if the lease was released at or after this time: the plan that returned the task read
   * the run history before then, so it may not know the task has just run (checked in the same
   * conditional write, so no tick can slip between a release and its post).
   */
  notReleasedSince?: number;
}

/** A claim names the lease it expects: owner and token (a dispatched task), or only the token of an expired lease. */
export interface ClaimRequest {
  signature: string;
  token: number;
  /** The owner the entry must still have; without it, the entry's lease must have expired. */
  owner?: string;
  /** The claimer's owner id and lease lifetime. */
  newOwner: string;
  /** A new run id and origin for the attempt (taking over an expired entry starts a new run). */
  runId?: string;
  origin?: RunOrigin;
  ttlMs: number;
  now: number;
}

/** What `peek` read: the held leases, and when the others were last released. */
export interface PeekResult {
  /** Leases held and unexpired at `now`. */
  held: Map<string, BoardEntry>;
  /**
   * When each signature that is not held was last released: a plan that read the run history
   * before that may return a task that has just finished, which the scheduler then leaves alone.
   */
  releasedAt: Map<string, number>;
}

/** The next attempt of a reposted entry. */
export interface RepostRequest {
  owner: string;
  ttlMs: number;
  now: number;
  runId: string;
  attempt: number;
  origin: RunOrigin;
  /** The attempt the next one retries. */
  previousRunId?: string;
  /** Not to be started before this time (see `BoardTask.notBefore`); cleared when absent. */
  notBefore?: number;
  /** What the entry says while it waits (a rate-limited task's Retry-After); cleared when absent. */
  progress?: Progress;
}

/**
 * What `beginFollowUp` decided for a request to plan an instance again because its tasks ended
 * at `requestedAt`: plan now (and call `endFollowUp` with `from` after), nothing to do (a plan
 * that started after the request covers it), or left to the plan in flight, which started before
 * the request and plans once more when it ends. So an instance has at most one follow-up plan in
 * flight and one pending, however many of its tasks end at once.
 */
export type FollowUpGate = { kind: 'claimed'; from: number } | { kind: 'covered' } | { kind: 'pending' };

export interface HeartbeatResult {
  /** `false`: the lease was lost (taken over); stop and write nothing more. */
  held: boolean;
  stopRequested: boolean;
}

export interface Board extends Store {
  /**
   * The leases of these signatures that are held and unexpired at `now`, read in batches (100 per
   * call on DynamoDB), so that a tick where nothing is new costs a few reads and no writes.
   */
  peek(signatures: string[], now: number): Promise<PeekResult>;
  /** Leases each signature for its dispatcher (as `acquireLeases`) and writes the task with it. */
  post(requests: PostRequest[], now: number): Promise<LeaseGrant[]>;
  /**
   * Takes a posted or expired entry; `undefined` when the token moved on or the owner changed
   * (stale). Claiming a posted entry clears what it said while it waited (its progress).
   */
  claim(request: ClaimRequest): Promise<BoardEntry | undefined>;
  /** Extends a held lease, storing progress with it; tells whether a stop was requested. */
  heartbeat(ref: LeaseRef, ttlMs: number, now: number, progress?: Progress): Promise<HeartbeatResult>;
  /** Stores a checkpoint in the entry, fenced: `false` when the lease was lost. */
  saveCheckpoint(ref: LeaseRef, checkpoint: Checkpoint): Promise<boolean>;
  /**
   * Writes the run record and releases the lease, both only while `ref` is current (one
   * transaction); `false` when the lease was lost, and then nothing was written.
   */
  finish(ref: LeaseRef, run: RunRecord): Promise<boolean>;
  /**
   * Hands a held entry to a dispatcher again for its next attempt (retry, or a conductor handing
   * its task back): new owner, token + 1, new run id and attempt, and `ended`, the record of the
   * attempt that ended, written in the same transaction. Returns the new token, or `undefined`
   * when the lease was lost (and nothing was written).
   */
  repost(ref: LeaseRef, next: RepostRequest, ended?: RunRecord): Promise<number | undefined>;
  /** Entries currently leased on a route (held or expired but not released). */
  listRoute(route: Route): Promise<BoardEntry[]>;
  /** Asks whoever runs the entry to stop; no-op when the token moved on. */
  requestStop(signature: string, token: number): Promise<void>;
  /**
   * Opens the instance's follow-up gate for a plan asked for by tasks that ended at
   * `requestedAt` (see {@link FollowUpGate}). A claim lasts `ttlMs`: a planner that dies holding
   * it stops blocking the next request then.
   */
  beginFollowUp(instanceId: string, requestedAt: number, now: number, ttlMs: number): Promise<FollowUpGate>;
  /**
   * Closes the gate a claim opened at `from`. Returns when the latest request that arrived while
   * it planned was made (the caller plans again for it), or `undefined`: none, or the claim had
   * expired and is someone else's now.
   */
  endFollowUp(instanceId: string, from: number): Promise<number | undefined>;
}

/** Every entry leased on the board (all routes), by route then signature. */
export async function boardEntries(board: Pick<Board, 'listRoute'>): Promise<BoardEntry[]> {
  const routes = await Promise.all((['queue', 'conductor', 'fargate'] as const).map((route) => board.listRoute(route)));
  return routes.flat();
}
