/**
 * One graphile-worker 0.18 measurement (a child process of bench/throughput.ts), with the
 * settings of ../shared/TOOLING.md: N jobs added with `addJobs` before `run`, concurrency as
 * asked, a local queue of 500, prepared statements, both batch delays 0, poll interval 10 ms, a
 * pool of concurrency + 2. Timed from `run()` until the jobs table is empty: `job:success` fires
 * before the batched completion commits, so after the N-th success the table is polled (every
 * millisecond) until no job is left.
 *
 * Bytes written: WAL generated (`pg_current_wal_insert_lsn()` before and after), and the
 * `write_bytes` / `wchar` deltas of the postmaster and its children from /proc/<pid>/io (this
 * process must be allowed to read them: root, or the server's user). Backends that exit during
 * the run would be missed; the pool's connections live from `run()` until after the reading.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger, makeWorkerUtils, run, type WorkerEvents, type WorkerUtils } from 'graphile-worker';
import { z } from 'zod';
import { peakRssMiB, processTreeIo, rssMiB, treeDelta } from './measure.js';
import { graphileRunRequestSchema, runChild, type GraphileRunRequest, type RunResult } from './protocol.js';
import { SHAPES } from './shapes.js';

/** Jobs per `addJobs` call. */
const ADD_CHUNK = 5_000;

/** graphile-worker's errors go to stderr; nothing else is printed. */
const logger = new Logger(() => (level, message) => {
  if (level === 'error') console.error(`graphile-worker: ${message}`);
});

const countSchema = z.object({ n: z.coerce.number() });
const lsnSchema = z.object({ lsn: z.string() });

async function queryOne<T>(utils: WorkerUtils, sql: string, schema: z.ZodType<T>, values: unknown[] = []): Promise<T> {
  const result = await utils.withPgClient((client) => client.query(sql, values));
  return schema.parse(result.rows[0]);
}

const jobsLeft = (utils: WorkerUtils) => queryOne(utils, 'SELECT count(*) AS n FROM graphile_worker._private_jobs', countSchema).then((row) => row.n);
const walPosition = (utils: WorkerUtils) => queryOne(utils, 'SELECT pg_current_wal_insert_lsn()::text AS lsn', lsnSchema).then((row) => row.lsn);

async function measure(request: GraphileRunRequest): Promise<RunResult> {
  const utils = await makeWorkerUtils({ connectionString: request.url, logger });
  try {
    await utils.migrate();
    for (let from = 0; from < request.tasks; from += ADD_CHUNK) {
      const count = Math.min(ADD_CHUNK, request.tasks - from);
      await utils.addJobs(Array.from({ length: count }, (_, k) => ({ identifier: 'work', payload: { i: from + k } })));
    }
    const queued = await jobsLeft(utils);
    if (queued !== request.tasks) throw new Error(`${queued} jobs queued, expected ${request.tasks}`);

    const { work } = SHAPES[request.shape];
    const events: WorkerEvents = new EventEmitter();
    let succeeded = 0;
    let allSucceeded!: () => void;
    let failed!: (error: Error) => void;
    const finished = new Promise<void>((resolve, reject) => {
      allSucceeded = resolve;
      failed = reject;
    });
    events.on('job:success', () => {
      succeeded += 1;
      if (succeeded === request.tasks) allSucceeded();
    });
    events.on('job:error', ({ error }) => failed(new Error(`a job failed: ${String(error)}`)));

    const baseRss = rssMiB();
    const walBefore = await walPosition(utils);
    const serverBefore = processTreeIo(request.postmasterPid);
    const t0 = performance.now();
    const runner = await run({
      connectionString: request.url,
      logger,
      events,
      concurrency: request.concurrency,
      maxPoolSize: request.concurrency + 2,
      pollInterval: 10,
      noHandleSignals: true,
      taskList: { work: () => work() },
      preset: { worker: { localQueue: { size: 500 }, preparedStatements: true, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    });
    try {
      await finished;
      while ((await jobsLeft(utils)) > 0) await sleep(1);
      const seconds = (performance.now() - t0) / 1000;
      const serverAfter = processTreeIo(request.postmasterPid);
      const walAfter = await walPosition(utils);
      const wal = await queryOne(utils, 'SELECT pg_wal_lsn_diff($1, $2) AS n', countSchema, [walAfter, walBefore]);
      const io = serverAfter.size > 0 ? treeDelta(serverBefore, serverAfter) : undefined;
      const notes: string[] = [];
      if (!io) notes.push(`/proc/${request.postmasterPid}/io is not readable: graphile-worker's figure is its WAL volume alone`);
      else if (io.exited > 0) notes.push(`${io.exited} PostgreSQL processes exited during a graphile-worker run: their writes are missed`);
      return {
        system: 'graphile',
        shape: request.shape,
        tasks: request.tasks,
        concurrency: request.concurrency,
        durability: 'fsync on, synchronous_commit on',
        seconds,
        tasksPerSecond: Math.round(request.tasks / seconds),
        commits: null,
        leaseCalls: null,
        runWrites: null,
        diskWriteBytes: io?.writeBytes ?? null,
        writeCallBytes: io?.writeCallBytes ?? null,
        bytesPerTask: io ? Math.round(io.writeBytes / request.tasks) : null,
        fileBytes: null,
        walBytes: wal.n,
        peakRssMiB: peakRssMiB(),
        baseRssMiB: baseRss,
        verified: `${succeeded} job:success events, jobs table empty`,
        notes,
      };
    } finally {
      await runner.stop();
    }
  } finally {
    await utils.release();
  }
}

runChild(graphileRunRequestSchema, measure);
