/**
 * Shared limits (issue 15) on AWS: what the worker, the conductor and the scheduler (for long
 * tasks) do with the buckets a task takes. The buckets are named on the task (its message, or its
 * board entry) and resolved against the limits as configured at the time they are taken, so an
 * edit of a limit in the instances table applies from the next grant.
 *
 * A {@link LimitHold} is the buckets one attempt took: its concurrency slots are renewed with the
 * attempt's lease and released when it ends; `tctx.limits.backoff` and `RateLimitedError`
 * (`drainBuckets`) drain them for every task that takes them.
 */
import { toErrorInfo } from '../errors.js';
import type { RateLimitRequest } from '../engine/executor.js';
import type { LimitDefinition, LimitPermit, LimitRef, LimitSpec, LimitStore } from '../ports/limits.js';
import type { LogFields, Telemetry } from './ports.js';

export interface LimitHoldDeps {
  limits: LimitStore;
  telemetry: Telemetry;
  now: () => number;
}

/** The buckets `refs` name, as each limit is configured now; or the first one not configured any more. */
export function specsOf(
  refs: readonly LimitRef[],
  definitions: ReadonlyMap<string, LimitDefinition>,
): { ok: true; specs: LimitSpec[] } | { ok: false; missing: string } {
  const specs: LimitSpec[] = [];
  for (const { name, key } of refs) {
    const definition = definitions.get(name);
    if (!definition) return { ok: false, missing: name };
    specs.push({ name, key, ...(definition.rate ? { rate: definition.rate } : {}), ...(definition.concurrency !== undefined ? { concurrency: definition.concurrency } : {}) });
  }
  return { ok: true, specs };
}

/** Why a task cannot take limit `missing`, naming what is configured and what to do. */
export function notConfigured(where: { task: string; instanceId: string }, missing: string, definitions: ReadonlyMap<string, LimitDefinition>): string {
  const known = [...definitions.keys()];
  return `task "${where.task}" of instance "${where.instanceId}" takes limit "${missing}", which is no longer configured (known: ${known.length > 0 ? known.join(', ') : 'none'}); add it back to "limits" in the instances table`;
}

/** The permit of the slots `holder` was granted in `specs`' concurrency buckets (by whoever took them for it). */
export function permitOf(holder: string, specs: readonly LimitSpec[], expiresAt: number): LimitPermit {
  return { holder, slots: specs.filter((spec) => spec.concurrency !== undefined).map(({ name, key }) => ({ name, key })), expiresAt };
}

/** The limits one attempt took: the buckets as configured when it took them, and its permit. */
export class LimitHold {
  private released = false;

  constructor(
    private readonly deps: LimitHoldDeps,
    readonly specs: readonly LimitSpec[],
    readonly permit: LimitPermit,
    private readonly fields: LogFields,
  ) {}

  /** Renews the concurrency slots with the attempt's lease; a slot lost (expired, maybe taken) is logged and the task goes on. */
  renew(ttlMs: number): void {
    const { limits, now, telemetry } = this.deps;
    if (this.released || this.permit.slots.length === 0) return;
    limits.renewLimits(this.permit, ttlMs, now()).then(
      (ok) => {
        if (!ok) telemetry.log('warn', 'a concurrency slot of this task expired before it was renewed; the cap may be exceeded until the task ends', this.fields);
      },
      (error: unknown) => telemetry.log('warn', `could not renew the task's concurrency slots: ${toErrorInfo(error).message}; will try again at the next heartbeat`, this.fields),
    );
  }

  /** Gives back the concurrency slots (tokens are never given back); once. A failure is logged: the slots expire by themselves. */
  async release(): Promise<void> {
    const { limits, now, telemetry } = this.deps;
    if (this.released) return;
    this.released = true;
    if (this.permit.slots.length === 0) return;
    try {
      await limits.releaseLimits(this.permit, now());
    } catch (error) {
      telemetry.log('warn', `could not release the task's concurrency slots: ${toErrorInfo(error).message}; they free themselves when their lease period ends`, this.fields);
    }
  }

  /**
   * `tctx.limits.backoff(name, retryAfterMs)`: no task taking this attempt's buckets of limit
   * `name` starts before now + `retryAfterMs`, anywhere in the deployment.
   * @throws {Error} naming the limits the task takes, when it does not take `name`.
   */
  async backoff(task: string, name: string, retryAfterMs: number): Promise<void> {
    const { limits, now } = this.deps;
    const buckets = this.specs.filter((spec) => spec.name === name);
    if (buckets.length === 0) {
      const taken = [...new Set(this.specs.map((spec) => `"${spec.name}"`))];
      throw new Error(`tctx.limits.backoff: task "${task}" does not take limit "${name}" (it takes ${taken.length > 0 ? taken.join(', ') : 'none'}); add it to the task's limits`);
    }
    const at = now();
    await Promise.all(buckets.map((bucket) => limits.backoffLimit(bucket.name, bucket.key, at + retryAfterMs, at)));
  }
}

/**
 * The handler threw `RateLimitedError` at `at`: the buckets of `specs` of the limit it named (all
 * its rate limits, unnamed) back off for the Retry-After from then (so the time they are closed
 * is the API's, however late this write lands). Returns what to add to the log line: which limits
 * back off (nothing when the attempt holds none).
 */
export async function drainBuckets(
  deps: { limits?: LimitStore | undefined; telemetry: Telemetry },
  specs: readonly LimitSpec[],
  request: RateLimitRequest,
  at: number,
  fields: LogFields,
): Promise<string> {
  const { limits, telemetry } = deps;
  const buckets = specs.filter((spec) => (request.limit === undefined ? spec.rate !== undefined : spec.name === request.limit));
  if (!limits || buckets.length === 0) return '';
  const until = at + request.retryAfterMs;
  await Promise.all(
    buckets.map((bucket) =>
      limits.backoffLimit(bucket.name, bucket.key, until, at).catch((failed: unknown) => {
        telemetry.log('error', `could not back off limit "${bucket.name}": ${toErrorInfo(failed).message}`, fields);
      }),
    ),
  );
  return `; limit ${[...new Set(buckets.map((bucket) => `"${bucket.name}"`))].join(', ')} backs off until then for every task that takes it`;
}
