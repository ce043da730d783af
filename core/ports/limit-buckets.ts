/**
 * The bucket arithmetic every limit store applies, in one place (as ./fencing.ts is for leases):
 * token refill, grants all or nothing, slots with expiry, back-off. Adapters read the buckets a
 * request names, call these pure functions with the same `now`, and write the states they return
 * atomically (one SQLite transaction; DynamoDB writes conditioned on the versions read).
 */
import type { LimitGrant, LimitPermit, LimitRef, LimitRequest, LimitSpec, LimitState, LimitWaitReason, RateSpec } from './limits.js';

/** Float slack: a level within this of 1 counts as a whole token (refills are sums of fractions). */
const EPSILON = 1e-9;

/** A bucket as stored. */
export interface BucketState {
  /** Token level as of `updatedAt`; absent until the first grant or back-off (a new bucket is full). */
  tokens?: number;
  /** The latest `now` that wrote the bucket: refills count from here, never from an earlier clock. */
  updatedAt: number;
  /** No grant before this (a back-off); 0 when none ever was. */
  blockedUntil: number;
  /** Slot holders and when each slot expires. */
  holders: Record<string, number>;
  /** The definition of the latest grant, for `listLimitStates`. */
  rate?: RateSpec;
  concurrency?: number;
  granted: number;
  refused: number;
  throttledMs: number;
}

/** A bucket nobody used yet. */
export function newBucket(): BucketState {
  return { updatedAt: 0, blockedUntil: 0, holders: {}, granted: 0, refused: 0, throttledMs: 0 };
}

/** Tokens in the bucket at `now` under `rate`: refilled since `updatedAt`, capped at the burst. */
export function tokensAt(state: BucketState, rate: RateSpec, now: number): number {
  if (state.tokens === undefined) return rate.burst;
  const elapsed = Math.max(0, now - state.updatedAt);
  return Math.min(rate.burst, state.tokens + (elapsed * rate.count) / rate.perMs);
}

/** The holders whose slots have not expired at `now`. */
export function liveHolders(state: BucketState, now: number): Record<string, number> {
  return Object.fromEntries(Object.entries(state.holders).filter(([, expiresAt]) => expiresAt > now));
}

/** When a token will be there: the level's deficit at the refill rate, from `updatedAt` at the earliest. */
function tokenDueAt(state: BucketState, rate: RateSpec, now: number): number {
  const from = Math.max(now, state.updatedAt);
  const deficit = 1 - tokensAt(state, rate, from);
  return from + Math.max(0, Math.ceil((deficit * rate.perMs) / rate.count - EPSILON));
}

/** Why one bucket refuses `holder` at `now`, and until when; `undefined` when it grants. */
function refusal(spec: LimitSpec, state: BucketState, holder: string, now: number): { reason: LimitWaitReason; retryAt: number } | undefined {
  if (state.blockedUntil > now) {
    return { reason: 'backoff', retryAt: spec.rate ? Math.max(state.blockedUntil, tokenDueAt(state, spec.rate, now)) : state.blockedUntil };
  }
  if (spec.rate && tokensAt(state, spec.rate, now) < 1 - EPSILON) {
    return { reason: 'rate', retryAt: tokenDueAt(state, spec.rate, now) };
  }
  if (spec.concurrency !== undefined) {
    const live = liveHolders(state, now);
    const expiries = Object.values(live);
    if (live[holder] === undefined && expiries.length >= spec.concurrency) {
      return { reason: 'concurrency', retryAt: Math.min(...expiries) };
    }
  }
  return undefined;
}

/** What `acquireLimits` decided: the states to write (index-aligned with the request's limits) and the answer. */
export type AcquireDecision =
  | { granted: true; next: BucketState[]; grant: Extract<LimitGrant, { granted: true }> }
  /** `index`: the bucket named in `waitingOn`, whose `next` state only counts the refusal. */
  | { granted: false; index: number; next: BucketState; grant: Extract<LimitGrant, { granted: false }> };

/**
 * Decides a request against the buckets as read (`undefined`: no such bucket yet). Granted:
 * every bucket's next state (a token taken, the holder's slot set to `now + ttlMs`, expired slots
 * dropped, `granted` counted). Refused: nothing changes but the `refused` count of the bucket
 * that is free latest, which the answer names.
 */
export function decideAcquire(request: LimitRequest, states: readonly (BucketState | undefined)[], now: number): AcquireDecision {
  let worst: { index: number; reason: LimitWaitReason; retryAt: number } | undefined;
  request.limits.forEach((spec, index) => {
    const refused = refusal(spec, states[index] ?? newBucket(), request.holder, now);
    if (refused && (worst === undefined || refused.retryAt > worst.retryAt)) worst = { index, ...refused };
  });
  if (worst !== undefined) {
    const spec = request.limits[worst.index] as LimitSpec;
    const state = states[worst.index] ?? newBucket();
    return {
      granted: false,
      index: worst.index,
      next: { ...state, refused: state.refused + 1 },
      grant: { granted: false, retryAt: worst.retryAt, waitingOn: { name: spec.name, key: spec.key, reason: worst.reason } },
    };
  }
  const expiresAt = now + request.ttlMs;
  const slots: LimitRef[] = [];
  const next = request.limits.map((spec, index): BucketState => {
    const state = states[index] ?? newBucket();
    const bucket: BucketState = { ...state, holders: { ...state.holders }, updatedAt: Math.max(state.updatedAt, now), granted: state.granted + 1 };
    if (spec.rate) {
      bucket.tokens = tokensAt(state, spec.rate, now) - 1;
      bucket.rate = { ...spec.rate };
    }
    if (spec.concurrency !== undefined) {
      bucket.holders = { ...liveHolders(state, now), [request.holder]: expiresAt };
      bucket.concurrency = spec.concurrency;
      slots.push({ name: spec.name, key: spec.key });
    }
    return bucket;
  });
  const permit: LimitPermit = { holder: request.holder, slots, expiresAt };
  return { granted: true, next, grant: { granted: true, permit } };
}

/** The bucket with the holder's slot extended to `now + ttlMs`; `undefined` when the slot is gone (expired or released). */
export function decideRenew(state: BucketState | undefined, holder: string, ttlMs: number, now: number): BucketState | undefined {
  const expiresAt = state?.holders[holder];
  if (state === undefined || expiresAt === undefined || expiresAt <= now) return undefined;
  return { ...state, holders: { ...state.holders, [holder]: now + ttlMs } };
}

/** The bucket without the holder's slot; `undefined` when it held none. */
export function decideRelease(state: BucketState | undefined, holder: string): BucketState | undefined {
  if (state?.holders[holder] === undefined) return undefined;
  const holders = { ...state.holders };
  delete holders[holder];
  return { ...state, holders };
}

/**
 * The bucket drained until `untilMs`: level 0 from then (so `updatedAt` moves there), the time
 * closed added to `throttledMs` (overlapping back-offs counted once). `undefined` when a back-off
 * at least as long is in force, or `untilMs` is not in the future.
 */
export function decideBackoff(state: BucketState | undefined, untilMs: number, now: number): BucketState | undefined {
  const bucket = state ?? newBucket();
  const closedFrom = Math.max(now, bucket.blockedUntil);
  if (untilMs <= closedFrom) return undefined;
  return {
    ...bucket,
    tokens: 0,
    updatedAt: Math.max(bucket.updatedAt, untilMs),
    blockedUntil: untilMs,
    throttledMs: bucket.throttledMs + (untilMs - closedFrom),
  };
}

/** A bucket as `listLimitStates` shows it at `now`. */
export function describeBucket(ref: LimitRef, state: BucketState, now: number): LimitState {
  const described: LimitState = {
    name: ref.name,
    key: ref.key,
    held: Object.keys(liveHolders(state, now)).length,
    granted: state.granted,
    refused: state.refused,
    throttledMs: state.throttledMs,
  };
  if (state.rate) {
    described.rate = { ...state.rate };
    described.tokens = state.blockedUntil > now ? 0 : tokensAt(state, state.rate, now);
  }
  if (state.concurrency !== undefined) described.concurrency = state.concurrency;
  if (state.blockedUntil > now) described.blockedUntil = state.blockedUntil;
  return described;
}

/** Orders states by name, then key (code units), as `listLimitStates` returns them. */
export function byBucket(a: LimitRef, b: LimitRef): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return 0;
}
