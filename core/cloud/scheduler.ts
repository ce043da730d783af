/**
 * The scheduler: what the scheduler Lambda does on every tick (EventBridge Scheduler, once a
 * minute) and on an ad-hoc invocation for one instance.
 *
 * Per tick: read the instances (one scan), plan each due one (`getRunnableTasks`), read the leases
 * of every returned signature in batches (`peek`: a tick where nothing is new costs those reads and
 * no writes), post each new signature to the board with one conditional write (it succeeds only if
 * no lease exists or the existing one expired; the condition decides, never TTL), then dispatch:
 * batch tasks to the queue (10 per call), batch tasks longer than the worker Lambda allows as
 * one-off Fargate tasks, continuous tasks stay on the board for the conductors, whose number is
 * set from how many continuous tasks there are. Continuous tasks the job stopped returning (or of
 * an instance switched off) are asked to stop.
 *
 * Every tick first sweeps (`Store.sweep`): each run left queued or running whose lease is no
 * longer live (its holder died, hung or ran out of time), including a board entry a worker
 * claimed and never recorded, ends `interrupted`, and its expired lease is released in the same
 * transaction, whether or not the job returns the task again.
 *
 * Shared limits (issue 15): a task's buckets are resolved at plan time (`withLimits`) and travel
 * with it, in the dispatch message (queue) or the board entry (conductor, Fargate), to whatever
 * starts it. A long task's first attempt takes them here, before its container is started; one
 * refused waits on the board, saying so, and every tick asks again (`startWaitingLongTasks`).
 *
 * Two ticks at once are safe: both may plan, only one wins each signature's conditional write.
 */
import { z } from 'zod';
import { formatProblem } from '../config.js';
import { mapLimit } from '../concurrency.js';
import { InvalidTaskSpecError, toErrorInfo } from '../errors.js';
import { buildPlanContext, resolveLimits, resolveSpecs, type PlannedTask, type PlanOutcome } from '../engine/planner.js';
import { waitingFor, waitingMessage } from '../engine/limit-messages.js';
import { type LimitDefinition, type LimitSpec, type LimitStore } from '../ports/limits.js';
import { withTimeout } from '../engine/with-timeout.js';
import { realTimers } from '../ports/timers.js';
import { parseSchedule } from '../schedule.js';
import type { FencedWrites, InstanceStatus, LeaseGrant, LeaseRef } from '../ports/store.js';
import type { Json, ObjectReader, PlanContext, RunOrigin, RunRecord } from '../types.js';
import { runIdFor } from '../run-ids.js';
import { endedRun } from './attempt.js';
import type { Board, BoardEntry, PostRequest, Route } from './board.js';
import { notConfigured, specsOf } from './limit-hold.js';
import type { InstanceDirectory, LoadedInstance } from './instances.js';
import { LIMITS_PER_TASK, type DispatchMessage, type EndedRun, type FollowUpMessage } from './messages.js';
import type { Fleet, TaskQueue, Telemetry } from './ports.js';

export interface SchedulerConfig {
  /** How often EventBridge ticks; an instance is due when its next time falls before the middle of the next tick. Default 60 s. */
  tickMs: number;
  /** Batch tasks whose timeout is longer than this run on Fargate, not in the worker Lambda. */
  workerTaskLimitMs: number;
  /** How long a dispatched batch task may wait in the queue (on top of its timeout) before its lease expires. Default 15 min. */
  queueLeaseTtlMs: number;
  /** How long a long task's container may take to start (on top of its timeout). Default 10 min. */
  fargateStartTtlMs: number;
  /** How long a continuous task waits on the board for a conductor before it is posted again. Default 10 min. */
  pendingContinuousTtlMs: number;
  /** Continuous tasks one conductor container runs. Default 4. */
  tasksPerConductor: number;
  /** Most conductor containers. Default 4. */
  maxConductors: number;
  /** A plan taking longer fails. Default 60 s. */
  planTimeoutMs: number;
  /** Instances planned at once. Default 8. */
  planConcurrency: number;
}

export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = {
  tickMs: 60_000,
  workerTaskLimitMs: 14 * 60_000,
  queueLeaseTtlMs: 15 * 60_000,
  fargateStartTtlMs: 10 * 60_000,
  pendingContinuousTtlMs: 10 * 60_000,
  tasksPerConductor: 4,
  maxConductors: 4,
  planTimeoutMs: 60_000,
  planConcurrency: 8,
};

export interface SchedulerDeps {
  board: Board;
  queue: TaskQueue;
  fleet: Fleet;
  /** Plans only read objects (the scheduler's role may not write the data bucket). */
  objects: ObjectReader;
  telemetry: Telemetry;
  instances: InstanceDirectory;
  config: SchedulerConfig;
  now: () => number;
  /** The shared limits' buckets (issue 15): the scheduler takes a long task's before it starts its container. */
  limits?: LimitStore;
}

/** What a tick (or an ad-hoc run) did; it crosses Lambda's Invoke, so callers parse it with this schema. */
export const tickReportSchema = z.object({
  /** Instances planned. */
  planned: z.array(z.string()),
  /** Tasks the plans returned. */
  tasks: z.number(),
  /** Returned tasks already leased (running, queued or claimed by another tick). */
  deduplicated: z.number(),
  /** New tasks posted, by route. */
  dispatched: z.object({ queue: z.number(), conductor: z.number(), fargate: z.number() }),
  /** Task specs rejected, and plans that failed. */
  rejected: z.number(),
  takenOver: z.number(),
  /** Runs the sweep ended `interrupted` (their lease expired without a final record). */
  swept: z.number().default(0),
  /** Conductors wanted after this tick. */
  conductors: z.number(),
  /** The runs an ad-hoc run created (first attempts), for `ujr trigger --wait` to follow. */
  manualRunIds: z.array(z.string()).default([]),
});

export type TickReport = z.infer<typeof tickReportSchema>;

/** An ad-hoc run: plan one instance now, or run one of its tasks with an input. */
export interface RunNowRequest {
  instanceId: string;
  task?: string;
  input?: Json;
}

interface Plan {
  loaded: LoadedInstance;
  tasks: PlannedTask[];
  origin: RunOrigin;
  /** Whether continuous tasks it did not return should stop (full plans only). */
  reconcile: boolean;
  /** When the plan started (before it read any history). */
  plannedAt: number;
  /**
   * A follow-up plan passes over the tasks that ended since this time (the instance's last
   * scheduled plan), as the local runner's follow-ups do: what ended is asked for again at the
   * next tick, not the moment it ended.
   */
  passOverReleasedSince?: number;
}

export class Scheduler {
  constructor(private readonly deps: SchedulerDeps) {}

  /** One scheduled tick over every due instance. */
  async tick(): Promise<TickReport> {
    const { now, config, telemetry } = this.deps;
    const snapshot = await this.deps.instances.get(true);
    for (const problem of snapshot.problems) {
      telemetry.log('error', formatProblem('instances table', problem), { instanceId: problem.instanceId });
      telemetry.count('planErrors', 'config');
    }
    const report = emptyReport();
    // Instances switched off or done (or gone from the table): their continuous tasks stop, their waiting long tasks end.
    const offline = new Set(
      [...snapshot.instances.values()]
        .filter((loaded) => !loaded.config.enabled || snapshot.statuses.get(loaded.config.id)?.retiredAt !== undefined)
        .map((loaded) => loaded.config.id),
    );
    const isOffline = (instanceId: string) => !snapshot.instances.has(instanceId) || offline.has(instanceId);
    // Before planning: a lease the sweep releases must not look released after the plans read the history.
    await this.sweep(report);
    if (snapshot.limits.size > 0) await this.startWaitingLongTasks(snapshot.limits, isOffline);
    const tickAt = now();
    const due = [...snapshot.instances.values()].filter((loaded) => !offline.has(loaded.config.id) && this.isDue(loaded, snapshot.statuses.get(loaded.config.id), tickAt));
    const plans = await mapLimit(due, config.planConcurrency, (loaded) => this.plan(loaded, 'schedule', snapshot.statuses.get(loaded.config.id), report, snapshot.limits));
    await this.dispatch(
      plans.filter((plan): plan is Plan => plan !== undefined),
      report,
      (entry) => isOffline(entry.instanceId),
    );
    return report;
  }

  /** Plans one instance now (manual), or posts one of its tasks with the given input. */
  async runNow(request: RunNowRequest): Promise<TickReport> {
    const snapshot = await this.deps.instances.get(true);
    const loaded = snapshot.instances.get(request.instanceId);
    if (!loaded) {
      const problem = snapshot.problems.find((p) => p.instanceId === request.instanceId);
      throw new Error(
        problem
          ? `instance "${request.instanceId}" is broken: ${formatProblem('instances table', problem)}`
          : `no instance "${request.instanceId}" in the instances table; known: ${[...snapshot.instances.keys()].join(', ') || '(none)'}`,
      );
    }
    const report = emptyReport();
    let plan: Plan | undefined;
    if (request.task === undefined) {
      plan = await this.plan(loaded, 'manual', snapshot.statuses.get(loaded.config.id), report, snapshot.limits);
    } else {
      const outcome = withLimits(resolveSpecs(loaded.job, loaded.config.id, [{ task: request.task, input: request.input ?? {} }]), loaded, snapshot.limits);
      const rejected = outcome.rejected[0];
      if (rejected) throw rejected;
      plan = { loaded, tasks: outcome.tasks, origin: 'manual', reconcile: false, plannedAt: Number.POSITIVE_INFINITY };
      report.tasks += outcome.tasks.length;
    }
    if (!plan) return report;
    // A manual run of a disabled (or retired) instance may run its batch tasks once; a continuous
    // task would keep running while the instance says disabled, so it is not posted.
    const off = !loaded.config.enabled || snapshot.statuses.get(loaded.config.id)?.retiredAt !== undefined;
    const tasks = off ? plan.tasks.filter((task) => task.kind !== 'continuous') : plan.tasks;
    for (const task of plan.tasks.filter((t) => !tasks.includes(t))) {
      this.deps.telemetry.log('info', `continuous task "${task.task}" is not started: instance "${loaded.config.id}" is disabled or done; enable it to run it`, { instanceId: loaded.config.id });
    }
    await this.dispatch([{ ...plan, tasks, reconcile: false }], report, () => false);
    return report;
  }

  /**
   * Follow-up plans: each instance named by `requests` is planned again because tasks of it
   * ended (core/cloud/follow-ups.ts), through its follow-up gate, so that a burst of endings
   * makes at most one plan in flight and one pending per instance. Posts go through the board's
   * conditional writes like a tick's, so a tick planning at the same time is safe.
   */
  async followUp(requests: FollowUpMessage[]): Promise<TickReport> {
    const { board, config, now } = this.deps;
    const report = emptyReport();
    const byInstance = new Map<string, { at: number; ended: EndedRun[] }>();
    for (const request of requests) {
      const seen = byInstance.get(request.followUp);
      if (seen) {
        seen.at = Math.max(seen.at, request.at);
        seen.ended.push(...request.ended);
      } else {
        byInstance.set(request.followUp, { at: request.at, ended: [...request.ended] });
      }
    }
    const snapshot = await this.deps.instances.get();
    await mapLimit([...byInstance], config.planConcurrency, async ([instanceId, request]) => {
      const loaded = snapshot.instances.get(instanceId);
      // Removed or switched off since the task was planned: nothing to follow up.
      if (!loaded || !loaded.config.enabled) return;
      let requestedAt: number | undefined = request.at;
      while (requestedAt !== undefined) {
        const gate = await board.beginFollowUp(instanceId, requestedAt, now(), config.planTimeoutMs + FOLLOW_UP_MARGIN_MS);
        if (gate.kind !== 'claimed') return;
        try {
          // Read now, not from the cached snapshot: a status written back must not undo a tick's.
          const status = await board.getInstanceStatus(instanceId);
          if (status?.retiredAt !== undefined) return;
          const plan = await this.plan(loaded, 'followup', status, report, snapshot.limits);
          if (plan) await this.dispatch([{ ...plan, passOverReleasedSince: status?.lastPlannedAt ?? 0 }], report, 'followup');
        } finally {
          requestedAt = await board.endFollowUp(instanceId, gate.from);
        }
      }
    });
    return report;
  }

  /** Ends the runs whose lease is no longer live (see the header); a failed sweep is the next tick's work. */
  private async sweep(report: TickReport): Promise<void> {
    const { board, now, telemetry } = this.deps;
    try {
      const swept = await board.sweep(now());
      report.swept = swept.length;
      for (const { run } of swept) {
        telemetry.count('swept', run.jobType);
        telemetry.log('warn', `run ${run.id} of task "${run.task}" ended interrupted: ${run.runner} stopped renewing its lease without recording an end`, { instanceId: run.instanceId, signature: run.signature, runId: run.id });
      }
    } catch (error) {
      telemetry.log('error', `could not sweep runs whose lease expired: ${(error as Error).message}; the next tick tries again`);
    }
  }

  private isDue(loaded: LoadedInstance, status: InstanceStatus | undefined, at: number): boolean {
    if (status?.lastPlannedAt === undefined) return true;
    return parseSchedule(loaded.config.schedule).next(status.lastPlannedAt) <= at + this.deps.config.tickMs / 2;
  }

  private async plan(
    loaded: LoadedInstance,
    reason: PlanContext<unknown>['reason'],
    status: InstanceStatus | undefined,
    report: TickReport,
    limits: ReadonlyMap<string, LimitDefinition>,
  ): Promise<Plan | undefined> {
    const { now, telemetry, config } = this.deps;
    const { config: instance, job } = loaded;
    let done: { reason: string | undefined } | undefined;
    const log = planLogger(telemetry, instance.id, job.name);
    const ctx = buildPlanContext({
      instance,
      job,
      reason,
      store: this.deps.board,
      objects: this.deps.objects,
      log,
      now,
      onDone: (why) => {
        done = { reason: why };
      },
    });
    const plannedAt = now();
    let specs: unknown;
    try {
      specs = await withTimeout(
        Promise.resolve().then(() => job.getRunnableTasks(ctx)),
        config.planTimeoutMs,
        realTimers,
        () => new Error(`getRunnableTasks of instance "${instance.id}" did not return within ${config.planTimeoutMs} ms`),
      );
    } catch (error) {
      report.rejected += 1;
      telemetry.count('planErrors', job.name);
      telemetry.log('error', `getRunnableTasks of instance "${instance.id}" failed: ${(error as Error).message}`, { instanceId: instance.id, jobType: job.name });
      await this.setStatus(instance.id, status, { planError: { ...toErrorInfo(error), at: now() }, ...(reason === 'schedule' ? { lastPlannedAt: plannedAt } : {}) });
      return undefined;
    }
    // Inputs over MAX_INPUT_BYTES (core/limits.ts) are rejected here, as the local runner does.
    const outcome = withLimits(resolveSpecs(job, instance.id, specs), loaded, limits);
    const tasks = outcome.tasks;
    for (const rejected of outcome.rejected) {
      telemetry.log('error', rejected.message, { instanceId: instance.id, jobType: job.name });
      telemetry.count('planErrors', job.name);
    }
    report.rejected += outcome.rejected.length;
    report.tasks += tasks.length;
    report.planned.push(instance.id);
    telemetry.count('planned', job.name, tasks.length);
    const firstRejected = outcome.rejected[0];
    await this.setStatus(instance.id, status, {
      ...(reason === 'schedule' ? { lastPlannedAt: plannedAt } : {}),
      planError: firstRejected ? { ...toErrorInfo(firstRejected), at: now() } : undefined,
      ...(done ? { retiredAt: now(), retiredReason: done.reason } : {}),
    });
    if (done) telemetry.log('info', `instance "${instance.id}" is done${done.reason ? `: ${done.reason}` : ''}; it will not be planned again`, { instanceId: instance.id });
    return { loaded, tasks, origin: reason === 'manual' ? 'manual' : reason === 'followup' ? 'followup' : 'schedule', reconcile: reason === 'schedule' && !done, plannedAt };
  }

  /**
   * Posts what is new to the board and dispatches it; asks unwanted continuous tasks to stop;
   * sizes the conductor fleet. A follow-up (`isOffline` = 'followup') stops nothing and sizes
   * the fleet only when it posted a continuous task.
   */
  private async dispatch(plans: Plan[], report: TickReport, isOffline: ((entry: BoardEntry) => boolean) | 'followup'): Promise<void> {
    const { board, now, config, telemetry } = this.deps;
    const signatures = plans.flatMap((plan) => plan.tasks.map((task) => task.signature));
    const { held, releasedAt } = signatures.length > 0 ? await board.peek(signatures, now()) : { held: new Map<string, BoardEntry>(), releasedAt: new Map<string, number>() };
    const followUp = isOffline === 'followup';
    const returnsContinuous = plans.some((plan) => plan.tasks.some((task) => task.kind === 'continuous'));
    const continuous = followUp && !returnsContinuous ? [] : await board.listRoute('conductor');

    const stops: BoardEntry[] = followUp ? [] : continuous.filter((entry) => !entry.stopRequested && isOffline(entry));
    const posts: { request: PostRequest; plan: Plan; planned: PlannedTask }[] = [];
    for (const plan of plans) {
      const { config: instance, job } = plan.loaded;
      if (plan.reconcile) {
        const returned = new Set(plan.tasks.filter((t) => t.kind === 'continuous').map((t) => t.signature));
        for (const entry of continuous) {
          if (entry.instanceId === instance.id && !entry.stopRequested && !returned.has(entry.signature)) stops.push(entry);
        }
      }
      let inFlight = [...held.values()].filter((entry) => entry.instanceId === instance.id).length;
      for (const planned of plan.tasks) {
        if (held.has(planned.signature)) {
          report.deduplicated += 1;
          telemetry.count('deduplicated', job.name);
          continue;
        }
        // It ended after the plan read the history (or so shortly before that the history's
        // indexes may not show its record yet): the plan may not know it succeeded.
        const released = releasedAt.get(planned.signature);
        if (released !== undefined && released >= historySince(plan.plannedAt)) {
          report.deduplicated += 1;
          continue;
        }
        if (released !== undefined && plan.passOverReleasedSince !== undefined && released >= plan.passOverReleasedSince) {
          report.deduplicated += 1;
          continue;
        }
        if (inFlight >= instance.concurrency) break;
        inFlight += 1;
        const route = routeOf(planned, config);
        const queuedAt = now();
        // The id says the queue time and the task: the record's key derives from it (core/run-ids.ts).
        const runId = runIdFor(instance.id, planned.task, queuedAt);
        const timeoutMs = timeoutOf(planned, config);
        const request: PostRequest = {
          signature: planned.signature,
          owner: `${route}:${runId}`,
          ttlMs: leaseTtl(route, timeoutMs, config),
          runId,
          instanceId: instance.id,
          jobType: job.name,
          task: planned.task,
          kind: planned.kind,
          route,
          input: planned.input,
          attempt: 1,
          maxAttempts: planned.kind === 'continuous' ? 0 : planned.retry.attempts,
          origin: plan.origin,
          queuedAt,
          retry: planned.retry,
        };
        if (Number.isFinite(plan.plannedAt)) request.notReleasedSince = historySince(plan.plannedAt);
        if (timeoutMs !== undefined) request.timeoutMs = timeoutMs;
        // The queue route's message carries them; a conductor or long task reads them from the entry.
        if (route !== 'queue' && planned.limits && planned.limits.length > 0) request.limits = planned.limits.map(({ name, key }) => ({ name, key }));
        posts.push({ request, plan, planned });
      }
    }

    await Promise.all(stops.map((entry) => board.requestStop(entry.signature, entry.token)));
    for (const entry of stops) telemetry.log('info', `asked continuous task "${entry.task}" of "${entry.instanceId}" to stop`, { instanceId: entry.instanceId, signature: entry.signature });

    const grants = posts.length > 0 ? await board.post(posts.map((p) => p.request), now()) : [];
    const toQueue: DispatchMessage[] = [];
    const toFargate: { message: DispatchMessage; specs: LimitSpec[] }[] = [];
    const interrupted: FencedWrites[] = [];
    grants.forEach((grant, index) => {
      const post = posts[index];
      if (!post) return;
      const { request } = post;
      if (!grant.granted) {
        report.deduplicated += 1;
        telemetry.count('deduplicated', request.jobType);
        return;
      }
      report.dispatched[request.route] += 1;
      if (request.origin === 'manual') report.manualRunIds.push(request.runId);
      if (grant.takenOver) {
        report.takenOver += 1;
        telemetry.count('takenOver', request.jobType);
        const run = interruptedRun(grant, request, now());
        // Fenced by the new grant: recorded only while the lease is still the one just taken.
        if (run) interrupted.push({ fence: { signature: request.signature, owner: request.owner, token: grant.lease.token }, runs: [run] });
      }
      const message: DispatchMessage = {
        v: 1,
        signature: request.signature,
        token: grant.lease.token,
        owner: request.owner,
        instanceId: request.instanceId,
        task: request.task,
        runId: request.runId,
        attempt: 1,
        timeoutMs: request.timeoutMs ?? config.workerTaskLimitMs,
        leaseExpiresAt: grant.lease.expiresAt,
      };
      const limits = post.planned.limits;
      if (limits && limits.length > 0) message.limits = limits.map(({ name, key }) => ({ name, key }));
      if (request.route === 'queue') toQueue.push(message);
      else if (request.route === 'fargate') toFargate.push({ message, specs: limits ?? [] });
    });
    if (interrupted.length > 0) await board.commit({ fenced: interrupted });

    const unsent: LeaseRef[] = [];
    if (toQueue.length > 0) {
      for (const failure of await this.deps.queue.send(toQueue)) {
        telemetry.log('error', `could not queue task "${failure.message.task}": ${failure.error}; its lease is released and the next tick tries again`, { instanceId: failure.message.instanceId, signature: failure.message.signature });
        unsent.push({ signature: failure.message.signature, owner: failure.message.owner, token: failure.message.token });
      }
    }
    for (const { message, specs } of toFargate) {
      if ((await this.startLongTask(message, specs)) === 'unsent') unsent.push({ signature: message.signature, owner: message.owner, token: message.token });
    }
    if (unsent.length > 0) await board.commit({ fenced: unsent.map((fence) => ({ fence, release: true })) });

    if (followUp && report.dispatched.conductor === 0) return;
    const stopping = new Set(stops.map((entry) => entry.signature));
    const wanted = continuous.filter((entry) => !stopping.has(entry.signature)).length + report.dispatched.conductor;
    report.conductors = Math.min(config.maxConductors, Math.ceil(wanted / config.tasksPerConductor));
    // Conductors asked to stop tasks keep running until they have; the fleet only shrinks once they are gone.
    const running = Math.min(config.maxConductors, Math.ceil(continuous.length / config.tasksPerConductor));
    await this.deps.fleet.setConductors(Math.max(report.conductors, stops.length > 0 ? running : 0));
  }

  /**
   * Starts the container of a long task (route `fargate`). A task that takes shared limits takes
   * them here first, held by the dispatcher's owner (the container renews and releases them), so
   * that no container is started, and paid for, only to wait. Refused, the entry stays posted and
   * says what it waits for (a heartbeat fenced on the dispatcher's lease, which extends it past
   * the wait), and the ticks ask again (`startWaitingLongTasks`). `unsent`: the container could
   * not be started (the caller releases the lease; the limits taken are given back).
   */
  private async startLongTask(message: DispatchMessage, specs: readonly LimitSpec[]): Promise<'started' | 'waiting' | 'unsent' | 'stale'> {
    const { board, fleet, limits, now, config, telemetry } = this.deps;
    const fields = { instanceId: message.instanceId, signature: message.signature, runId: message.runId };
    const ref = { signature: message.signature, owner: message.owner, token: message.token };
    let started = message;
    let release = () => Promise.resolve();
    if (specs.length > 0) {
      if (!limits) {
        telemetry.log('error', `task "${message.task}" takes shared limits and this scheduler has no limit store to take them from; deploy it with one (core/adapters/aws/runtime.ts)`, fields);
        return 'unsent';
      }
      const ttlMs = message.timeoutMs + config.fargateStartTtlMs;
      const grant = await limits.acquireLimits({ holder: message.owner, ttlMs, limits: [...specs] }, now());
      const at = now();
      if (!grant.granted) {
        // Asked again at each tick: the lease lasts past the wait (or the next tick) and the task's run.
        const until = Math.max(grant.retryAt, at + config.tickMs);
        const progress = { current: 0, message: waitingMessage({ ...grant.waitingOn, until: grant.retryAt }), updatedAt: at };
        const beat = await board.heartbeat(ref, until + ttlMs - at, at, progress);
        if (!beat.held) return 'stale';
        telemetry.log('info', `long task "${message.task}" is ${progress.message}; no container is started until a tick finds its limits free`, fields);
        return 'waiting';
      }
      const permit = grant.permit;
      release = () => (permit.slots.length > 0 ? limits.releaseLimits(permit, now()) : Promise.resolve());
      // The entry no longer says it waits (a tick before the container claims it must not start it again).
      const beat = await board.heartbeat(ref, ttlMs, at, { current: 0, message: 'starting a container: its shared limits were granted', updatedAt: at });
      if (!beat.held) {
        await release();
        return 'stale';
      }
      started = { ...message, limitsHeld: true, leaseExpiresAt: at + ttlMs };
    }
    try {
      await fleet.runLongTask(started);
      return 'started';
    } catch (error) {
      telemetry.log('error', `could not start a container for task "${message.task}": ${(error as Error).message}; its lease is released and the next tick tries again`, fields);
      await release().catch(() => undefined);
      return 'unsent';
    }
  }

  /**
   * The long tasks posted at earlier ticks that wait for their shared limits (their entry says so):
   * each takes its limits again, as configured now, and starts its container when they are granted.
   * One called off meanwhile (asked to stop, its instance switched off) ends `cancelled`; one whose
   * limit is no longer configured ends `failed`, naming it.
   */
  private async startWaitingLongTasks(definitions: ReadonlyMap<string, LimitDefinition>, isOffline: (instanceId: string) => boolean): Promise<void> {
    const { board, now, config, telemetry } = this.deps;
    try {
      const at = now();
      const waiting = (await board.listRoute('fargate')).filter(
        (entry) => entry.owner.startsWith('fargate:') && entry.startedAt === undefined && entry.expiresAt > at && waitingFor(entry.progress?.message) !== undefined,
      );
      for (const entry of waiting) {
        const ref = { signature: entry.signature, owner: entry.owner, token: entry.token };
        const fields = { instanceId: entry.instanceId, signature: entry.signature, runId: entry.runId };
        if (entry.stopRequested === true || isOffline(entry.instanceId)) {
          const why = entry.stopRequested === true ? `task "${entry.task}" was asked to stop while it waited for its shared limits` : `instance "${entry.instanceId}" was disabled or retired while its task "${entry.task}" waited for its shared limits`;
          await board.finish(ref, endedRun(entry, entry.owner, now(), 'cancelled', { name: 'CancelledError', message: why }));
          continue;
        }
        const resolved = specsOf(entry.limits ?? [], definitions);
        if (!resolved.ok) {
          const why = notConfigured(entry, resolved.missing, definitions);
          telemetry.log('error', `${why}; the waiting long task ends failed`, fields);
          await board.finish(ref, endedRun(entry, entry.owner, now(), 'failed', { name: 'ConfigError', message: why }));
          continue;
        }
        const timeoutMs = entry.timeoutMs ?? config.workerTaskLimitMs;
        const message: DispatchMessage = { v: 1, signature: entry.signature, token: entry.token, owner: entry.owner, instanceId: entry.instanceId, task: entry.task, runId: entry.runId, attempt: entry.attempt, timeoutMs, leaseExpiresAt: entry.expiresAt };
        if (entry.limits) message.limits = entry.limits;
        if ((await this.startLongTask(message, resolved.specs)) === 'unsent') await board.commit({ fenced: [{ fence: ref, release: true }] });
      }
    } catch (error) {
      telemetry.log('error', `could not start the long tasks waiting for their shared limits: ${(error as Error).message}; the next tick tries again`);
    }
  }

  private async setStatus(instanceId: string, current: InstanceStatus | undefined, patch: Partial<Omit<InstanceStatus, 'instanceId'>>): Promise<void> {
    const next: InstanceStatus = { ...current, ...patch, instanceId };
    for (const key of Object.keys(next) as (keyof InstanceStatus)[]) if (next[key] === undefined) delete next[key];
    // A follow-up or manual plan that changes nothing writes nothing.
    if (current !== undefined ? sameStatus(current, next) : Object.keys(next).length === 1) return;
    await this.deps.board.setInstanceStatus(instanceId, Object.keys(next).length > 1 ? next : undefined);
  }
}

/** How long a follow-up plan's claim outlives its plan timeout (dispatching what it returned). */
const FOLLOW_UP_MARGIN_MS = 30_000;

function sameStatus(a: InstanceStatus, b: InstanceStatus): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof InstanceStatus)[]);
  return [...keys].every((key) => JSON.stringify(a[key]) === JSON.stringify(b[key]));
}

function emptyReport(): TickReport {
  return { planned: [], tasks: 0, deduplicated: 0, dispatched: { queue: 0, conductor: 0, fargate: 0 }, rejected: 0, takenOver: 0, swept: 0, conductors: 0, manualRunIds: [] };
}

/** A batch task without a timeout of its own gets the worker's limit; one set longer runs on Fargate. */
function timeoutOf(task: PlannedTask, config: SchedulerConfig): number | undefined {
  if (task.kind === 'batch' && !task.timeoutSet) return config.workerTaskLimitMs;
  return task.timeoutMs;
}

function routeOf(task: PlannedTask, config: SchedulerConfig): Route {
  if (task.kind === 'continuous') return 'conductor';
  return (timeoutOf(task, config) ?? 0) > config.workerTaskLimitMs ? 'fargate' : 'queue';
}

function leaseTtl(route: Route, timeoutMs: number | undefined, config: SchedulerConfig): number {
  if (route === 'conductor') return config.pendingContinuousTtlMs;
  const timeout = timeoutMs ?? config.workerTaskLimitMs;
  return timeout + (route === 'queue' ? config.queueLeaseTtlMs : config.fargateStartTtlMs);
}

/** Owners of a posted entry nobody claimed yet: taking it over interrupts no run. */
const DISPATCHER_ROUTES = ['queue:', 'fargate:', 'conductor:'];

/** The run a taken-over claimer left behind (it died or hung), recorded `interrupted`. */
function interruptedRun(grant: Extract<LeaseGrant, { granted: true }>, request: PostRequest, at: number): RunRecord | undefined {
  const old = grant.takenOver;
  if (!old?.owner || !old.runId || DISPATCHER_ROUTES.some((prefix) => old.owner?.startsWith(prefix))) return undefined;
  const entry = old as Partial<BoardEntry>;
  const run: RunRecord = {
    id: old.runId,
    instanceId: old.instanceId,
    jobType: entry.jobType ?? request.jobType,
    task: old.task,
    signature: old.signature,
    kind: entry.kind ?? request.kind,
    status: 'interrupted',
    attempt: entry.attempt ?? 1,
    maxAttempts: entry.maxAttempts ?? request.maxAttempts,
    origin: entry.origin ?? request.origin,
    runner: old.owner,
    fencingToken: old.token,
    queuedAt: entry.queuedAt ?? at,
    endedAt: at,
    input: entry.input ?? request.input,
    error: {
      name: 'LeaseExpiredError',
      message: `${old.owner} stopped renewing its lease (it died, hung or ran out of time); the scheduler posted the task again`,
    },
  };
  if (entry.startedAt !== undefined) run.startedAt = entry.startedAt;
  return run;
}

function planLogger(telemetry: Telemetry, instanceId: string, jobType: string) {
  const log = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, fields?: Record<string, unknown>) =>
    telemetry.log(level, message, { ...fields, instanceId, jobType, phase: 'plan' });
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/**
 * How long a run record may take to show in the run history after its lease was released: a
 * task's end releases the lease and then writes the record (two writes, no transaction), and
 * queries of live runs read the `byLive` index, which DynamoDB keeps eventually consistent. A
 * signature released that shortly before a plan is left to the next tick.
 */
export const HISTORY_INDEX_LAG_MS = 5_000;

/** The release time from which a plan that started at `plannedAt` may not have seen a run's record. */
function historySince(plannedAt: number): number {
  return plannedAt - HISTORY_INDEX_LAG_MS;
}

/**
 * Shared limits (issue 15): the buckets of each task that names limits, resolved against the
 * configured definitions as the local runner resolves them (`resolveLimits`: name, and key from the
 * key function or the spec), for whoever starts the task to take first: the worker (from the
 * message), a conductor (from the board entry), the scheduler itself for a long task (before it
 * starts the container). A limit that is not configured, or whose key cannot be had, is a plan
 * error naming the instance, task and limit.
 */
export function withLimits(outcome: PlanOutcome, loaded: LoadedInstance, definitions: ReadonlyMap<string, LimitDefinition>): PlanOutcome {
  if (!outcome.tasks.some((task) => task.limitRequests.length > 0)) return outcome;
  const instanceId = loaded.config.id;
  const rejected = [...outcome.rejected];
  const tasks: PlannedTask[] = [];
  for (const task of outcome.tasks) {
    if (task.limitRequests.length === 0) {
      tasks.push(task);
      continue;
    }
    try {
      const limits = resolveLimits(task, instanceId, loaded.config.params, definitions);
      if (limits.length > LIMITS_PER_TASK) {
        throw new InvalidTaskSpecError(`instance "${instanceId}", task "${task.task}" takes ${limits.length} shared-limit buckets; a task on AWS takes at most ${LIMITS_PER_TASK}`);
      }
      tasks.push({ ...task, limits });
    } catch (error) {
      if (!(error instanceof InvalidTaskSpecError)) throw error;
      rejected.push(error);
    }
  }
  return { ...outcome, tasks, rejected };
}
