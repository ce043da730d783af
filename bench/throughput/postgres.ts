/**
 * A private PostgreSQL server for the graphile-worker peer of `npm run bench`: Debian's binaries,
 * a data directory in a temp folder, a unix socket in that folder and no TCP listener, so it
 * neither needs nor disturbs a system server. The server refuses to run as root: when the
 * benchmark runs as root, the folder is given to the `postgres` user and every server command
 * runs as that user. The server keeps PostgreSQL's defaults (fsync on, synchronous_commit on).
 */
import { execFile } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Debian's PostgreSQL 15 binaries; `UJR_BENCH_PG_BIN` names another folder. */
export const PG_BIN = process.env.UJR_BENCH_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** No usable PostgreSQL: the peer is skipped with this message. */
export class PostgresUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PostgresUnavailableError';
  }
}

/** A running private server. */
export interface PrivatePostgres {
  /** The temp folder holding data, socket and log. */
  readonly dir: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  /** `postgres://postgres@/<database>?host=<socket dir>&port=<port>` */
  url(database: string): string;
  createDatabase(name: string): Promise<void>;
  dropDatabase(name: string): Promise<void>;
  /** The postmaster's pid (first line of `postmaster.pid`). */
  postmasterPid(): number;
  /** Stops the server (fast shutdown) and removes the folder; safe to call twice. */
  stop(): Promise<void>;
}

interface Account {
  uid: number;
  gid: number;
}

/** Who runs the server: `postgres` when we are root, else ourselves. */
async function serverAccount(): Promise<Account | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    return { uid, gid };
  } catch (error) {
    throw new PostgresUnavailableError('running as root and there is no "postgres" user to run the server as (apt-get install postgresql creates it)', { cause: error });
  }
}

/**
 * Starts a server on a fresh data directory. Resolves once it accepts connections.
 *
 * @throws {PostgresUnavailableError} when the binaries are missing or the server does not start
 *   (the message says why; the folder is removed).
 */
export async function startPostgres(port = 5432): Promise<PrivatePostgres> {
  for (const binary of ['initdb', 'pg_ctl', 'createdb', 'dropdb']) {
    if (!existsSync(join(PG_BIN, binary))) {
      throw new PostgresUnavailableError(`PostgreSQL is not installed: no ${join(PG_BIN, binary)} (apt-get install postgresql, or set UJR_BENCH_PG_BIN)`);
    }
  }
  const account = await serverAccount();
  const dir = mkdtempSync(join(tmpdir(), 'ujr-bench-pg-'));
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  const logFile = join(dir, 'log');
  mkdirSync(socketDir);
  if (account) {
    chownSync(dir, account.uid, account.gid);
    chownSync(socketDir, account.uid, account.gid);
  }
  const pg = (binary: string, args: string[]) =>
    run(join(PG_BIN, binary), args, { cwd: dir, ...(account ?? {}), env: { ...process.env, LC_ALL: 'C.UTF-8' } });
  const client = ['-h', socketDir, '-p', String(port), '-U', 'postgres'];

  let started = false;
  let stopped: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    try {
      if (started) await pg('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const server: PrivatePostgres = {
    dir,
    dataDir,
    socketDir,
    port,
    url: (database) => `postgres://postgres@/${database}?host=${encodeURIComponent(socketDir)}&port=${port}`,
    createDatabase: async (name) => void (await pg('createdb', [...client, name])),
    dropDatabase: async (name) => void (await pg('dropdb', [...client, '--if-exists', name])),
    postmasterPid: () => Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]),
    stop: () => (stopped ??= stop()),
  };
  try {
    await pg('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8']);
    appendFileSync(join(dataDir, 'postgresql.conf'), `\nlisten_addresses = ''\nport = ${port}\nunix_socket_directories = '${socketDir}'\n`);
    started = true;
    await pg('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', 'start']);
  } catch (error) {
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n') : '';
    await server.stop().catch(() => undefined);
    const detail = error instanceof Error ? error.message : String(error);
    throw new PostgresUnavailableError(`the private PostgreSQL server did not start: ${detail}${log ? `\n${log}` : ''}`, { cause: error });
  }
  return server;
}
