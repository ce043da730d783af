/**
 * The job instances as the serverless runtime sees them: read from the instance catalog (the
 * instances table, editable without a redeploy), secret references in params resolved, then
 * validated instance by instance with the same rules as the local instances file. A broken
 * instance is reported and left out; the others run.
 *
 * The shared limits' definitions (the instances file's `"limits"`, one item of the same table)
 * come with them, validated limit by limit: a broken limit is reported (`limits.<name>.<field>`)
 * and its last good version, as this process read it, stays in use, as `ujr run` does locally.
 */
import { parseInstances, type ConfigProblem } from '../config.js';
import { mergeLimitsWithLastGood, parseLimits } from '../limit-config.js';
import type { LimitDefinition } from '../ports/limits.js';
import type { InstanceStatus } from '../ports/store.js';
import type { InstanceConfig, JobType } from '../types.js';
import type { InstanceCatalog } from './ports.js';

export interface LoadedInstance {
  config: InstanceConfig;
  job: JobType;
}

export interface InstanceSnapshot {
  instances: Map<string, LoadedInstance>;
  statuses: Map<string, InstanceStatus>;
  /** The shared limits tasks may name, by name (core/limit-config.ts). */
  limits: ReadonlyMap<string, LimitDefinition>;
  problems: ConfigProblem[];
  loadedAt: number;
}

/** Replaces secret references in an instance's raw params by their values (see secrets.ts). */
export type ParamsResolver = (instanceId: string, params: unknown) => Promise<unknown>;

export class InstanceDirectory {
  private snapshot: InstanceSnapshot | undefined;
  private loading: Promise<InstanceSnapshot> | undefined;

  constructor(
    private readonly options: {
      catalog: InstanceCatalog;
      jobs: readonly JobType[];
      resolveParams?: ParamsResolver;
      /** How long a warm process reuses what it read. 0: read every time. */
      maxAgeMs: number;
      now: () => number;
    },
  ) {}

  /** The instances, read again when older than `maxAgeMs` (or always with `fresh`). */
  async get(fresh = false): Promise<InstanceSnapshot> {
    const current = this.snapshot;
    if (!fresh && current && this.options.now() - current.loadedAt < this.options.maxAgeMs) return current;
    this.loading ??= this.load().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async load(): Promise<InstanceSnapshot> {
    const { entries, statuses, limits: rawLimits } = await this.options.catalog.loadInstancesAndStatus();
    const limits = parseLimits(rawLimits);
    const problems: ConfigProblem[] = [];
    const resolved = await Promise.all(entries.map((entry) => this.resolve(entry, problems)));
    const parsed = parseInstances({ instances: resolved.filter((entry) => entry !== undefined) }, this.options.jobs);
    const jobs = new Map(this.options.jobs.map((job) => [job.name, job]));
    const instances = new Map<string, LoadedInstance>();
    for (const config of parsed.instances) {
      const job = jobs.get(config.job);
      if (job) instances.set(config.id, { config, job });
    }
    this.snapshot = {
      instances,
      statuses: new Map(statuses.map((status) => [status.instanceId, status])),
      limits: mergeLimitsWithLastGood(this.snapshot?.limits ?? new Map(), limits.limits, limits.problems, false),
      problems: [...problems, ...parsed.problems, ...limits.problems],
      loadedAt: this.options.now(),
    };
    return this.snapshot;
  }

  private async resolve(entry: unknown, problems: ConfigProblem[]): Promise<unknown> {
    const resolveParams = this.options.resolveParams;
    if (!resolveParams || typeof entry !== 'object' || entry === null || !('params' in entry)) return entry;
    const id = 'id' in entry && typeof entry.id === 'string' ? entry.id : '?';
    try {
      return { ...entry, params: await resolveParams(id, entry.params) };
    } catch (error) {
      problems.push({ instanceId: id, field: 'params', message: (error as Error).message });
      return undefined;
    }
  }
}
