/**
 * The `ujr` command line. Exit codes: 0 success, 1 a run failed (`run --once`, where a problem
 * in the instances file counts as a failure too, and `trigger --wait`; and `ujr run` whose store
 * file was deleted or replaced), 2 bad usage or configuration (or no store at --home: only
 * `ujr run` creates one), 3 a named run or instance does not exist.
 *
 * `--stack <name>` points `status`, `runs`, `logs`, `trigger`, `jobs`, `redrive` and `ui` at a
 * deployed stack instead of the local installation: the same commands over the same Store port (the
 * DynamoDB adapter), with the AWS-specific parts in ./stack-commands.ts.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { monotonicFactory } from 'ulid';
import type { AwsCliContext } from '../adapters/aws/cli-context.js';
import { StoreFileLostError } from '../adapters/sqlite/errors.js';
import { DURABILITIES, type Durability } from '../adapters/sqlite/store.js';
import { ConfigError, UjrError } from '../errors.js';
import type { RunnerStats } from '../engine/runner.js';
import { canonicalJson } from '../signature.js';
import { LIVE_STATUSES, RUN_STATUSES, TERMINAL_STATUSES, type Json, type Logger, type RunRecord, type RunStatus } from '../types.js';
import { requireJobsModule, resolveProject, type Project } from '../local/project.js';
import { openLocalRuntime, type LocalPaths } from '../local/runtime.js';
import { registerUiCommand } from '../ui/command.js';
import { CliError, EXIT } from './errors.js';
import { followToFinalAttempts } from './follow.js';
import { duration, runsTable, table, time, truncate } from './format.js';
import { registerInitCommand } from './init.js';
import { consoleIo, type Io } from './io.js';
import { activeRuns, activeTable, redriveCommand, stackLogsCommand, stackTriggerCommand, type ActiveRun } from './stack-commands.js';
import { checkTrigger, formatProblems, localTarget, stackTarget, type Target } from './targets.js';

export { EXIT } from './errors.js';
export type { Io } from './io.js';

const PROJECT_HELP = `
Getting started: "npx ujr init [dir]" creates a project (an example job, its test, a CDK app).

Where ujr finds the jobs module, the instances file and the home folder, first to last:
  1. --jobs, --instances, --home
  2. ujr.config.ts (.mts, .js, .mjs or .json) in this folder or the nearest parent holding one, up
     to the project root (the first folder holding a package.json or .git), e.g.
       import { defineConfig } from 'ujr';
       export default defineConfig({ jobs: 'src/jobs/index.ts', instances: 'src/instances.json', home: '.ujr' });
  3. the "ujr" field of the project's package.json: "ujr": { "jobs": "src/jobs/index.ts" }
  4. jobs/index.ts, jobs/instances.json and .ujr in the project root (else this folder)
Paths in a config file are relative to its folder.`;

/** What the CLI reaches outside the local installation; tests replace it. */
export interface CliDeps {
  /**
   * Opens the AWS side of `--stack <name>`: reads the stack's outputs and builds clients in its
   * region. Default: `openAwsCliContext` (core/adapters/aws/cli-context.ts), loaded on first use so
   * that local commands never load an AWS SDK.
   */
  openStack?: (stackName: string) => Promise<AwsCliContext>;
  /** Stops `ujr ui` as SIGINT would (tests running the CLI in-process). */
  uiSignal?: AbortSignal;
}

interface GlobalOptions {
  home?: string;
  jobs?: string;
  instances?: string;
  json?: boolean;
  stack?: string;
}

const defaultOpenStack = async (stackName: string): Promise<AwsCliContext> => {
  const { openAwsCliContext } = await import('../adapters/aws/cli-context.js');
  return openAwsCliContext(stackName);
};

/** How often `trigger --wait` and `logs --follow` look again on AWS. */
const STACK_POLL_MS = 1_000;

/**
 * Runs the CLI with `argv` (as in process.argv) and resolves with the exit code.
 *
 * @example
 * ```ts
 * const code = await main(['node', 'ujr', 'runs', '--stack', 'ujr', '--json'], { out: console.log, err: console.error });
 * ```
 */
export async function main(argv: string[], io: Io = consoleIo, deps: CliDeps = {}): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = buildProgram(io, deps, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv);
    return exitCode;
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
    if (error instanceof UjrError) {
      // ujr's own errors (a store or AWS call that failed, the scheduler function refusing) say what to do.
      io.err(`ujr: ${error.message}`);
      return EXIT.failed;
    }
    io.err(`ujr: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return EXIT.failed;
  }
}

function buildProgram(io: Io, deps: CliDeps, setExit: (code: number) => void): Command {
  const program = new Command('ujr')
    .description('Untitled Job Runner: plan, run and track research jobs locally (SQLite) or on AWS.')
    .option('--home <dir>', 'folder of the SQLite store and the data directory (default: .ujr; see below)')
    .option('--jobs <module>', 'module whose default export lists the job types (default: jobs/index.ts; see below)')
    .option('--instances <file>', 'the job instances file (default: jobs/instances.json; see below)')
    .option('--stack <name>', 'work on this deployed CloudFormation stack instead of the local store (status, runs, logs, trigger, jobs, redrive, ui)')
    .option('--json', 'machine-readable output')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', PROJECT_HELP);

  const globals = () => program.opts<GlobalOptions>();
  // Found before any command but init runs (core/local/project.ts): flags, ujr.config.*, package.json's "ujr", defaults.
  let project: Project | undefined;
  const found = (): Project => {
    if (!project) throw new Error('the project is resolved before a command runs (preAction)');
    return project;
  };
  const paths = (): LocalPaths => requireJobsModule(found());
  const json = () => globals().json === true;
  const openStack = deps.openStack ?? defaultOpenStack;

  /** The stack's AWS context and the target over it (the job types module is used when at hand). */
  const openStackTarget = async (stack: string): Promise<{ aws: AwsCliContext; target: Target }> => {
    const aws = await openStack(stack);
    const { paths: stackPaths, sources } = found();
    return { aws, target: stackTarget(aws, { jobsModule: stackPaths.jobsModule, jobsModuleRequired: sources.jobs.kind !== 'default' }) };
  };

  /** Runs `fn` over the target the options name, closing it after; `aws` is set in stack mode. */
  const withTarget = async <T>(fn: (target: Target, aws: AwsCliContext | undefined) => Promise<T>): Promise<T> => {
    const stack = globals().stack;
    let aws: AwsCliContext | undefined;
    let target: Target;
    if (stack === undefined) {
      target = localTarget(paths());
    } else {
      ({ aws, target } = await openStackTarget(stack));
    }
    try {
      return await fn(target, aws);
    } finally {
      await target.close();
    }
  };

  program.hook('preAction', (_program, action) => {
    if (globals().stack === undefined) return;
    if (action.name() === 'run') {
      throw new CliError('--stack does not apply to "ujr run": ujr run is the local runner; on AWS the scheduler runs on its own (see "ujr status --stack <name>")', EXIT.usage);
    }
  });
  const init = registerInitCommand(program, io);
  program.hook('preAction', async (_program, action) => {
    if (action === init) return;
    const { jobs, instances, home } = globals();
    project = await resolveProject({ jobs, instances, home });
  });

  program
    .command('run')
    .description('run the enabled job instances until stopped (SIGINT/SIGTERM stop it gracefully)')
    .option('--once', 'plan every instance once, run until idle, exit 1 if anything failed (for cron and CI)')
    .option('--concurrency <n>', 'batch tasks running at once', positiveInt, 16)
    .option('--grace <ms>', 'how long running tasks get to stop at shutdown', positiveInt, 10_000)
    .option('--lease-ttl <ms>', 'lease lifetime (renewed every third of it)', positiveInt, 30_000)
    .option('--retention <days>', 'prune ended runs older than this (the latest success of each signature stays)', positiveInt, 30)
    .addOption(
      new Option('--durability <mode>', 'normal: a commit survives a crash of the process; full: also a power loss (an fsync per commit)')
        .choices([...DURABILITIES])
        .default('normal'),
    )
    .option('-q, --quiet', 'no live summary line')
    .action(async (opts: { once?: boolean; concurrency: number; grace: number; leaseTtl: number; retention: number; durability: Durability; quiet?: boolean }) => {
      setExit(await runCommand(paths(), { ...opts, json: json() }, io));
    });

  program
    .command('status')
    .description('instances, the last run of each task, running tasks and recent failures')
    .action(async () => {
      await withTarget((target) => statusCommand(target, json(), io));
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
      await withTarget(async (target) => {
        const runs = await target.store().listRuns({
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
    .description("print a run's log lines (and its error); with --stack, from CloudWatch Logs")
    .argument('<runId>', 'the run id, as shown by "ujr runs"')
    .option('-f, --follow', 'keep printing new lines until the run ends')
    .action(async (runId: string, opts: { follow?: boolean }) => {
      await withTarget((target, aws) =>
        aws
          ? stackLogsCommand(aws, runId, { follow: opts.follow === true, json: json(), pollMs: STACK_POLL_MS }, io)
          : logsCommand(target, runId, opts.follow === true, json(), io),
      );
    });

  program
    .command('trigger')
    .description('ask for a run now: plan an instance, or run one of its tasks (deduplicated like any other)')
    .argument('<instance>', 'job instance id')
    .argument('[task]', 'task name; without it the instance is planned now')
    .option('--task <name>', 'the task name, as an option (same as the [task] argument)')
    .option('--input <json>', 'task input as JSON', parseJsonOption)
    .option('--wait', 'wait for the run to end; exit 1 unless it succeeded')
    .option('--timeout <ms>', 'with --wait: give up after this long', positiveInt, 600_000)
    .action(async (instanceId: string, taskArgument: string | undefined, opts: { task?: string; input?: Json; wait?: boolean; timeout: number }) => {
      if (taskArgument !== undefined && opts.task !== undefined && taskArgument !== opts.task) {
        throw new CliError(`two task names given ("${taskArgument}" and --task "${opts.task}"); give one`, EXIT.usage);
      }
      const task = taskArgument ?? opts.task;
      setExit(
        await withTarget(async (target, aws) => {
          const view = await target.instances();
          await checkTrigger(target, view, instanceId, task, opts.input);
          const wait = { wait: opts.wait === true, timeoutMs: opts.timeout };
          return aws
            ? stackTriggerCommand(aws, { instanceId, task, input: opts.input, ...wait, pollMs: STACK_POLL_MS, json: json() }, io)
            : triggerCommand(target, instanceId, task, { input: opts.input, ...wait }, json(), io);
        }),
      );
    });

  const jobs = program.command('jobs').description('list, enable or disable job instances');
  jobs
    .command('list')
    .description('the instances (instances file, or the stack\'s instances table), with their state')
    .action(async () => {
      await withTarget((target) => jobsListCommand(target, json(), io));
    });
  for (const [name, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    jobs
      .command(name)
      .description(
        `${name} an instance (edits the instances file, applied live by "ujr run"; with --stack, the instances table)${enabled ? '' : '; what it runs now is cancelled'}`,
      )
      .argument('<instance>', 'job instance id')
      .action(async (instanceId: string) => {
        await withTarget(async (target) => {
          const where = await target.setEnabled(instanceId, enabled);
          io.out(`${instanceId} ${enabled ? 'enabled' : 'disabled'} in ${where}`);
        });
      });
  }

  program
    .command('redrive')
    .description("move the dead-letter queue's messages back to the task queue after a fix (needs --stack)")
    .option('--status', 'list the message move tasks instead of starting one')
    .action(async (opts: { status?: boolean }) => {
      if (globals().stack === undefined) {
        throw new CliError('ujr redrive works on a deployed stack: pass --stack <name> (locally, failed runs are planned again by "ujr run")', EXIT.usage);
      }
      await withTarget((_target, aws) => (aws ? redriveCommand(aws, { status: opts.status === true, json: json() }, io) : Promise.resolve()));
    });

  registerUiCommand(program, paths, io, { stack: () => globals().stack, openStack: openStackTarget, ...(deps.uiSignal ? { signal: deps.uiSignal } : {}) });
  return program;
}

// ---- run -----------------------------------------------------------------------------------

async function runCommand(
  paths: LocalPaths,
  opts: { once?: boolean; concurrency: number; grace: number; leaseTtl: number; retention: number; durability: Durability; quiet?: boolean; json: boolean },
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
    durability: opts.durability,
  });
  const { runner } = runtime;
  if (runtime.watcher.instances.length === 0) {
    log.warn(`no job instances to run: add some to ${paths.instancesFile}`);
  }
  runner.on('run', (run) => {
    if (run.status !== 'failed') return;
    if (run.nextRunId !== undefined) log.warn(`run ${run.id} of ${run.instanceId}/${run.task} failed (attempt ${run.attempt} of ${run.maxAttempts}): ${run.error?.message ?? ''}; retried as run ${run.nextRunId}`);
    else log.error(`run ${run.id} of ${run.instanceId}/${run.task} failed: ${run.error?.message ?? ''}`);
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
    else io.out(`done: ${summaryLine(stats)}`);
    return stats.failed > 0 || stats.planErrors > 0 || problems > 0 ? EXIT.failed : EXIT.ok;
  }

  runtime.watcher.start();
  await runner.start();
  const live = opts.quiet ? undefined : startSummary(runner.stats.bind(runner), io);
  log.info(`running as ${runner.owner} on ${paths.home}; Ctrl-C stops`);
  let lost: StoreFileLostError | undefined;
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = () => {
      stopping = true;
      live?.stop();
      void runtime.close(opts.grace).then(resolve, (error: unknown) => {
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
      stop();
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
  io.out(`stopped: ${summaryLine(runner.stats())}`);
  // Printed by main as "ujr: <message>", exit 1.
  if (lost) throw lost;
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

async function statusCommand(target: Target, asJson: boolean, io: Io): Promise<void> {
  const view = await target.instances();
  const store = target.store();
  const now = Date.now();
  const statuses = new Map((await store.listInstanceStatus()).map((s) => [s.instanceId, s]));
  const instances = [];
  for (const instance of view.instances) {
    const tasks = [];
    for (const task of await view.tasksOf(instance)) {
      tasks.push({ task, last: await store.lastRun({ instanceId: instance.id, task }) });
    }
    instances.push({ instance, status: statuses.get(instance.id), tasks });
  }
  // On AWS what is queued or running lives on the board: a worker writes a run record when an attempt ends.
  const active: ActiveRun[] | undefined = target.board ? await activeRuns(target.board) : undefined;
  const running: RunRecord[] = active ?? (await store.listRuns({ status: [...LIVE_STATUSES], limit: 200 }));
  const failures = await store.listRuns({ status: 'failed', since: now - 86_400_000, limit: 20 });
  const problems = formatProblems(target, view.problems);
  if (asJson) {
    io.out(JSON.stringify({ instances, running, failures, problems }, null, 2));
    return;
  }
  const rows: string[][] = [];
  for (const { instance, status, tasks } of instances) {
    const state = status?.retiredAt !== undefined ? 'done' : instance.enabled ? 'enabled' : 'disabled';
    const planError = status?.planError ? ` (plan error: ${truncate(status.planError.message, 60)})` : '';
    const lines = tasks.length > 0 ? tasks : [undefined];
    for (const [i, line] of lines.entries()) {
      rows.push([
        i === 0 ? instance.id : '',
        i === 0 ? `${instance.job}` : '',
        i === 0 ? `${state}${planError}` : '',
        line?.task ?? '-',
        !line ? 'never run' : line.last ? `${line.last.status} ${time(line.last.endedAt ?? line.last.startedAt ?? line.last.queuedAt)}` : 'never run',
      ]);
    }
  }
  io.out(table(['INSTANCE', 'JOB', 'STATE', 'TASK', 'LAST RUN'], rows));
  io.out('');
  if (running.length === 0) io.out('nothing running');
  else io.out(`running and queued:\n${active ? activeTable(active, now) : runsTable(running, now)}`);
  if (failures.length > 0) io.out(`\nfailures in the last 24h:\n${runsTable(failures, now)}`);
  for (const problem of problems) io.err(`config: ${problem}`);
}

async function logsCommand(target: Target, runId: string, follow: boolean, asJson: boolean, io: Io): Promise<void> {
  const store = target.store();
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

/** The local trigger: a row the running `ujr run` takes (checked beforehand, see `checkTrigger`). */
async function triggerCommand(
  target: Target,
  instanceId: string,
  task: string | undefined,
  opts: { input?: Json; wait: boolean; timeoutMs: number },
  asJson: boolean,
  io: Io,
): Promise<number> {
  const store = target.store();
  const at = Date.now();
  const trigger = { id: monotonicFactory()(), instanceId, at, ...(task !== undefined ? { task, input: opts.input ?? {} } : {}) };
  await store.addTrigger(trigger);
  if (!opts.wait) {
    if (asJson) io.out(JSON.stringify({ trigger }));
    else io.out(`queued trigger ${trigger.id} for ${instanceId}${task ? `/${task}` : ''}; a running "ujr run" takes it within a second`);
    return EXIT.ok;
  }
  const deadline = at + opts.timeoutMs;
  const tooLate = (what: string) => {
    io.err(`${what} within ${opts.timeoutMs} ms; is "ujr run" running? (raise --timeout to wait longer)`);
    return EXIT.failed;
  };
  // The runner that takes the trigger records which runs its plan created (or why none).
  let result = await store.getTriggerResult(trigger.id);
  while (!result) {
    if (Date.now() > deadline) return tooLate(`no runner took trigger ${trigger.id}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    result = await store.getTriggerResult(trigger.id);
  }
  if (result.runIds.length === 0) {
    const why = result.note ?? 'the plan returned nothing new to run';
    if (asJson) io.out(JSON.stringify({ trigger, runs: [], note: why }, null, 2));
    else io.out(`trigger ${trigger.id} started no run: ${why}`);
    return EXIT.ok;
  }
  // Each run is followed along its retries (nextRunId) to the attempt that ended it for good.
  const followed = await followToFinalAttempts(store, result.runIds, { deadline, pollMs: 250 });
  if ('waitingFor' in followed) return tooLate(`run ${followed.waitingFor} did not end`);
  const finals = followed.ended;
  if (asJson) io.out(JSON.stringify(finals, null, 2));
  else io.out(runsTable(finals));
  return finals.every((r) => r.status === 'succeeded' || r.status === 'skipped') ? EXIT.ok : EXIT.failed;
}

async function jobsListCommand(target: Target, asJson: boolean, io: Io): Promise<void> {
  const view = await target.instances();
  const statuses = new Map((await target.store().listInstanceStatus()).map((s) => [s.instanceId, s]));
  const problems = formatProblems(target, view.problems);
  if (asJson) {
    io.out(
      JSON.stringify(
        { instances: view.instances.map((i) => ({ ...i, concurrency: Number.isFinite(i.concurrency) ? i.concurrency : null, status: statuses.get(i.id) })), problems },
        null,
        2,
      ),
    );
    return;
  }
  io.out(
    table(
      ['INSTANCE', 'JOB', 'ENABLED', 'SCHEDULE', 'STATE', 'PARAMS'],
      view.instances.map((i) => {
        const status = statuses.get(i.id);
        const state = status?.retiredAt !== undefined ? `done ${time(status.retiredAt)}` : status?.planError ? 'plan error' : 'ok';
        return [i.id, i.job, i.enabled ? 'yes' : 'no', i.schedule, state, truncate(canonicalJson(i.params, 'params'), 60)];
      }),
    ),
  );
  for (const problem of problems) io.err(`config: ${problem}`);
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
