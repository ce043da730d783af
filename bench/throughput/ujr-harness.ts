/**
 * What the ujr measurements share: the SQLite store as they open it (a fresh file in a temp
 * folder, the requested durability if `SqliteStore.open` offers it, and a wrapper that counts the
 * store calls that each run one SQLite transaction; the core is not touched), the runner options
 * of `ujr run`, and a logger.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore, type SqliteOpenOptions } from '../../core/adapters/sqlite/store.js';
import type { LeaseRequest, Store, WriteBatch } from '../../core/ports/store.js';
import type { Logger } from '../../core/types.js';
import type { Durability } from './protocol.js';

/** The CLI's defaults for `ujr run` (core/cli/main.ts). */
export const CLI_DEFAULTS = { graceMs: 10_000, leaseTtlMs: 30_000, retentionMs: 30 * 86_400_000 } as const;

/** The runner's own warnings and errors go to stderr; nothing else is printed. */
export const stderrLog: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: (message) => console.error(`runner: ${message}`),
  error: (message) => console.error(`runner: ${message}`),
};

export interface StoreCounts {
  commits: number;
  leaseCalls: number;
  runWrites: number;
}

export interface BenchStore {
  /** The store to give the runner: counts its calls. */
  store: Store;
  /** The store itself, for closing and checking. */
  sqlite: SqliteStore;
  counts: StoreCounts;
  /** What the store really runs with. */
  durability: Durability;
  notes: string[];
  dir: string;
  /** Size of the db and -wal files now. */
  fileBytes(): number;
  /** Closes the store and removes the folder. */
  dispose(): Promise<void>;
}

/**
 * Opens a store on a fresh file. `SqliteStore.open` is asked for `durability` through a getter:
 * when it never reads the option (no such option yet), the run is reported `normal` with a note.
 */
export function openBenchStore(wanted: Durability): BenchStore {
  const dir = mkdtempSync(join(tmpdir(), 'ujr-bench-'));
  const path = join(dir, 'ujr.db');
  let read = false;
  const options: SqliteOpenOptions & { readonly durability?: Durability } = {
    get durability() {
      read = true;
      return wanted;
    },
  };
  const sqlite = SqliteStore.open(path, options);
  const notes: string[] = [];
  let durability = wanted;
  if (wanted === 'full' && !read) {
    durability = 'normal';
    notes.push('SqliteStore.open has no durability option: ran with its synchronous=NORMAL');
  }
  const counts: StoreCounts = { commits: 0, leaseCalls: 0, runWrites: 0 };
  const commit = (batch: WriteBatch) => {
    counts.commits += 1;
    for (const group of batch.fenced ?? []) counts.runWrites += group.runs?.length ?? 0;
    return sqlite.commit(batch);
  };
  const acquireLeases = (requests: LeaseRequest[], now: number) => {
    counts.leaseCalls += 1;
    return sqlite.acquireLeases(requests, now);
  };
  const store = new Proxy<Store>(sqlite, {
    get(target, property) {
      if (property === 'commit') return commit;
      if (property === 'acquireLeases') return acquireLeases;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value.bind(target) as unknown) : value;
    },
  });
  const size = (file: string) => {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  };
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.once('SIGTERM', () => {
    cleanup();
    process.exit(143);
  });
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  return {
    store,
    sqlite,
    counts,
    durability,
    notes,
    dir,
    fileBytes: () => size(path) + size(`${path}-wal`),
    async dispose() {
      try {
        await sqlite.close();
      } finally {
        cleanup();
      }
    },
  };
}
