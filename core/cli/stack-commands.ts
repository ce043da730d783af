/**
 * The commands whose AWS side differs from the local one: `trigger` invokes the scheduler function,
 * `logs` searches CloudWatch Logs by run id, `redrive` moves dead letters back, and what is running
 * is read from the board (a worker writes a run record only when an attempt ends).
 */
import { z } from 'zod';
import type { AwsCliContext, RunLogEvent } from '../adapters/aws/cli-context.js';
import type { Board, BoardEntry, Route } from '../cloud/board.js';
import type { RunNowRequest, TickReport } from '../cloud/scheduler.js';
import { baseRun } from '../cloud/attempt.js';
import { followToFinalAttempts } from './follow.js';
import { TERMINAL_STATUSES, type Json, type RunRecord } from '../types.js';
import { CliError, EXIT } from './errors.js';
import { duration, errorWithStack, progress, runsTable, table, time, truncate } from './format.js';
import type { Io } from './io.js';
import { boardEntries } from '../cloud/board.js';

/** A board entry shown as a run (queued until a claimer started it), with its lease. */
export type ActiveRun = RunRecord & { lease: { route: Route; owner: string; token: number; expiresAt: number } };

/** Clock skew tolerated between this machine and the scheduler function when matching runs to a trigger. */
const CLOCK_SKEW_MS = 5_000;

export function activeRun(entry: BoardEntry): ActiveRun {
  return {
    ...baseRun(entry, entry.owner, entry.startedAt),
    ...(entry.progress ? { progress: entry.progress } : {}),
    lease: { route: entry.route, owner: entry.owner, token: entry.token, expiresAt: entry.expiresAt },
  };
}

/** What is leased on the board, oldest first. */
export async function activeRuns(board: Board): Promise<ActiveRun[]> {
  return (await boardEntries(board)).map(activeRun).sort((a, b) => a.queuedAt - b.queuedAt || (a.id < b.id ? -1 : 1));
}

export function activeTable(runs: readonly ActiveRun[], now: number): string {
  return table(
    ['RUN', 'INSTANCE', 'TASK', 'STATUS', 'ATTEMPT', 'ROUTE', 'OWNER', 'STARTED', 'EXPIRES', 'SIGNATURE', 'DETAIL'],
    runs.map((run) => [
      run.id,
      run.instanceId,
      run.task,
      run.status,
      run.kind === 'continuous' ? `${run.attempt}` : `${run.attempt}/${run.maxAttempts}`,
      run.lease.route,
      truncate(run.lease.owner, 40),
      time(run.startedAt),
      `${time(run.lease.expiresAt)}${run.lease.expiresAt <= now ? ' (expired)' : ''}`,
      truncate(run.signature, 40),
      truncate(progress(run), 60),
    ]),
  );
}

// ---- trigger -----------------------------------------------------------------------------------

export interface StackTriggerOptions {
  instanceId: string;
  task: string | undefined;
  input: Json | undefined;
  wait: boolean;
  timeoutMs: number;
  pollMs: number;
  json: boolean;
}

/** Asks the scheduler function for an ad-hoc run (checked beforehand, see `checkTrigger`) and, with `wait`, follows what it dispatched to its end. */
export async function stackTriggerCommand(aws: AwsCliContext, opts: StackTriggerOptions, io: Io): Promise<number> {
  const { instanceId, task } = opts;
  const at = Date.now();
  const request: RunNowRequest = { instanceId, ...(task !== undefined ? { task, input: opts.input ?? {} } : {}) };
  const report = await aws.invokeScheduler(request);
  const dispatched = report.dispatched.queue + report.dispatched.conductor + report.dispatched.fargate;
  if (opts.json && !opts.wait) io.out(JSON.stringify({ trigger: { ...request, at }, report }, null, 2));
  else if (!opts.json) io.out(`triggered ${instanceId}${task ? `/${task}` : ''} on stack "${aws.stackName}": ${describeReport(report)}`);
  if (!opts.wait) return EXIT.ok;
  if (dispatched === 0) {
    if (opts.json) io.out(JSON.stringify({ trigger: { ...request, at }, report, runs: [] }, null, 2));
    else io.out('nothing was dispatched, so there is nothing to wait for');
    return report.rejected > 0 ? EXIT.failed : EXIT.ok;
  }
  // The runs this ad-hoc run created, followed through their retries (a scheduler deployed before
  // manualRunIds existed reports none: then the runs are found by instance and origin).
  const runs =
    report.manualRunIds.length > 0
      ? await followed(aws.store, report.manualRunIds, { deadline: at + opts.timeoutMs, pollMs: opts.pollMs })
      : await waitForTrigger(aws.store, { instanceId, task, since: at - CLOCK_SKEW_MS, expected: dispatched, deadline: at + opts.timeoutMs, pollMs: opts.pollMs });
  if (!runs) {
    io.err(
      `no run of the trigger ended within ${opts.timeoutMs} ms (${dispatched} dispatched); follow it with "ujr runs --stack ${aws.stackName} --job ${instanceId}" and "ujr status --stack ${aws.stackName}"`,
    );
    return EXIT.failed;
  }
  if (opts.json) io.out(JSON.stringify({ trigger: { ...request, at }, report, runs }, null, 2));
  else io.out(runsTable(runs));
  const finals = [...new Set(runs.map((run) => run.signature))].map((signature) => finalAttempt(runs, signature));
  return finals.every((run) => run?.status === 'succeeded' || run?.status === 'skipped') ? EXIT.ok : EXIT.failed;
}

export function describeReport(report: TickReport): string {
  const { queue, conductor, fargate } = report.dispatched;
  const parts = [`dispatched ${queue + conductor + fargate} (queue ${queue}, conductor ${conductor}, fargate ${fargate})`];
  if (report.deduplicated > 0) parts.push(`${report.deduplicated} already queued or running`);
  if (report.rejected > 0) parts.push(`${report.rejected} rejected (see "ujr status" and the scheduler's logs)`);
  if (report.tasks === 0 && report.rejected === 0) parts.push('the plan returned no task');
  return parts.join('; ');
}

/**
 * Polls until every signature the trigger dispatched has ended: its manual runs are off the board
 * and the chain of attempts, followed by `nextRunId` (a failed attempt that was retried names the
 * next), ends in a final record. Runs of those signatures, newest first; `undefined` at the deadline.
 */
async function waitForTrigger(
  board: Board,
  q: { instanceId: string; task: string | undefined; since: number; expected: number; deadline: number; pollMs: number },
): Promise<RunRecord[] | undefined> {
  const tracked = new Set<string>();
  for (;;) {
    const [runs, entries] = await Promise.all([
      board.listRuns({ instanceId: q.instanceId, since: q.since, ...(q.task !== undefined ? { task: q.task } : {}), limit: 500 }),
      boardEntries(board),
    ]);
    for (const entry of entries) {
      if (entry.instanceId === q.instanceId && entry.origin === 'manual' && entry.queuedAt >= q.since && (q.task === undefined || entry.task === q.task)) tracked.add(entry.signature);
    }
    for (const run of runs) if (run.origin === 'manual') tracked.add(run.signature);
    const leased = new Set(entries.filter((entry) => tracked.has(entry.signature)).map((entry) => entry.signature));
    const mine = runs.filter((run) => tracked.has(run.signature));
    const ended =
      tracked.size >= q.expected &&
      [...tracked].every((signature) => {
        const run = finalAttempt(mine, signature);
        return !leased.has(signature) && run !== undefined && TERMINAL_STATUSES.has(run.status) && run.nextRunId === undefined;
      });
    if (ended) return mine;
    if (Date.now() > q.deadline) return undefined;
    await sleep(q.pollMs);
  }
}

/**
 * The last attempt of a signature's newest chain: its newest run, then on along `nextRunId` while
 * the next attempt has a record (an attempt that has not ended yet has none on AWS).
 */
export function finalAttempt(runs: readonly RunRecord[], signature: string): RunRecord | undefined {
  const byId = new Map(runs.map((run) => [run.id, run]));
  let run = runs.find((r) => r.signature === signature);
  const seen = new Set<string>();
  while (run?.nextRunId !== undefined && !seen.has(run.id)) {
    seen.add(run.id);
    const next = byId.get(run.nextRunId);
    if (!next) break;
    run = next;
  }
  return run;
}

// ---- logs --------------------------------------------------------------------------------------

/** A Powertools Logger line: level and message, plus the fields ujr adds. */
const powertoolsLineSchema = z.looseObject({
  level: z.string(),
  message: z.string(),
  error: z.unknown().optional(),
});

/** How far before a run was queued its log lines are looked for (queue wait, clock skew). */
export const LOG_LOOKBACK_MS = 5 * 60_000;

export interface StackLogsOptions {
  follow: boolean;
  json: boolean;
  pollMs: number;
}

/** Prints the CloudWatch Logs lines of a run (every log group of the stack), then its outcome. */
export async function stackLogsCommand(aws: AwsCliContext, runId: string, opts: StackLogsOptions, io: Io): Promise<void> {
  let run = await aws.store.getRun(runId);
  let entry = run ? undefined : (await boardEntries(aws.store)).find((e) => e.runId === runId);
  const queuedAt = run?.queuedAt ?? entry?.queuedAt;
  let startTime = queuedAt !== undefined ? queuedAt - LOG_LOOKBACK_MS : undefined;
  const seen = new Set<string>();
  let printed = 0;
  for (;;) {
    const events = await aws.findRunLogs(runId, startTime !== undefined ? { startTime } : {});
    for (const event of events) {
      if (seen.has(event.eventId)) continue;
      seen.add(event.eventId);
      io.out(opts.json ? JSON.stringify(jsonLine(event)) : textLine(event));
      printed += 1;
      startTime = Math.max(startTime ?? 0, event.timestamp);
    }
    const ended = run !== undefined && TERMINAL_STATUSES.has(run.status);
    if (!opts.follow || ended || (run === undefined && entry === undefined)) break;
    await sleep(opts.pollMs);
    run = await aws.store.getRun(runId);
    if (!run) entry = (await boardEntries(aws.store)).find((e) => e.runId === runId);
  }
  const groups = aws.logGroups.join(', ');
  if (printed === 0) {
    const why = `no log line has runId "${runId}" in ${groups}`;
    if (!run && !entry) {
      throw new CliError(`${why}, and no run has that id: check it with "ujr runs --stack ${aws.stackName}", or its lines are older than the log groups' retention`, EXIT.notFound);
    }
    io.err(`${why}${queuedAt !== undefined ? ` since ${time(queuedAt - LOG_LOOKBACK_MS)}` : ''}: the lines may have expired (log retention), or not reached CloudWatch yet`);
  }
  if (opts.json) {
    io.out(JSON.stringify({ type: 'run', run: run ?? (entry ? activeRun(entry) : null) }));
    return;
  }
  if (run?.error) io.out(`${run.status}: ${errorWithStack(run.error)}`);
  else if (run) io.out(`${run.status}${run.endedAt && run.startedAt ? ` after ${duration(run.endedAt - run.startedAt)}` : ''}`);
  else if (entry) io.out(entry.startedAt !== undefined ? `running on ${entry.owner} since ${time(entry.startedAt)}` : `queued since ${time(entry.queuedAt)}`);
  else io.out('no run record (its lines are above; the record may have been pruned)');
}

/** The JSON of a log line, or `undefined` when it is not one (a runtime's own line). */
export function parseLine(message: string): z.infer<typeof powertoolsLineSchema> | undefined {
  const start = message.indexOf('{');
  if (start < 0) return undefined;
  try {
    const parsed = powertoolsLineSchema.safeParse(JSON.parse(message.slice(start)));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function textLine(event: RunLogEvent): string {
  const line = parseLine(event.message);
  if (!line) return `${time(event.timestamp)} ${event.message.trimEnd()}`;
  const error = typeof line.error === 'string' ? `: ${line.error}` : '';
  return `${time(event.timestamp)} ${line.level.toUpperCase().padEnd(5)} ${line.message}${error}`;
}

function jsonLine(event: RunLogEvent): Record<string, unknown> {
  const line = parseLine(event.message);
  return line
    ? { type: 'log', at: event.timestamp, logGroup: event.logGroup, ...line }
    : { type: 'log', at: event.timestamp, logGroup: event.logGroup, message: event.message };
}

// ---- redrive -----------------------------------------------------------------------------------

/** Starts moving the dead-letter queue's messages back to the task queue, or lists the moves. */
export async function redriveCommand(aws: AwsCliContext, opts: { status: boolean; json: boolean }, io: Io): Promise<void> {
  if (opts.status) {
    const tasks = await aws.listRedrives();
    if (opts.json) io.out(JSON.stringify(tasks, null, 2));
    else if (tasks.length === 0) io.out(`no message move task from the dead-letter queue of stack "${aws.stackName}"`);
    else
      io.out(
        table(
          ['STARTED', 'STATUS', 'MOVED', 'TO MOVE', 'FAILURE', 'HANDLE'],
          tasks.map((t) => [time(t.startedAt), t.status, String(t.moved), t.toMove === undefined ? '-' : String(t.toMove), t.failureReason ?? '', t.taskHandle ?? '-']),
        ),
      );
    return;
  }
  const depth = await aws.deadLetterDepth();
  if (depth === 0) {
    if (opts.json) io.out(JSON.stringify({ taskHandle: null, approximateNumberOfMessagesToMove: 0 }));
    else io.out(`the dead-letter queue of stack "${aws.stackName}" is empty: nothing to redrive`);
    return;
  }
  const started = await aws.startRedrive();
  const toMove = started.approximateNumberOfMessagesToMove ?? depth;
  if (opts.json) {
    io.out(JSON.stringify({ taskHandle: started.taskHandle, approximateNumberOfMessagesToMove: toMove }));
    return;
  }
  io.out(`moving about ${toMove} message${toMove === 1 ? '' : 's'} from the dead-letter queue back to the task queue`);
  io.out(`task handle: ${started.taskHandle}`);
  io.out(`follow it with "ujr redrive --status --stack ${aws.stackName}"`);
  io.out('the worker drops a message whose lease moved on (its task was recorded failed, or planned again since) as stale; the scheduler plans unfinished tasks again on its own');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The final attempts of `runIds`, or `undefined` when one had not ended by the deadline. */
async function followed(store: Board, runIds: readonly string[], opts: { deadline: number; pollMs: number }): Promise<RunRecord[] | undefined> {
  const result = await followToFinalAttempts(store, runIds, opts);
  return 'ended' in result ? result.ended : undefined;
}
