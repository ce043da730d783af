/** Telemetry that keeps what it was told, for tests to assert on (logs and metric counts). */
import type { LogFields, MetricName, Telemetry } from '../../core/cloud/ports.js';
import type { LimitState } from '../../core/ports/limits.js';

export interface LoggedLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: LogFields | undefined;
}

export class RecordingTelemetry implements Telemetry {
  readonly lines: LoggedLine[] = [];
  readonly counts = new Map<string, number>();
  readonly durations: number[] = [];
  /** What each sample of the shared limits said, in order. */
  readonly limitSamples: (readonly (LimitState & { waiting?: number })[])[] = [];
  flushes = 0;

  log(level: LoggedLine['level'], message: string, fields?: LogFields): void {
    this.lines.push({ level, message, fields });
  }

  count(metric: MetricName, jobType: string, value = 1): void {
    const key = `${metric}:${jobType}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + value);
  }

  duration(_jobType: string, ms: number): void {
    this.durations.push(ms);
  }

  limits(states: readonly (LimitState & { waiting?: number })[]): void {
    this.limitSamples.push(states);
  }

  flush(): void {
    this.flushes += 1;
  }

  /** The count of `metric` for `jobType` (0 when never counted). */
  counted(metric: MetricName, jobType: string): number {
    return this.counts.get(`${metric}:${jobType}`) ?? 0;
  }
}
