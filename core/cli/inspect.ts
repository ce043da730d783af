/**
 * The commands that look at what ran: `status`, `runs`, `runs <id>` and `logs`, written once over
 * a {@link Target} (the local store or a deployed stack). A run's error is named the same way in
 * all of them: `Name: message` (see `errorLine`), with its stack where a command shows one.
 */
import { formatDuration } from '../limit-config.js';
import { withWaiting, type LimitView } from '../engine/limit-messages.js';
import { canonicalJson } from '../signature.js';
import { LIVE_STATUSES, TERMINAL_STATUSES, type RunRecord, type RunStatus } from '../types.js';
import type { Store } from '../ports/store.js';
import { CliError, EXIT } from './errors.js';
import { attemptText, duration, errorLine, errorWithStack, progress, runsTable, statusText, table, time, truncate, type Paint } from './format.js';
import type { Io } from './io.js';
import { activeRuns, activeTable, type ActiveRun } from './stack-commands.js';
import { formatProblems, type Target } from './targets.js';

export interface OutputOptions {
  json: boolean;
  paint: Paint;
}

/**
 * `ujr status`: each instance with the last run of each task (invalid entries too, with their
 * problems), what runs now, the failures of the last 24 hours. Resolves with the exit code: 2 when
 * the instances have problems (printed on stderr, and in the JSON's `problems`). When the store
 * keeps shared limits and a bucket was used, a Limits table follows (the JSON's `limits`), with
 * the queued tasks that wait for each bucket.
 */
export async function statusCommand(target: Target, opts: OutputOptions, io: Io): Promise<number> {
  const view = await target.instances();
  const store = target.store();
  const now = Date.now();
  const c = opts.paint;
  const statuses = new Map((await store.listInstanceStatus()).map((s) => [s.instanceId, s]));
  const instances = [];
  for (const instance of view.instances) {
    const tasks = [];
    for (const task of await view.tasksOf(instance)) {
      tasks.push({ task, last: await store.lastRun({ instanceId: instance.id, task }) });
    }
    instances.push({ instance, status: statuses.get(instance.id), tasks });
  }
  const invalid = view.invalid ?? [];
  // On AWS what is queued or running lives on the board: a worker writes a run record when an attempt ends.
  const active: ActiveRun[] | undefined = target.board ? await activeRuns(target.board) : undefined;
  const running: RunRecord[] = active ?? (await store.listRuns({ status: [...LIVE_STATUSES], limit: 200 }));
  const failures = await store.listRuns({ status: 'failed', since: now - 86_400_000, limit: 20 });
  const limits = store.limits ? withWaiting(await store.limits.listLimitStates(now), running) : [];
  const problems = formatProblems(target, view.problems);
  const code = problems.length > 0 ? EXIT.usage : EXIT.ok;
  if (opts.json) {
    io.out(JSON.stringify({ instances, invalid, running, failures, limits, problems }, null, 2));
    return code;
  }
  const rows: string[][] = [];
  for (const { instance, status, tasks } of instances) {
    const state = status?.retiredAt !== undefined ? 'done' : instance.enabled ? 'enabled' : c.dim('disabled');
    const planError = status?.planError ? c.red(` (plan error: ${truncate(errorLine(status.planError), 60)})`) : '';
    const lines = tasks.length > 0 ? tasks : [undefined];
    for (const [i, line] of lines.entries()) {
      rows.push([
        i === 0 ? instance.id : '',
        i === 0 ? `${instance.job}` : '',
        i === 0 ? `${state}${planError}` : '',
        line?.task ?? '-',
        line?.last ? `${statusText(line.last.status, c)} ${time(line.last.endedAt ?? line.last.startedAt ?? line.last.queuedAt)}` : 'never run',
      ]);
    }
  }
  for (const entry of invalid) rows.push([entry.id, entry.job ?? '?', statusText('invalid', c), '-', truncate(entry.problems.join('; '), 80)]);
  io.out(table(['INSTANCE', 'JOB', 'STATE', 'TASK', 'LAST RUN'], rows, c));
  io.out('');
  if (running.length === 0) io.out('nothing running');
  else io.out(`running and queued:\n${active ? activeTable(active, now) : runsTable(running, { now, paint: c })}`);
  if (failures.length > 0) io.out(`\nfailures in the last 24h:\n${runsTable(failures, { now, paint: c })}`);
  if (limits.length > 0) io.out(`\nlimits:\n${limitsTable(limits, now, c)}`);
  for (const problem of problems) io.err(`config: ${problem}`);
  return code;
}

/** The store's limit buckets, one row each: what it allows, what it holds now, who waits for it, what it did. */
export function limitsTable(states: readonly LimitView[], now: number, c: Paint): string {
  const rows = states.map((state) => [
    state.name,
    state.key === '' ? '—' : state.key,
    state.rate ? `${state.rate.count}/${formatDuration(state.rate.perMs)} burst ${state.rate.burst}` : '-',
    state.tokens !== undefined ? state.tokens.toFixed(1) : '-',
    state.concurrency !== undefined ? `${state.held}/${state.concurrency}` : '-',
    state.blockedUntil !== undefined && state.blockedUntil > now ? c.red(time(state.blockedUntil)) : '-',
    String(state.waiting),
    String(state.granted),
    String(state.refused),
    state.throttledMs > 0 ? duration(state.throttledMs) : '-',
  ]);
  return table(['LIMIT', 'KEY', 'RATE', 'TOKENS', 'HELD', 'BLOCKED UNTIL', 'WAITING', 'GRANTED', 'REFUSED', 'THROTTLED'], rows, c);
}

export interface RunsFilter {
  job?: string;
  task?: string;
  status?: RunStatus;
  since?: number;
  limit: number;
  wide?: boolean;
}

/** `ujr runs`: runs, newest first; `--wide` keeps the DETAIL column whole. */
export async function runsCommand(target: Target, filter: RunsFilter, opts: OutputOptions, io: Io): Promise<void> {
  const runs = await target.store().listRuns({ instanceId: filter.job, task: filter.task, status: filter.status, since: filter.since, limit: filter.limit });
  if (opts.json) io.out(JSON.stringify(runs, null, 2));
  else io.out(runs.length === 0 ? 'no runs match' : runsTable(runs, { wide: filter.wide === true, paint: opts.paint }));
}

/** How many attempts `runs <id>` follows either way. */
const MAX_ATTEMPTS_SHOWN = 100;

/**
 * The attempts of `run`'s task, first to last: `run` itself, the ones before it (previousRunId)
 * and after it (nextRunId), as far as their records exist.
 */
export async function attemptChain(store: Pick<Store, 'getRun'>, run: RunRecord): Promise<RunRecord[]> {
  const before: RunRecord[] = [];
  let previous = run.previousRunId;
  while (previous !== undefined && before.length < MAX_ATTEMPTS_SHOWN) {
    const found = await store.getRun(previous);
    if (!found) break;
    before.unshift(found);
    previous = found.previousRunId;
  }
  const after: RunRecord[] = [];
  let next = run.nextRunId;
  while (next !== undefined && after.length < MAX_ATTEMPTS_SHOWN) {
    const found = await store.getRun(next);
    if (!found) break;
    after.push(found);
    next = found.nextRunId;
  }
  return [...before, run, ...after];
}

/**
 * `ujr runs <id>`: one run whole (every field, input and result, the error with its stack,
 * progress) and the other attempts of its task.
 * @throws {CliError} exit 3 when no run has the id.
 */
export async function runDetailCommand(target: Target, runId: string, opts: OutputOptions, io: Io): Promise<void> {
  const store = target.store();
  const run = await store.getRun(runId);
  if (!run) throw new CliError(`no run has id "${runId}"; list runs with "ujr runs"`, EXIT.notFound);
  const attempts = await attemptChain(store, run);
  if (opts.json) {
    io.out(JSON.stringify({ run, attempts }, null, 2));
    return;
  }
  const c = opts.paint;
  const json = (value: unknown) => canonicalJson(value, 'value');
  const fields: [string, string | undefined][] = [
    ['run', run.id],
    ['instance', run.instanceId],
    ['job type', run.jobType],
    ['task', run.task],
    ['status', statusText(run.status, c)],
    ['attempt', `${attemptText(run)} (${run.kind}, origin ${run.origin})`],
    ['signature', run.signature],
    ['runner', run.runner || undefined],
    ['fencing token', String(run.fencingToken)],
    ['trigger', run.triggerId],
    ['queued', time(run.queuedAt)],
    ['started', run.startedAt !== undefined ? time(run.startedAt) : undefined],
    ['ended', run.endedAt !== undefined ? time(run.endedAt) : undefined],
    ['duration', run.startedAt !== undefined ? duration((run.endedAt ?? Date.now()) - run.startedAt) : undefined],
    ['progress', progress(run) || undefined],
    ['input', json(run.input)],
    ['result', run.result !== undefined ? json(run.result) : undefined],
  ];
  const shown = fields.filter((field): field is [string, string] => field[1] !== undefined);
  const width = Math.max(...shown.map(([name]) => name.length));
  const lines = shown.map(([name, value]) => `${c.bold(name.padEnd(width))}  ${value}`);
  if (run.error) {
    lines.push(`${c.bold('error'.padEnd(width))}  ${c.red(errorLine(run.error))}`);
    const stack = errorWithStack(run.error).split('\n').slice(1);
    for (const line of stack) lines.push(`${' '.repeat(width + 2)}${c.dim(line)}`);
  }
  if (attempts.length > 1) {
    lines.push('', c.bold('attempts'));
    for (const attempt of attempts) {
      const mark = attempt.id === run.id ? '→' : ' ';
      const detail = attempt.error ? ` ${errorLine(attempt.error)}` : '';
      lines.push(`${mark} ${attemptText(attempt).padEnd(5)} ${attempt.id}  ${statusText(attempt.status, c)}${detail}`);
    }
  }
  io.out(lines.join('\n'));
}

/**
 * `ujr logs <id>`: the run's log lines, then its status (and error with stack). With `--json`,
 * one JSON object a line: `{ "type": "log", ... }` per log line, then `{ "type": "run", "run": ... }`.
 * @throws {CliError} exit 3 when no run has the id.
 */
export async function logsCommand(target: Target, runId: string, follow: boolean, opts: OutputOptions, io: Io): Promise<void> {
  const store = target.store();
  let run = await store.getRun(runId);
  if (!run) throw new CliError(`no run has id "${runId}"; list runs with "ujr runs"`, EXIT.notFound);
  const c = opts.paint;
  let seq = 0;
  for (;;) {
    const lines = await store.getLogs(runId, seq);
    for (const line of lines) {
      io.out(opts.json ? JSON.stringify({ type: 'log', ...line }) : `${c.dim(time(line.at))} ${levelText(line.level, c)} ${line.message}`);
      seq = line.seq;
    }
    if (!follow || TERMINAL_STATUSES.has(run.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
    run = (await store.getRun(runId)) ?? run;
  }
  if (opts.json) io.out(JSON.stringify({ type: 'run', run }));
  else io.out(outcomeText(run, c));
}

/** The last line of `logs`: `failed: Name: message` and the stack, or `succeeded after 1.2s`. */
export function outcomeText(run: RunRecord, c: Paint): string {
  if (run.error) return `${statusText(run.status, c)}: ${errorWithStack(run.error)}`;
  return `${statusText(run.status, c)}${run.endedAt && run.startedAt ? ` after ${duration(run.endedAt - run.startedAt)}` : ''}`;
}

function levelText(level: string, c: Paint): string {
  const text = level.toUpperCase().padEnd(5);
  return level === 'error' ? c.red(text) : level === 'warn' ? c.yellow(text) : text;
}
