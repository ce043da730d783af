/**
 * The `ujr` command line. Exit codes: 0 success, 1 a run failed (`run --once`, where a problem
 * in the instances file counts as a failure too, and `trigger --wait`), 2 bad usage or
 * configuration, 3 a named run or instance does not exist.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { monotonicFactory } from 'ulid';
import { formatProblem, readInstancesFile, type ParsedConfig } from '../config.js';
import { ConfigError, UjrError } from '../errors.js';
import type { RunnerStats } from '../engine/runner.js';
import type { Store } from '../ports/store.js';
import { canonicalJson } from '../signature.js';
import { RUN_STATUSES, TERMINAL_STATUSES, type Json, type Logger, type RunRecord, type RunStatus } from '../types.js';
import { InstanceNotFoundError, InstancesFileError, setInstanceEnabled, unretireInstance } from '../local/instances-file.js';
import { loadJobTypes } from '../local/jobs-module.js';
import { openLocalRuntime, openLocalStore, resolvePaths, type LocalPaths } from '../local/runtime.js';
import { registerUiCommand } from '../ui/command.js';
import { duration, progress, runDuration, table, time, truncate } from './format.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const;

/** An error the CLI prints as is, with its exit code. */
class CliError extends UjrError {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

interface GlobalOptions {
  home?: string;
  jobs?: string;
  instances?: string;
  json?: boolean;
}

interface Io {
  out(text: string): void;
  err(text: string): void;
}

const consoleIo: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

/** Runs the CLI with `argv` (as in process.argv) and resolves with the exit code. */
export async function main(argv: string[], io: Io = consoleIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CliError) {
      io.err(`ujr: ${error.message}`);
      return error.exitCode;
    }
    if (error instanceof ConfigError) {
      io.err(`ujr: ${error.message}`);
      return EXIT.usage;
    }
    io.err(`ujr: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return EXIT.failed;
  }
}

function buildProgram(io: Io): Command {
  const program = new Command('ujr')
    .description('Untitled Job Runner: plan, run and track research jobs locally (SQLite) or on AWS.')
    .option('--home <dir>', 'folder of the SQLite store and the data directory', '.ujr')
    .option('--jobs <module>', 'module whose default export lists the job types', 'jobs/index.ts')
    .option('--instances <file>', 'the job instances file', 'jobs/instances.json')
    .option('--json', 'machine-readable output')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError('(add --help for usage)');

  const paths = (): LocalPaths => {
    const opts = program.opts<GlobalOptions>();
    return resolvePaths({ home: opts.home, jobsModule: opts.jobs, instancesFile: opts.instances });
  };
  const json = () => program.opts<GlobalOptions>().json === true;

  program
    .command('run')
    .description('run the enabled job instances until stopped (SIGINT/SIGTERM stop it gracefully)')
    .option('--once', 'plan every instance once, run until idle, exit 1 if anything failed (for cron and CI)')
    .option('--concurrency <n>', 'batch tasks running at once', positiveInt, 16)
    .option('--grace <ms>', 'how long running tasks get to stop at shutdown', positiveInt, 10_000)
    .option('--lease-ttl <ms>', 'lease lifetime (renewed every third of it)', positiveInt, 30_000)
    .option('--retention <days>', 'prune ended runs older than this (the latest success of each signature stays)', positiveInt, 30)
    .option('-q, --quiet', 'no live summary line')
    .action(async (opts: { once?: boolean; concurrency: number; grace: number; leaseTtl: number; retention: number; quiet?: boolean }) => {
      process.exitCode = await runCommand(paths(), { ...opts, json: json() }, io);
    });

  program
    .command('status')
    .description('instances, the last run of each task, running tasks and recent failures')
    .action(async () => {
      await statusCommand(paths(), json(), io);
    });

  program
    .command('runs')
    .description('list runs, newest first')
    .option('--job <instance>', 'only runs of this job instance')
    .option('--task <name>', 'only runs of this task')
    .addOption(new Option('--status <status>', 'only runs with this status').choices([...RUN_STATUSES]))
    .option('--since <time>', 'only runs queued at or after this ISO time or age (e.g. 2h, 30m)', parseSince)
    .option('--limit <n>', 'at most this many', positiveInt, 20)
    .action(async (opts: { job?: string; task?: string; status?: RunStatus; since?: number; limit: number }) => {
      await withStore(paths(), async (store) => {
        const runs = await store.listRuns({
          instanceId: opts.job,
          task: opts.task,
          status: opts.status,
          since: opts.since,
          limit: opts.limit,
        });
        if (json()) io.out(JSON.stringify(runs, null, 2));
        else io.out(runs.length === 0 ? 'no runs match' : runsTable(runs));
      });
    });

  program
    .command('logs')
    .description("print a run's log lines (and its error)")
    .argument('<runId>', 'the run id, as shown by "ujr runs"')
    .option('-f, --follow', 'keep printing new lines until the run ends')
    .action(async (runId: string, opts: { follow?: boolean }) => {
      await withStore(paths(), (store) => logsCommand(store, runId, opts.follow === true, json(), io));
    });

  program
    .command('trigger')
    .description('ask for a run now: plan an instance, or run one of its tasks (deduplicated like any other)')
    .argument('<instance>', 'job instance id')
    .argument('[task]', 'task name; without it the instance is planned now')
    .option('--input <json>', 'task input as JSON', parseJsonOption)
    .option('--wait', 'wait for the run to end; exit 1 unless it succeeded')
    .option('--timeout <ms>', 'with --wait: give up after this long', positiveInt, 600_000)
    .action(async (instanceId: string, task: string | undefined, opts: { input?: Json; wait?: boolean; timeout: number }) => {
      process.exitCode = await triggerCommand(paths(), instanceId, task, opts, json(), io);
    });

  const jobs = program.command('jobs').description('list, enable or disable job instances');
  jobs
    .command('list')
    .description('the instances in the instances file, with their state')
    .action(async () => {
      await jobsListCommand(paths(), json(), io);
    });
  for (const [name, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    jobs
      .command(name)
      .description(`${name} an instance (edits the instances file; a running "ujr run" applies it live)`)
      .argument('<instance>', 'job instance id')
      .action(async (instanceId: string) => {
        await setEnabledCommand(paths(), instanceId, enabled, io);
      });
  }
  registerUiCommand(program, paths, io);
  return program;
}

// ---- run -----------------------------------------------------------------------------------

async function runCommand(
  paths: LocalPaths,
  opts: { once?: boolean; concurrency: number; grace: number; leaseTtl: number; retention: number; quiet?: boolean; json: boolean },
  io: Io,
): Promise<number> {
  const log = stderrLogger(io);
  const runtime = await openLocalRuntime(paths, {
    log,
    once: opts.once === true,
    concurrency: opts.concurrency,
    graceMs: opts.grace,
    leaseTtlMs: opts.leaseTtl,
    retentionMs: opts.retention * 86_400_000,
  });
  const { runner } = runtime;
  if (runtime.watcher.instances.length === 0) {
    log.warn(`no job instances to run: add some to ${paths.instancesFile}`);
  }
  runner.on('run', (run) => {
    if (run.status === 'failed') log.error(`run ${run.id} of ${run.instanceId}/${run.task} failed: ${run.error?.message ?? ''}`);
  });
  runner.on('retired', (id, reason) => log.info(`instance "${id}" is done${reason ? `: ${reason}` : ''}`));

  if (opts.once) {
    const stats = await runner.runOnce();
    await runtime.close(opts.grace);
    const problems = runtime.configProblems.length;
    if (opts.json) io.out(JSON.stringify({ ...stats, configProblems: problems }));
    else io.out(`done: ${summaryLine(stats)}`);
    return stats.failed > 0 || stats.planErrors > 0 || problems > 0 ? EXIT.failed : EXIT.ok;
  }

  runtime.watcher.start();
  await runner.start();
  const live = opts.quiet ? undefined : startSummary(runner.stats.bind(runner), io);
  log.info(`running as ${runner.owner} on ${paths.home}; Ctrl-C stops`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn(`second ${signal}: exiting without waiting`);
        process.exit(130);
      }
      stopping = true;
      log.info(`${signal}: stopping; running tasks get ${opts.grace} ms, then they are recorded interrupted and planned again next start`);
      live?.stop();
      void runtime.close(opts.grace).then(resolve, (error: unknown) => {
        log.error(`shutdown: ${String(error)}`);
        resolve();
      });
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  io.out(`stopped: ${summaryLine(runner.stats())}`);
  return EXIT.ok;
}

function summaryLine(stats: RunnerStats): string {
  return [
    `running ${stats.running + stats.continuous}`,
    `queued ${stats.queued + stats.backoff}`,
    `done ${stats.succeeded}`,
    `failed ${stats.failed}`,
    `skipped ${stats.skipped}`,
    `retried ${stats.retried}`,
  ].join(' · ');
}

function startSummary(stats: () => RunnerStats, io: Io): { stop(): void } {
  const tty = process.stdout.isTTY;
  let last = '';
  let lastPrinted = 0;
  const timer = setInterval(() => {
    const line = summaryLine(stats());
    if (tty) process.stdout.write(`\r\x1b[2K${line}`);
    else if (line !== last && Date.now() - lastPrinted > 10_000) {
      io.out(line);
      lastPrinted = Date.now();
    }
    last = line;
  }, 1_000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (tty) process.stdout.write('\n');
    },
  };
}

function stderrLogger(io: Io): Logger {
  const write = (level: string) => (message: string) => {
    const clear = process.stdout.isTTY ? '\r\x1b[2K' : '';
    io.err(`${clear}${new Date().toISOString()} ${level} ${message}`);
  };
  return { debug: () => undefined, info: write('INFO '), warn: write('WARN '), error: write('ERROR') };
}

// ---- status, runs, logs ----------------------------------------------------------------------

async function withStore<T>(paths: LocalPaths, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = openLocalStore(paths);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function runsTable(runs: RunRecord[]): string {
  const now = Date.now();
  return table(
    ['RUN', 'INSTANCE', 'TASK', 'STATUS', 'ATTEMPT', 'QUEUED', 'DURATION', 'DETAIL'],
    runs.map((run) => [
      run.id,
      run.instanceId,
      run.task,
      run.status,
      run.kind === 'continuous' ? `${run.attempt}` : `${run.attempt}/${run.maxAttempts}`,
      time(run.queuedAt),
      runDuration(run, now),
      truncate(run.error ? `${run.error.name}: ${run.error.message}` : progress(run), 80),
    ]),
  );
}

async function loadConfig(paths: LocalPaths): Promise<{ config: ParsedConfig; tasksByJob: Map<string, string[]> }> {
  const jobs = await loadJobTypes(paths.jobsModule);
  const config = await readInstancesFile(paths.instancesFile, jobs);
  return { config, tasksByJob: new Map(jobs.map((j) => [j.name, Object.keys(j.tasks)])) };
}

async function statusCommand(paths: LocalPaths, asJson: boolean, io: Io): Promise<void> {
  const { config, tasksByJob } = await loadConfig(paths);
  await withStore(paths, async (store) => {
    const now = Date.now();
    const statuses = new Map((await store.listInstanceStatus()).map((s) => [s.instanceId, s]));
    const instances = [];
    for (const instance of config.instances) {
      const tasks = [];
      for (const task of tasksByJob.get(instance.job) ?? []) {
        tasks.push({ task, last: await store.lastRun({ instanceId: instance.id, task }) });
      }
      instances.push({ instance, status: statuses.get(instance.id), tasks });
    }
    const running = await store.listRuns({ status: ['running', 'queued', 'retrying'], limit: 200 });
    const failures = await store.listRuns({ status: 'failed', since: now - 86_400_000, limit: 20 });
    const problems = config.problems.map((p) => formatProblem(paths.instancesFile, p));
    if (asJson) {
      io.out(JSON.stringify({ instances, running, failures, problems }, null, 2));
      return;
    }
    const rows: string[][] = [];
    for (const { instance, status, tasks } of instances) {
      const state = status?.retiredAt !== undefined ? 'done' : instance.enabled ? 'enabled' : 'disabled';
      const planError = status?.planError ? ` (plan error: ${truncate(status.planError.message, 60)})` : '';
      for (const [i, { task, last }] of tasks.entries()) {
        rows.push([
          i === 0 ? instance.id : '',
          i === 0 ? `${instance.job}` : '',
          i === 0 ? `${state}${planError}` : '',
          task,
          last ? `${last.status} ${time(last.endedAt ?? last.startedAt ?? last.queuedAt)}` : 'never run',
        ]);
      }
    }
    io.out(table(['INSTANCE', 'JOB', 'STATE', 'TASK', 'LAST RUN'], rows));
    io.out('');
    io.out(running.length === 0 ? 'nothing running' : `running and queued:\n${runsTable(running)}`);
    if (failures.length > 0) io.out(`\nfailures in the last 24h:\n${runsTable(failures)}`);
    for (const problem of problems) io.err(`config: ${problem}`);
  });
}

async function logsCommand(store: Store, runId: string, follow: boolean, asJson: boolean, io: Io): Promise<void> {
  let run = await store.getRun(runId);
  if (!run) throw new CliError(`no run has id "${runId}"; list runs with "ujr runs"`, EXIT.notFound);
  let seq = 0;
  for (;;) {
    const lines = await store.getLogs(runId, seq);
    for (const line of lines) {
      io.out(asJson ? JSON.stringify(line) : `${time(line.at)} ${line.level.toUpperCase().padEnd(5)} ${line.message}`);
      seq = line.seq;
    }
    if (!follow || TERMINAL_STATUSES.has(run.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
    run = (await store.getRun(runId)) ?? run;
  }
  if (!asJson && run.error) {
    io.out(`${run.status}: ${run.error.stack ?? `${run.error.name}: ${run.error.message}`}`);
  } else if (!asJson) {
    io.out(`${run.status}${run.endedAt && run.startedAt ? ` after ${duration(run.endedAt - run.startedAt)}` : ''}`);
  }
}

// ---- trigger and jobs ------------------------------------------------------------------------

async function triggerCommand(
  paths: LocalPaths,
  instanceId: string,
  task: string | undefined,
  opts: { input?: Json; wait?: boolean; timeout: number },
  asJson: boolean,
  io: Io,
): Promise<number> {
  const { config, tasksByJob } = await loadConfig(paths);
  const instance = config.instances.find((i) => i.id === instanceId);
  const problems = config.problems.filter((p) => p.instanceId === instanceId);
  if (!instance && problems.length > 0) {
    throw new CliError(
      `instance "${instanceId}" has problems in the instances file; fix them first:\n${problems.map((p) => formatProblem(paths.instancesFile, p)).join('\n')}`,
      EXIT.usage,
    );
  }
  if (!instance) {
    throw new CliError(
      `no job instance "${instanceId}" in ${paths.instancesFile}; known: ${config.instances.map((i) => i.id).join(', ') || '(none)'}`,
      EXIT.notFound,
    );
  }
  const tasks = tasksByJob.get(instance.job) ?? [];
  if (task !== undefined && !tasks.includes(task)) {
    throw new CliError(`job type "${instance.job}" has no task "${task}"; its tasks: ${tasks.join(', ')}`, EXIT.notFound);
  }
  if (task === undefined && opts.input !== undefined) {
    throw new CliError('--input needs a task name: ujr trigger <instance> <task> --input JSON', EXIT.usage);
  }
  return withStore(paths, async (store) => {
    const at = Date.now();
    const trigger = { id: monotonicFactory()(), instanceId, at, ...(task !== undefined ? { task, input: opts.input ?? {} } : {}) };
    await store.addTrigger(trigger);
    if (!opts.wait) {
      if (asJson) io.out(JSON.stringify({ trigger }));
      else io.out(`queued trigger ${trigger.id} for ${instanceId}${task ? `/${task}` : ''}; a running "ujr run" takes it within a second`);
      return EXIT.ok;
    }
    const deadline = at + opts.timeout;
    for (;;) {
      const runs = await store.listRuns({ instanceId, since: at, ...(task ? { task } : {}), limit: 50 });
      const mine = runs.filter((r) => r.origin === 'manual' || task === undefined);
      const ended = mine.length > 0 && mine.every((r) => TERMINAL_STATUSES.has(r.status) && r.status !== 'retrying');
      if (ended) {
        if (asJson) io.out(JSON.stringify(mine, null, 2));
        else io.out(runsTable(mine));
        return mine.every((r) => r.status === 'succeeded' || r.status === 'skipped') ? EXIT.ok : EXIT.failed;
      }
      if (Date.now() > deadline) {
        io.err(`no run of the trigger ended within ${opts.timeout} ms; is "ujr run" running? (${mine.length} started)`);
        return EXIT.failed;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });
}

async function jobsListCommand(paths: LocalPaths, asJson: boolean, io: Io): Promise<void> {
  const { config } = await loadConfig(paths);
  await withStore(paths, async (store) => {
    const statuses = new Map((await store.listInstanceStatus()).map((s) => [s.instanceId, s]));
    const problems = config.problems.map((p) => formatProblem(paths.instancesFile, p));
    if (asJson) {
      io.out(
        JSON.stringify(
          { instances: config.instances.map((i) => ({ ...i, concurrency: Number.isFinite(i.concurrency) ? i.concurrency : null, status: statuses.get(i.id) })), problems },
          null,
          2,
        ),
      );
      return;
    }
    io.out(
      table(
        ['INSTANCE', 'JOB', 'ENABLED', 'SCHEDULE', 'STATE', 'PARAMS'],
        config.instances.map((i) => {
          const status = statuses.get(i.id);
          const state = status?.retiredAt !== undefined ? `done ${time(status.retiredAt)}` : status?.planError ? 'plan error' : 'ok';
          return [i.id, i.job, i.enabled ? 'yes' : 'no', i.schedule, state, truncate(canonicalJson(i.params, 'params'), 60)];
        }),
      ),
    );
    for (const problem of problems) io.err(`config: ${problem}`);
  });
}

/** Edits `enabled` of one instance in the instances file (atomically), and un-retires on enable. */
async function setEnabledCommand(paths: LocalPaths, instanceId: string, enabled: boolean, io: Io): Promise<void> {
  const file = paths.instancesFile;
  try {
    await setInstanceEnabled(file, instanceId, enabled);
  } catch (error) {
    if (error instanceof InstanceNotFoundError) throw new CliError(`${error.message}; see "ujr jobs list"`, EXIT.notFound);
    if (error instanceof InstancesFileError) throw new CliError(error.message, EXIT.usage);
    throw error;
  }
  if (enabled) await withStore(paths, (store) => unretireInstance(store, instanceId));
  io.out(`${instanceId} ${enabled ? 'enabled' : 'disabled'} in ${file}`);
}

// ---- option parsers --------------------------------------------------------------------------

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number.');
  return n;
}

function parseJsonOption(value: string): Json {
  try {
    const parsed: unknown = JSON.parse(value);
    canonicalJson(parsed, 'input');
    return parsed as Json;
  } catch (error) {
    throw new InvalidArgumentError(`not valid JSON (${(error as Error).message}); quote it, e.g. --input '{"file":"a.jsonl"}'.`);
  }
}

function parseSince(value: string): number {
  const age = /^(\d+)\s*(s|m|h|d)$/.exec(value);
  if (age) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as 's' | 'm' | 'h' | 'd'];
    return Date.now() - Number(age[1]) * unit;
  }
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw new InvalidArgumentError('expected an ISO time (2026-01-31T12:00:00Z) or an age like 2h.');
  return at;
}
