/**
 * How the throughput benchmark talks to its measurements: each one runs in a child process of
 * its own (so that its peak RSS and its /proc io counters are that run's alone), gets its request
 * as one JSON argument and prints its result as the last line of its stdout. Both sides parse
 * what crosses with the schemas below.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { z } from 'zod';

export const shapeSchema = z.enum(['sync', 'yield', 'slow']);
export type Shape = z.infer<typeof shapeSchema>;

export const durabilitySchema = z.enum(['normal', 'full']);
export type Durability = z.infer<typeof durabilitySchema>;

/** What each task takes (bench/limits.ts): nothing, a shared rate, a concurrency cap, or both; never tight enough to wait. */
export const benchLimitSchema = z.enum(['none', 'rate', 'concurrency', 'both']);
export type BenchLimit = z.infer<typeof benchLimitSchema>;

export const ujrRunRequestSchema = z.object({
  shape: shapeSchema,
  tasks: z.number().int().positive(),
  concurrency: z.number().int().positive(),
  durability: durabilitySchema,
  limit: benchLimitSchema.default('none'),
});
export type UjrRunRequest = z.infer<typeof ujrRunRequestSchema>;

export const graphileRunRequestSchema = z.object({
  shape: shapeSchema,
  tasks: z.number().int().positive(),
  concurrency: z.number().int().positive(),
  /** Connection string of a fresh, empty database. */
  url: z.string(),
  /** The server's postmaster, whose processes' writes are counted. */
  postmasterPid: z.number().int().positive(),
});
export type GraphileRunRequest = z.infer<typeof graphileRunRequestSchema>;

export const chainRequestSchema = z.object({
  steps: z.number().int().min(2),
  /** Other tasks running (each waiting) for the whole chain; 0 for none. */
  load: z.number().int().nonnegative(),
  durability: durabilitySchema,
});
export type ChainRequest = z.infer<typeof chainRequestSchema>;

export const runResultSchema = z.object({
  system: z.enum(['ujr', 'graphile']),
  shape: shapeSchema,
  tasks: z.number(),
  concurrency: z.number(),
  /** ujr: the SQLite synchronous mode the store ran with; graphile: the server's commit mode. */
  durability: z.string(),
  seconds: z.number(),
  tasksPerSecond: z.number(),
  /** ujr: calls of the store's `commit` (one SQLite transaction each). */
  commits: z.number().nullable(),
  /** ujr: calls of `acquireLeases` (one SQLite transaction each). */
  leaseCalls: z.number().nullable(),
  /** ujr: run records handed to `commit` (a record written twice counts twice). */
  runWrites: z.number().nullable(),
  /** /proc io `write_bytes` delta: ujr of its own process, graphile of the server's processes. */
  diskWriteBytes: z.number().nullable(),
  /** /proc io `wchar` delta, same processes. */
  writeCallBytes: z.number().nullable(),
  bytesPerTask: z.number().nullable(),
  /** ujr: size of the db and -wal files when the run ended (before close). */
  fileBytes: z.number().nullable(),
  /** graphile: WAL generated (pg_current_wal_insert_lsn delta). */
  walBytes: z.number().nullable(),
  /** Peak RSS of the measuring process (for graphile: the worker's Node process, not the server). */
  peakRssMiB: z.number(),
  /** RSS of the measuring process just before the run (Node, tsx and the modules loaded). */
  baseRssMiB: z.number(),
  /** How the run was checked to be complete. */
  verified: z.string(),
  notes: z.array(z.string()),
});
export type RunResult = z.infer<typeof runResultSchema>;

export const chainResultSchema = z.object({
  steps: z.number(),
  load: z.number(),
  durability: z.string(),
  /** End of step i's handler → start of step i+1's handler, ms. */
  p50Ms: z.number(),
  p99Ms: z.number(),
  maxMs: z.number(),
  /** The fewest of the `load` other tasks that were running when a step started. */
  othersRunningMin: z.number(),
  seconds: z.number(),
  peakRssMiB: z.number(),
});
export type ChainResult = z.infer<typeof chainResultSchema>;

/**
 * The child side: parses the request (argv[2]) with `schema`, runs `body`, prints its result as
 * one JSON line. A failure is printed to stderr and exits 1.
 */
export function runChild<Req, Res>(schema: z.ZodType<Req>, body: (request: Req) => Promise<Res>): void {
  const main = async () => {
    const request = schema.parse(JSON.parse(process.argv[2] ?? 'null'));
    const result = await body(request);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  };
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
      process.exit(1);
    },
  );
}

/** A measurement's child process failed or printed no result. */
export class MeasurementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MeasurementError';
  }
}

/** The child running now, so that an interrupt can stop it. */
let current: ChildProcess | undefined;

/** Stops the measurement running now, if any (SIGTERM to the child this process started). */
export function stopCurrentChild(): void {
  current?.kill('SIGTERM');
}

/**
 * The parent side: runs `script` (a module under bench/throughput) in a child Node process with
 * this process's loader flags, `request` as its argument, and parses its last stdout line.
 */
export function measureInChild<Res>(script: URL, request: unknown, schema: z.ZodType<Res>): Promise<Res> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, script.pathname, JSON.stringify(request)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    current = child;
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (current === child) current = undefined;
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new MeasurementError(`${script.pathname.split('/').pop()} failed (${signal ?? `exit ${code}`}); its error is printed above`));
      try {
        resolve(schema.parse(JSON.parse(last)));
      } catch (error) {
        reject(new MeasurementError(`${script.pathname} printed no result: ${error instanceof Error ? error.message : String(error)}`));
      }
    });
  });
}
