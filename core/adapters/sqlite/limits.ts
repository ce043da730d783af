/**
 * Limits in the SQLite store file: one row per bucket (table `limit_buckets`, schema version 7)
 * and one per slot holder (`limit_holders`, version 9). Every decision reads the rows it needs and
 * writes back what changed in one `BEGIN IMMEDIATE` transaction, which holds the file's write lock
 * from its first read, so the runner processes sharing the file take from each bucket one at a
 * time and never over-grant. It uses the store's own connection (`SqliteStore.limits`).
 */
import type Database from 'better-sqlite3';
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

interface HolderRow {
  holder: string;
  expires_at: number;
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
  private readonly selectHolders: Database.Statement<[string, string], HolderRow>;
  private readonly selectAllHolders: Database.Statement<[], HolderRow & { name: string; key: string }>;
  private readonly upsertHolder: Database.Statement<[string, string, string, number]>;
  private readonly deleteHolder: Database.Statement<[string, string, string]>;
  private readonly acquireTx: (request: LimitRequest, now: number) => LimitGrant;
  private readonly renewTx: (permit: LimitPermit, ttlMs: number, now: number) => boolean;
  private readonly releaseTx: (permits: readonly LimitPermit[]) => void;
  private readonly acquireManyTx: (requests: readonly LimitRequest[], now: number) => LimitGrant[];
  private readonly backoffTx: (ref: LimitRef, untilMs: number, now: number) => void;

  constructor(
    db: Database.Database,
    private readonly run: SqliteRunner,
  ) {
    this.selectBucket = db.prepare('SELECT * FROM limit_buckets WHERE name = ? AND key = ?');
    this.selectBuckets = db.prepare('SELECT * FROM limit_buckets ORDER BY name, key');
    this.selectHolders = db.prepare('SELECT holder, expires_at FROM limit_holders WHERE name = ? AND key = ?');
    this.selectAllHolders = db.prepare('SELECT name, key, holder, expires_at FROM limit_holders');
    this.upsertHolder = db.prepare('INSERT INTO limit_holders (name, key, holder, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (name, key, holder) DO UPDATE SET expires_at = excluded.expires_at');
    this.deleteHolder = db.prepare('DELETE FROM limit_holders WHERE name = ? AND key = ? AND holder = ?');
    this.upsertBucket = db.prepare(`
      INSERT INTO limit_buckets (name, key, tokens, updated_at, blocked_until, holders, rate_count, rate_per_ms, rate_burst, concurrency, granted, refused, throttled_ms)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (name, key) DO UPDATE SET
        tokens = excluded.tokens, updated_at = excluded.updated_at, blocked_until = excluded.blocked_until,
        holders = excluded.holders, rate_count = excluded.rate_count, rate_per_ms = excluded.rate_per_ms,
        rate_burst = excluded.rate_burst, concurrency = excluded.concurrency, granted = excluded.granted,
        refused = excluded.refused, throttled_ms = excluded.throttled_ms`);

    const decide = (request: LimitRequest, now: number): LimitGrant => {
      const decision = decideAcquire(request, request.limits.map((spec) => this.read(spec)), now);
      if (decision.granted) request.limits.forEach((spec, index) => this.write(spec, decision.next[index]));
      else this.write(request.limits[decision.index] as LimitRef, decision.next);
      return decision.grant;
    };
    const acquire = db.transaction((request: LimitRequest, now: number): LimitGrant => {
      this.holdersRead.clear();
      return decide(request, now);
    });
    this.acquireTx = (request, now) => acquire.immediate(request, now);
    const acquireMany = db.transaction((requests: readonly LimitRequest[], now: number): LimitGrant[] => {
      this.holdersRead.clear();
      return requests.map((request) => decide(request, now));
    });
    this.acquireManyTx = (requests, now) => acquireMany.immediate(requests, now);

    const renew = db.transaction((permit: LimitPermit, ttlMs: number, now: number): boolean => {
      this.holdersRead.clear();
      let all = true;
      for (const slot of permit.slots) {
        const next = decideRenew(this.read(slot), permit.holder, ttlMs, now);
        if (next) this.write(slot, next);
        else all = false;
      }
      return all;
    });
    this.renewTx = (permit, ttlMs, now) => renew.immediate(permit, ttlMs, now);

    const release = db.transaction((permits: readonly LimitPermit[]): void => {
      this.holdersRead.clear();
      for (const permit of permits) for (const slot of permit.slots) this.write(slot, decideRelease(this.read(slot), permit.holder));
    });
    this.releaseTx = (permits) => release.immediate(permits);

    const backoff = db.transaction((ref: LimitRef, untilMs: number, now: number): void => {
      this.holdersRead.clear();
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
    return this.run('releasing limit slots', () => this.releaseTx([permit]));
  }

  async acquireMany(requests: readonly LimitRequest[], now: number): Promise<LimitGrant[]> {
    for (const request of requests) checkLimitRequest(request);
    return this.run('acquiring limits', () => this.acquireManyTx(requests, now));
  }

  releaseMany(permits: readonly LimitPermit[], _now: number): Promise<void> {
    return this.run('releasing limit slots', () => this.releaseTx(permits));
  }

  async backoffLimit(name: string, key: string, untilMs: number, now: number): Promise<void> {
    checkLimitName(name);
    return this.run('backing off a limit', () => this.backoffTx({ name, key }, untilMs, now));
  }

  listLimitStates(now: number): Promise<LimitState[]> {
    return this.run('listing limits', () => {
      const holders = new Map<string, Record<string, number>>();
      for (const row of this.selectAllHolders.all()) {
        const id = `${row.name}#${row.key}`;
        holders.set(id, { ...holders.get(id), [row.holder]: row.expires_at });
      }
      return this.selectBuckets
        .all()
        .map((row) => describeBucket({ name: row.name, key: row.key }, rowToBucket(row, holders.get(`${row.name}#${row.key}`) ?? {}), now))
        .sort(byBucket);
    });
  }

  /** The holder rows of each bucket as this transaction read or wrote them (cleared as each begins). */
  private readonly holdersRead = new Map<string, Record<string, number>>();

  private read(ref: LimitRef): BucketState | undefined {
    const row = this.selectBucket.get(ref.name, ref.key);
    if (!row) return undefined;
    const holders = this.holdersOf(ref);
    this.holdersRead.set(bucketId(ref), holders);
    return rowToBucket(row, { ...holders });
  }

  private holdersOf(ref: LimitRef): Record<string, number> {
    const holders: Record<string, number> = {};
    for (const row of this.selectHolders.all(ref.name, ref.key)) holders[row.holder] = row.expires_at;
    return holders;
  }

  /** Writes the bucket row, and of its holder rows only those that changed. */
  private write(ref: LimitRef, state: BucketState | undefined): void {
    if (!state) return;
    const before = this.holdersRead.get(bucketId(ref)) ?? this.holdersOf(ref);
    for (const holder of Object.keys(before)) if (!(holder in state.holders)) this.deleteHolder.run(ref.name, ref.key, holder);
    for (const [holder, expiresAt] of Object.entries(state.holders)) if (before[holder] !== expiresAt) this.upsertHolder.run(ref.name, ref.key, holder, expiresAt);
    this.holdersRead.set(bucketId(ref), { ...state.holders });
    this.upsertBucket.run(
      ref.name,
      ref.key,
      state.tokens ?? null,
      state.updatedAt,
      state.blockedUntil,
      '{}',
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

function rowToBucket(row: BucketRow, holders: Record<string, number>): BucketState {
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
