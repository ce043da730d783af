/**
 * Telemetry on AWS: structured JSON logs with Powertools Logger (instance, task, signature and run
 * id on every line of a task) and metrics in CloudWatch's embedded metric format with Powertools
 * Metrics, one EMF line per job type per invocation.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { LogFields, MetricName, Telemetry } from '../../cloud/ports.js';

export class PowertoolsTelemetry implements Telemetry {
  readonly logger: Logger;
  private counts = new Map<string, Map<MetricName, number>>();
  private durations = new Map<string, number[]>();

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

  flush(): void {
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
