/** Retry policies and their backoff delays. */
import type { RetryPolicy } from './types.js';

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 3,
  backoffMs: 1_000,
  factor: 2,
  maxBackoffMs: 60_000,
  jitter: 0.2,
};

export function mergeRetry(...layers: (Partial<RetryPolicy> | undefined)[]): RetryPolicy {
  const policy = { ...DEFAULT_RETRY };
  for (const layer of layers) {
    if (layer) Object.assign(policy, stripUndefined(layer));
  }
  return policy;
}

/**
 * The delay before attempt `attempt + 1`, after `attempt` failed: exponential, capped, with the
 * jitter share of it drawn at random (`random` in [0, 1)).
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exponential = policy.backoffMs * policy.factor ** Math.max(0, attempt - 1);
  const capped = Math.min(policy.maxBackoffMs, exponential);
  const jitter = Math.min(1, Math.max(0, policy.jitter));
  return Math.round(capped * (1 - jitter) + capped * jitter * random());
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
