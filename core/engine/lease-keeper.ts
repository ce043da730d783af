/**
 * The lease keeper: renews the leases of every attempt the runner holds (on a period, and when a
 * handler heartbeats), checks a lease before a fenced write outside the journal, and sweeps the
 * store for runs whose holder died. It tells the runner when a lease was lost; what that does to
 * the attempt is the runner's.
 */
import type { Store, SweptRun } from '../ports/store.js';
import { fenceHolds } from '../ports/fencing.js';
import type { Attempt } from './attempt.js';

export interface LeaseKeeperHooks {
  /** The attempts whose leases are renewed. */
  held(): Iterable<Attempt>;
  /** The store refused to renew the attempt's lease, or a check found it gone. */
  lost(attempt: Attempt): void;
  storeError(error: unknown): void;
  /** A running attempt's limit slots expired before their renewal (another holder may have them). */
  permitLost?(attempt: Attempt): void;
}

export class LeaseKeeper {
  private renewing = false;

  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
    private readonly now: () => number,
    private readonly hooks: LeaseKeeperHooks,
  ) {}

  /** How often `renewAll` should run: three renewals per lease period. */
  get renewEveryMs(): number {
    return Math.max(10, Math.floor(this.ttlMs / 3));
  }

  /**
   * Renews every held lease in one store call (skipped while the previous call is out), and the
   * concurrency slots of shared limits the running attempts hold, which last a lease period too.
   */
  renewAll(): void {
    if (this.renewing) return;
    const attempts = [...this.hooks.held()];
    if (attempts.length === 0) return;
    this.renewing = true;
    const now = this.now();
    this.renewPermits(attempts, now);
    this.store
      .renewLeases(
        attempts.map((a) => a.lease),
        this.ttlMs,
        now,
      )
      .then(
        (results) => {
          results.forEach((ok, i) => {
            const attempt = attempts[i] as Attempt;
            if (ok) attempt.lastRenewal = now;
            else this.hooks.lost(attempt);
          });
        },
        (error: unknown) => this.hooks.storeError(error),
      )
      .finally(() => {
        this.renewing = false;
      });
  }

  /**
   * A permit that could not be renewed (its slot expired and may be someone else's now) is not
   * taken back from a running task: the log says the cap may be exceeded until it ends.
   */
  private renewPermits(attempts: readonly Attempt[], now: number): void {
    const limits = this.store.limits;
    if (!limits) return;
    for (const attempt of attempts) {
      const permit = attempt.permit;
      if (!permit || permit.slots.length === 0) continue;
      limits.renewLimits(permit, this.ttlMs, now).then(
        (ok) => {
          if (!ok) this.hooks.permitLost?.(attempt);
        },
        (error: unknown) => this.hooks.storeError(error),
      );
    }
  }

  /** A handler's heartbeat renews its lease, at most ten times per lease period. */
  heartbeat(attempt: Attempt): void {
    const now = this.now();
    if (now - attempt.lastRenewal < this.ttlMs / 10) return;
    attempt.lastRenewal = now;
    this.store.renewLeases([attempt.lease], this.ttlMs, now).then(
      ([ok]) => {
        if (ok === false) this.hooks.lost(attempt);
      },
      (error: unknown) => this.hooks.storeError(error),
    );
  }

  /**
   * Confirms the attempt's lease is still its own and unexpired (an expired lease may be taken
   * over at any moment, so a stalled holder writes nothing); reports it lost otherwise.
   */
  async check(attempt: Attempt): Promise<void> {
    if (attempt.lost) return;
    const lease = await this.store.getLease(attempt.lease.signature);
    if (!fenceHolds(lease, attempt.lease) || (lease?.expiresAt ?? 0) <= this.now()) this.hooks.lost(attempt);
  }

  /** Ends runs (of any runner on this store) whose lease expired without a final record. */
  async sweep(): Promise<SweptRun[]> {
    try {
      return await this.store.sweep(this.now());
    } catch (error) {
      this.hooks.storeError(error);
      return [];
    }
  }
}
