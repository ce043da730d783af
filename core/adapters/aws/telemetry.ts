/**
 * Telemetry on AWS: structured JSON logs with Powertools Logger (instance, task, signature and run
 * id on every line of a task) and metrics in CloudWatch's embedded metric format with Powertools
 * Metrics, one EMF line per job type per invocation, and one per shared limit when a tick read
 * them (dimension `limit`: `limitTokens`, the tokens of its scarcest bucket, `limitHeld`, slots
 * held, `limitWaiting`, the tasks waiting for its buckets, and the running totals `limitGranted`,
 * `limitRefused`, `limitThrottledMs` of its buckets, which the dashboard turns into rates).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { LogFields, MetricName, Telemetry } from '../../cloud/ports.js';
import type { LimitState } from '../../ports/limits.js';

export class PowertoolsTelemetry implements Telemetry {
  readonly logger: Logger;
  private counts = new Map<string, Map<MetricName, number>>();
  private durations = new Map<string, number[]>();
  private limitStates: readonly (LimitState & { waiting?: number })[] = [];

  constructor(private readonly options: { namespace: string; serviceName: string; logger?: Logger }) {
    this.logger = options.logger ?? new Logger({ serviceName: options.serviceName });
  }

  log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: LogFields): void {
    const clean = fields ? Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) : {};
    this.logger[level](message, clean);
  }

  count(metric: MetricName, jobType: string, value = 1): void {
    if (value === 0) return;
    let byMetric = this.counts.get(jobType);
    if (!byMetric) this.counts.set(jobType, (byMetric = new Map<MetricName, number>()));
    byMetric.set(metric, (byMetric.get(metric) ?? 0) + value);
  }

  duration(jobType: string, ms: number): void {
    const list = this.durations.get(jobType) ?? [];
    list.push(ms);
    this.durations.set(jobType, list);
  }

  limits(states: readonly (LimitState & { waiting?: number })[]): void {
    this.limitStates = states;
  }

  flush(): void {
    const byLimit = new Map<string, (LimitState & { waiting?: number })[]>();
    for (const state of this.limitStates) byLimit.set(state.name, [...(byLimit.get(state.name) ?? []), state]);
    for (const [limit, states] of byLimit) {
      const metrics = new Metrics({ namespace: this.options.namespace, serviceName: this.options.serviceName, defaultDimensions: { limit } });
      const tokens = states.flatMap((state) => (state.tokens === undefined ? [] : [state.tokens]));
      if (tokens.length > 0) metrics.addMetric('limitTokens', MetricUnit.Count, Math.min(...tokens));
      metrics.addMetric('limitHeld', MetricUnit.Count, sum(states, (state) => state.held));
      if (states.some((state) => state.waiting !== undefined)) metrics.addMetric('limitWaiting', MetricUnit.Count, sum(states, (state) => state.waiting ?? 0));
      metrics.addMetric('limitGranted', MetricUnit.Count, sum(states, (state) => state.granted));
      metrics.addMetric('limitRefused', MetricUnit.Count, sum(states, (state) => state.refused));
      metrics.addMetric('limitThrottledMs', MetricUnit.Milliseconds, sum(states, (state) => state.throttledMs));
      metrics.publishStoredMetrics();
    }
    this.limitStates = [];
    const jobTypes = new Set([...this.counts.keys(), ...this.durations.keys()]);
    for (const jobType of jobTypes) {
      const metrics = new Metrics({ namespace: this.options.namespace, serviceName: this.options.serviceName, defaultDimensions: { jobType } });
      for (const [name, value] of this.counts.get(jobType) ?? []) metrics.addMetric(name, MetricUnit.Count, value);
      for (const ms of this.durations.get(jobType) ?? []) metrics.addMetric('duration', MetricUnit.Milliseconds, ms);
      metrics.publishStoredMetrics();
    }
    this.counts = new Map();
    this.durations = new Map();
  }
}

function sum<T>(items: readonly T[], value: (item: T) => number): number {
  return items.reduce((total, item) => total + value(item), 0);
}
