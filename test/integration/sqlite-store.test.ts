import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { SqliteStore } from '../../core/adapters/sqlite/store.js';
import { StoreError } from '../../core/errors.js';
import type { LogLine, RunRecord } from '../../core/types.js';
import { tempSqliteStore } from '../helpers/stores.js';
import { describeStoreContract } from '../contract/store-contract.js';
import { makeRun as baseRun, seed, T0 } from '../helpers/records.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RACER = fileURLToPath(new URL('../fixtures/lease-racer.ts', import.meta.url));

describeStoreContract('sqlite', () => tempSqliteStore('ujr-sqlite-contract-'));

/** A run that ended successfully, with a signature of its own. */
function makeRun(id: string, overrides: Partial<RunRecord> = {}): RunRecord {
  return baseRun(id, {
    signature: `collector-a/fetch/${id}`,
    status: 'succeeded',
    startedAt: T0 + 1,
    endedAt: T0 + 2,
    input: { id },
    result: { ok: true },
    ...overrides,
  });
}

const RacerLine = z.union([
  z.object({ ready: z.literal(true) }),
  z.object({ owner: z.string(), signature: z.string(), token: z.number() }),
  z.object({ owner: z.string(), trigger: z.string() }),
]);
type RacerLine = z.infer<typeof RacerLine>;

interface Racer {
  child: ChildProcess;
  ready: Promise<void>;
  lines: RacerLine[];
  exited: Promise<{ code: number | null; stderr: string }>;
}

describe('SqliteStore on a file', () => {
  let dir: string;
  let path: string;
  const open: SqliteStore[] = [];
  const children: ChildProcess[] = [];

  function openStore(): SqliteStore {
    const store = SqliteStore.open(path);
    open.push(store);
    return store;
  }

  function startRacer(owner: string, args: string[]): Racer {
    const child = spawn(process.execPath, ['--import', 'tsx', RACER, path, owner, ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const lines: RacerLine[] = [];
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    let onReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => {
      onReady = resolve;
    });
    if (!child.stdout) throw new Error('racer has no stdout');
    createInterface({ input: child.stdout }).on('line', (text) => {
      const line = RacerLine.parse(JSON.parse(text));
      if ('ready' in line) onReady();
      else lines.push(line);
    });
    const exited = once(child, 'close').then(([code]) => ({ code: typeof code === 'number' ? code : null, stderr }));
    // A racer that dies before it is ready must not leave the test waiting on `ready`.
    void exited.then(onReady);
    return { child, ready, lines, exited };
  }

  /** Starts the racers together once all have opened the store, and waits for them to exit. */
  async function race(store: SqliteStore, racers: Racer[]): Promise<void> {
    await Promise.all(racers.map((r) => r.ready));
    await store.setState('race', 'go', true);
    const exits = await Promise.all(racers.map((r) => r.exited));
    for (const exit of exits) expect(exit, exit.stderr).toMatchObject({ code: 0 });
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ujr-sqlite-'));
    path = join(dir, 'nested', 'dir', 'ujr.db');
  });

  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'close');
      }
    }
    for (const store of open.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the file and its parent directories, in WAL mode at the current schema version', async () => {
    const store = openStore();
    await store.close();

    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('user_version', { simple: true })).toBe(10);
    } finally {
      raw.close();
    }
  });

  it('keeps every kind of data across close and reopen', async () => {
    const first = openStore();
    const run = makeRun('r1', { progress: { current: 1, total: 2, updatedAt: T0 } });
    const line: LogLine = { runId: 'r1', seq: 1, at: T0, level: 'info', message: 'hello' };
    await first.acquireLeases(
      [{ signature: 'sig', owner: 'runner-1', ttlMs: 1000, runId: 'r1', instanceId: 'collector-a', task: 'fetch' }],
      T0,
    );
    await first.commit({
      fenced: [
        {
          fence: { signature: 'sig', owner: 'runner-1', token: 1 },
          runs: [run],
          logs: [line],
          checkpoint: { signature: 'sig', value: { cursor: 3 }, runId: 'r1', at: T0 },
        },
      ],
      triggers: [{ id: 't1', instanceId: 'collector-a', task: 'fetch', input: { page: 1 }, at: T0 }],
    });
    await first.setState('collector-a', 'cursor', { page: 9 });
    await first.setInstanceStatus('collector-a', { instanceId: 'collector-a', retiredAt: T0, retiredReason: 'done' });
    await first.close();

    const second = openStore();

    expect(await second.getRun('r1')).toStrictEqual(run);
    expect(await second.getLogs('r1')).toStrictEqual([line]);
    expect(await second.getCheckpoint('sig')).toStrictEqual({ signature: 'sig', value: { cursor: 3 }, runId: 'r1', at: T0 });
    expect(await second.getLease('sig')).toMatchObject({ owner: 'runner-1', token: 1, expiresAt: T0 + 1000 });
    expect(await second.getState('collector-a', 'cursor')).toStrictEqual({ page: 9 });
    expect(await second.getInstanceStatus('collector-a')).toStrictEqual({
      instanceId: 'collector-a',
      retiredAt: T0,
      retiredReason: 'done',
    });
    expect(await second.takeTriggers(5)).toStrictEqual([
      { id: 't1', instanceId: 'collector-a', task: 'fetch', input: { page: 1 }, at: T0 },
    ]);
  });

  it('shows writes of one connection to another open on the same file', async () => {
    const writer = openStore();
    const reader = openStore();

    await seed(writer, { runs: [makeRun('r1')] });

    expect((await reader.getRun('r1'))?.id).toBe('r1');
  });

  it('grants each lease to exactly one of two processes racing on the same file', async () => {
    const store = openStore();
    const racers = [startRacer('proc-a', ['leases', '200', '3']), startRacer('proc-b', ['leases', '200', '3'])];

    await race(store, racers);

    const grants = racers.flatMap((r) => r.lines).filter((l) => 'signature' in l);
    const bySignature = new Map<string, string[]>();
    for (const grant of grants) bySignature.set(grant.signature, [...(bySignature.get(grant.signature) ?? []), grant.owner]);
    expect(bySignature.size).toBe(200);
    expect([...bySignature.values()].filter((owners) => owners.length !== 1)).toStrictEqual([]);
    expect(grants.every((g) => g.token === 1)).toBe(true);
    for (const grant of grants) {
      expect(await store.getLease(grant.signature)).toMatchObject({ owner: grant.owner, token: 1 });
    }
  });

  it('hands each trigger to exactly one of two processes taking them from the same file', async () => {
    const store = openStore();
    const triggers = Array.from({ length: 300 }, (_, i) => ({ id: `t${i}`, instanceId: 'collector-a', at: T0 + i }));
    await store.commit({ triggers });
    const racers = [startRacer('proc-a', ['triggers', '3']), startRacer('proc-b', ['triggers', '3'])];

    await race(store, racers);

    const taken = racers.flatMap((r) => r.lines).flatMap((l) => ('trigger' in l ? [l.trigger] : []));
    expect(taken).toHaveLength(300);
    expect(new Set(taken).size).toBe(300);
    expect(await store.takeTriggers(1)).toStrictEqual([]);
  });

  it('commits a large batch whole: every run and log line is visible afterwards', async () => {
    const store = openStore();
    const runs = Array.from({ length: 2000 }, (_, i) => makeRun(`r${String(i).padStart(4, '0')}`, { queuedAt: T0 + i }));
    const logs = runs.flatMap((r) => [1, 2].map((seq): LogLine => ({ runId: r.id, seq, at: T0, level: 'info', message: `${r.id} ${seq}` })));

    await seed(store, { runs, logs });

    const listed = await store.listRuns({ limit: 5000 });
    expect(listed).toHaveLength(2000);
    expect(listed[0]).toStrictEqual(runs[1999]);
    expect(await store.getLogs('r1234')).toHaveLength(2);
  });

  it('writes nothing of a batch that fails part way, and reports a StoreError', async () => {
    const store = openStore();
    const broken = { runId: 'r1', seq: 1, at: T0, level: 'info', message: null } as unknown as LogLine;

    await store.acquireLeases([{ signature: 'sig', owner: 'runner-1', ttlMs: 1000, runId: 'r1', instanceId: 'collector-a', task: 'fetch' }], T0);
    const commit = store.commit({ fenced: [{ fence: { signature: 'sig', owner: 'runner-1', token: 1 }, runs: [makeRun('r0'), makeRun('r1')], logs: [broken] }] });

    await expect(commit).rejects.toThrow(StoreError);
    await expect(commit).rejects.toThrow(/committing a batch of writes/);
    expect(await store.listRuns({})).toStrictEqual([]);
  });

  it('prunes more runs than one prune transaction takes, and counts them all', async () => {
    const store = openStore();
    const runs = Array.from({ length: 1234 }, (_, i) =>
      makeRun(`old${String(i).padStart(4, '0')}`, { status: 'failed', signature: 'one-signature', queuedAt: T0 + i, endedAt: T0 + i }),
    );
    const kept = makeRun('latest-success', { signature: 'one-signature', queuedAt: T0, endedAt: T0 + 1 });
    await seed(store, { runs: [...runs, kept], logs: runs.map((r): LogLine => ({ runId: r.id, seq: 1, at: T0, level: 'info', message: 'x' })) });

    const removed = await store.pruneRuns(T0 + 10_000);

    expect(removed).toBe(1234);
    expect(ids(await store.listRuns({ limit: 5000 }))).toStrictEqual(['latest-success']);
    expect(await store.getLogs('old0999')).toStrictEqual([]);
  });

  it('reports a file that is not a database with a StoreError naming the file', async () => {
    const store = openStore();
    await store.close();
    await rm(path, { force: true });
    await rm(`${path}-wal`, { force: true });
    await rm(`${path}-shm`, { force: true });
    await writeFile(path, 'this is not a database, just text long enough to fill a header..........');

    expect(() => SqliteStore.open(path)).toThrow(StoreError);
    expect(() => SqliteStore.open(path)).toThrow(new RegExp(`${escapeRegExp(path)}.*not a ujr database`));
  });

  /** Takes a current file back to what an older ujr wrote: version 5, 4 or 3. */
  function downgrade(to: 3 | 4 | 5): void {
    const raw = new Database(path);
    raw.exec(`
      DROP TABLE task_heads;
      CREATE INDEX runs_instance_task_recency ON runs (instance_id, task, COALESCE(ended_at, queued_at), id);
    `);
    if (to < 5) raw.exec(`
      ALTER TABLE leases DROP COLUMN last_run_id;
      ALTER TABLE leases DROP COLUMN last_run_at;
      ALTER TABLE leases DROP COLUMN last_success_id;
      ALTER TABLE leases DROP COLUMN last_success_at;
      ALTER TABLE runs DROP COLUMN prior_run_id;
      CREATE INDEX runs_signature_recency ON runs (signature, COALESCE(ended_at, queued_at), id);
    `);
    if (to === 3) {
      raw.exec(`
        DROP INDEX runs_live;
        CREATE INDEX runs_signature ON runs (signature, queued_at, id);
        CREATE INDEX runs_status ON runs (status, queued_at, id);
      `);
    }
    raw.pragma(`user_version = ${to}`);
    raw.close();
  }

  function runIndexes(): { version: unknown; indexes: string[] } {
    const check = new Database(path, { readonly: true });
    try {
      const rows = check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs'").all() as { name: string }[];
      return { version: check.pragma('user_version', { simple: true }), indexes: rows.map((row) => row.name) };
    } finally {
      check.close();
    }
  }

  it('upgrades a version 3 file in place: its runs stay, found by status and by signature', async () => {
    const store = openStore();
    await seed(store, { runs: [makeRun('done-1'), makeRun('live-1', { status: 'running', endedAt: undefined })] });
    await store.close();
    downgrade(3);

    const upgraded = openStore();
    try {
      expect((await upgraded.listRuns({ status: 'succeeded' })).map((r) => r.id)).toEqual(['done-1']);
      expect((await upgraded.listRuns({ signature: 'collector-a/fetch/live-1' })).map((r) => r.id)).toEqual(['live-1']);
      expect((await upgraded.listRuns({ status: ['queued', 'running', 'retrying'] })).map((r) => r.id)).toEqual(['live-1']);
    } finally {
      await upgraded.close();
    }
    const { version, indexes } = runIndexes();
    expect(version).toBe(10);
    expect(indexes).toContain('runs_live');
    expect(indexes).not.toContain('runs_signature');
    expect(indexes).not.toContain('runs_status');
    expect(indexes).not.toContain('runs_signature_recency');
    expect(indexes).not.toContain('runs_instance_task_recency');
  });

  it('upgrades a version 4 file in place: every run of a signature is found, newest and newest success first, and pruning keeps that success', async () => {
    const store = openStore();
    const signature = 'collector-a/fetch/one';
    const history = [
      makeRun('a-failed', { signature, status: 'failed', queuedAt: T0, endedAt: T0 + 10 }),
      makeRun('b-succeeded', { signature, queuedAt: T0 + 20, endedAt: T0 + 30 }),
      makeRun('c-failed', { signature, status: 'failed', queuedAt: T0 + 40, endedAt: T0 + 50 }),
    ];
    await seed(store, { runs: [...history, makeRun('other')] });
    await store.close();
    downgrade(4);

    const upgraded = openStore();
    try {
      expect((await upgraded.lastRun({ signature }))?.id).toBe('c-failed');
      expect((await upgraded.lastRun({ signature, status: 'succeeded' }))?.id).toBe('b-succeeded');
      expect((await upgraded.lastRun({ signature, status: 'failed' }))?.id).toBe('c-failed');
      expect(ids(await upgraded.listRuns({ signature }))).toStrictEqual(['c-failed', 'b-succeeded', 'a-failed']);
      // A newer run after the upgrade joins the signature's chain.
      await seed(upgraded, { runs: [makeRun('d-succeeded', { signature, queuedAt: T0 + 60, endedAt: T0 + 70 })] }, T0 + 60);
      expect(ids(await upgraded.listRuns({ signature }))).toStrictEqual(['d-succeeded', 'c-failed', 'b-succeeded', 'a-failed']);

      expect(await upgraded.pruneRuns(T0 + 1_000)).toBe(3);
      expect(ids(await upgraded.listRuns({ signature }))).toStrictEqual(['d-succeeded']);
      expect((await upgraded.lastRun({ signature }))?.id).toBe('d-succeeded');
      expect((await upgraded.lastRun({ signature, status: 'succeeded' }))?.id).toBe('d-succeeded');
    } finally {
      await upgraded.close();
    }
    const { version, indexes } = runIndexes();
    expect(version).toBe(10);
    expect(indexes).not.toContain('runs_signature_recency');
  });

  it("upgrades a version 5 file in place: a task's newest run and newest success are found across its inputs, and pruning moves on to the newest left", async () => {
    const store = openStore();
    const at = (id: string, page: number, status: 'succeeded' | 'failed', endedAt: number) =>
      makeRun(id, { signature: `collector-a/fetch/page-${page}`, input: { page }, status, queuedAt: endedAt - 5, endedAt });
    await seed(store, {
      runs: [at('p1-ok', 1, 'succeeded', T0 + 10), at('p2-ok', 2, 'succeeded', T0 + 20), at('p3-failed', 3, 'failed', T0 + 30), makeRun('other-task', { task: 'parse', signature: 'collector-a/parse/x', endedAt: T0 + 40 })],
    });
    await store.close();
    downgrade(5);

    const upgraded = openStore();
    try {
      expect((await upgraded.lastRun({ instanceId: 'collector-a', task: 'fetch' }))?.id).toBe('p3-failed');
      expect((await upgraded.lastRun({ instanceId: 'collector-a', task: 'fetch', status: 'succeeded' }))?.id).toBe('p2-ok');
      expect((await upgraded.lastRun({ instanceId: 'collector-a', task: 'fetch', status: 'failed' }))?.id).toBe('p3-failed');

      // p3's failure goes (it ended before the cutoff); page 1 and 2 keep their successes.
      expect(await upgraded.pruneRuns(T0 + 35)).toBe(1);
      expect((await upgraded.lastRun({ instanceId: 'collector-a', task: 'fetch' }))?.id).toBe('p2-ok');
      await seed(upgraded, { runs: [at('p1-again', 1, 'succeeded', T0 + 50)] }, T0 + 45);
      expect((await upgraded.lastRun({ instanceId: 'collector-a', task: 'fetch' }))?.id).toBe('p1-again');
      expect((await upgraded.lastRun({ instanceId: 'collector-a', task: 'fetch', status: 'succeeded' }))?.id).toBe('p1-again');
    } finally {
      await upgraded.close();
    }
    const { version, indexes } = runIndexes();
    expect(version).toBe(10);
    expect(indexes).not.toContain('runs_instance_task_recency');
  });

  it("upgrades a version 9 file in place: a signature's and a task's newest run and newest success, and its chain of runs, follow queue time, not end time", async () => {
    const store = openStore();
    const signature = 'collector-a/fetch/one';
    const task = { instanceId: 'collector-a', task: 'fetch' } as const;
    await seed(store, {
      runs: [
        // Queued first, ended last of its signature (a stale run the sweeper ended late, say).
        makeRun('s-old', { signature, queuedAt: T0, endedAt: T0 + 500 }),
        makeRun('s-new', { signature, queuedAt: T0 + 100, endedAt: T0 + 200 }),
        makeRun('f-newest', { signature, status: 'failed', queuedAt: T0 + 300, endedAt: T0 + 310 }),
        // Another input of the task, ended last of all.
        makeRun('p2', { signature: 'collector-a/fetch/two', queuedAt: T0 + 50, endedAt: T0 + 1_000 }),
      ],
    });
    await store.close();
    // What version 9 kept: pointers and chain by end time, else queue time, then id.
    const raw = new Database(path);
    raw.exec(`
      UPDATE leases SET (last_run_id, last_run_at) = (
        SELECT id, COALESCE(ended_at, queued_at) FROM runs WHERE runs.signature = leases.signature
        ORDER BY COALESCE(ended_at, queued_at) DESC, id DESC LIMIT 1);
      UPDATE leases SET (last_success_id, last_success_at) = (
        SELECT id, COALESCE(ended_at, queued_at) FROM runs WHERE runs.signature = leases.signature AND status = 'succeeded'
        ORDER BY COALESCE(ended_at, queued_at) DESC, id DESC LIMIT 1);
      UPDATE task_heads SET (last_run_id, last_run_at) = (
        SELECT id, COALESCE(ended_at, queued_at) FROM runs WHERE runs.instance_id = task_heads.instance_id AND runs.task = task_heads.task
        ORDER BY COALESCE(ended_at, queued_at) DESC, id DESC LIMIT 1);
      UPDATE task_heads SET (last_success_id, last_success_at) = (
        SELECT id, COALESCE(ended_at, queued_at) FROM runs WHERE runs.instance_id = task_heads.instance_id AND runs.task = task_heads.task
          AND status = 'succeeded'
        ORDER BY COALESCE(ended_at, queued_at) DESC, id DESC LIMIT 1);
      UPDATE runs SET prior_run_id = (
        SELECT prior FROM (SELECT id, LAG(id) OVER (PARTITION BY signature ORDER BY COALESCE(ended_at, queued_at), id) AS prior FROM runs) AS chain
        WHERE chain.id = runs.id);
    `);
    raw.pragma('user_version = 9');
    raw.close();

    const upgraded = openStore();
    try {
      const check = new Database(path, { readonly: true });
      try {
        expect(check.prepare('SELECT last_run_id, last_run_at, last_success_id, last_success_at FROM leases WHERE signature = ?').get(signature)).toStrictEqual({
          last_run_id: 'f-newest',
          last_run_at: T0 + 300,
          last_success_id: 's-new',
          last_success_at: T0 + 100,
        });
        expect(check.prepare('SELECT last_run_id, last_run_at, last_success_id, last_success_at FROM task_heads WHERE instance_id = ? AND task = ?').get(task.instanceId, task.task)).toStrictEqual({
          last_run_id: 'f-newest',
          last_run_at: T0 + 300,
          last_success_id: 's-new',
          last_success_at: T0 + 100,
        });
        const chain = check.prepare('SELECT id, prior_run_id AS prior FROM runs WHERE signature = ? ORDER BY id').all(signature);
        expect(chain).toStrictEqual([
          { id: 'f-newest', prior: 's-new' },
          { id: 's-new', prior: 's-old' },
          { id: 's-old', prior: null },
        ]);
      } finally {
        check.close();
      }
      expect((await upgraded.lastRun({ signature }))?.id).toBe('f-newest');
      expect((await upgraded.lastRun({ signature, status: 'succeeded' }))?.id).toBe('s-new');
      expect((await upgraded.lastRun(task))?.id).toBe('f-newest');
      expect((await upgraded.lastRun({ ...task, status: 'succeeded' }))?.id).toBe('s-new');
      expect(ids(await upgraded.listRuns({ signature }))).toStrictEqual(['f-newest', 's-new', 's-old']);

      // A newer run after the upgrade joins the signature's chain.
      await seed(upgraded, { runs: [makeRun('g-live', { signature, status: 'queued', startedAt: undefined, endedAt: undefined, queuedAt: T0 + 400 })] }, T0 + 400);
      expect(ids(await upgraded.listRuns({ signature }))).toStrictEqual(['g-live', 'f-newest', 's-new', 's-old']);
      // s-old ended last but s-new is the newest success: s-old and the failure go, s-new stays.
      expect(await upgraded.pruneRuns(T0 + 1_000)).toBe(2);
      expect(ids(await upgraded.listRuns({ signature }))).toStrictEqual(['g-live', 's-new']);
      expect((await upgraded.lastRun({ signature, status: 'succeeded' }))?.id).toBe('s-new');
      expect((await upgraded.lastRun(task))?.id).toBe('g-live');
    } finally {
      await upgraded.close();
    }
    expect(runIndexes().version).toBe(10);
  });

  it('commits with synchronous NORMAL by default and FULL with durability full', async () => {
    const normal = SqliteStore.open(path);
    await normal.close();
    const full = SqliteStore.open(path, { durability: 'full' });
    try {
      // The pragma is per connection: read it through the store's own connection.
      const db = (full as unknown as { db: Database.Database }).db;
      expect(db.pragma('synchronous', { simple: true })).toBe(2);
    } finally {
      await full.close();
    }
    const again = SqliteStore.open(path);
    try {
      expect((again as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true })).toBe(1);
    } finally {
      await again.close();
    }
  });

  it('refuses a file written by a newer schema version', async () => {
    await openStore().close();
    const raw = new Database(path);
    raw.pragma('user_version = 99');
    raw.close();

    expect(() => SqliteStore.open(path)).toThrow(/newer than this ujr understands.*upgrade ujr/);
  });

  it('fails with a StoreError once closed', async () => {
    const store = openStore();
    await store.close();

    await expect(store.getRun('r1')).rejects.toThrow(StoreError);
    await expect(store.getRun('r1')).rejects.toThrow(/is closed/);
  });
});

function ids(runs: readonly RunRecord[]): string[] {
  return runs.map((r) => r.id);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
