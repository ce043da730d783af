/**
 * What the status page shows, read through its source (./source.ts: the local store and instances
 * file, or a deployed stack): instance summaries with their status badge, an instance's details
 * (masked params, tasks, charts' data) and the live snapshot pushed to open pages. Pure reads; the
 * HTTP layer is in server.ts.
 */
import { withWaiting, type LimitView } from '../engine/limit-messages.js';
import type { InstanceStatus } from '../ports/store.js';
import { parseSchedule } from '../schedule.js';
import type { InstanceConfig, Json, LogLevel, Progress, RunRecord, RunStatus, TaskKind } from '../types.js';
import type { SourceConfig, StatusSource } from './source.js';

/**
 * An instance's status badge:
 * - `failed`: the latest run of one of its tasks failed, or its last plan failed;
 * - `running`: a run of it is running, queued or waiting to retry;
 * - `never run`: no run of it is on record;
 * - `outdated`: enabled and not retired, yet no runner has planned it for two of its schedule
 *   periods (the second due time after its last scheduled plan, or its latest run when no plan
 *   is on record, has passed): is `ujr run` running?
 * - `ok` otherwise.
 */
export type Badge = 'failed' | 'running' | 'never run' | 'outdated' | 'ok';

/** Whether an instance is planned: `disabled` in the file, `done` once its job retired it. */
export type InstanceState = 'enabled' | 'disabled' | 'done';

export interface RunBrief {
  id: string;
  task: string;
  /** `continuous` runs have no attempt limit (their maxAttempts means nothing to show). */
  kind: TaskKind;
  status: RunStatus;
  attempt: number;
  maxAttempts: number;
  queuedAt: number;
  startedAt?: number;
  endedAt?: number;
  progress?: Progress;
  error?: { name: string; message: string };
}

export interface InstanceSummary {
  id: string;
  job: string;
  schedule: string;
  enabled: boolean;
  state: InstanceState;
  badge: Badge;
  retiredAt?: number;
  retiredReason?: string;
  planError?: { name: string; message: string; at: number };
  lastRun?: RunBrief;
  running: RunBrief[];
}

export interface TaskSummary {
  task: string;
  lastRun?: RunBrief;
}

/** The outcomes the runs-per-hour chart counts: every status a run ends with. */
export const ENDED_STATUSES = ['succeeded', 'failed', 'interrupted', 'cancelled', 'skipped'] as const satisfies readonly RunStatus[];
export type EndedStatus = (typeof ENDED_STATUSES)[number];

/** Runs that ended in one hour, by how they ended. */
export type HourBucket = {
  /** Start of the hour, epoch ms. */
  hour: number;
} & Record<EndedStatus, number>;

/** A run as the instance timeline draws it: when it waited, ran and ended, and its attempts' links. */
export interface TimelineRun {
  id: string;
  task: string;
  kind: TaskKind;
  status: RunStatus;
  attempt: number;
  queuedAt: number;
  startedAt?: number;
  endedAt?: number;
  previousRunId?: string;
  nextRunId?: string;
}

export interface Timeline {
  /** The window, epoch ms: runs that were queued, running or ended in it. */
  from: number;
  to: number;
  runs: TimelineRun[];
  /** Whether the window held more runs than were read (the oldest are left out). */
  truncated: boolean;
}

export interface DurationPoint {
  id: string;
  task: string;
  status: RunStatus;
  endedAt: number;
  durationMs: number;
}

export interface InstanceDetail extends InstanceSummary {
  params: Json;
  concurrency: number | null;
  tasks: TaskSummary[];
  /** The last 48 hours, oldest first, by the hour runs ended; every outcome counted. */
  hourly: HourBucket[];
  /** Ended runs with both times, oldest first (at most 100). */
  durations: DurationPoint[];
  recentRuns: RunBrief[];
}

/** What open pages get pushed; a change of it makes them refresh. */
export interface Snapshot {
  instances: { id: string; badge: Badge; state: InstanceState; lastRunId: string | null; lastStatus: RunStatus | null }[];
  running: { id: string; instanceId: string; task: string; status: RunStatus; progress: Progress | null }[];
}

const HOUR = 3_600_000;
export const MASK = '••••••••';
const SECRET_KEY = /secret|token|password|passwd|key|credential/i;
const SECRET_VALUE = /^(ssm:|secretsmanager:|arn:aws:secretsmanager:|arn:aws:ssm:|\{\{resolve:(ssm|secretsmanager))/i;
const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * Masks what looks secret in instance params: values under keys naming a secret, key, token,
 * password or credential, and strings that reference a secret store (`ssm:…`,
 * `secretsmanager:…`, `arn:aws:secretsmanager:…`).
 *
 * @example
 * ```ts
 * maskSecrets({ apiKey: 'abc', bucket: 'data' }); // { apiKey: '••••••••', bucket: 'data' }
 * ```
 */
export function maskSecrets(value: unknown): Json {
  if (typeof value === 'string') return SECRET_VALUE.test(value.trim()) ? MASK : value;
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map(maskSecrets);
  if (typeof value === 'object') {
    const out: Record<string, Json> = {};
    for (const [key, inner] of Object.entries(value)) out[key] = SECRET_KEY.test(key) ? MASK : maskSecrets(inner);
    return out;
  }
  return null;
}

/** Whether a log line is at `level` or above. */
export function atLeast(lineLevel: LogLevel, level: LogLevel | undefined): boolean {
  return level === undefined || LEVELS[lineLevel] >= LEVELS[level];
}

export function isLogLevel(value: string): value is LogLevel {
  return value in LEVELS;
}

export function brief(run: RunRecord): RunBrief {
  const out: RunBrief = {
    id: run.id,
    task: run.task,
    kind: run.kind,
    status: run.status,
    attempt: run.attempt,
    maxAttempts: run.maxAttempts,
    queuedAt: run.queuedAt,
  };
  if (run.startedAt !== undefined) out.startedAt = run.startedAt;
  if (run.endedAt !== undefined) out.endedAt = run.endedAt;
  if (run.progress) out.progress = run.progress;
  if (run.error) out.error = { name: run.error.name, message: run.error.message };
  return out;
}

function isEnded(status: RunStatus): status is EndedStatus {
  return (ENDED_STATUSES as readonly RunStatus[]).includes(status);
}

function whenOf(run: RunRecord): number {
  return run.endedAt ?? run.startedAt ?? run.queuedAt;
}

/** Reads the configuration and the store on every call, so edits show at once. */
/** A limit bucket as the page shows it: its state, and the queued runs waiting for it. */
export type { LimitView } from '../engine/limit-messages.js';

export class StatusReader {
  constructor(
    private readonly source: StatusSource,
    private readonly now: () => number,
  ) {}

  config(): Promise<SourceConfig> {
    return this.source.config();
  }

  tasksOf(instance: InstanceConfig): Promise<string[]> {
    return this.source.tasksOf(instance);
  }

  /**
   * Every shared-limit bucket with its level, and how many queued runs wait for it (their
   * progress says so); none when the store keeps no limits.
   */
  async limits(): Promise<{ limits: LimitView[] }> {
    if (!this.source.limits) return { limits: [] };
    const [states, active] = await Promise.all([this.source.limits(), this.source.activeRuns()]);
    return { limits: withWaiting(states, active) };
  }

  async instances(): Promise<{ instances: InstanceSummary[]; problems: string[] }> {
    const { instances, problems } = await this.summaries();
    return { instances, problems };
  }

  /** Instance summaries, and the active runs they were built from (the snapshot needs both). */
  private async summaries(): Promise<{ instances: InstanceSummary[]; problems: string[]; active: RunRecord[] }> {
    const { instances, problems } = await this.config();
    const statuses = new Map((await this.source.store.listInstanceStatus()).map((s) => [s.instanceId, s]));
    const active = await this.source.activeRuns();
    const summaries: InstanceSummary[] = [];
    for (const instance of instances) {
      const lastByTask = await this.lastRuns(instance);
      summaries.push(this.summarize(instance, statuses.get(instance.id), lastByTask, active));
    }
    return { instances: summaries, problems, active };
  }

  async instance(instance: InstanceConfig): Promise<InstanceDetail> {
    const now = this.now();
    const lastByTask = await this.lastRuns(instance);
    const active = await this.source.activeRuns(instance.id);
    const summary = this.summarize(instance, await this.source.store.getInstanceStatus(instance.id), lastByTask, active);
    const firstHour = Math.floor(now / HOUR) * HOUR - 47 * HOUR;
    const recent = await this.source.store.listRuns({ instanceId: instance.id, since: firstHour - 7 * 24 * HOUR, limit: 5_000 });
    const hourly: HourBucket[] = Array.from({ length: 48 }, (_, i) => ({ hour: firstHour + i * HOUR, succeeded: 0, failed: 0, interrupted: 0, cancelled: 0, skipped: 0 }));
    for (const run of recent) {
      if (run.endedAt === undefined || !isEnded(run.status)) continue;
      const bucket = hourly[Math.floor((run.endedAt - firstHour) / HOUR)];
      if (bucket) bucket[run.status] += 1;
    }
    const durations = recent
      .filter((r) => r.startedAt !== undefined && r.endedAt !== undefined)
      .slice(0, 100)
      .map((r) => ({ id: r.id, task: r.task, status: r.status, endedAt: r.endedAt ?? 0, durationMs: (r.endedAt ?? 0) - (r.startedAt ?? 0) }))
      .reverse();
    const recentRuns = (await this.source.store.listRuns({ instanceId: instance.id, limit: 20 })).map(brief);
    return {
      ...summary,
      params: maskSecrets(instance.params),
      concurrency: Number.isFinite(instance.concurrency) ? instance.concurrency : null,
      tasks: [...lastByTask].map(([task, run]) => (run ? { task, lastRun: brief(run) } : { task })),
      hourly,
      durations,
      recentRuns,
    };
  }

  /**
   * The runs of `instance` that were queued, running or ended in the last `hours` hours, oldest
   * first (at most 2,000, the newest), for the timeline.
   */
  async timeline(instance: InstanceConfig, hours: number): Promise<Timeline> {
    const to = this.now();
    const from = to - hours * HOUR;
    const limit = 2_000;
    // A run queued before the window may still have run in it: look back as far again.
    const runs = await this.source.store.listRuns({ instanceId: instance.id, since: from - hours * HOUR, limit });
    const active = await this.source.activeRuns(instance.id);
    const byId = new Map<string, RunRecord>();
    for (const run of [...runs, ...active]) byId.set(run.id, run);
    const shown = [...byId.values()]
      .filter((r) => (r.endedAt ?? to) >= from)
      .sort((a, b) => a.queuedAt - b.queuedAt || (a.id < b.id ? -1 : 1))
      .map((r) => {
        const out: TimelineRun = { id: r.id, task: r.task, kind: r.kind, status: r.status, attempt: r.attempt, queuedAt: r.queuedAt };
        if (r.startedAt !== undefined) out.startedAt = r.startedAt;
        if (r.endedAt !== undefined) out.endedAt = r.endedAt;
        if (r.previousRunId !== undefined) out.previousRunId = r.previousRunId;
        if (r.nextRunId !== undefined) out.nextRunId = r.nextRunId;
        return out;
      });
    return { from, to, runs: shown, truncated: runs.length >= limit };
  }

  /** The compact state pushed to open pages every second (only when it changed). */
  async snapshot(): Promise<Snapshot> {
    const { instances, active: running } = await this.summaries();
    return {
      instances: instances.map((i) => ({
        id: i.id,
        badge: i.badge,
        state: i.state,
        lastRunId: i.lastRun?.id ?? null,
        lastStatus: i.lastRun?.status ?? null,
      })),
      running: running.map((r) => ({ id: r.id, instanceId: r.instanceId, task: r.task, status: r.status, progress: r.progress ?? null })),
    };
  }

  private async lastRuns(instance: InstanceConfig): Promise<Map<string, RunRecord | undefined>> {
    const byTask = new Map<string, RunRecord | undefined>();
    for (const task of await this.tasksOf(instance)) byTask.set(task, await this.source.store.lastRun({ instanceId: instance.id, task }));
    return byTask;
  }

  private summarize(
    instance: InstanceConfig,
    status: InstanceStatus | undefined,
    lastByTask: Map<string, RunRecord | undefined>,
    active: RunRecord[],
  ): InstanceSummary {
    const lasts = [...lastByTask.values()].filter((r): r is RunRecord => r !== undefined);
    const last = lasts.reduce<RunRecord | undefined>((a, b) => (a === undefined || whenOf(b) > whenOf(a) ? b : a), undefined);
    const running = active.filter((r) => r.instanceId === instance.id);
    const state: InstanceState = status?.retiredAt !== undefined ? 'done' : instance.enabled ? 'enabled' : 'disabled';
    let badge: Badge = 'ok';
    if (lasts.some((r) => r.status === 'failed') || status?.planError) badge = 'failed';
    else if (running.length > 0) badge = 'running';
    else if (!last) badge = 'never run';
    else if (state === 'enabled' && this.isOutdated(instance.schedule, Math.max(status?.lastPlannedAt ?? 0, whenOf(last)))) {
      badge = 'outdated';
    }
    const summary: InstanceSummary = {
      id: instance.id,
      job: instance.job,
      schedule: instance.schedule,
      enabled: instance.enabled,
      state,
      badge,
      running: running.map(brief),
    };
    if (status?.retiredAt !== undefined) summary.retiredAt = status.retiredAt;
    if (status?.retiredReason !== undefined) summary.retiredReason = status.retiredReason;
    if (status?.planError) {
      summary.planError = { name: status.planError.name, message: status.planError.message, at: status.planError.at };
    }
    if (last) summary.lastRun = brief(last);
    return summary;
  }

  private isOutdated(schedule: string, lastAt: number): boolean {
    try {
      const parsed = parseSchedule(schedule);
      return this.now() > parsed.next(parsed.next(lastAt));
    } catch {
      return false;
    }
  }
}
