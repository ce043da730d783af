/**
 * The status page over a deployed stack (`ujr ui --stack <name>`), built from the CLI's stack
 * context: the same reads and actions as `ujr status|runs|logs|trigger|jobs --stack`.
 *
 * - instances: the instances table with its run-time overrides (the CLI's stack target);
 * - runs and statuses: the DynamoDB store; what is queued or running: the board (a worker writes
 *   a run record only when an attempt ends);
 * - logs: CloudWatch Logs, searched by run id in the stack's log groups;
 * - Run now: the scheduler function, invoked synchronously (as `ujr trigger --stack`);
 * - Enable/Disable: run-time overrides in the instances table (as `ujr jobs enable|disable --stack`);
 * - shared limits: their bucket items in the instances table (as `ujr status --stack`).
 *
 * Loaded only in stack mode (it reaches the AWS adapter, hence the SDK).
 */
import { AwsCliError, SchedulerFunctionError, type AwsCliContext, type RunLogEvent } from '../adapters/aws/cli-context.js';
import type { RunNowRequest } from '../cloud/scheduler.js';
import { CliError, EXIT } from '../cli/errors.js';
import { activeRun, activeRuns, describeReport, LOG_LOOKBACK_MS, parseLine } from '../cli/stack-commands.js';
import { boardEntries } from '../cloud/board.js';
import { formatProblems, type InstanceView, type Target } from '../cli/targets.js';
import type { LogLevel, LogLine } from '../types.js';
import { HttpError } from './errors.js';
import type { StatusSource } from './source.js';

/** Default refresh of open pages over a stack: each one reads the tables and the board. */
export const STACK_EVENT_INTERVAL_MS = 5_000;

/** Powertools Logger levels (and the runtimes' own) as the page's. */
const LEVELS: Record<string, LogLevel> = { trace: 'debug', debug: 'debug', info: 'info', warn: 'warn', warning: 'warn', error: 'error', critical: 'error', fatal: 'error' };

/**
 * The status source of a deployed stack; `target` is the CLI's stack target over `aws`
 * (`stackTarget(aws, …)`), whose `close` the caller keeps.
 *
 * @example
 * ```ts
 * const aws = await openAwsCliContext('ujr');
 * const target = stackTarget(aws, { jobsModule: 'jobs/index.ts' });
 * const ui = await startUiServer({ source: stackStatusSource(aws, target) });
 * ```
 */
export function stackStatusSource(aws: AwsCliContext, target: Target): StatusSource {
  const store = aws.store;
  let view: Promise<InstanceView> | undefined;
  /** The latest view of the instances table (read again by every `config`). */
  const instances = () => (view ??= target.instances());

  return {
    instancesSource: target.instancesSource,
    label: `stack "${aws.stackName}"`,
    eventIntervalMs: STACK_EVENT_INTERVAL_MS,
    store,
    limits: () => store.limits.listLimitStates(Date.now()),
    async config() {
      view = target.instances();
      const current = await view;
      return { instances: current.instances, problems: formatProblems(target, current.problems), knowsTasks: current.knowsTasks };
    },
    async tasksOf(instance) {
      return (await instances()).tasksOf(instance);
    },
    async activeRuns(instanceId) {
      const runs = await activeRuns(store);
      return instanceId === undefined ? runs : runs.filter((run) => run.instanceId === instanceId);
    },
    async getRun(id) {
      const run = await store.getRun(id);
      if (run) return run;
      const entry = (await boardEntries(store)).find((e) => e.runId === id);
      return entry ? activeRun(entry) : undefined;
    },
    async logs(run, afterSeq) {
      let events: RunLogEvent[];
      try {
        events = await aws.findRunLogs(run.id, { startTime: run.queuedAt - LOG_LOOKBACK_MS });
      } catch (error) {
        throw upstream(error);
      }
      return events.map((event, i) => logLine(run.id, i + 1, event)).filter((line) => line.seq > afterSeq);
    },
    async runNow(instance, body) {
      const at = Date.now();
      const request: RunNowRequest = { instanceId: instance.id, ...(body.task !== undefined ? { task: body.task, input: body.input ?? {} } : {}) };
      let report;
      try {
        report = await aws.invokeScheduler(request);
      } catch (error) {
        throw upstream(error);
      }
      const what = `${instance.id}${body.task !== undefined ? `/${body.task}` : ''}`;
      return { trigger: { ...request, at }, report, message: `Asked the scheduler of stack "${aws.stackName}" for a run of ${what}: ${describeReport(report)}.` };
    },
    async cancel(run) {
      // The board entry's holder (a worker's or a conductor's heartbeat) sees the stop and aborts.
      let entry;
      try {
        entry = (await store.peek([run.signature], Date.now())).held.get(run.signature);
      } catch (error) {
        throw upstream(error);
      }
      if (!entry || entry.runId !== run.id) throw new HttpError(409, `run ${run.id} is no longer on the board of stack "${aws.stackName}"; it has ended or moved on`);
      await store.requestStop(entry.signature, entry.token);
      return { runId: run.id, message: `Asked the holder of ${run.task} of ${run.instanceId} to stop; it ends at its next heartbeat.` };
    },
    async setEnabled(id, enabled) {
      try {
        await target.setEnabled(id, enabled);
      } catch (error) {
        if (error instanceof CliError && error.exitCode === EXIT.notFound) throw new HttpError(404, error.message);
        throw upstream(error);
      }
    },
  };
}

/** An AWS call that failed, as the API answers it: 422 when the scheduler refused the request, 502 when AWS failed. */
function upstream(error: unknown): unknown {
  if (error instanceof SchedulerFunctionError) return new HttpError(422, error.message);
  if (error instanceof AwsCliError) return new HttpError(502, error.message);
  return error;
}

/** A CloudWatch Logs line as a page log line: a Powertools line's level and message (and error), else the line as written. */
function logLine(runId: string, seq: number, event: RunLogEvent): LogLine {
  const line = parseLine(event.message);
  if (!line) return { runId, seq, at: event.timestamp, level: 'info', message: event.message.trimEnd() };
  const error = typeof line.error === 'string' ? `: ${line.error}` : '';
  return { runId, seq, at: event.timestamp, level: LEVELS[line.level.toLowerCase()] ?? 'info', message: `${line.message}${error}` };
}
