/**
 * Opening the SQLite store from several processes, and losing it: real processes on real files.
 * - A new store appears whole (schema and WAL mode) or not at all, so commands and runners started
 *   together on a new home never fail with "database is locked" (issue 10, item 9).
 * - Only `ujr run` creates a store; other commands on a home without one exit 2 and create nothing.
 * - A runner whose store file is deleted or replaced stops within seconds and exits 1 (item 8).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../core/adapters/sqlite/store.js';
import { Sandbox, type Exit, type UjrProcess } from '../fixtures/cli/sandbox.js';
import { ProcessPool } from '../helpers/processes.js';
import { pollFor } from '../helpers/runner.js';

const OPENER = fileURLToPath(new URL('../fixtures/store-opener.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function expectExit(exit: Exit, code: number): void {
  expect(exit.code, `exit code ${exit.code}\n--- stdout ---\n${exit.stdout}\n--- stderr ---\n${exit.stderr}`).toBe(code);
}

function journalMode(path: string): unknown {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.pragma('journal_mode', { simple: true });
  } finally {
    db.close();
  }
}

let dir: string;
let pool: ProcessPool;
const sandboxes: Sandbox[] = [];

async function newSandbox(): Promise<Sandbox> {
  const sandbox = await Sandbox.create();
  sandboxes.push(sandbox);
  return sandbox;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ujr-store-open-'));
  pool = new ProcessPool();
});

afterEach(async () => {
  await pool.killAll();
  await Promise.all(sandboxes.splice(0).map((sandbox) => sandbox.dispose()));
  await rm(dir, { recursive: true, force: true });
});

describe('SqliteStore.open on a new file', () => {
  it('lets several processes create and open the same new store at the same moment, none failing as locked', async () => {
    // Prepare: 4 rounds of 4 openers, each round on its own new file, all lined up on one instant
    const rounds = [0, 1, 2, 3].map((round) => join(dir, `round-${round}`, 'ujr.db'));
    const goFile = join(dir, 'go');
    const openers = rounds.flatMap((path) => [0, 1, 2, 3].map(() => pool.start(OPENER, { STORE: path, GO: goFile })));
    await Promise.all(openers.map((opener) => pool.waitForOutput(opener, /^ready$/m)));

    // Act
    await writeFile(`${goFile}.tmp`, String(Date.now() + 200));
    await rename(`${goFile}.tmp`, goFile);
    const exits = await Promise.all(openers.map((opener) => opener.exited));

    // Assess
    for (const exit of exits) expect(exit.stdout, exit.stdout + exit.stderr).toMatch(/^ready\nok\n$/);
    for (const path of rounds) {
      expect(journalMode(path)).toBe('wal');
      expect(readdirSync(join(path, '..')).filter((name) => !name.startsWith('ujr.db'))).toEqual([]);
    }
  });

  it('waits for another connection holding the write lock of a file in rollback mode before switching it to WAL', async () => {
    // Prepare: an empty file (rollback mode), whose write lock another process holds for 500 ms
    const path = join(dir, 'ujr.db');
    await writeFile(path, '');
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `const db = new (require('better-sqlite3'))(process.argv[1]); db.exec('BEGIN IMMEDIATE'); console.log('locked');
         setTimeout(() => { db.exec('COMMIT'); db.close(); }, 500);`,
        path,
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.setEncoding('utf8').on('data', (chunk: string) => chunk.includes('locked') && resolve());
        holder.once('exit', () => reject(new Error('the lock holder exited before taking the lock')));
      });

      // Act: SQLite does not wait (busy handler) for the switch, which upgrades a read lock
      const started = Date.now();
      const store = SqliteStore.open(path);
      const waited = Date.now() - started;
      await store.close();

      // Assess
      expect(waited).toBeGreaterThanOrEqual(100);
      expect(journalMode(path)).toBe('wal');
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('with create: false, fails with StoreNotFoundError and creates neither the file nor its folder', () => {
    // Prepare
    const path = join(dir, 'missing', 'ujr.db');

    // Act
    const open = () => SqliteStore.open(path, { create: false });

    // Assess
    expect(open).toThrow(expect.objectContaining({ name: 'StoreNotFoundError', path }));
    expect(existsSync(join(dir, 'missing'))).toBe(false);
  });
});

describe('ujr commands started together on a new home', () => {
  it('never fail with "database is locked": the runner creates the store, the others see none (exit 2) or the whole store (exit 0)', async () => {
    for (let round = 0; round < 3; round++) {
      // Prepare
      const sandbox = await newSandbox();
      await sandbox.writeInstances([{ id: 'b', job: 'batch', params: { count: 2, ms: 10 } }]);

      // Act
      const [once, ...others] = await Promise.all([
        sandbox.run(['run', '--once']),
        sandbox.run(['status', '--json']),
        sandbox.run(['runs', '--json']),
        sandbox.run(['jobs', 'list', '--json']),
        sandbox.run(['trigger', 'b', 'work', '--input', '{"i":7}']),
      ]);

      // Assess
      for (const exit of [once, ...others]) expect(exit.stderr).not.toMatch(/locked/i);
      expectExit(once, 0);
      for (const exit of others) {
        if (exit.code === 2) expect(exit.stderr).toContain(`no ujr store at ${sandbox.databaseFile}: start the runner with "ujr run"`);
        else expectExit(exit, 0);
      }
    }
  });
});

describe('commands other than ujr run on a home without a store', () => {
  it('status, runs, logs, jobs list, trigger and ui exit 2 saying there is no store, and create nothing', async () => {
    // Prepare
    const sandbox = await newSandbox();
    await sandbox.writeInstances([{ id: 'b', job: 'batch', params: { count: 1 } }]);
    const commands = [['status'], ['runs'], ['logs', 'r1'], ['jobs', 'list'], ['trigger', 'b', 'work'], ['trigger', 'b'], ['ui', '--port', '0']];

    // Act
    const exits = await Promise.all(commands.map((command) => sandbox.run(command)));

    // Assess
    for (const exit of exits) {
      expectExit(exit, 2);
      expect(exit.stderr).toContain(`ujr: no ujr store at ${sandbox.databaseFile}: start the runner with "ujr run" (it creates the store), or pass --home <dir>`);
    }
    expect(existsSync(sandbox.home)).toBe(false);
  });

  it('jobs disable and enable edit the instances file without a store, and create none', async () => {
    // Prepare
    const sandbox = await newSandbox();
    await sandbox.writeInstances([{ id: 'b', job: 'batch', params: { count: 1 } }]);

    // Act
    const disable = await sandbox.run(['jobs', 'disable', 'b']);
    const disabled = (await sandbox.readInstances()).instances[0]?.enabled;
    const enable = await sandbox.run(['jobs', 'enable', 'b']);

    // Assess
    expectExit(disable, 0);
    expect(disabled).toBe(false);
    expectExit(enable, 0);
    expect((await sandbox.readInstances()).instances[0]?.enabled).toBe(true);
    expect(existsSync(sandbox.home)).toBe(false);
  });
});

describe('a store deleted or replaced under a running runner', () => {
  /** Starts `ujr run` on a task that hangs; resolves once the task started. */
  async function runningRunner(sandbox: Sandbox): Promise<UjrProcess> {
    await sandbox.writeInstances([{ id: 'h', job: 'hang', params: { ms: 60_000 } }]);
    const runner = sandbox.spawn('run', '--quiet', '--grace', '2000');
    await pollFor(async () => {
      if (!runner.running) throw new Error(`ujr run exited early:\n${runner.describe()}`);
      return (await sandbox.executions('h')).starts.length > 0 ? true : undefined;
    }, 20_000, 'the hang task to start');
    return runner;
  }

  it('stops a runner whose store file was deleted: exit 1 within seconds, naming the file and what to do', async () => {
    // Prepare
    const sandbox = await newSandbox();
    const runner = await runningRunner(sandbox);

    // Act
    await unlink(sandbox.databaseFile);
    const deletedAt = Date.now();
    const exit = await sandbox.waitExit(runner, 15_000);

    // Assess
    expectExit(exit, 1);
    expect(Date.now() - deletedAt).toBeLessThan(10_000);
    expect(exit.stderr).toContain(`ujr: the store ${sandbox.databaseFile} was deleted (or moved away) while this runner used it`);
    expect(exit.stderr).toContain('restart "ujr run" to create a new store');
  });

  it('stops a runner whose store file was replaced by another database: exit 1 within seconds, naming the file', async () => {
    // Prepare
    const sandbox = await newSandbox();
    const runner = await runningRunner(sandbox);
    const other = join(sandbox.dir, 'other.db');
    await SqliteStore.open(other).close();

    // Act
    await rename(other, sandbox.databaseFile);
    const replacedAt = Date.now();
    const exit = await sandbox.waitExit(runner, 15_000);

    // Assess
    expectExit(exit, 1);
    expect(Date.now() - replacedAt).toBeLessThan(10_000);
    expect(exit.stderr).toContain(`ujr: the store ${sandbox.databaseFile} was replaced by another file`);
  });
});
