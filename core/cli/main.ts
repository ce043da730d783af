/**
 * The `ujr` command line. Exit codes: 0 success, 1 a run failed (`run --once`, where a problem
 * with one instance counts as a failure too, and `trigger --wait`; and `ujr run` whose store
 * file was deleted or replaced), 2 bad usage or configuration (an instances file that cannot be
 * read or parsed, for every command; any instance problem for `status` and `jobs list`; no store
 * at --home: only `ujr run` creates one), 3 a named run or instance does not exist.
 *
 * Output: colour on a terminal (not with NO_COLOR, --no-color or when piped); `--json` on every
 * command, one shape per command (see docs/cli.md, "--json output").
 *
 * `--stack <name>` points `status`, `runs`, `logs`, `trigger`, `jobs`, `redrive` and `ui` at a
 * deployed stack instead of the local installation: the same commands over the same Store port (the
 * DynamoDB adapter), with the AWS-specific parts in ./stack-commands.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { monotonicFactory } from 'ulid';
import { z } from 'zod';
import type { AwsCliContext } from '../adapters/aws/cli-context.js';
import { DURABILITIES, type Durability } from '../adapters/sqlite/store.js';
import { ConfigError, UjrError } from '../errors.js';
import { ROOT } from '../package-root.js';
import { canonicalJson } from '../signature.js';
import { RUN_STATUSES, type Json, type RunStatus } from '../types.js';
import { requireJobsModule, resolveProject, type Project } from '../local/project.js';
import type { LocalPaths } from '../local/runtime.js';
import { registerUiCommand } from '../ui/command.js';
import { CliError, EXIT } from './errors.js';
import { followToFinalAttempts } from './follow.js';
import { colorEnabled, paint, runsTable, type Paint } from './format.js';
import { registerInitCommand } from './init.js';
import { logsCommand, runDetailCommand, runsCommand, statusCommand, type OutputOptions } from './inspect.js';
import { consoleIo, type Io } from './io.js';
import { jobsListCommand, setEnabledCommand } from './jobs-commands.js';
import { runCommand } from './run-command.js';
import { redriveCommand, stackLogsCommand, stackTriggerCommand } from './stack-commands.js';
import { checkTrigger, localTarget, stackTarget, type Target } from './targets.js';

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
Paths in a config file are relative to its folder.

Output: colour on a terminal (off with NO_COLOR set, --no-color, or when piped); --json prints one
JSON document per command (logs: one JSON object a line, the run last).
Exit codes: 0 success; 1 a run failed (run --once, trigger --wait) or ujr run lost its store;
2 bad usage or configuration (the instances file, an instance, ujr.config.*, no store at --home);
3 no such run or instance.`;

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
  /** false with --no-color. */
  color?: boolean;
  stack?: string;
}

/** ujr's own version, from its package.json (found from the sources and from dist/ alike). */
export function packageVersion(): string {
  const manifest = z.object({ version: z.string() }).parse(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')));
  return manifest.version;
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
    .option('--json', 'machine-readable output (one JSON shape per command; see docs/cli.md)')
    .option('--no-color', 'no colour (also off with NO_COLOR set, or when the output is not a terminal)')
    .version(packageVersion(), '-V, --version', "print ujr's version")
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
  const colors = (): Paint => paint(colorEnabled({ flag: globals().color !== false, isTTY: io.isTTY === true, env: process.env }));
  const output = (): OutputOptions => ({ json: json(), paint: colors() });
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
  const init = registerInitCommand(program, io, json);
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
      setExit(await runCommand(paths(), { ...opts, json: json(), paint: colors() }, io));
    });

  program
    .command('status')
    .description('instances, the last run of each task, running tasks and recent failures')
    .action(async () => {
      setExit(await withTarget((target) => statusCommand(target, output(), io)));
    });

  program
    .command('runs')
    .description('list runs, newest first; with a run id, that run whole (every field, error with stack, result, its other attempts)')
    .argument('[runId]', 'show this run in full')
    .option('--job <instance>', 'only runs of this job instance')
    .option('--task <name>', 'only runs of this task')
    .addOption(new Option('--status <status>', 'only runs with this status').choices([...RUN_STATUSES]))
    .option('--since <time>', 'only runs queued at or after this ISO time or age (e.g. 2h, 30m)', parseSince)
    .option('--limit <n>', 'at most this many', positiveInt, 20)
    .option('--wide', 'the DETAIL column whole (not cut at 80 characters)')
    .action(async (runId: string | undefined, opts: { job?: string; task?: string; status?: RunStatus; since?: number; limit: number; wide?: boolean }) => {
      await withTarget((target) => (runId !== undefined ? runDetailCommand(target, runId, output(), io) : runsCommand(target, opts, output(), io)));
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
          : logsCommand(target, runId, opts.follow === true, output(), io),
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
            : triggerCommand(target, instanceId, task, { input: opts.input, ...wait }, output(), io);
        }),
      );
    });

  const jobs = program.command('jobs').description('list, enable or disable job instances');
  jobs
    .command('list')
    .description('the instances (instances file, or the stack\'s instances table), with their state')
    .action(async () => {
      setExit(await withTarget((target) => jobsListCommand(target, output(), io)));
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
        await withTarget((target) => setEnabledCommand(target, instanceId, enabled, output(), io));
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

  registerUiCommand(program, paths, io, { stack: () => globals().stack, openStack: openStackTarget, ...(deps.uiSignal ? { signal: deps.uiSignal } : {}) }, json);
  return program;
}

// ---- trigger ------------------------------------------------------------------------

/** The local trigger: a row the running `ujr run` takes (checked beforehand, see `checkTrigger`). */
async function triggerCommand(
  target: Target,
  instanceId: string,
  task: string | undefined,
  opts: { input?: Json; wait: boolean; timeoutMs: number },
  output: OutputOptions,
  io: Io,
): Promise<number> {
  const asJson = output.json;
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
  if (asJson) io.out(JSON.stringify({ trigger, runs: finals }, null, 2));
  else io.out(runsTable(finals, { paint: output.paint }));
  return finals.every((r) => r.status === 'succeeded' || r.status === 'skipped') ? EXIT.ok : EXIT.failed;
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
