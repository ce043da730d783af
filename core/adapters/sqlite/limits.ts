/**
 * Limits in the SQLite store file (table `limit_buckets`, schema version 7): one row per bucket,
 * its slot holders as a JSON object. Every decision reads the rows it needs and writes them back
 * in one `BEGIN IMMEDIATE` transaction, which holds the file's write lock from its first read, so
 * the runner processes sharing the file take from each bucket one at a time and never over-grant.
 * It uses the store's own connection (`SqliteStore.limits`).
 */
import type Database from 'better-sqlite3';
import { StoreError } from '../../errors.js';
import { byBucket, decideAcquire, decideBackoff, decideRelease, decideRenew, describeBucket, type BucketState } from '../../ports/limit-buckets.js';
import {
  checkLimitName,
  checkLimitRequest,
  type LimitGrant,
  type LimitPermit,
  type LimitRef,
  type LimitRequest,
  type LimitState,
  type LimitStore,
} from '../../ports/limits.js';

interface BucketRow {
  name: string;
  key: string;
  tokens: number | null;
  updated_at: number;
  blocked_until: number;
  holders: string;
  rate_count: number | null;
  rate_per_ms: number | null;
  rate_burst: number | null;
  concurrency: number | null;
  granted: number;
  refused: number;
  throttled_ms: number;
}

type BucketParams = [
  name: string,
  key: string,
  tokens: number | null,
  updatedAt: number,
  blockedUntil: number,
  holders: string,
  rateCount: number | null,
  ratePerMs: number | null,
  rateBurst: number | null,
  concurrency: number | null,
  granted: number,
  refused: number,
  throttledMs: number,
];

/** The slot holders of a row, checked by hand: a zod parse of the object was a fifth of an acquire. */
function parseHolders(text: string): Record<string, number> | undefined {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  for (const expiresAt of Object.values(value)) if (typeof expiresAt !== 'number') return undefined;
  return value as Record<string, number>;
}

/** Runs `fn` against the database, turning what SQLite throws into a `StoreError` (the store's `exec`). */
export type SqliteRunner = <T>(what: string, fn: () => T) => Promise<T>;

/**
 * The SQLite {@link LimitStore}, over a connection the store opened and migrated.
 *
 * @example
 * ```ts
 * const store = SqliteStore.open('.ujr/ujr.db');
 * const grant = await store.limits.acquireLimits(
 *   { holder: 'run-1', ttlMs: 30_000, limits: [{ name: 'api', key: 'cred-1', rate: { count: 10, perMs: 1000, burst: 10 } }] },
 *   Date.now(),
 * );
 * ```
 */
export class SqliteLimitStore implements LimitStore {
  private readonly selectBucket: Database.Statement<[string, string], BucketRow>;
  private readonly selectBuckets: Database.Statement<[], BucketRow>;
  private readonly upsertBucket: Database.Statement<BucketParams>;
  private readonly acquireTx: (request: LimitRequest, now: number) => LimitGrant;
  private readonly renewTx: (permit: LimitPermit, ttlMs: number, now: number) => boolean;
  private readonly releaseTx: (permit: LimitPermit) => void;
  private readonly backoffTx: (ref: LimitRef, untilMs: number, now: number) => void;

  constructor(
    db: Database.Database,
    private readonly run: SqliteRunner,
  ) {
    this.selectBucket = db.prepare('SELECT * FROM limit_buckets WHERE name = ? AND key = ?');
    this.selectBuckets = db.prepare('SELECT * FROM limit_buckets ORDER BY name, key');
    this.upsertBucket = db.prepare(`
      INSERT INTO limit_buckets (name, key, tokens, updated_at, blocked_until, holders, rate_count, rate_per_ms, rate_burst, concurrency, granted, refused, throttled_ms)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (name, key) DO UPDATE SET
        tokens = excluded.tokens, updated_at = excluded.updated_at, blocked_until = excluded.blocked_until,
        holders = excluded.holders, rate_count = excluded.rate_count, rate_per_ms = excluded.rate_per_ms,
        rate_burst = excluded.rate_burst, concurrency = excluded.concurrency, granted = excluded.granted,
        refused = excluded.refused, throttled_ms = excluded.throttled_ms`);

    const acquire = db.transaction((request: LimitRequest, now: number): LimitGrant => {
      const decision = decideAcquire(request, request.limits.map((spec) => this.read(spec)), now);
      if (decision.granted) request.limits.forEach((spec, index) => this.write(spec, decision.next[index]));
      else this.write(request.limits[decision.index] as LimitRef, decision.next);
      return decision.grant;
    });
    this.acquireTx = (request, now) => acquire.immediate(request, now);

    const renew = db.transaction((permit: LimitPermit, ttlMs: number, now: number): boolean => {
      let all = true;
      for (const slot of permit.slots) {
        const next = decideRenew(this.read(slot), permit.holder, ttlMs, now);
        if (next) this.write(slot, next);
        else all = false;
      }
      return all;
    });
    this.renewTx = (permit, ttlMs, now) => renew.immediate(permit, ttlMs, now);

    const release = db.transaction((permit: LimitPermit): void => {
      for (const slot of permit.slots) this.write(slot, decideRelease(this.read(slot), permit.holder));
    });
    this.releaseTx = (permit) => release.immediate(permit);

    const backoff = db.transaction((ref: LimitRef, untilMs: number, now: number): void => {
      this.write(ref, decideBackoff(this.read(ref), untilMs, now));
    });
    this.backoffTx = (ref, untilMs, now) => backoff.immediate(ref, untilMs, now);
  }

  async acquireLimits(request: LimitRequest, now: number): Promise<LimitGrant> {
    checkLimitRequest(request);
    return this.run('acquiring limits', () => this.acquireTx(request, now));
  }

  renewLimits(permit: LimitPermit, ttlMs: number, now: number): Promise<boolean> {
    return this.run('renewing limit slots', () => this.renewTx(permit, ttlMs, now));
  }

  releaseLimits(permit: LimitPermit, _now: number): Promise<void> {
    return this.run('releasing limit slots', () => this.releaseTx(permit));
  }

  async backoffLimit(name: string, key: string, untilMs: number, now: number): Promise<void> {
    checkLimitName(name);
    return this.run('backing off a limit', () => this.backoffTx({ name, key }, untilMs, now));
  }

  listLimitStates(now: number): Promise<LimitState[]> {
    return this.run('listing limits', () =>
      this.selectBuckets
        .all()
        .map((row) => describeBucket({ name: row.name, key: row.key }, rowToBucket(row), now))
        .sort(byBucket),
    );
  }

  private read(ref: LimitRef): BucketState | undefined {
    const row = this.selectBucket.get(ref.name, ref.key);
    return row ? rowToBucket(row) : undefined;
  }

  private write(ref: LimitRef, state: BucketState | undefined): void {
    if (!state) return;
    this.upsertBucket.run(
      ref.name,
      ref.key,
      state.tokens ?? null,
      state.updatedAt,
      state.blockedUntil,
      JSON.stringify(state.holders),
      state.rate?.count ?? null,
      state.rate?.perMs ?? null,
      state.rate?.burst ?? null,
      state.concurrency ?? null,
      state.granted,
      state.refused,
      state.throttledMs,
    );
  }
}

function rowToBucket(row: BucketRow): BucketState {
  const holders = parseHolders(row.holders);
  if (!holders) {
    throw new StoreError(`limit bucket ${row.name}/${row.key} has malformed slot holders (${row.holders}); delete its row from limit_buckets to reset it`);
  }
  const state: BucketState = {
    updatedAt: row.updated_at,
    blockedUntil: row.blocked_until,
    holders,
    granted: row.granted,
    refused: row.refused,
    throttledMs: row.throttled_ms,
  };
  if (row.tokens !== null) state.tokens = row.tokens;
  if (row.rate_count !== null && row.rate_per_ms !== null && row.rate_burst !== null) {
    state.rate = { count: row.rate_count, perMs: row.rate_per_ms, burst: row.rate_burst };
  }
  if (row.concurrency !== null) state.concurrency = row.concurrency;
  return state;
}
