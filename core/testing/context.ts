/** What plan() and runTask() share: the instance a job runs as, and the log lines it writes. */
import { parseInstanceEntries } from '../embedded/instance-entries.js';
import type { InstanceConfig, JobType, Logger, LogLevel } from '../types.js';

/**
 * One log line, as the runner stores it: fields, when given, follow the message as JSON.
 *
 * @example
 * ```ts
 * // tctx.log.warn('slow', { ms: 900 }) is recorded as:
 * const line: LogEntry = { level: 'warn', message: 'slow {"ms":900}' };
 * ```
 */
export interface LogEntry {
  level: LogLevel;
  message: string;
}

/**
 * The instance a job runs as: `params` validated (defaults filled in) by the job type's schema,
 * exactly as an instances file's entry is, failing with the same `InvalidInstancesError`.
 */
export function testInstance(job: JobType, options: { params?: unknown; instanceId?: string }): InstanceConfig {
  const entry = { id: options.instanceId ?? job.name, job: job.name, params: options.params ?? {} };
  const [instance] = parseInstanceEntries([entry], [job], 'ujr/testing');
  if (!instance) throw new TypeError(`job type "${job.name}": no instance could be made`);
  return instance;
}

/** A message with its fields, as the runner writes a task's log line. */
function logMessage(message: string, fields: Record<string, unknown> | undefined): string {
  if (fields === undefined) return message;
  try {
    return `${message} ${JSON.stringify(fields)}`;
  } catch {
    return `${message} [unserializable fields]`;
  }
}

/** A logger that appends every line to `lines`. */
export function collectingLogger(lines: LogEntry[]): Logger {
  const at = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message: logMessage(message, fields) });
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
