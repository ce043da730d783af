/**
 * Limits in the SQLite store file: the whole limit contract on a real file, the schema step that
 * adds them to an existing store, and what a closed store answers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../core/adapters/sqlite/store.js';
import { StoreError } from '../../core/errors.js';
import { describeLimitStoreContract } from '../contract/limit-store-contract.js';

describeLimitStoreContract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ujr-limits-contract-'));
  const store = SqliteStore.open(join(dir, 'ujr.db'));
  return {
    limits: store.limits,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SQLite limits', () => {
  let dir: string;
  let path: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ujr-limits-'));
    path = join(dir, 'ujr.db');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const spec = { name: 'api', key: 'cred-1', rate: { count: 10, perMs: 1000, burst: 2 } };

  it('adds the limit table to a version 6 file, whose other data stays', async () => {
    const before = SqliteStore.open(path);
    await before.setState('collector-a', 'cursor', 42);
    await before.close();
    const raw = new Database(path);
    raw.exec('DROP TABLE limit_buckets');
    raw.pragma('user_version = 6');
    raw.close();

    const upgraded = SqliteStore.open(path);
    try {
      const grant = await upgraded.limits.acquireLimits({ holder: 'h', ttlMs: 1000, limits: [spec] }, 1000);
      expect(grant.granted).toBe(true);
      expect(await upgraded.getState('collector-a', 'cursor')).toBe(42);
    } finally {
      await upgraded.close();
    }
    const check = new Database(path, { readonly: true });
    try {
      expect(check.pragma('user_version', { simple: true })).toBe(10);
    } finally {
      check.close();
    }
  });

  it('moves the slot holders of a version 8 file into rows of their own: a held slot stays held', async () => {
    const before = SqliteStore.open(path);
    await before.close();
    const raw = new Database(path);
    raw.exec('DROP TABLE limit_holders');
    raw
      .prepare("INSERT INTO limit_buckets (name, key, updated_at, holders, concurrency, granted) VALUES ('host', 'x', 1000, ?, 1, 1)")
      .run(JSON.stringify({ 'run-1': 61_000 }));
    raw.pragma('user_version = 8');
    raw.close();

    const upgraded = SqliteStore.open(path);
    try {
      const refused = await upgraded.limits.acquireLimits({ holder: 'run-2', ttlMs: 1000, limits: [{ name: 'host', key: 'x', concurrency: 1 }] }, 2000);
      expect(refused).toMatchObject({ granted: false, retryAt: 61_000, waitingOn: { reason: 'concurrency' } });
      expect((await upgraded.limits.listLimitStates(2000))[0]).toMatchObject({ name: 'host', key: 'x', held: 1, granted: 1 });
      await upgraded.limits.releaseLimits({ holder: 'run-1', slots: [{ name: 'host', key: 'x' }], expiresAt: 61_000 }, 3000);
      expect((await upgraded.limits.acquireLimits({ holder: 'run-2', ttlMs: 1000, limits: [{ name: 'host', key: 'x', concurrency: 1 }] }, 3000)).granted).toBe(true);
    } finally {
      await upgraded.close();
    }
    const check = new Database(path, { readonly: true });
    try {
      expect(check.prepare('SELECT holders FROM limit_buckets').pluck().all()).toEqual(['{}']);
      expect(check.prepare('SELECT holder FROM limit_holders').pluck().all()).toEqual(['run-2']);
    } finally {
      check.close();
    }
  });

  it('keeps bucket levels and slots across close and reopen (another process sees them)', async () => {
    const first = SqliteStore.open(path);
    await first.limits.acquireLimits({ holder: 'a', ttlMs: 60_000, limits: [spec, { name: 'host', key: 'x', concurrency: 1 }] }, 1000);
    await first.limits.acquireLimits({ holder: 'b', ttlMs: 60_000, limits: [spec] }, 1000);
    await first.close();

    const second = SqliteStore.open(path);
    try {
      const refused = await second.limits.acquireLimits({ holder: 'c', ttlMs: 60_000, limits: [spec] }, 1000);
      const slotTaken = await second.limits.acquireLimits({ holder: 'c', ttlMs: 60_000, limits: [{ name: 'host', key: 'x', concurrency: 1 }] }, 1000);
      expect(refused).toMatchObject({ granted: false, retryAt: 1100, waitingOn: { reason: 'rate' } });
      expect(slotTaken).toMatchObject({ granted: false, retryAt: 61_000, waitingOn: { reason: 'concurrency' } });
    } finally {
      await second.close();
    }
  });

  it('answers a closed store with a StoreError that says to open it again', async () => {
    const store = SqliteStore.open(path);
    await store.close();

    await expect(store.limits.acquireLimits({ holder: 'h', ttlMs: 1000, limits: [spec] }, 1000)).rejects.toThrow(StoreError);
    await expect(store.limits.listLimitStates(1000)).rejects.toThrow(/closed/);
  });
});
