/**
 * Limits in memory, for tests and throwaway runs: one process, so every call is atomic by itself.
 * Same semantics as the durable adapters (the limit contract suite runs against all of them).
 */
import { byBucket, decideAcquire, decideBackoff, decideRelease, decideRenew, describeBucket, type BucketState } from '../../ports/limit-buckets.js';
import {
  bucketId,
  checkLimitName,
  checkLimitRequest,
  type LimitGrant,
  type LimitPermit,
  type LimitRef,
  type LimitRequest,
  type LimitState,
  type LimitStore,
} from '../../ports/limits.js';

/**
 * The in-memory {@link LimitStore}.
 *
 * @example
 * ```ts
 * const limits = new MemoryLimitStore();
 * const grant = await limits.acquireLimits({ holder: 'run-1', ttlMs: 30_000, limits: [{ name: 'api', key: '', concurrency: 2 }] }, Date.now());
 * ```
 */
export class MemoryLimitStore implements LimitStore {
  private readonly buckets = new Map<string, { ref: LimitRef; state: BucketState }>();

  acquireLimits(request: LimitRequest, now: number): Promise<LimitGrant> {
    return settle(() => {
      checkLimitRequest(request);
      return this.decide(request, now);
    });
  }

  acquireMany(requests: readonly LimitRequest[], now: number): Promise<LimitGrant[]> {
    return settle(() => {
      for (const request of requests) checkLimitRequest(request);
      return requests.map((request) => this.decide(request, now));
    });
  }

  releaseMany(permits: readonly LimitPermit[], now: number): Promise<void> {
    for (const permit of permits) void this.releaseLimits(permit, now);
    return Promise.resolve();
  }

  private decide(request: LimitRequest, now: number): LimitGrant {
    const decision = decideAcquire(request, request.limits.map((spec) => this.buckets.get(bucketId(spec))?.state), now);
    if (decision.granted) {
      request.limits.forEach((spec, index) => this.put(spec, decision.next[index]));
    } else {
      this.put(request.limits[decision.index] as LimitRef, decision.next);
    }
    return structuredClone(decision.grant);
  }

  renewLimits(permit: LimitPermit, ttlMs: number, now: number): Promise<boolean> {
    let all = true;
    for (const slot of permit.slots) {
      const next = decideRenew(this.buckets.get(bucketId(slot))?.state, permit.holder, ttlMs, now);
      if (next) this.put(slot, next);
      else all = false;
    }
    return Promise.resolve(all);
  }

  releaseLimits(permit: LimitPermit, _now: number): Promise<void> {
    for (const slot of permit.slots) {
      const next = decideRelease(this.buckets.get(bucketId(slot))?.state, permit.holder);
      if (next) this.put(slot, next);
    }
    return Promise.resolve();
  }

  backoffLimit(name: string, key: string, untilMs: number, now: number): Promise<void> {
    return settle(() => {
      checkLimitName(name);
      const next = decideBackoff(this.buckets.get(bucketId({ name, key }))?.state, untilMs, now);
      if (next) this.put({ name, key }, next);
    });
  }

  listLimitStates(now: number): Promise<LimitState[]> {
    return Promise.resolve([...this.buckets.values()].map(({ ref, state }) => describeBucket(ref, state, now)).sort(byBucket));
  }

  private put(ref: LimitRef, state: BucketState | undefined): void {
    if (state) this.buckets.set(bucketId(ref), { ref: { name: ref.name, key: ref.key }, state: structuredClone(state) });
  }
}

/** `fn`'s result as a promise, what it throws as a rejection (callers see one way to fail). */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}
