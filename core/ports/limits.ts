/**
 * The limits port (issue 15): shared rate limits and concurrency caps, kept in the store so that
 * every process sharing that store (runner processes on one SQLite file, workers and conductors on
 * one DynamoDB deployment) draws from the same buckets. Adapters: memory, SQLite, DynamoDB; the
 * bucket arithmetic they all apply lives in ./limit-buckets.ts.
 *
 * Vocabulary:
 * - **limit**: a named definition (`api`: 300 per 15 min, burst 300; `archive-host`: 3 at once).
 * - **key**: what one limit is split by (a credential, a host); each (name, key) is one **bucket**.
 * - **rate**: a token bucket. It refills `count` tokens per `perMs`, holds at most `burst`, starts
 *   full, and every grant takes one token. Tokens are never given back.
 * - **concurrency**: at most that many **slots** held at once. A slot belongs to a **holder** (a
 *   run attempt) and expires unless renewed (heartbeats), so a dead holder's slot frees itself.
 * - **permit**: what a grant hands back: the holder and the slots it holds.
 * - **backoff**: the API said "not before T" (a 429's Retry-After): the bucket is drained, no
 *   grant before T, and its level restarts from 0 at T.
 */
import { ConfigError } from '../errors.js';

/** A token bucket: `count` tokens per `perMs` ms, at most `burst` held. */
export interface RateSpec {
  count: number;
  perMs: number;
  burst: number;
}

/**
 * A limit as configured (the `limits` of the instances file, or of `createRunner`): a token bucket
 * and/or a concurrency cap, split into one bucket per key that tasks give.
 */
export interface LimitDefinition {
  name: string;
  rate?: RateSpec;
  /** At most this many tasks holding it at once, per key. */
  concurrency?: number;
}

/** One bucket a task takes from: a limit's name, the key it is split by, and what it allows. */
export interface LimitSpec {
  /** The limit's name; no `#` (it is part of a DynamoDB key). */
  name: string;
  /** The bucket within the limit (a credential, a host); `''` when the limit is not split. */
  key: string;
  rate?: RateSpec;
  /** At most this many slots held at once. */
  concurrency?: number;
}

/** A bucket, by name and key. */
export interface LimitRef {
  name: string;
  key: string;
}

export interface LimitRequest {
  /** Who holds the slots (one run attempt); a holder that holds a slot already keeps it. */
  holder: string;
  /** How long the concurrency slots last unless renewed. */
  ttlMs: number;
  /** Every bucket the task takes from: all granted together or none. */
  limits: LimitSpec[];
}

/** What a grant hands back, for `renewLimits` and `releaseLimits`. */
export interface LimitPermit {
  holder: string;
  /** The concurrency buckets in which the holder holds a slot. */
  slots: LimitRef[];
  /** When the slots expire unless renewed (as of the grant). */
  expiresAt: number;
}

/** Why a request waits: no token, no free slot, or the API's back-off. */
export type LimitWaitReason = 'rate' | 'concurrency' | 'backoff';

export type LimitGrant =
  | { granted: true; permit: LimitPermit }
  | {
      granted: false;
      /**
       * When to ask again: when the scarcest bucket will have a token (rate, backoff), or when
       * the earliest slot expires (concurrency; a release can free one sooner).
       */
      retryAt: number;
      /** The bucket that decided `retryAt` (of those that refused, the one free latest). */
      waitingOn: LimitRef & { reason: LimitWaitReason };
    };

/** A bucket as `listLimitStates` shows it. */
export interface LimitState {
  name: string;
  key: string;
  /** The rate and cap of the latest grant (the definition in use). */
  rate?: RateSpec;
  concurrency?: number;
  /** Tokens available now (fractional while refilling); only for a rate. */
  tokens?: number;
  /** Slots held now (unexpired). */
  held: number;
  /** No grant before this time (a back-off); only while it is in the future. */
  blockedUntil?: number;
  /** Requests granted (each took a token and/or a slot here). */
  granted: number;
  /** Requests refused because of this bucket (counted on the bucket named in `waitingOn`). */
  refused: number;
  /** Total time this bucket was closed by back-offs, overlapping ones counted once. */
  throttledMs: number;
}

/**
 * Shared rate limits and concurrency caps, atomic across every process that shares the store.
 * Times are the caller's clock (epoch ms), as in the Store port.
 *
 * @example
 * ```ts
 * const grant = await limits.acquireLimits(
 *   { holder: runId, ttlMs: 30_000, limits: [{ name: 'api', key: credentialId, rate: { count: 300, perMs: 900_000, burst: 300 } }] },
 *   Date.now(),
 * );
 * if (!grant.granted) return requeueAt(grant.retryAt);
 * try {
 *   await callTheApi();
 * } finally {
 *   await limits.releaseLimits(grant.permit, Date.now());
 * }
 * ```
 */
export interface LimitStore {
  /**
   * All or nothing: one token from every rate bucket and one slot in every concurrency bucket of
   * the request, or nothing changes (but the refusing bucket's `refused` count).
   *
   * @throws {InvalidLimitError} when a spec is malformed (see {@link checkLimitRequest}).
   */
  acquireLimits(request: LimitRequest, now: number): Promise<LimitGrant>;
  /**
   * Extends the permit's slots to `now + ttlMs`. `false` when any of them was lost (expired
   * before the renewal, or released); the slots still held are extended all the same.
   */
  renewLimits(permit: LimitPermit, ttlMs: number, now: number): Promise<boolean>;
  /** Frees the permit's slots (tokens are never given back). Releasing twice does nothing. */
  releaseLimits(permit: LimitPermit, now: number): Promise<void>;
  /**
   * The same as `acquireLimits` for each request in turn, in one transaction where the store has
   * them (the runner asks for the tasks it starts together at once). Optional.
   *
   * @throws {InvalidLimitError} when any request is malformed (then none is decided).
   */
  acquireMany?(requests: readonly LimitRequest[], now: number): Promise<LimitGrant[]>;
  /** The same as `releaseLimits` for each permit, in one transaction where the store has them. Optional. */
  releaseMany?(permits: readonly LimitPermit[], now: number): Promise<void>;
  /**
   * Drains the bucket (name, key): no grant before `untilMs`, and its level restarts from 0
   * then. An earlier `untilMs` than a back-off in force changes nothing.
   */
  backoffLimit(name: string, key: string, untilMs: number, now: number): Promise<void>;
  /** Every bucket ever used, by name then key. */
  listLimitStates(now: number): Promise<LimitState[]>;
}

/** A malformed limit request (a programming or configuration error: retrying cannot help). */
export class InvalidLimitError extends ConfigError {}

/**
 * Checks a request before any adapter touches its buckets: a holder, a positive ttl when a slot
 * is asked for, and per spec a name without `#`, a rate and/or a cap with positive whole numbers
 * (`burst` at least 1), each bucket once.
 *
 * @throws {InvalidLimitError} naming the limit and the field.
 */
export function checkLimitRequest(request: LimitRequest): void {
  if (request.holder === '') throw new InvalidLimitError('a limit request needs a holder (the run attempt that takes the limits)');
  const seen = new Set<string>();
  for (const spec of request.limits) {
    const where = `limit "${spec.name}" (key "${spec.key}")`;
    checkLimitName(spec.name);
    if (spec.rate === undefined && spec.concurrency === undefined) {
      throw new InvalidLimitError(`${where} has neither a rate nor a concurrency; give it one or both`);
    }
    if (spec.rate !== undefined) {
      const { count, perMs, burst } = spec.rate;
      if (!(Number.isFinite(count) && count > 0)) throw new InvalidLimitError(`${where}: rate count must be a positive number, got ${count}`);
      if (!(Number.isFinite(perMs) && perMs > 0)) throw new InvalidLimitError(`${where}: rate period must be a positive number of ms, got ${perMs}`);
      if (!(Number.isInteger(burst) && burst >= 1)) throw new InvalidLimitError(`${where}: burst must be a whole number of at least 1, got ${burst}`);
    }
    if (spec.concurrency !== undefined) {
      if (!(Number.isInteger(spec.concurrency) && spec.concurrency >= 1)) {
        throw new InvalidLimitError(`${where}: concurrency must be a whole number of at least 1, got ${spec.concurrency}`);
      }
      if (!(Number.isFinite(request.ttlMs) && request.ttlMs > 0)) {
        throw new InvalidLimitError(`${where}: a concurrency slot needs a positive ttlMs, got ${request.ttlMs}`);
      }
    }
    const id = bucketId(spec);
    if (seen.has(id)) throw new InvalidLimitError(`${where} is named twice in one request; name each bucket once`);
    seen.add(id);
  }
}

/** @throws {InvalidLimitError} when `name` is empty or holds a `#`. */
export function checkLimitName(name: string): void {
  if (name === '' || name.includes('#')) throw new InvalidLimitError(`limit name "${name}" must be non-empty and hold no "#"`);
}

/** One string per bucket (name has no `#`, so `name#key` is unambiguous). */
export function bucketId(ref: LimitRef): string {
  return `${ref.name}#${ref.key}`;
}
