/**
 * `ujr run`: the local runner in the foreground. It says where results and the status page are,
 * prints each run as it ends, keeps a live line (counts, then what runs now with its progress) on a
 * terminal, and stops gracefully on SIGINT/SIGTERM or when its store file is lost.
 */
import { relative } from 'node:path';
import { StoreFileLostError } from '../adapters/sqlite/errors.js';
import type { Durability } from '../adapters/sqlite/store.js';
import { formatProblem, isWholeFileBroken } from '../config.js';
import { readInstancesFile } from '../config-file.js';
import type { RunnerStats } from '../engine/runner.js';
import { loadJobTypes } from '../local/jobs-module.js';
import { dataPath, openLocalRuntime, type LocalPaths } from '../local/runtime.js';
import type { Store } from '../ports/store.js';
import { TERMINAL_STATUSES, type Logger, type RunRecord } from '../types.js';
import { DEFAULT_UI_PORT } from '../ui/command.js';
import { EXIT } from './errors.js';
import { duration, errorLine, PLAIN, progress, statusText, truncate, visibleLength, type Paint } from './format.js';
import type { Io } from './io.js';

export interface RunCommandOptions {
  once?: boolean;
  concurrency: number;
  grace: number;
  leaseTtl: number;
  retention: number;
  durability: Durability;
  quiet?: boolean;
  json: boolean;
  paint: Paint;
}

/** How often the live line is redrawn (and ended runs are printed). */
const TICK_MS = 1_000;
/** Ended runs printed per tick at most; the rest are counted in one line. */
const ENDED_PER_TICK = 8;

/**
 * Runs the local runner until stopped (or, with `once`, until idle) and resolves with the exit
 * code: 2 when the instances file as a whole is unusable at start (missing, not JSON, not shaped
 * `{ "instances": [...] }`), as for any other configuration error; with `once`, 1 when a run
 * failed or an instance has a problem.
 */
export async function runCommand(paths: LocalPaths, opts: RunCommandOptions, io: Io): Promise<number> {
  const log = stderrLogger(io);
  // A file that cannot be used at all stops here: there is no last good configuration to keep running.
  const startProblems = await readInstancesFile(paths.instancesFile, await loadJobTypes(paths.jobsModule));
  if (isWholeFileBroken(startProblems)) {
    for (const problem of startProblems.problems) io.err(`ujr: ${formatProblem(paths.instancesFile, problem)}`);
    return EXIT.usage;
  }
  const runtime = await openLocalRuntime(paths, {
    log,
    once: opts.once === true,
    concurrency: opts.concurrency,
    graceMs: opts.grace,
    leaseTtlMs: opts.leaseTtl,
    retentionMs: opts.retention * 86_400_000,
    durability: opts.durability,
  });
  const { runner } = runtime;
  if (runtime.watcher.instances.length === 0) {
    log.warn(`no job instances to run: add some to ${paths.instancesFile}`);
  }
  runner.on('run', (run) => {
    if (run.status !== 'failed' || !run.error) return;
    if (run.nextRunId !== undefined) log.warn(`run ${run.id} of ${run.instanceId}/${run.task} failed (attempt ${run.attempt} of ${run.maxAttempts}): ${errorLine(run.error)}; retried as run ${run.nextRunId}`);
    else log.error(`run ${run.id} of ${run.instanceId}/${run.task} failed: ${errorLine(run.error)}`);
  });
  runner.on('retired', (id, reason) => log.info(`instance "${id}" is done${reason ? `: ${reason}` : ''}`));

  const stoppingFor = (reason: string) => `${reason}: stopping; running tasks get ${opts.grace} ms, then they are recorded interrupted and planned again next start`;
  if (opts.once) {
    const stats = await Promise.race([runner.runOnce(), runtime.storeLost]);
    if (stats instanceof StoreFileLostError) {
      // Printed by main as "ujr: <message>", exit 1.
      log.error(stoppingFor(`the store ${stats.path} was ${stats.reason}`));
      await runtime.close(opts.grace);
      throw stats;
    }
    await runtime.close(opts.grace);
    const problems = runtime.configProblems.length;
    if (opts.json) io.out(JSON.stringify({ ...stats, configProblems: problems }));
    else io.out(`done: ${summaryLine(stats, opts.paint)}`);
    return stats.failed > 0 || stats.planErrors > 0 || problems > 0 ? EXIT.failed : EXIT.ok;
  }

  runtime.watcher.start();
  await runner.start();
  log.info(`running as ${runner.owner} on ${paths.home}; Ctrl-C stops`);
  if (!opts.json) io.out(whereLines(paths, runtime.watcher.instances.length, opts.paint).join('\n'));
  const live = opts.quiet || opts.json ? undefined : startLive(runner, runtime.store, io, opts.paint);
  let lost: StoreFileLostError | undefined;
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal?: NodeJS.Signals) => {
      stopping = true;
      live?.stop();
      void runtime.close(opts.grace, signal).then(resolve, (error: unknown) => {
        log.error(`shutdown: ${String(error)}`);
        resolve();
      });
    };
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn(`second ${signal}: exiting without waiting`);
        process.exit(130);
      }
      log.info(stoppingFor(signal));
      stop(signal);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    void runtime.storeLost.then((error) => {
      if (stopping) return;
      lost = error;
      log.error(stoppingFor(`the store ${error.path} was ${error.reason}`));
      stop();
    });
  });
  const stats = runner.stats();
  if (opts.json) io.out(JSON.stringify({ ...stats, configProblems: runtime.configProblems.length }));
  else io.out(`stopped: ${summaryLine(stats, opts.paint)}`);
  // Printed by main as "ujr: <message>", exit 1.
  if (lost) throw lost;
  return EXIT.ok;
}

/** Where to look while the runner runs: what it reads, where results go, how to see the page. */
export function whereLines(paths: LocalPaths, instances: number, c: Paint = PLAIN, cwd = process.cwd()): string[] {
  const show = (path: string) => {
    const rel = relative(cwd, path);
    return rel === '' ? '.' : rel.startsWith('..') ? path : rel;
  };
  return [
    `${c.bold('ujr run')}: ${instances} job instance${instances === 1 ? '' : 's'} from ${show(paths.instancesFile)}; Ctrl-C stops`,
    `  results  ${show(dataPath(paths))}/ (what tasks write with tctx.objects; "ujr runs" and "ujr logs <run>" show runs)`,
    `  page     run "npx ujr ui" in another terminal, then open ${c.underline(`http://127.0.0.1:${DEFAULT_UI_PORT}/`)}`,
  ];
}

export function summaryLine(stats: RunnerStats, c: Paint = PLAIN): string {
  return [
    `running ${stats.running + stats.continuous}`,
    `queued ${stats.queued + stats.backoff}`,
    c.green(`done ${stats.succeeded}`),
    stats.failed > 0 ? c.red(`failed ${stats.failed}`) : `failed ${stats.failed}`,
    `skipped ${stats.skipped}`,
    `retried ${stats.retried}`,
  ].join(' · ');
}

/**
 * The live line: the counts, then each running task with its progress (or how long it has run),
 * cut to `width` columns.
 *
 * @example
 * liveLine(stats, running, Date.now(), 100) // "running 1 · queued 0 · done 3 · … │ lab/collect 40% 4/10 · lab/summarize 3.2s"
 */
export function liveLine(stats: RunnerStats, running: readonly RunRecord[], now: number, width: number, c: Paint = PLAIN): string {
  const summary = summaryLine(stats, c);
  if (running.length === 0) return fit(summary, width);
  const tasks = running.map((run) => {
    const detail = progress(run) || (run.startedAt !== undefined ? duration(now - run.startedAt) : '');
    return `${c.cyan(`${run.instanceId}/${run.task}`)}${detail ? ` ${detail}` : ''}`;
  });
  return fit(`${summary} │ ${tasks.join(' · ')}`, width);
}

/** `text` cut to `width` visible columns (colour codes are dropped when it has to be cut). */
function fit(text: string, width: number): string {
  if (visibleLength(text) <= width) return text;
  // eslint-disable-next-line no-control-regex -- the escape sequences picocolors writes
  return truncate(text.replace(/\x1b\[[0-9;]*m/g, ''), width);
}

/** One line per ended run: time, status, instance/task, duration, and the error's name and message. */
export function endedLine(run: RunRecord, c: Paint = PLAIN): string {
  const took = run.startedAt !== undefined && run.endedAt !== undefined ? ` ${duration(run.endedAt - run.startedAt)}` : '';
  const error = run.error ? ` ${c.red(errorLine(run.error))}` : '';
  return `${statusText(run.status, c)} ${run.instanceId}/${run.task}${took} ${c.dim(run.id)}${error}`;
}

/** The live line on a terminal (else the counts every 10 s when they change), and each run as it ends. */
function startLive(runner: { stats(): RunnerStats; on(event: 'run', listener: (run: RunRecord) => void): unknown }, store: Store, io: Io, c: Paint): { stop(): void } {
  const tty = io.isTTY === true;
  let ended: RunRecord[] = [];
  runner.on('run', (run) => {
    // Failures are logged with their retry (above); the rest are printed here.
    if (TERMINAL_STATUSES.has(run.status) && run.status !== 'failed') ended.push(run);
  });
  let last = '';
  let lastPrinted = 0;
  let drawn = false;
  let busy = false;
  const tick = async () => {
    const batch = ended;
    ended = [];
    const lines = batch.slice(0, ENDED_PER_TICK).map((run) => endedLine(run, c));
    if (batch.length > ENDED_PER_TICK) lines.push(c.dim(`… and ${batch.length - ENDED_PER_TICK} more runs ended`));
    if (tty) {
      const running = await store.listRuns({ status: 'running', limit: 10 });
      const line = liveLine(runner.stats(), running, Date.now(), (process.stdout.columns || 120) - 1, c);
      process.stdout.write(`\r\x1b[2K${lines.map((l) => `${l}\n`).join('')}${line}`);
      drawn = true;
      return;
    }
    for (const l of lines) io.out(l);
    const line = summaryLine(runner.stats());
    if (line !== last && Date.now() - lastPrinted > 10_000) {
      io.out(line);
      lastPrinted = Date.now();
    }
    last = line;
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void tick()
      .catch(() => undefined)
      .finally(() => {
        busy = false;
      });
  }, TICK_MS);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (tty && drawn) process.stdout.write('\n');
    },
  };
}

function stderrLogger(io: Io): Logger {
  const write = (level: string) => (message: string) => {
    const clear = io.isTTY === true ? '\r\x1b[2K' : '';
    io.err(`${clear}${new Date().toISOString()} ${level} ${message}`);
  };
  return { debug: () => undefined, info: write('INFO '), warn: write('WARN '), error: write('ERROR') };
}
