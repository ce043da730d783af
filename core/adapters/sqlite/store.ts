/**
 * The embedded default store: one SQLite file (`.ujr/ujr.db`) shared by every runner process on
 * the machine. WAL mode lets readers work while one writer commits; every write that decides
 * something (a lease, a trigger hand-out) runs in a `BEGIN IMMEDIATE` transaction, so it holds
 * the file's write lock from its first read and two processes never grant the same thing.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from '../../errors.js';
import type {
  Checkpoint,
  CommitResult,
  InstanceStatus,
  Lease,
  LeaseGrant,
  LeaseRef,
  LeaseRequest,
  RunQuery,
  Store,
  SweptRun,
  Trigger,
  TriggerResult,
  WriteBatch,
} from '../../ports/store.js';
import { StoreNotFoundError } from './errors.js';
import { SqliteLimitStore } from './limits.js';
import { checkFileIdentity, fileIdentity, type FileIdentity } from './file-identity.js';
import { fenceHolds, leaseBacksRun, sweepReleases, sweptRun } from '../../ports/fencing.js';
import { parseJson } from '../../signature.js';
import {
  LIVE_STATUSES,
  TERMINAL_STATUSES,
  type ErrorInfo,
  type Json,
  type LogLevel,
  type LogLine,
  type Progress,
  type RunOrigin,
  type RunRecord,
  type RunStatus,
  type TaskKind,
} from '../../types.js';

/** How long a statement waits for another process's write lock before failing. */
const BUSY_TIMEOUT_MS = 5000;

/** The schema version this code writes (`PRAGMA user_version`). */
const SCHEMA_VERSION = 10;

/**
 * Migrations by the version they lead to; each runs once, in its own transaction. Each can run on
 * a file that already has what it adds (IF NOT EXISTS, or a step that checks first).
 */
const MIGRATIONS: readonly (readonly [version: number, step: string | ((db: Database.Database) => void)])[] = [
  [
    1,
    `
    CREATE TABLE IF NOT EXISTS leases (
      signature   TEXT PRIMARY KEY,
      owner       TEXT,
      expires_at  INTEGER NOT NULL,
      token       INTEGER NOT NULL,
      run_id      TEXT,
      instance_id TEXT NOT NULL,
      task        TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS leases_active ON leases (expires_at) WHERE owner IS NOT NULL;

    CREATE TABLE IF NOT EXISTS runs (
      id            TEXT PRIMARY KEY,
      instance_id   TEXT NOT NULL,
      job_type      TEXT NOT NULL,
      task          TEXT NOT NULL,
      signature     TEXT NOT NULL,
      kind          TEXT NOT NULL,
      status        TEXT NOT NULL,
      attempt       INTEGER NOT NULL,
      max_attempts  INTEGER NOT NULL,
      origin        TEXT NOT NULL,
      runner        TEXT NOT NULL,
      fencing_token INTEGER NOT NULL,
      queued_at     INTEGER NOT NULL,
      started_at    INTEGER,
      ended_at      INTEGER,
      input         TEXT NOT NULL,
      result        TEXT,
      error         TEXT,
      progress      TEXT
    );
    -- listRuns: newest first by (queued_at, id), under each filter.
    CREATE INDEX IF NOT EXISTS runs_queued_at ON runs (queued_at, id);
    CREATE INDEX IF NOT EXISTS runs_instance_task ON runs (instance_id, task, queued_at, id);
    CREATE INDEX IF NOT EXISTS runs_signature ON runs (signature, queued_at, id);
    CREATE INDEX IF NOT EXISTS runs_status ON runs (status, queued_at, id);
    -- lastRun (run history of every plan): newest by recency, then id.
    CREATE INDEX IF NOT EXISTS runs_instance_task_recency
      ON runs (instance_id, task, COALESCE(ended_at, queued_at), id);
    CREATE INDEX IF NOT EXISTS runs_signature_recency ON runs (signature, COALESCE(ended_at, queued_at), id);
    -- pruneRuns
    CREATE INDEX IF NOT EXISTS runs_ended_at ON runs (ended_at) WHERE ended_at IS NOT NULL;

    CREATE TABLE IF NOT EXISTS logs (
      run_id  TEXT NOT NULL,
      seq     INTEGER NOT NULL,
      at      INTEGER NOT NULL,
      level   TEXT NOT NULL,
      message TEXT NOT NULL,
      PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE IF NOT EXISTS checkpoints (
      signature TEXT PRIMARY KEY,
      value     TEXT NOT NULL,
      run_id    TEXT NOT NULL,
      at        INTEGER NOT NULL
    );

    CREATE TABLE IF NOT EXISTS state (
      instance_id TEXT NOT NULL,
      key         TEXT NOT NULL,
      value       TEXT NOT NULL,
      PRIMARY KEY (instance_id, key)
    ) WITHOUT ROWID;

    CREATE TABLE IF NOT EXISTS instance_status (
      instance_id    TEXT PRIMARY KEY,
      retired_at     INTEGER,
      retired_reason TEXT,
      plan_error     TEXT
    );

    CREATE TABLE IF NOT EXISTS triggers (
      seq         INTEGER PRIMARY KEY AUTOINCREMENT,
      id          TEXT NOT NULL,
      instance_id TEXT NOT NULL,
      task        TEXT,
      input       TEXT,
      at          INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS triggers_at ON triggers (at, seq);
    `,
  ],
  [2, 'ALTER TABLE instance_status ADD COLUMN last_planned_at INTEGER;'],
  [
    3,
    `
    -- When a lease was last let go: a plan that read the run history before then may not know
    -- that the task has just run, so its grant is refused (acquireLeases' notReleasedSince).
    ALTER TABLE leases ADD COLUMN released_at INTEGER;
    -- Attempts of one task linked both ways, and the trigger that asked for a run.
    ALTER TABLE runs ADD COLUMN previous_run_id TEXT;
    ALTER TABLE runs ADD COLUMN next_run_id TEXT;
    ALTER TABLE runs ADD COLUMN trigger_id TEXT;
    CREATE TABLE IF NOT EXISTS trigger_results (
      id          TEXT PRIMARY KEY,
      instance_id TEXT NOT NULL,
      at          INTEGER NOT NULL,
      run_ids     TEXT NOT NULL,
      note        TEXT
    );
    `,
  ],
  [
    4,
    `
    -- Fewer index pages written per task transition (issue 12). Signatures are hashes, so an index
    -- keyed by one takes each write on a page of its own: runs_signature went, runs of a signature
    -- are found through runs_signature_recency (and sorted, they are few). runs_status took two
    -- writes per transition; the sweeper's live runs now have a partial index that holds only
    -- them (the statuses of LIVE_STATUSES in core/types.ts, as of this version), and a status
    -- filter of ujr runs walks runs_queued_at.
    DROP INDEX IF EXISTS runs_signature;
    DROP INDEX IF EXISTS runs_status;
    CREATE INDEX IF NOT EXISTS runs_live ON runs (queued_at, id) WHERE status IN ('queued', 'running', 'retrying');
    `,
  ],
  [
    5,
    `
    -- No index keyed by signature on runs (issue 12): a signature is a hash, so such an index took
    -- two writes per task on pages of their own (at queue time, and again when the run ended and
    -- its recency moved), most of the bytes written per task. The lease row of a signature, which
    -- every run of it is written under, now points at its newest run and its newest success (by
    -- recency: end time, else queue time, then id), the two questions plans ask; each run points
    -- at the run of its signature before it, so that every run of a signature is found by walking
    -- from those two pointers (runQuerySql).
    ALTER TABLE leases ADD COLUMN last_run_id TEXT;
    ALTER TABLE leases ADD COLUMN last_run_at INTEGER;
    ALTER TABLE leases ADD COLUMN last_success_id TEXT;
    ALTER TABLE leases ADD COLUMN last_success_at INTEGER;
    ALTER TABLE runs ADD COLUMN prior_run_id TEXT;
    UPDATE leases SET (last_run_id, last_run_at) = (
      SELECT id, COALESCE(ended_at, queued_at) FROM runs WHERE runs.signature = leases.signature
      ORDER BY COALESCE(ended_at, queued_at) DESC, id DESC LIMIT 1);
    UPDATE leases SET (last_success_id, last_success_at) = (
      SELECT id, ended_at FROM runs WHERE runs.signature = leases.signature AND status = 'succeeded'
      ORDER BY COALESCE(ended_at, queued_at) DESC, id DESC LIMIT 1);
    UPDATE runs SET prior_run_id = chain.prior FROM (
      SELECT id, LAG(id) OVER (PARTITION BY signature ORDER BY COALESCE(ended_at, queued_at), id) AS prior FROM runs
    ) AS chain WHERE runs.id = chain.id AND chain.prior IS NOT NULL;
    DROP INDEX IF EXISTS runs_signature_recency;
    `,
  ],
  [
    6,
    `
    -- The same for an instance's task (issue 12): runs_instance_task_recency was written twice per
    -- task (its key holds the recency), for the questions plans ask of a task whatever its input,
    -- its newest run and its newest success. One row per instance and task now points at both;
    -- other questions of recency sort the task's runs, found through runs_instance_task.
    CREATE TABLE IF NOT EXISTS task_heads (
      instance_id     TEXT NOT NULL,
      task            TEXT NOT NULL,
      last_run_id     TEXT,
      last_run_at     INTEGER,
      last_success_id TEXT,
      last_success_at INTEGER,
      PRIMARY KEY (instance_id, task)
    ) WITHOUT ROWID;
    INSERT INTO task_heads (instance_id, task, last_run_id, last_run_at)
      SELECT instance_id, task, id, recency FROM (
        SELECT instance_id, task, id, COALESCE(ended_at, queued_at) AS recency,
          ROW_NUMBER() OVER (PARTITION BY instance_id, task ORDER BY COALESCE(ended_at, queued_at) DESC, id DESC) AS n
        FROM runs
      ) WHERE n = 1;
    UPDATE task_heads SET (last_success_id, last_success_at) = (
      SELECT id, COALESCE(ended_at, queued_at) FROM runs
      WHERE runs.instance_id = task_heads.instance_id AND runs.task = task_heads.task AND status = 'succeeded'
      ORDER BY COALESCE(ended_at, queued_at) DESC, id DESC LIMIT 1);
    DROP INDEX IF EXISTS runs_instance_task_recency;
    `,
  ],
  [
    7,
    `
    -- Shared rate limits and concurrency caps (issue 15): one row per bucket (limit name, key),
    -- its token level as of updated_at and its slot holders (a JSON object of holder -> expiry).
    -- Read and written by ./limits.ts in BEGIN IMMEDIATE transactions.
    CREATE TABLE IF NOT EXISTS limit_buckets (
      name          TEXT NOT NULL,
      key           TEXT NOT NULL,
      tokens        REAL,
      updated_at    REAL NOT NULL,
      blocked_until REAL NOT NULL DEFAULT 0,
      holders       TEXT NOT NULL DEFAULT '{}',
      rate_count    REAL,
      rate_per_ms   REAL,
      rate_burst    INTEGER,
      concurrency   INTEGER,
      granted       INTEGER NOT NULL DEFAULT 0,
      refused       INTEGER NOT NULL DEFAULT 0,
      throttled_ms  REAL NOT NULL DEFAULT 0,
      PRIMARY KEY (name, key)
    ) WITHOUT ROWID;
    `,
  ],
  [
    8,
    // A trigger may ask to cancel a live run (the status page's Cancel) instead of a plan.
    (db) => {
      const columns = db.prepare("SELECT name FROM pragma_table_info('triggers')").all() as { name: string }[];
      if (!columns.some((column) => column.name === 'cancel_run_id')) db.exec('ALTER TABLE triggers ADD COLUMN cancel_run_id TEXT');
    },
  ],
  [
    9,
    `
    -- A bucket's slot holders get a row each (./limits.ts): in the bucket row's JSON, two dozen
    -- holders made the row overflow its page, and every acquire and release rewrote the chain
    -- (36 KB written a task). The JSON column stays, always '{}'.
    CREATE TABLE IF NOT EXISTS limit_holders (
      name       TEXT NOT NULL,
      key        TEXT NOT NULL,
      holder     TEXT NOT NULL,
      expires_at REAL NOT NULL,
      PRIMARY KEY (name, key, holder)
    ) WITHOUT ROWID;
    INSERT OR REPLACE INTO limit_holders (name, key, holder, expires_at)
      SELECT b.name, b.key, h.key, h.value FROM limit_buckets AS b, json_each(b.holders) AS h;
    UPDATE limit_buckets SET holders = '{}';
    `,
  ],
  [
    10,
    `
    -- lastRun orders like listRuns (issue 13): newest by queue time, then id, where it took the
    -- end time, else the queue time. A stale run the sweeper ends late no longer outranks the run
    -- that took over from it, and the DynamoDB adapter keeps a task's runs in its table's key
    -- order. The pointers of each signature (leases, schema 5) and of each instance's task
    -- (task_heads, schema 6) are computed again in that order, their times now queue times, and
    -- each run's prior_run_id names the run of its signature queued before it.
    UPDATE leases SET last_run_id = NULL, last_run_at = NULL, last_success_id = NULL, last_success_at = NULL;
    UPDATE leases SET last_run_id = newest.id, last_run_at = newest.queued_at FROM (
      SELECT signature, id, queued_at,
        ROW_NUMBER() OVER (PARTITION BY signature ORDER BY queued_at DESC, id DESC) AS n
      FROM runs
    ) AS newest WHERE newest.signature = leases.signature AND newest.n = 1;
    UPDATE leases SET last_success_id = newest.id, last_success_at = newest.queued_at FROM (
      SELECT signature, id, queued_at,
        ROW_NUMBER() OVER (PARTITION BY signature ORDER BY queued_at DESC, id DESC) AS n
      FROM runs WHERE status = 'succeeded'
    ) AS newest WHERE newest.signature = leases.signature AND newest.n = 1;
    DELETE FROM task_heads;
    INSERT INTO task_heads (instance_id, task, last_run_id, last_run_at)
      SELECT instance_id, task, id, queued_at FROM (
        SELECT instance_id, task, id, queued_at,
          ROW_NUMBER() OVER (PARTITION BY instance_id, task ORDER BY queued_at DESC, id DESC) AS n
        FROM runs
      ) WHERE n = 1;
    UPDATE task_heads SET last_success_id = newest.id, last_success_at = newest.queued_at FROM (
      SELECT instance_id, task, id, queued_at,
        ROW_NUMBER() OVER (PARTITION BY instance_id, task ORDER BY queued_at DESC, id DESC) AS n
      FROM runs WHERE status = 'succeeded'
    ) AS newest WHERE newest.instance_id = task_heads.instance_id AND newest.task = task_heads.task AND newest.n = 1;
    UPDATE runs SET prior_run_id = chain.prior FROM (
      SELECT id, LAG(id) OVER (PARTITION BY signature ORDER BY queued_at, id) AS prior FROM runs
    ) AS chain WHERE runs.id = chain.id AND runs.prior_run_id IS NOT chain.prior;
    `,
  ],
];

const TERMINAL_LIST = [...TERMINAL_STATUSES].map((s) => `'${s}'`).join(', ');
const LIVE_LIST = LIVE_STATUSES.map((s) => `'${s}'`).join(', ');

/**
 * The WAL is copied into the database file once it holds this many pages (32 MiB at 4 KiB): a
 * page that many commits touch is copied once per checkpoint, so fewer checkpoints write fewer
 * bytes (SQLite's default is 1,000 pages).
 */
const WAL_AUTOCHECKPOINT_PAGES = 8_000;

/** How many runs one prune transaction deletes, so that it never holds the write lock for long. */
const PRUNE_CHUNK = 500;

/**
 * Runs that `pruneRuns` deletes (parameters: the cutoff, then a limit): terminal, ended before
 * the cutoff, and not the latest success of their signature. A success goes only when a newer
 * success of its signature exists (its lease row points at another), newer in the order of
 * `lastRun`: queue time, then id.
 */
const SELECT_PRUNABLE = `
  SELECT id, signature, instance_id, task FROM runs AS r
  WHERE r.ended_at IS NOT NULL AND r.ended_at < ?
    AND +r.status IN (${TERMINAL_LIST})
    AND (
      r.status <> 'succeeded'
      OR EXISTS (
        SELECT 1 FROM leases AS l
        WHERE l.signature = r.signature AND l.last_success_id IS NOT NULL AND l.last_success_id <> r.id
      )
    )
  LIMIT ?`;

interface LeaseRow {
  signature: string;
  owner: string | null;
  expires_at: number;
  token: number;
  run_id: string | null;
  instance_id: string;
  task: string;
  released_at: number | null;
}

interface TriggerResultRow {
  id: string;
  instance_id: string;
  at: number;
  run_ids: string;
  note: string | null;
}

interface RunRow {
  id: string;
  instance_id: string;
  job_type: string;
  task: string;
  signature: string;
  kind: string;
  status: string;
  attempt: number;
  max_attempts: number;
  origin: string;
  runner: string;
  fencing_token: number;
  queued_at: number;
  started_at: number | null;
  ended_at: number | null;
  input: string;
  result: string | null;
  error: string | null;
  progress: string | null;
  previous_run_id: string | null;
  next_run_id: string | null;
  trigger_id: string | null;
}

type RunParams = [
  id: string,
  instanceId: string,
  jobType: string,
  task: string,
  signature: string,
  kind: string,
  status: string,
  attempt: number,
  maxAttempts: number,
  origin: string,
  runner: string,
  fencingToken: number,
  queuedAt: number,
  startedAt: number | null,
  endedAt: number | null,
  input: string,
  result: string | null,
  error: string | null,
  progress: string | null,
  previousRunId: string | null,
  nextRunId: string | null,
  triggerId: string | null,
  /** Its lease row names the run before this one (prior_run_id, written only when the run is inserted). */
  signatureOfPrior: string,
];

/** A run as the pointers to it name it (each pointer statement binds the names it uses). */
interface PointerParams {
  id: string;
  /** The run's queue time: pointers follow lastRun's order, queue time then id. */
  at: number;
  signature: string;
  instanceId: string;
  task: string;
}

/** What moves on in a stored run, then the columns that identify it (see `putRun`). */
type RunProgressParams = [
  status: string,
  startedAt: number | null,
  endedAt: number | null,
  result: string | null,
  error: string | null,
  progress: string | null,
  nextRunId: string | null,
  id: string,
  instanceId: string,
  jobType: string,
  task: string,
  signature: string,
  kind: string,
  attempt: number,
  maxAttempts: number,
  origin: string,
  runner: string,
  fencingToken: number,
  queuedAt: number,
  input: string,
  previousRunId: string | null,
  triggerId: string | null,
];

/** A run's link in its signature's chain (schema 5): the run queued before it. */
interface ChainLink {
  id: string;
  queued_at: number;
  prior_run_id: string | null;
}

/** A live run and its lease's columns (all null when the signature has no lease row). */
interface LiveRunRow extends RunRow {
  lease_signature: string | null;
  lease_owner: string | null;
  lease_expires_at: number | null;
  lease_token: number | null;
  lease_run_id: string | null;
  lease_instance_id: string | null;
  lease_task: string | null;
  lease_released_at: number | null;
}

interface LogRow {
  run_id: string;
  seq: number;
  at: number;
  level: string;
  message: string;
}

interface CheckpointRow {
  signature: string;
  value: string;
  run_id: string;
  at: number;
}

interface StatusRow {
  instance_id: string;
  retired_at: number | null;
  retired_reason: string | null;
  plan_error: string | null;
  last_planned_at: number | null;
}

interface TriggerRow {
  seq: number;
  id: string;
  instance_id: string;
  task: string | null;
  input: string | null;
  at: number;
  cancel_run_id: string | null;
}

type Stmt<P extends unknown[], R = unknown> = Database.Statement<P, R>;

/**
 * The SQLite adapter of the {@link Store} port, on better-sqlite3: one file, WAL journal,
 * `synchronous = NORMAL`, a 5 s busy timeout. Several processes may open the same file; leases
 * and triggers are granted atomically across them. Hot-path writes arrive as one `commit` batch,
 * applied in one transaction with statements prepared once.
 *
 * Failures of SQLite surface as {@link StoreError}s whose message names the file and what to do.
 *
 * @example
 * ```ts
 * const store = SqliteStore.open('.ujr/ujr.db');
 * const [grant] = await store.acquireLeases(
 *   [{ signature: 'a/collect/x', owner: 'runner-1', ttlMs: 30_000, runId: 'r1', instanceId: 'a', task: 'collect' }],
 *   Date.now(),
 * );
 * await store.close();
 * ```
 */
export class SqliteStore implements Store {
  private closed = false;
  /** Shared rate limits and concurrency caps (./limits.ts), on this store's connection. */
  readonly limits: SqliteLimitStore;
  /** The file's device and inode when it was opened (none in memory), for `checkFile`. */
  private identity: FileIdentity | undefined;

  private readonly selectLease: Stmt<[string], LeaseRow>;
  private readonly upsertLease: Stmt<[string, string, number, string, string, string, number, number | null], { token: number }>;
  private readonly renewLease: Stmt<[number, string, string, number]>;
  private readonly releaseLease: Stmt<[number, string, string, number]>;
  private readonly selectFence: Stmt<[string], { owner: string | null; token: number }>;
  private readonly selectLiveRuns: Stmt<[], LiveRunRow>;
  private readonly upsertTriggerResult: Stmt<[string, string, number, string, string | null]>;
  private readonly selectTriggerResult: Stmt<[string], TriggerResultRow>;
  private readonly selectActiveLeases: Stmt<[number], LeaseRow>;
  private readonly upsertRun: Stmt<RunParams>;
  private readonly updateRunProgress: Stmt<RunProgressParams>;
  private readonly selectRun: Stmt<[string], RunRow>;
  private readonly selectInstanceTasks: Stmt<[{ instanceId: string }], { task: string }>;
  private readonly insertLog: Stmt<[string, number, number, string, string]>;
  private readonly selectLogs: Stmt<[string, number], LogRow>;
  private readonly upsertCheckpoint: Stmt<[string, string, string, number]>;
  private readonly selectCheckpoint: Stmt<[string], CheckpointRow>;
  private readonly selectState: Stmt<[string, string], { value: string }>;
  private readonly upsertState: Stmt<[string, string, string]>;
  private readonly deleteState: Stmt<[string, string]>;
  private readonly selectStatus: Stmt<[string], StatusRow>;
  private readonly selectStatuses: Stmt<[], StatusRow>;
  private readonly upsertStatus: Stmt<[string, number | null, string | null, string | null, number | null]>;
  private readonly deleteStatus: Stmt<[string]>;
  private readonly insertTrigger: Stmt<[string, string, string | null, string | null, number, string | null]>;
  private readonly selectTriggers: Stmt<[number], TriggerRow>;
  private readonly deleteTrigger: Stmt<[number]>;
  private readonly selectPrunable: Stmt<[number, number], { id: string; signature: string; instance_id: string; task: string }>;
  /** A pruned run that was its task's newest: the pointer moves to the newest left. */
  private readonly forgetTaskHead: Stmt<[{ instanceId: string; task: string; id: string }]>;
  /** A pruned run that was its signature's newest: the newest left is its newest success. */
  private readonly forgetLastRun: Stmt<[string, string]>;
  /** Moves a lease row's pointer to a run just written, when it is the newest (or newest success). */
  private readonly pointAtLast: Stmt<[PointerParams]>;
  private readonly pointAtSuccess: Stmt<[PointerParams]>;
  /** The same pointers per instance and task (task_heads). */
  private readonly pointTaskAtLast: Stmt<[PointerParams]>;
  private readonly pointTaskAtSuccess: Stmt<[PointerParams]>;
  private readonly selectTaskHead: Record<'last' | 'success', Stmt<[string, string], RunRow>>;
  /** The run a lease row's pointer names: its signature's newest run, or newest success. */
  private readonly selectPointed: Record<'last' | 'success', Stmt<[string], RunRow>>;
  private readonly deleteRunLogs: Stmt<[string]>;
  private readonly deleteRun: Stmt<[string]>;
  /** A run's place in its signature's chain (prior_run_id), and the head of a signature's chain. */
  private readonly selectChainLink: Stmt<[string], ChainLink>;
  private readonly selectChainHead: Stmt<[string], { last_run_id: string | null }>;
  private readonly setPriorRun: Stmt<[string | null, string]>;
  /** Run queries by shape (the bits of `runQuerySql`), prepared on first use. */
  private readonly runQueries = new Map<number, Stmt<unknown[], RunRow>>();

  private readonly acquireTx: (requests: LeaseRequest[], now: number) => LeaseGrant[];
  private readonly renewTx: (refs: LeaseRef[], ttlMs: number, now: number) => boolean[];
  private readonly commitTx: (batch: WriteBatch) => CommitResult;
  private readonly sweepTx: (now: number) => SweptRun[];
  private readonly takeTriggersTx: (limit: number) => Trigger[];
  /** Prunes in chunks of `PRUNE_CHUNK` runs, one transaction each; returns how many went. */
  private readonly pruneTx: (endedBefore: number) => number;

  private constructor(
    private readonly db: Database.Database,
    /** The database file, as given to `open`. */
    readonly path: string,
  ) {
    migrate(db, path);
    this.limits = new SqliteLimitStore(db, (what, fn) => this.exec(what, fn));

    this.selectLease = db.prepare('SELECT * FROM leases WHERE signature = ?');
    this.upsertLease = db.prepare(`
      INSERT INTO leases (signature, owner, expires_at, token, run_id, instance_id, task)
      VALUES (?, ?, ?, 1, ?, ?, ?)
      ON CONFLICT (signature) DO UPDATE SET
        owner = excluded.owner, expires_at = excluded.expires_at, token = leases.token + 1,
        run_id = excluded.run_id, instance_id = excluded.instance_id, task = excluded.task
      WHERE (leases.owner IS NULL OR leases.expires_at <= ?)
        AND (leases.released_at IS NULL OR leases.released_at < COALESCE(?, leases.released_at + 1))
      RETURNING token`);
    this.renewLease = db.prepare(
      'UPDATE leases SET expires_at = ? WHERE signature = ? AND owner = ? AND token = ?',
    );
    this.releaseLease = db.prepare(
      'UPDATE leases SET owner = NULL, expires_at = 0, released_at = ? WHERE signature = ? AND owner = ? AND token = ?',
    );
    this.selectFence = db.prepare('SELECT owner, token FROM leases WHERE signature = ?');
    // Live runs with their lease (if any), for the sweeper, through the partial index runs_live.
    this.selectLiveRuns = db.prepare(`
      SELECT r.*, l.signature AS lease_signature, l.owner AS lease_owner, l.expires_at AS lease_expires_at,
        l.token AS lease_token, l.run_id AS lease_run_id, l.instance_id AS lease_instance_id,
        l.task AS lease_task, l.released_at AS lease_released_at
      FROM runs AS r LEFT JOIN leases AS l ON l.signature = r.signature
      WHERE r.status IN (${LIVE_LIST})`);
    this.upsertTriggerResult = db.prepare(
      'INSERT OR REPLACE INTO trigger_results (id, instance_id, at, run_ids, note) VALUES (?, ?, ?, ?, ?)',
    );
    this.selectTriggerResult = db.prepare('SELECT * FROM trigger_results WHERE id = ?');
    this.selectActiveLeases = db.prepare(
      'SELECT * FROM leases WHERE owner IS NOT NULL AND expires_at > ? ORDER BY signature',
    );
    this.upsertRun = db.prepare(`
      INSERT INTO runs (id, instance_id, job_type, task, signature, kind, status, attempt, max_attempts,
        origin, runner, fencing_token, queued_at, started_at, ended_at, input, result, error, progress,
        previous_run_id, next_run_id, trigger_id, prior_run_id)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
        (SELECT last_run_id FROM leases WHERE signature = ?))
      ON CONFLICT (id) DO UPDATE SET
        instance_id = excluded.instance_id, job_type = excluded.job_type, task = excluded.task,
        signature = excluded.signature, kind = excluded.kind, status = excluded.status,
        attempt = excluded.attempt, max_attempts = excluded.max_attempts, origin = excluded.origin,
        runner = excluded.runner, fencing_token = excluded.fencing_token, queued_at = excluded.queued_at,
        started_at = excluded.started_at, ended_at = excluded.ended_at, input = excluded.input,
        result = excluded.result, error = excluded.error, progress = excluded.progress,
        previous_run_id = excluded.previous_run_id, next_run_id = excluded.next_run_id, trigger_id = excluded.trigger_id
      WHERE runs.status NOT IN (${TERMINAL_LIST})`);
    this.updateRunProgress = db.prepare(`
      UPDATE runs SET status = ?, started_at = ?, ended_at = ?, result = ?, error = ?, progress = ?, next_run_id = ?
      WHERE id = ? AND instance_id = ? AND job_type = ? AND task = ? AND signature = ? AND kind = ? AND attempt = ?
        AND max_attempts = ? AND origin = ? AND runner = ? AND fencing_token = ? AND queued_at = ? AND input = ?
        AND previous_run_id IS ? AND trigger_id IS ? AND status NOT IN (${TERMINAL_LIST})`);
    this.selectRun = db.prepare('SELECT * FROM runs WHERE id = ?');
    // The distinct tasks of an instance's runs: one seek per task in runs_instance_task.
    this.selectInstanceTasks = db.prepare(`
      WITH RECURSIVE t(task) AS (
        SELECT MIN(task) FROM runs WHERE instance_id = :instanceId
        UNION ALL
        SELECT (SELECT MIN(task) FROM runs WHERE instance_id = :instanceId AND task > t.task) FROM t WHERE t.task IS NOT NULL
      )
      SELECT task FROM t WHERE task IS NOT NULL`);
    this.insertLog = db.prepare(
      'INSERT OR REPLACE INTO logs (run_id, seq, at, level, message) VALUES (?, ?, ?, ?, ?)',
    );
    this.selectLogs = db.prepare('SELECT * FROM logs WHERE run_id = ? AND seq > ? ORDER BY seq');
    this.upsertCheckpoint = db.prepare(
      'INSERT OR REPLACE INTO checkpoints (signature, value, run_id, at) VALUES (?, ?, ?, ?)',
    );
    this.selectCheckpoint = db.prepare('SELECT * FROM checkpoints WHERE signature = ?');
    this.selectState = db.prepare('SELECT value FROM state WHERE instance_id = ? AND key = ?');
    this.upsertState = db.prepare('INSERT OR REPLACE INTO state (instance_id, key, value) VALUES (?, ?, ?)');
    this.deleteState = db.prepare('DELETE FROM state WHERE instance_id = ? AND key = ?');
    this.selectStatus = db.prepare('SELECT * FROM instance_status WHERE instance_id = ?');
    this.selectStatuses = db.prepare('SELECT * FROM instance_status ORDER BY instance_id');
    this.upsertStatus = db.prepare(
      'INSERT OR REPLACE INTO instance_status (instance_id, retired_at, retired_reason, plan_error, last_planned_at) VALUES (?, ?, ?, ?, ?)',
    );
    this.deleteStatus = db.prepare('DELETE FROM instance_status WHERE instance_id = ?');
    this.insertTrigger = db.prepare(
      'INSERT INTO triggers (id, instance_id, task, input, at, cancel_run_id) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.selectTriggers = db.prepare('SELECT * FROM triggers ORDER BY at, seq LIMIT ?');
    this.deleteTrigger = db.prepare('DELETE FROM triggers WHERE seq = ?');
    this.selectPrunable = db.prepare(SELECT_PRUNABLE);
    this.forgetLastRun = db.prepare(
      'UPDATE leases SET last_run_id = last_success_id, last_run_at = last_success_at WHERE signature = ? AND last_run_id = ?',
    );
    // Newer means a later queue time, then the larger id: lastRun's order (and listRuns').
    this.pointAtLast = db.prepare(`
      UPDATE leases SET last_run_id = @id, last_run_at = @at
      WHERE signature = @signature AND (last_run_id IS NULL OR (last_run_at, last_run_id) < (@at, @id))`);
    this.pointAtSuccess = db.prepare(`
      UPDATE leases SET last_success_id = @id, last_success_at = @at
      WHERE signature = @signature AND (last_success_id IS NULL OR (last_success_at, last_success_id) < (@at, @id))`);
    this.pointTaskAtLast = db.prepare(`
      INSERT INTO task_heads (instance_id, task, last_run_id, last_run_at) VALUES (@instanceId, @task, @id, @at)
      ON CONFLICT (instance_id, task) DO UPDATE SET last_run_id = excluded.last_run_id, last_run_at = excluded.last_run_at
      WHERE task_heads.last_run_id IS NULL OR (task_heads.last_run_at, task_heads.last_run_id) < (excluded.last_run_at, excluded.last_run_id)`);
    this.pointTaskAtSuccess = db.prepare(`
      UPDATE task_heads SET last_success_id = @id, last_success_at = @at
      WHERE instance_id = @instanceId AND task = @task
        AND (last_success_id IS NULL OR (last_success_at, last_success_id) < (@at, @id))`);
    this.selectTaskHead = {
      last: db.prepare('SELECT r.* FROM task_heads AS h JOIN runs AS r ON r.id = h.last_run_id WHERE h.instance_id = ? AND h.task = ?'),
      success: db.prepare('SELECT r.* FROM task_heads AS h JOIN runs AS r ON r.id = h.last_success_id WHERE h.instance_id = ? AND h.task = ?'),
    };
    this.forgetTaskHead = db.prepare(`
      UPDATE task_heads SET (last_run_id, last_run_at) = (
        SELECT id, queued_at FROM runs WHERE instance_id = @instanceId AND task = @task
        ORDER BY queued_at DESC, id DESC LIMIT 1)
      WHERE instance_id = @instanceId AND task = @task AND last_run_id = @id`);
    this.selectPointed = {
      last: db.prepare('SELECT r.* FROM leases AS l JOIN runs AS r ON r.id = l.last_run_id WHERE l.signature = ?'),
      success: db.prepare('SELECT r.* FROM leases AS l JOIN runs AS r ON r.id = l.last_success_id WHERE l.signature = ?'),
    };
    this.deleteRunLogs = db.prepare('DELETE FROM logs WHERE run_id = ?');
    this.deleteRun = db.prepare('DELETE FROM runs WHERE id = ?');
    this.selectChainLink = db.prepare('SELECT id, queued_at, prior_run_id FROM runs WHERE id = ?');
    this.selectChainHead = db.prepare('SELECT last_run_id FROM leases WHERE signature = ?');
    this.setPriorRun = db.prepare('UPDATE runs SET prior_run_id = ? WHERE id = ?');

    const acquire = db.transaction((requests: LeaseRequest[], now: number) =>
      requests.map((request) => this.acquireOne(request, now)),
    );
    this.acquireTx = (requests, now) => acquire.immediate(requests, now);

    const renew = db.transaction((refs: LeaseRef[], ttlMs: number, now: number) =>
      refs.map((ref) => this.renewLease.run(now + ttlMs, ref.signature, ref.owner, ref.token).changes === 1),
    );
    this.renewTx = (refs, ttlMs, now) => renew.immediate(refs, ttlMs, now);

    const commit = db.transaction((batch: WriteBatch) => this.applyBatch(batch));
    this.commitTx = (batch) => commit.immediate(batch);

    const sweep = db.transaction((now: number) => this.sweepLive(now));
    this.sweepTx = (now) => sweep.immediate(now);

    const take = db.transaction((limit: number) => {
      const rows = this.selectTriggers.all(limit);
      for (const row of rows) this.deleteTrigger.run(row.seq);
      return rows.map(rowToTrigger);
    });
    this.takeTriggersTx = (limit) => take.immediate(limit);

    const pruneChunk = db.transaction((endedBefore: number) => {
      const rows = this.selectPrunable.all(endedBefore, PRUNE_CHUNK);
      for (const { id, signature, instance_id: instanceId, task } of rows) {
        this.deleteRunLogs.run(id);
        this.deleteRun.run(id);
        // This was its signature's newest run (by queue time), and it ended before the cutoff. The
        // runs queued before it ran before it under the same lease, so they ended before the cutoff
        // too and are pruned, all but the newest success, which is now the newest run left. (The
        // exception: a stale run the sweeper ended after the cutoff, a whole retention period
        // after the run that took over from it ended. It stays, out of its signature's chain.)
        this.forgetLastRun.run(signature, id);
        // A task's runs have many signatures: its newest run left is looked for.
        this.forgetTaskHead.run({ instanceId, task, id });
      }
      return rows.length;
    });
    this.pruneTx = (endedBefore) => {
      let removed = 0;
      for (;;) {
        const chunk = pruneChunk.immediate(endedBefore);
        removed += chunk;
        if (chunk < PRUNE_CHUNK) return removed;
      }
    };
  }

  /**
   * Opens the store at `path` and brings its schema up to date. `':memory:'` opens a private
   * in-memory database. A missing file is created (with its parent directories) unless
   * `options.create` is `false`; a new file appears complete (schema and WAL mode in place) or
   * not at all, see `createStoreFile`.
   *
   * @throws {StoreNotFoundError} with `create: false`, when there is no file at `path`.
   * @throws {StoreError} when the file cannot be opened or is not a ujr database.
   */
  static open(path: string, options: SqliteOpenOptions = {}): SqliteStore {
    const inMemory = path === ':memory:' || path === '';
    const create = options.create ?? true;
    let db: Database.Database | undefined;
    try {
      if (!inMemory && !existsSync(path)) {
        if (!create) throw new StoreNotFoundError(path);
        createStoreFile(path);
      }
      db = new Database(path, { timeout: BUSY_TIMEOUT_MS, fileMustExist: !inMemory && !create });
      const identity = inMemory ? undefined : fileIdentity(path);
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      useWal(db);
      db.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
      db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      const store = new SqliteStore(db, path);
      store.identity = identity;
      return store;
    } catch (error) {
      db?.close();
      // Deleted between the check and the open.
      if (!inMemory && !create && !existsSync(path)) throw new StoreNotFoundError(path);
      throw toStoreError(error, path, 'opening the store');
    }
  }

  /**
   * Checks that `path` still names the file this store opened. SQLite goes on writing into a
   * file that was deleted or renamed over, where no other process sees it, so a long-lived
   * process (the runner) calls this every second or so and stops when it throws.
   *
   * @throws {StoreFileLostError} when the file was deleted (or moved away) or replaced.
   */
  checkFile(): void {
    if (this.closed || this.identity === undefined) return;
    checkFileIdentity(this.path, this.identity);
  }

  acquireLeases(requests: LeaseRequest[], now: number): Promise<LeaseGrant[]> {
    return this.exec('acquiring leases', () => this.acquireTx(requests, now));
  }

  renewLeases(refs: LeaseRef[], ttlMs: number, now: number): Promise<boolean[]> {
    return this.exec('renewing leases', () => this.renewTx(refs, ttlMs, now));
  }

  getLease(signature: string): Promise<Lease | undefined> {
    return this.exec('reading a lease', () => {
      const row = this.selectLease.get(signature);
      return row && rowToLease(row);
    });
  }

  listActiveLeases(now: number): Promise<Lease[]> {
    return this.exec('listing leases', () => this.selectActiveLeases.all(now).map(rowToLease));
  }

  commit(batch: WriteBatch): Promise<CommitResult> {
    return this.exec('committing a batch of writes', () => this.commitTx(batch));
  }

  sweep(now: number): Promise<SweptRun[]> {
    return this.exec('ending runs whose lease expired', () => this.sweepTx(now));
  }

  getRun(id: string): Promise<RunRecord | undefined> {
    return this.exec('reading a run', () => {
      const row = this.selectRun.get(id);
      return row && rowToRun(row);
    });
  }

  listRuns(query: RunQuery): Promise<RunRecord[]> {
    return this.exec('listing runs', () => this.listRows(query, Math.floor(query.limit ?? 100)).map(rowToRun));
  }

  /** The first `limit` runs matching, in listRuns' order (and lastRun's): newest queued first, then id. */
  private listRows(query: Omit<RunQuery, 'limit'>, limit: number): RunRow[] {
    if (!(limit > 0)) return [];
    if (query.instanceId !== undefined && query.task === undefined && query.signature === undefined) {
      return this.instanceRuns({ ...query, instanceId: query.instanceId }, limit);
    }
    return this.queryRuns(query, limit);
  }

  /**
   * An instance's runs across its tasks, newest first. runs_instance_task is keyed (instance,
   * task, queued_at, id), so one task's runs come in order from it and a query naming only the
   * instance would sort all of the instance's runs; instead each task's first `limit` runs are
   * read in index order (a job type has few tasks, found by a skip scan of the same index) and
   * merged.
   */
  private instanceRuns(query: Omit<RunQuery, 'limit'> & { instanceId: string }, limit: number): RunRow[] {
    const tasks = this.selectInstanceTasks.all({ instanceId: query.instanceId }).map((row) => row.task);
    if (tasks.length <= 1) return this.queryRuns(tasks.length === 1 ? { ...query, task: tasks[0] } : query, limit);
    const rows = tasks.flatMap((task) => this.queryRuns({ ...query, task }, limit));
    rows.sort((a, b) => b.queued_at - a.queued_at || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0));
    return rows.slice(0, limit);
  }

  lastRun(query: Omit<RunQuery, 'limit' | 'since' | 'until'>): Promise<RunRecord | undefined> {
    return this.exec('reading the last run', () => {
      // listRuns' first run: the pointers answer what plans ask, any other query is a listing.
      const [row] = this.pointedRun(query) ?? this.listRows(query, 1);
      return row && rowToRun(row);
    });
  }

  /**
   * What plans ask (the newest run, or newest success, of a signature or of an instance's task)
   * through the pointers kept for it (the signature's lease row, the task's task_heads row);
   * `undefined` for any other query, or when the pointed run was pruned.
   */
  private pointedRun(query: Omit<RunQuery, 'limit' | 'since' | 'until'>): RunRow[] | undefined {
    const pointer = query.status === undefined ? 'last' : query.status === 'succeeded' ? 'success' : undefined;
    if (!pointer) return undefined;
    let row: RunRow | undefined;
    if (query.signature !== undefined && query.instanceId === undefined && query.task === undefined) {
      row = this.selectPointed[pointer].get(query.signature);
    } else if (query.signature === undefined && query.instanceId !== undefined && query.task !== undefined) {
      row = this.selectTaskHead[pointer].get(query.instanceId, query.task);
    }
    return row && [row];
  }

  getLogs(runId: string, afterSeq = 0): Promise<LogLine[]> {
    return this.exec('reading logs', () => this.selectLogs.all(runId, afterSeq).map(rowToLog));
  }

  getCheckpoint(signature: string): Promise<Checkpoint | undefined> {
    return this.exec('reading a checkpoint', () => {
      const row = this.selectCheckpoint.get(signature);
      return row && rowToCheckpoint(row);
    });
  }

  getState(instanceId: string, key: string): Promise<Json | undefined> {
    return this.exec('reading instance state', () => {
      const row = this.selectState.get(instanceId, key);
      return row && parseJson(row.value);
    });
  }

  setState(instanceId: string, key: string, value: Json | undefined): Promise<void> {
    return this.exec('writing instance state', () => {
      if (value === undefined) this.deleteState.run(instanceId, key);
      else this.upsertState.run(instanceId, key, JSON.stringify(value));
    });
  }

  getInstanceStatus(instanceId: string): Promise<InstanceStatus | undefined> {
    return this.exec('reading an instance status', () => {
      const row = this.selectStatus.get(instanceId);
      return row && rowToStatus(row);
    });
  }

  listInstanceStatus(): Promise<InstanceStatus[]> {
    return this.exec('listing instance statuses', () => this.selectStatuses.all().map(rowToStatus));
  }

  setInstanceStatus(instanceId: string, status: InstanceStatus | undefined): Promise<void> {
    return this.exec('writing an instance status', () => {
      if (status === undefined) {
        this.deleteStatus.run(instanceId);
        return;
      }
      this.upsertStatus.run(
        instanceId,
        status.retiredAt ?? null,
        status.retiredReason ?? null,
        status.planError === undefined ? null : JSON.stringify(status.planError),
        status.lastPlannedAt ?? null,
      );
    });
  }

  addTrigger(trigger: Trigger): Promise<void> {
    return this.exec('adding a trigger', () => {
      this.putTrigger(trigger);
    });
  }

  getTriggerResult(id: string): Promise<TriggerResult | undefined> {
    return this.exec('reading a trigger result', () => {
      const row = this.selectTriggerResult.get(id);
      return row && rowToTriggerResult(row);
    });
  }

  takeTriggers(limit: number): Promise<Trigger[]> {
    return this.exec('taking triggers', () => {
      const count = Math.floor(limit);
      return count > 0 ? this.takeTriggersTx(count) : [];
    });
  }

  pruneRuns(endedBefore: number): Promise<number> {
    return this.exec('pruning runs', () => this.pruneTx(endedBefore));
  }

  /** Closes the database; later calls fail with a `StoreError`. Calling it again does nothing. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    const closing = this.exec('closing the store', () => {
      this.db.close();
    });
    this.closed = true;
    return closing;
  }

  private acquireOne(request: LeaseRequest, now: number): LeaseGrant {
    const current = this.selectLease.get(request.signature);
    const granted = this.upsertLease.get(
      request.signature,
      request.owner,
      now + request.ttlMs,
      request.runId,
      request.instanceId,
      request.task,
      now,
      request.notReleasedSince ?? null,
    );
    if (!granted) {
      // The upsert's condition refused: someone holds a live lease, or it was released since the
      // plan read the history. `current` is that lease (the immediate transaction keeps other
      // writers out between the two statements).
      const holder = current ?? this.selectLease.get(request.signature);
      if (!holder) throw new Error(`lease ${request.signature} refused but not found`);
      return { granted: false, holder: rowToLease(holder) };
    }
    const lease: Lease = {
      signature: request.signature,
      owner: request.owner,
      expiresAt: now + request.ttlMs,
      token: granted.token,
      runId: request.runId,
      instanceId: request.instanceId,
      task: request.task,
    };
    const grant: LeaseGrant = { granted: true, lease };
    if (current && current.owner !== null) grant.takenOver = rowToLease(current);
    const checkpoint = this.selectCheckpoint.get(request.signature);
    if (checkpoint) grant.checkpoint = rowToCheckpoint(checkpoint);
    return grant;
  }

  private applyBatch(batch: WriteBatch): CommitResult {
    const refused: LeaseRef[] = [];
    const at = batch.at ?? Date.now();
    for (const group of batch.fenced ?? []) {
      const { fence } = group;
      const lease = this.selectFence.get(fence.signature);
      if (!fenceHolds(lease, fence)) {
        refused.push({ ...fence });
        continue;
      }
      for (const run of group.runs ?? []) this.putRun(run);
      for (const line of group.logs ?? []) this.insertLog.run(line.runId, line.seq, line.at, line.level, line.message);
      const c = group.checkpoint;
      if (c) this.upsertCheckpoint.run(c.signature, JSON.stringify(c.value), c.runId, c.at);
      if (group.release) this.releaseLease.run(at, fence.signature, fence.owner, fence.token);
    }
    for (const trigger of batch.triggers ?? []) this.putTrigger(trigger);
    for (const result of batch.triggerResults ?? []) {
      this.upsertTriggerResult.run(result.id, result.instanceId, result.at, JSON.stringify(result.runIds), result.note ?? null);
    }
    return { refused };
  }

  private sweepLive(now: number): SweptRun[] {
    const swept: SweptRun[] = [];
    for (const row of this.selectLiveRuns.all()) {
      const run = rowToRun(row);
      const lease = liveRowLease(row);
      if (leaseBacksRun(lease, run, now)) continue;
      const ended = sweptRun(run, lease, now);
      this.putRun(ended);
      if (sweepReleases(lease, run)) this.releaseLease.run(now, run.signature, run.runner, run.fencingToken);
      swept.push(lease ? { run: ended, lease } : { run: ended, lease: undefined });
    }
    return swept;
  }

  /** Inserts or replaces a run, unless the stored one is final already (the upsert's condition). */
  private putRun(run: RunRecord): void {
    // Most writes move a stored run on (running, then how it ended): an UPDATE of only the columns
    // that change touches only the indexes over them; the upsert below names every column, so
    // SQLite rewrites the run's entry in every index of the table. A run that is not stored yet,
    // is final already, or differs in what never changes falls through to the upsert. A queued
    // run is nearly always new: it goes straight to the upsert.
    const input = JSON.stringify(run.input);
    if (run.status === 'queued') {
      this.upsert(run, input);
      return;
    }
    const moved = this.updateRunProgress.run(
      run.status,
      run.startedAt ?? null,
      run.endedAt ?? null,
      run.result === undefined ? null : JSON.stringify(run.result),
      run.error === undefined ? null : JSON.stringify(run.error),
      run.progress === undefined ? null : JSON.stringify(run.progress),
      run.nextRunId ?? null,
      run.id,
      run.instanceId,
      run.jobType,
      run.task,
      run.signature,
      run.kind,
      run.attempt,
      run.maxAttempts,
      run.origin,
      run.runner,
      run.fencingToken,
      run.queuedAt,
      input,
      run.previousRunId ?? null,
      run.triggerId ?? null,
    );
    if (moved.changes === 1) {
      // The pointers order by queue time, which never moves: the run's insert placed it as its
      // signature's and task's newest run already; only a success moves the success pointers.
      if (run.status === 'succeeded') this.pointAtSuccessOf(run);
      return;
    }
    this.upsert(run, input);
  }

  private upsert(run: RunRecord, input: string): void {
    const put = this.upsertRun.run(
      run.id,
      run.instanceId,
      run.jobType,
      run.task,
      run.signature,
      run.kind,
      run.status,
      run.attempt,
      run.maxAttempts,
      run.origin,
      run.runner,
      run.fencingToken,
      run.queuedAt,
      run.startedAt ?? null,
      run.endedAt ?? null,
      input,
      run.result === undefined ? null : JSON.stringify(run.result),
      run.error === undefined ? null : JSON.stringify(run.error),
      run.progress === undefined ? null : JSON.stringify(run.progress),
      run.previousRunId ?? null,
      run.nextRunId ?? null,
      run.triggerId ?? null,
      run.signature,
    );
    if (put.changes === 1 && !this.pointAt(run)) this.placeInChain(run);
  }

  /**
   * Moves the pointers of the run's signature and task to a run just inserted or replaced, where
   * it is newer. Says whether it became its signature's newest run.
   */
  private pointAt(run: RunRecord): boolean {
    const pointer = pointerTo(run);
    const newest = this.pointAtLast.run(pointer).changes === 1;
    this.pointTaskAtLast.run(pointer);
    if (run.status === 'succeeded') {
      this.pointAtSuccess.run(pointer);
      this.pointTaskAtSuccess.run(pointer);
    }
    return newest;
  }

  /**
   * A run inserted behind a newer one of its signature (queued earlier, or at the same time with a
   * smaller id: a clock stepped back, a history written out of order) took the newest run as its
   * prior, where nothing would lead to it. It is linked in where its queue time puts it, so that
   * the chain stays in lastRun's order and every run of the signature is found by walking it.
   * A run that was stored already, or that the chain leads to, is left where it is.
   */
  private placeInChain(run: RunRecord): void {
    const head = this.selectChainHead.get(run.signature)?.last_run_id;
    if (head === null || head === undefined || head === run.id) return;
    if (this.selectChainLink.get(run.id)?.prior_run_id !== head) return;
    let after: ChainLink | undefined = this.selectChainLink.get(head);
    if (!after) return;
    for (;;) {
      const prior: ChainLink | undefined = after.prior_run_id === null ? undefined : this.selectChainLink.get(after.prior_run_id);
      if (!prior || !(prior.queued_at > run.queuedAt || (prior.queued_at === run.queuedAt && prior.id > run.id))) break;
      after = prior;
    }
    this.setPriorRun.run(after.prior_run_id, run.id);
    this.setPriorRun.run(run.id, after.id);
  }

  private pointAtSuccessOf(run: RunRecord): void {
    const pointer = pointerTo(run);
    this.pointAtSuccess.run(pointer);
    this.pointTaskAtSuccess.run(pointer);
  }

  private putTrigger(trigger: Trigger): void {
    this.insertTrigger.run(
      trigger.id,
      trigger.instanceId,
      trigger.task ?? null,
      trigger.input === undefined ? null : JSON.stringify(trigger.input),
      trigger.at,
      trigger.cancelRunId ?? null,
    );
  }

  /** Runs matching `query`, newest queued first; one prepared statement per combination of filters. */
  private queryRuns(query: Omit<RunQuery, 'limit'>, limit: number): RunRow[] {
    const params: unknown[] = [];
    let shape = 0;
    if (query.instanceId !== undefined) {
      shape |= 2;
      params.push(query.instanceId);
    }
    if (query.task !== undefined) {
      shape |= 4;
      params.push(query.task);
    }
    if (query.signature !== undefined) {
      shape |= 8;
      // Once for the walk along the signature's chain of runs, once as a filter.
      params.unshift(query.signature);
      params.push(query.signature);
    }
    if (query.status !== undefined) {
      const statuses: readonly RunStatus[] = Array.isArray(query.status) ? query.status : [query.status];
      if (statuses.length > 0 && statuses.every((s) => LIVE_STATUSES.includes(s))) shape |= 1024;
      if (Array.isArray(query.status)) {
        shape |= 32;
        params.push(JSON.stringify(query.status));
      } else {
        shape |= 16;
        params.push(query.status);
      }
    }
    if (query.since !== undefined) {
      shape |= 64;
      params.push(query.since);
    }
    if (query.until !== undefined) {
      shape |= 128;
      params.push(query.until);
    }
    if (query.before !== undefined) {
      shape |= 256;
      params.push(query.before.queuedAt, query.before.id);
    }
    if (query.inputContains !== undefined) {
      shape |= 512;
      params.push(query.inputContains);
    }
    params.push(limit);
    let statement = this.runQueries.get(shape);
    if (!statement) {
      statement = this.db.prepare<unknown[], RunRow>(runQuerySql(shape));
      this.runQueries.set(shape, statement);
    }
    return statement.all(...params);
  }

  /** Runs `fn`, turning what SQLite throws into a `StoreError` naming the file and the operation. */
  private exec<T>(what: string, fn: () => T): Promise<T> {
    if (this.closed) {
      return Promise.reject(
        new StoreError(`${describeFile(this.path)} is closed (while ${what}); open it again with SqliteStore.open`),
      );
    }
    try {
      return Promise.resolve(fn());
    } catch (error) {
      return Promise.reject(toStoreError(error, this.path, what));
    }
  }
}

/**
 * The run query of a shape, newest queued first (then id): one bit per filter, whose parameters
 * come in this order: 2 instance, 4 task, 8 signature, 16 one status,
 * 32 a JSON array of statuses, 64 since, 128 until, 256 a cursor (queued_at, id), 512 a text
 * the input contains (1024, no parameter: every status asked for is live); the limit comes last.
 */
function runQuerySql(shape: number): string {
  const where: string[] = [];
  if (shape & 2) where.push('instance_id = ?');
  if (shape & 4) where.push('task = ?');
  if (shape & 8) where.push('signature = ?');
  // With an instance or signature filter, those indexes select far fewer rows than the status
  // index would (most runs share a status); unary `+` keeps the planner off it.
  const status = shape & (2 | 8) ? '+status' : 'status';
  if (shape & 16) where.push(`${status} = ?`);
  if (shape & 32) where.push(`${status} IN (SELECT value FROM json_each(?))`);
  // Only live statuses asked for: said in literals too, so that the partial index runs_live
  // (which holds only those) qualifies rather than a walk of every run.
  if (shape & 1024) where.push(`status IN (${LIVE_LIST})`);
  if (shape & 64) where.push('queued_at >= ?');
  if (shape & 128) where.push('queued_at < ?');
  // A page's cursor: a row value, so that the index on (…, queued_at, id) seeks to it.
  if (shape & 256) where.push('(queued_at, id) < (?, ?)');
  if (shape & 512) where.push('instr(input, ?) > 0');
  const order = 'queued_at DESC, id DESC';
  const filter = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
  if (!(shape & 8)) return `SELECT * FROM runs ${filter} ORDER BY ${order} LIMIT ?`;
  // No index is keyed by signature (schema 5): the runs of one are those its lease row points at
  // (newest, newest success) and, from each, the chain of runs before it. CROSS JOIN keeps SQLite
  // walking the chain rather than scanning runs in the order asked for.
  return `
    WITH RECURSIVE chain(run_id) AS (
      SELECT value FROM leases, json_each(json_array(leases.last_run_id, leases.last_success_id))
        WHERE leases.signature = ? AND value IS NOT NULL
      UNION
      SELECT r.prior_run_id FROM chain JOIN runs AS r ON r.id = chain.run_id WHERE r.prior_run_id IS NOT NULL
    )
    SELECT runs.* FROM chain CROSS JOIN runs ON runs.id = chain.run_id ${filter} ORDER BY ${order} LIMIT ?`;
}

/** Options of {@link SqliteStore.open}. */
export interface SqliteOpenOptions {
  /**
   * Whether a missing file is created. With `false` nothing is created (no file, no folder) and a
   * missing file fails with `StoreNotFoundError`: commands that only read or add to a store.
   * @default true
   */
  create?: boolean;
  /**
   * What a commit survives. `'normal'` (WAL with `synchronous = NORMAL`): a crash of the process,
   * never a torn file; a power loss or an OS crash may lose the last commits before the next
   * checkpoint. `'full'` (`synchronous = FULL`): every commit is on disk when it returns, at the
   * cost of an fsync per commit.
   * @default 'normal'
   */
  durability?: Durability;
}

/** See {@link SqliteOpenOptions.durability}. */
export type Durability = 'normal' | 'full';

/** The values of {@link Durability}, for command-line choices. */
export const DURABILITIES: readonly Durability[] = ['normal', 'full'];

/**
 * Creates the store file at `path` whole: schema and WAL mode are set up in a private file beside
 * it, which is then hard-linked into place (the link fails when another process got there first;
 * its file is then used). No process ever sees a half-made store, and none switches a shared
 * file to WAL, which is what made two first openers fail with "database is locked": switching
 * the journal mode takes a read lock and then upgrades it to a write lock, and SQLite never waits
 * (busy handler) for such an upgrade, as two upgraders would deadlock; it returns SQLITE_BUSY at
 * once. Two openers of a new file (`ujr run` and `ujr jobs list` started together) both took the
 * read lock and one of them failed within milliseconds, despite the 5 s busy timeout.
 */
function createStoreFile(path: string): void {
  const folder = dirname(path);
  mkdirSync(folder, { recursive: true });
  const temp = join(folder, `.${basename(path)}.${process.pid}.${randomUUID().slice(0, 8)}.new`);
  try {
    const db = new Database(temp, { timeout: BUSY_TIMEOUT_MS });
    try {
      migrate(db, temp);
      // Last, with nothing left to write: closing the only connection then leaves no -wal file.
      db.pragma('journal_mode = WAL');
    } finally {
      db.close();
    }
    try {
      linkSync(temp, path);
    } catch (error) {
      const code = error instanceof Error && 'code' in error ? error.code : undefined;
      // EEXIST: another process created it meanwhile. Without hard links (some network or FAT
      // file systems) the store is created in place by the open that follows (see `useWal`).
      if (code !== 'EEXIST' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EXDEV') throw error;
    }
  } finally {
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${temp}${suffix}`, { force: true });
  }
}

/**
 * Puts the connection in WAL mode. On a file already in WAL mode this only reads. On a file in
 * rollback mode (one made without `createStoreFile`) the switch needs the write lock, which
 * SQLite does not wait for (see `createStoreFile`): SQLITE_BUSY is retried here until the busy
 * timeout.
 */
function useWal(db: Database.Database): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      const code = error instanceof Error && 'code' in error ? String(error.code) : '';
      if (!code.startsWith('SQLITE_BUSY') || Date.now() >= deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10 + Math.random() * 40);
    }
  }
}

/**
 * Creates or upgrades the schema, one `user_version` step at a time, each in a `BEGIN IMMEDIATE`
 * transaction (which waits for the write lock: it is taken before anything is read) that checks
 * the version again, so that concurrent openers migrate once.
 */
function migrate(db: Database.Database, path: string): void {
  const step = db.transaction((version: number, sql: string | ((db: Database.Database) => void)) => {
    // Another process may have migrated while this one waited for the write lock.
    if (userVersion(db) >= version) return;
    if (typeof sql === 'string') db.exec(sql);
    else sql(db);
    db.pragma(`user_version = ${version}`);
  });
  const current = userVersion(db);
  if (current > SCHEMA_VERSION) {
    throw new StoreError(
      `${path} has schema version ${current}, newer than this ujr understands (${SCHEMA_VERSION}); upgrade ujr, or point it at another store file`,
    );
  }
  for (const [version, sql] of MIGRATIONS) {
    if (current < version) step.immediate(version, sql);
  }
}

function userVersion(db: Database.Database): number {
  const value = db.pragma('user_version', { simple: true });
  return typeof value === 'number' ? value : 0;
}

function toStoreError(error: unknown, path: string, what: string): StoreError {
  if (error instanceof StoreError) return error;
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
  const message = error instanceof Error ? error.message : String(error);
  const file = describeFile(path);
  let advice: string;
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    advice = `database is locked: another process held it for more than ${BUSY_TIMEOUT_MS} ms; look for a stuck ujr process or a tool holding a transaction open on the file, then try again`;
  } else if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    advice = `${message}: the file is damaged or not a ujr database; move it aside and start again with a fresh file`;
  } else if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_PERM')) {
    advice = `${message}: check that the file and its directory exist and are writable by this user`;
  } else if (code.startsWith('SQLITE_FULL') || code.startsWith('SQLITE_IOERR')) {
    advice = `${message}: check the free disk space and the health of the disk holding the file`;
  } else {
    advice = message;
  }
  return new StoreError(`${file} failed while ${what}: ${advice}`, { cause: error });
}

function describeFile(path: string): string {
  return path === ':memory:' || path === '' ? 'the in-memory SQLite store' : `SQLite store ${path}`;
}

/** A run as the pointers name it: by queue time, lastRun's order. */
function pointerTo(run: RunRecord): PointerParams {
  return { id: run.id, at: run.queuedAt, signature: run.signature, instanceId: run.instanceId, task: run.task };
}

function rowToLease(row: LeaseRow): Lease {
  return {
    signature: row.signature,
    owner: row.owner,
    expiresAt: row.expires_at,
    token: row.token,
    runId: row.run_id,
    instanceId: row.instance_id,
    task: row.task,
  };
}

function rowToRun(row: RunRow): RunRecord {
  const run: RunRecord = {
    id: row.id,
    instanceId: row.instance_id,
    jobType: row.job_type,
    task: row.task,
    signature: row.signature,
    kind: stored<TaskKind>(row.kind),
    status: stored<RunStatus>(row.status),
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    origin: stored<RunOrigin>(row.origin),
    runner: row.runner,
    fencingToken: row.fencing_token,
    queuedAt: row.queued_at,
    input: parseJson(row.input),
  };
  if (row.started_at !== null) run.startedAt = row.started_at;
  if (row.ended_at !== null) run.endedAt = row.ended_at;
  if (row.result !== null) run.result = parseJson(row.result);
  if (row.error !== null) run.error = storedJson<ErrorInfo>(row.error);
  if (row.progress !== null) run.progress = storedJson<Progress>(row.progress);
  if (row.previous_run_id !== null) run.previousRunId = row.previous_run_id;
  if (row.next_run_id !== null) run.nextRunId = row.next_run_id;
  if (row.trigger_id !== null) run.triggerId = row.trigger_id;
  return run;
}

function liveRowLease(row: LiveRunRow): Lease | undefined {
  if (row.lease_signature === null || row.lease_token === null || row.lease_instance_id === null || row.lease_task === null) return undefined;
  return {
    signature: row.lease_signature,
    owner: row.lease_owner,
    expiresAt: row.lease_expires_at ?? 0,
    token: row.lease_token,
    runId: row.lease_run_id,
    instanceId: row.lease_instance_id,
    task: row.lease_task,
  };
}

function rowToTriggerResult(row: TriggerResultRow): TriggerResult {
  const result: TriggerResult = { id: row.id, instanceId: row.instance_id, at: row.at, runIds: storedJson<string[]>(row.run_ids) };
  if (row.note !== null) result.note = row.note;
  return result;
}

function rowToLog(row: LogRow): LogLine {
  return { runId: row.run_id, seq: row.seq, at: row.at, level: stored<LogLevel>(row.level), message: row.message };
}

function rowToStatus(row: StatusRow): InstanceStatus {
  const status: InstanceStatus = { instanceId: row.instance_id };
  if (row.retired_at !== null) status.retiredAt = row.retired_at;
  if (row.retired_reason !== null) status.retiredReason = row.retired_reason;
  if (row.plan_error !== null) status.planError = storedJson<ErrorInfo & { at: number }>(row.plan_error);
  if (row.last_planned_at !== null) status.lastPlannedAt = row.last_planned_at;
  return status;
}

function rowToTrigger(row: TriggerRow): Trigger {
  const trigger: Trigger = { id: row.id, instanceId: row.instance_id, at: row.at };
  if (row.task !== null) trigger.task = row.task;
  if (row.input !== null) trigger.input = parseJson(row.input);
  if (row.cancel_run_id !== null) trigger.cancelRunId = row.cancel_run_id;
  return trigger;
}

/** A string column this adapter only ever writes from a value of type `T` (trusted origin). */
function stored<T extends string>(value: string): T {
  return value as T;
}

/** A JSON column this adapter only ever writes from a value of type `T` (trusted origin). */
function storedJson<T>(text: string): T {
  return parseJson(text) as unknown as T;
}

function rowToCheckpoint(row: CheckpointRow): Checkpoint {
  return { signature: row.signature, value: parseJson(row.value), runId: row.run_id, at: row.at };
}
