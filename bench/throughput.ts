/**
 * Local throughput benchmark (not a test; run by hand, see BENCHMARKS.md and issue 12):
 *
 *   npm run bench                                          # every shape, 20,000 tasks, 5 runs, chains
 *   npm run bench -- --peer graphile --tasks 20000 --pairs 3
 *   npm run bench -- --shape yield --tasks 100000 --pairs 1 --chain 0
 *   npm run -s bench -- --durability full --json           # -s: no npm banner on stdout
 *
 * Options: --shape sync|yield|slow|all (or a comma list; default all), --tasks N (default 20000),
 * --concurrency N (default 24 for sync and yield, 64 for slow, both systems), --pairs N (default
 * 5), --durability normal|full (ujr's SQLite synchronous mode, if the store offers it), --peer
 * graphile, --chain N (follow-up chain steps, default 1000, 0 skips the chains), --chain-load N
 * (tasks running during the second chain, default 10000, 0 skips it), --json (JSON lines only).
 *
 * Method:
 * - Shapes (bench/throughput/shapes.ts): `sync` no-op returning synchronously, `yield` awaits
 *   setImmediate once, `slow` awaits setTimeout(1); the same work function on both systems.
 * - Every measurement runs in a child process of its own, on a fresh store: ujr on a new SQLite
 *   file in a temp folder through `Runner` + `SqliteStore` as `ujr run --once` runs them
 *   (bench/throughput/ujr-run.ts), graphile-worker 0.18 on a new database of a private
 *   PostgreSQL 15 server that this script starts in a temp folder and stops at the end or on
 *   SIGINT (bench/throughput/graphile-run.ts, postgres.ts).
 * - ujr: timed from `runOnce()` until it resolves (all N succeeded, last commit returned), then
 *   the store is read back (N runs, all succeeded, N distinct tasks). graphile-worker: N jobs
 *   added before `run()`, timed from `run()` until its jobs table is empty.
 * - Commits: calls of the store's `commit` counted by a wrapper around the store object (also
 *   `acquireLeases` calls and run records written). Bytes written: the /proc io `write_bytes`
 *   delta (and `wchar`) of the ujr child across the run and the store's close, and the db + -wal
 *   file size at the end of the run; for graphile-worker, the same counters of the PostgreSQL
 *   server's processes and the WAL generated (LSN delta). Bytes per task = write_bytes / N.
 *   Peak RSS: `process.resourceUsage().maxRSS` of the measuring child (PostgreSQL's own memory is
 *   not in graphile-worker's figure).
 * - With a peer, each shape runs `--pairs` interleaved pairs, ujr first in odd pairs and the peer
 *   first in even ones; each pair's ratio (ujr tasks/s ÷ peer jobs/s) and the median ratio are
 *   printed, never a best of N. Without a peer, each run and the median.
 * - Follow-up chain (bench/throughput/ujr-chain.ts): step i+1 is returned by the plan that
 *   follows step i's success; p50/p99 of step i's handler end → step i+1's handler start, idle
 *   and while `--chain-load` other tasks run (each awaits the end of the chain).
 * - The load average is recorded at the start of every run: the machines are shared, compare
 *   ratios from one invocation, not absolute figures across invocations.
 */
import { cpus, tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { loadAverage, median } from './throughput/measure.js';
import { startPostgres, PostgresUnavailableError, type PrivatePostgres } from './throughput/postgres.js';
import {
  chainResultSchema,
  durabilitySchema,
  measureInChild,
  runResultSchema,
  shapeSchema,
  stopCurrentChild,
  type ChainRequest,
  type ChainResult,
  type Durability,
  type GraphileRunRequest,
  type RunResult,
  type Shape,
  type UjrRunRequest,
} from './throughput/protocol.js';
import { SHAPES } from './throughput/shapes.js';

const USAGE = 'usage: npm run bench -- [--shape sync|yield|slow|all] [--tasks N] [--concurrency N] [--pairs N] [--durability normal|full] [--peer graphile] [--chain N] [--chain-load N] [--json]';

interface Options {
  shapes: Shape[];
  tasks: number;
  concurrency: number | undefined;
  pairs: number;
  durability: Durability;
  peer: 'graphile' | undefined;
  chain: number;
  chainLoad: number;
  json: boolean;
}

function usageError(message: string): never {
  console.error(`bench: ${message}\n${USAGE}`);
  process.exit(2);
}

function integer(name: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) usageError(`--${name} must be an integer ≥ ${min}, got "${text}"`);
  return value;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', default: 'all' },
      tasks: { type: 'string', default: '20000' },
      concurrency: { type: 'string' },
      pairs: { type: 'string', default: '5' },
      durability: { type: 'string', default: 'normal' },
      peer: { type: 'string' },
      chain: { type: 'string', default: '1000' },
      'chain-load': { type: 'string', default: '10000' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const shapes = values.shape === 'all' ? shapeSchema.options : values.shape.split(',').map((s) => shapeSchema.safeParse(s.trim()).data ?? usageError(`unknown shape "${s}"`));
  const durability = durabilitySchema.safeParse(values.durability).data ?? usageError(`--durability is normal or full, got "${values.durability}"`);
  if (values.peer !== undefined && values.peer !== 'graphile') usageError(`the only peer is graphile, got "${values.peer}"`);
  const chain = integer('chain', values.chain, 0);
  if (chain === 1) usageError('--chain needs at least 2 steps (or 0 to skip the chains)');
  const chainLoad = integer('chain-load', values['chain-load'], 0);
  // The loaded tasks must all be admitted at once (the runner's maxQueued is 10,000).
  if (chainLoad > 10_000) usageError('--chain-load is at most 10000 (the runner queues at most 10,000 tasks at once)');
  return {
    shapes,
    tasks: integer('tasks', values.tasks, 1),
    concurrency: values.concurrency === undefined ? undefined : integer('concurrency', values.concurrency, 1),
    pairs: integer('pairs', values.pairs, 1),
    durability,
    peer: values.peer === 'graphile' ? 'graphile' : undefined,
    chain,
    chainLoad,
    json: values.json,
  };
}

const options = parseOptions();
const emit = (line: Record<string, unknown>) => console.log(JSON.stringify(line));
const child = (name: string) => new URL(`./throughput/${name}`, import.meta.url);

// ---------------------------------------------------------------------------------------------
// The peer's server

let postgres: PrivatePostgres | undefined;
let databases = 0;
/** Why the requested peer did not run. */
let peerSkipped: string | undefined;

async function startPeer(): Promise<PrivatePostgres | undefined> {
  if (options.peer !== 'graphile') return undefined;
  try {
    import.meta.resolve('graphile-worker');
  } catch {
    peerSkipped = 'graphile-worker is not installed (npm install, it is a devDependency)';
    console.error(`bench: ${peerSkipped}: the peer is skipped`);
    return undefined;
  }
  try {
    return await startPostgres();
  } catch (error) {
    if (!(error instanceof PostgresUnavailableError)) throw error;
    peerSkipped = error.message.split('\n')[0];
    console.error(`bench: ${error.message}\nbench: the graphile-worker peer is skipped; ujr runs alone`);
    return undefined;
  }
}

process.on('SIGINT', () => {
  stopCurrentChild();
  const stopping = postgres?.stop() ?? Promise.resolve();
  stopping.finally(() => process.exit(130)).catch(() => undefined);
});

// ---------------------------------------------------------------------------------------------
// Measurements

async function measureUjr(shape: Shape, concurrency: number): Promise<RunResult> {
  const request: UjrRunRequest = { shape, tasks: options.tasks, concurrency, durability: options.durability, limit: 'none' };
  return measureInChild(child('ujr-run.ts'), request, runResultSchema);
}

async function measureGraphile(server: PrivatePostgres, shape: Shape, concurrency: number): Promise<RunResult> {
  databases += 1;
  const database = `bench_${databases}`;
  await server.createDatabase(database);
  try {
    const request: GraphileRunRequest = { shape, tasks: options.tasks, concurrency, url: server.url(database), postmasterPid: server.postmasterPid() };
    return await measureInChild(child('graphile-run.ts'), request, runResultSchema);
  } finally {
    await server.dropDatabase(database);
  }
}

interface ShapeOutcome {
  shape: Shape;
  concurrency: number;
  ujr: RunResult[];
  peer: RunResult[];
  ratios: number[];
}

async function measureShape(shape: Shape): Promise<ShapeOutcome> {
  const concurrency = options.concurrency ?? SHAPES[shape].concurrency;
  const outcome: ShapeOutcome = { shape, concurrency, ujr: [], peer: [], ratios: [] };
  for (let pair = 1; pair <= options.pairs; pair += 1) {
    const systems: ('ujr' | 'graphile')[] = postgres === undefined ? ['ujr'] : pair % 2 === 1 ? ['ujr', 'graphile'] : ['graphile', 'ujr'];
    const results: Partial<Record<'ujr' | 'graphile', RunResult>> = {};
    for (const system of systems) {
      const loadAtStart = loadAverage();
      const result = system === 'ujr' ? await measureUjr(shape, concurrency) : await measureGraphile(postgres as PrivatePostgres, shape, concurrency);
      results[system] = result;
      (system === 'ujr' ? outcome.ujr : outcome.peer).push(result);
      emit({ type: 'run', pair, loadAverage: loadAtStart, ...result });
    }
    if (results.ujr && results.graphile) {
      const ratio = results.ujr.tasksPerSecond / results.graphile.tasksPerSecond;
      outcome.ratios.push(ratio);
      emit({ type: 'pair', shape, pair, order: systems.join(' then '), ujr: results.ujr.tasksPerSecond, graphile: results.graphile.tasksPerSecond, ratio: round(ratio, 3) });
    }
  }
  emit({
    type: 'median',
    shape,
    tasks: options.tasks,
    concurrency,
    ujr: median(outcome.ujr.map((r) => r.tasksPerSecond)),
    ...(outcome.peer.length > 0 ? { graphile: median(outcome.peer.map((r) => r.tasksPerSecond)), ratio: round(median(outcome.ratios), 3) } : {}),
  });
  return outcome;
}

async function measureChain(load: number): Promise<ChainResult> {
  const request: ChainRequest = { steps: options.chain, load, durability: options.durability };
  const result = await measureInChild(child('ujr-chain.ts'), request, chainResultSchema);
  emit({ type: 'chain', loadAverage: loadAverage(), ...result });
  return result;
}

// ---------------------------------------------------------------------------------------------
// Summary

const round = (value: number, digits: number) => Number(value.toFixed(digits));
const int = (value: number | null | undefined) => (value === null || value === undefined || Number.isNaN(value) ? '–' : Math.round(value).toLocaleString('en-US'));
const mib = (bytes: number | null) => (bytes === null ? '–' : (bytes / 2 ** 20).toFixed(1));

function medianOf(results: RunResult[], pick: (r: RunResult) => number | null): number | null {
  const values = results.map(pick).filter((v): v is number => v !== null);
  return values.length === 0 ? null : median(values);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

function summary(outcomes: ShapeOutcome[], chains: ChainResult[], loadAtStart: string): string {
  const peer = outcomes.some((o) => o.peer.length > 0);
  const lines: string[] = [];
  const durability = outcomes[0]?.ujr[0]?.durability ?? `synchronous=${options.durability.toUpperCase()}`;
  lines.push(
    `\nujr (SQLite WAL, ${durability})${peer ? ' vs graphile-worker 0.18 (PostgreSQL 15, fsync on)' : ''}: ${options.tasks.toLocaleString('en-US')} tasks per run, ` +
      `${options.pairs} ${peer ? 'interleaved pair' : 'run'}${options.pairs === 1 ? '' : 's'} per shape; ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}, temp files in ${tmpdir()}`,
  );
  if (peerSkipped !== undefined) lines.push(`graphile-worker peer skipped: ${peerSkipped}`);
  lines.push(`load average at start ${loadAtStart}, at end ${loadAverage()}\n`);
  lines.push(
    table(
      ['shape', 'conc', 'ujr tasks/s (median)', 'each run', ...(peer ? ['graphile jobs/s (median)', 'each run', 'ujr/graphile per pair', 'median ratio'] : [])],
      outcomes.map((o) => [
        o.shape,
        String(o.concurrency),
        int(median(o.ujr.map((r) => r.tasksPerSecond))),
        o.ujr.map((r) => int(r.tasksPerSecond)).join(' '),
        ...(peer
          ? [int(median(o.peer.map((r) => r.tasksPerSecond))), o.peer.map((r) => int(r.tasksPerSecond)).join(' '), o.ratios.map((r) => r.toFixed(2)).join(' '), o.ratios.length > 0 ? median(o.ratios).toFixed(2) : '–']
          : []),
      ]),
    ),
  );
  lines.push(
    '\nCosts, medians over the runs. written: /proc io write_bytes (ujr: its process, run and close of the store; graphile-worker: the ' +
      "PostgreSQL server's processes); B/task = written ÷ tasks; write(): wchar ÷ tasks; WAL: PostgreSQL's WAL generated ÷ tasks:\n",
  );
  const costRows: string[][] = [];
  for (const o of outcomes) {
    for (const [system, results] of [['ujr', o.ujr], ['graphile', o.peer]] as const) {
      if (results.length === 0) continue;
      const m = (pick: (r: RunResult) => number | null) => medianOf(results, pick);
      costRows.push([
        o.shape,
        system,
        int(m((r) => r.commits)),
        int(m((r) => r.runWrites)),
        int(m((r) => r.leaseCalls)),
        mib(m((r) => r.diskWriteBytes)),
        int(m((r) => r.bytesPerTask)),
        int(m((r) => (r.writeCallBytes === null ? null : r.writeCallBytes / r.tasks))),
        mib(m((r) => r.fileBytes)),
        int(m((r) => (r.walBytes === null ? null : r.walBytes / r.tasks))),
        `${int(m((r) => r.peakRssMiB))} (${int(m((r) => r.baseRssMiB))})`,
      ]);
    }
  }
  lines.push(
    table(['shape', 'system', 'commits', 'run writes', 'lease txs', 'written MiB', 'B/task', 'write() B/task', 'db+wal MiB', 'WAL B/task', 'peak RSS MiB (before run)'], costRows),
  );
  const notes = new Set(outcomes.flatMap((o) => [...o.ujr, ...o.peer].flatMap((r) => r.notes)));
  for (const note of notes) lines.push(`note: ${note}`);
  for (const c of chains) {
    lines.push(
      `\nfollow-up chain, ${c.steps.toLocaleString('en-US')} steps${c.load > 0 ? `, while ${c.load.toLocaleString('en-US')} other tasks run (at least ${c.othersRunningMin.toLocaleString('en-US')} at every step)` : ', nothing else running'}: ` +
        `end → next start p50 ${c.p50Ms.toFixed(2)} ms, p99 ${c.p99Ms.toFixed(2)} ms, max ${c.maxMs.toFixed(1)} ms (peak RSS ${c.peakRssMiB} MiB)`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

const loadAtStart = loadAverage();
try {
  postgres = await startPeer();
  const outcomes: ShapeOutcome[] = [];
  for (const shape of options.shapes) outcomes.push(await measureShape(shape));
  const chains: ChainResult[] = [];
  if (options.chain > 0) {
    chains.push(await measureChain(0));
    if (options.chainLoad > 0) chains.push(await measureChain(options.chainLoad));
  }
  if (!options.json) console.log(summary(outcomes, chains, loadAtStart));
} finally {
  await postgres?.stop();
}
