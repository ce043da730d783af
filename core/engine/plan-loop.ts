/**
 * The plan loop: asks instances for their tasks and admits what they return. Schedules tick,
 * triggers (ad-hoc runs) are taken from the store, and a job is asked again the moment one of its
 * tasks ends (a follow-up), or once the runner has room for the rest of what it returned last
 * time. Admission leases the tasks' signatures in one batch, refuses a signature released since
 * the plan read the run history, and hands each new attempt to the dispatch queue.
 *
 * It reads and changes the runner's shared records (instances, held attempts) and reaches the
 * rest of the runner (its attempts' endings, its events and counters) through a `PlanLoopHost`.
 */
import { InvalidTaskSpecError, TaskTimeoutError, toErrorInfo } from '../errors.js';
import type { LimitDefinition } from '../ports/limits.js';
import type { InstanceStatus, LeaseRef, Store, Trigger, TriggerResult } from '../ports/store.js';
import { LIVE_STATUSES, type PlanContext, type RunOrigin } from '../types.js';
import { isActive, newRun, refOf, type Attempt, type InstanceRuntime } from './attempt.js';
import { buildPlanContext, resolveLimits, resolveSpecs, type PlanOutcome, type PlannedTask } from './planner.js';
import type { RunnerParts, RunnerStats } from './runner-events.js';
import { withTimeout } from './with-timeout.js';

/** How many distinct reasons a trigger's "nothing new to run" note lists. */
const MAX_SKIP_NOTES = 5;
/** How long a cancel request for a run this runner does not hold goes back to the store for the runner that does. */
const CANCEL_HANDOFF_MS = 30_000;
/** How far a takeover follows a dead holder's retries (nextRunId) to its live attempt. */
const MAX_ATTEMPT_LINKS = 1_000;

/** What the plan loop needs of the runner it plans for. */
export interface PlanLoopHost extends RunnerParts {
  readonly store: Store;
  readonly options: { readonly maxQueued: number; readonly leaseTtlMs: number; readonly planTimeoutMs: number; readonly once: boolean };
  readonly instances: ReadonlyMap<string, InstanceRuntime>;
  readonly counters: Pick<RunnerStats, 'deduplicated' | 'takenOver' | 'planErrors'>;
  reportStoreError(error: unknown): void;
  /** Ends an attempt of the runner's (aborts it if it runs) as cancelled. */
  cancel(attempt: Attempt, why: string): void;
  cancelInstanceWork(runtime: InstanceRuntime, why: string, only?: 'continuous'): void;
  /** The configured shared limits, by name (issue 15). */
  limitDefinitions(): ReadonlyMap<string, LimitDefinition>;
  /** Whether the store keeps shared limits (a task that names one cannot run without). */
  readonly hasLimitStore: boolean;
}

export class PlanLoop {
  constructor(private readonly host: PlanLoopHost) {}

  tick(): void {
    if (this.host.stopping()) return;
    void this.takeTriggers();
    const now = this.host.now();
    for (const runtime of this.host.instances.values()) {
      if (!isActive(runtime) || now < runtime.nextDueAt) continue;
      runtime.nextDueAt = this.host.options.once ? Number.POSITIVE_INFINITY : runtime.schedule.next(now);
      runtime.finishedSinceTick.clear();
      this.requestPlan(runtime, 'schedule');
    }
    this.host.checkIdle();
  }

  /** Whether triggers are being taken from the store now. */
  takingTriggers = false;

  async takeTriggers(): Promise<void> {
    if (this.takingTriggers || this.host.stopping()) return;
    this.takingTriggers = true;
    try {
      const triggers = await this.host.store.takeTriggers(100);
      for (const trigger of triggers) await this.applyTrigger(trigger);
    } catch (error) {
      this.host.reportStoreError(error);
    } finally {
      this.takingTriggers = false;
      this.host.checkIdle();
    }
  }

  private async applyTrigger(trigger: Trigger): Promise<void> {
    if (trigger.cancelRunId !== undefined) return this.applyCancel(trigger, trigger.cancelRunId);
    const runtime = this.host.instances.get(trigger.instanceId);
    if (!runtime) {
      const note = `no instance "${trigger.instanceId}" is configured in this runner; check the id with "ujr jobs list"`;
      this.host.log.warn(`trigger dropped: ${note}`);
      this.reportTrigger(trigger, [], note);
      return;
    }
    if (trigger.task === undefined) {
      runtime.pendingTriggers.push(trigger);
      this.requestPlan(runtime, 'manual');
      return;
    }
    const outcome = this.withLimits(runtime, resolveSpecs(runtime.job, runtime.config.id, [{ task: trigger.task, input: trigger.input ?? {} }]));
    for (const rejected of outcome.rejected) this.reportPlanError(runtime, rejected);
    const admitted = await this.admit(runtime, outcome.tasks, 'manual', [trigger]);
    const rejected = outcome.rejected[0];
    this.reportTrigger(trigger, admitted.runIds, rejected ? toErrorInfo(rejected).message : admitted.note);
  }

  /**
   * Resolves the shared limits of the tasks a plan returned into buckets; a task naming a limit
   * that is not configured (or whose key cannot be had) is rejected like any bad spec.
   */
  private withLimits(runtime: InstanceRuntime, outcome: PlanOutcome): PlanOutcome {
    if (!outcome.tasks.some((task) => task.limitRequests.length > 0)) return outcome;
    const definitions = this.host.limitDefinitions();
    const tasks: PlannedTask[] = [];
    const rejected = [...outcome.rejected];
    for (const task of outcome.tasks) {
      if (task.limitRequests.length === 0) {
        tasks.push(task);
        continue;
      }
      try {
        if (!this.host.hasLimitStore) {
          throw new InvalidTaskSpecError(`instance "${runtime.config.id}", task "${task.task}" takes shared limits, and this runner's store keeps none; use the SQLite or memory store`);
        }
        tasks.push({ ...task, limits: resolveLimits(task, runtime.config.id, runtime.config.params, definitions) });
      } catch (error) {
        if (!(error instanceof InvalidTaskSpecError)) throw error;
        rejected.push(error);
      }
    }
    return { ...outcome, tasks, rejected };
  }

  /**
   * A request to cancel a live run: this runner ends it `cancelled` if it holds it. If not, and the
   * run is live, the request goes back to the store for the runner that holds it (several may
   * share one), until it is {@link CANCEL_HANDOFF_MS} old.
   */
  private async applyCancel(trigger: Trigger, runId: string): Promise<void> {
    const attempt = [...this.host.held.values()].find((held) => held.run.id === runId);
    if (attempt) {
      this.host.cancel(attempt, 'cancelled from the status page');
      this.reportTrigger(trigger, [runId], undefined);
      return;
    }
    const run = await this.host.store.getRun(runId);
    if (run && LIVE_STATUSES.includes(run.status) && this.host.now() - trigger.at < CANCEL_HANDOFF_MS) {
      this.host.journal.addTrigger(trigger);
      return;
    }
    const note = !run
      ? `no run has id "${runId}"`
      : !LIVE_STATUSES.includes(run.status)
        ? `run ${runId} had already ended ${run.status}`
        : `no runner sharing this store holds run ${runId} (is its "ujr run" still running?)`;
    this.reportTrigger(trigger, [], note);
  }

  /** Records what became of a trigger, for `ujr trigger --wait`. */
  private reportTrigger(trigger: Trigger, runIds: string[], note: string | undefined): void {
    const result: TriggerResult = { id: trigger.id, instanceId: trigger.instanceId, at: this.host.now(), runIds };
    if (note !== undefined && runIds.length === 0) result.note = note;
    this.host.journal.triggerResult(result);
  }

  requestPlan(runtime: InstanceRuntime, reason: PlanContext<unknown>['reason']): void {
    if (this.host.stopping()) {
      for (const trigger of runtime.pendingTriggers.splice(0)) this.host.journal.addTrigger(trigger);
      return;
    }
    if (runtime.planning) {
      if (runtime.replan !== 'schedule') runtime.replan = reason;
      return;
    }
    runtime.planning = true;
    void this.plan(runtime, reason).finally(() => {
      runtime.planning = false;
      const again = runtime.replan;
      runtime.replan = undefined;
      if (again !== undefined) this.requestPlan(runtime, again);
      else this.host.checkIdle();
    });
  }

  private async plan(runtime: InstanceRuntime, reason: PlanContext<unknown>['reason']): Promise<void> {
    // Triggers that came while another plan ran are answered by this one, which then counts as manual.
    const triggers = runtime.pendingTriggers.splice(0);
    const manual = reason === 'manual' || triggers.length > 0;
    const report = (runIds: string[], note: string | undefined) => {
      for (const trigger of triggers) this.reportTrigger(trigger, runIds, note);
    };
    if (!manual && !isActive(runtime)) return;
    runtime.backlogged = false;
    // What the plan reads of the run history is as of `plannedAt`: a lease released at or after it
    // is refused to the plan's tasks (and the plan is asked again, see admit). This runner's own
    // writes go out first, so that the plan sees how its own tasks ended.
    await this.host.journal.flush().catch(() => undefined);
    const plannedAt = this.host.now();
    let doneReason: { reason: string | undefined } | undefined;
    const ctx = buildPlanContext({
      instance: runtime.config,
      job: runtime.job,
      reason,
      store: this.host.store,
      objects: this.host.objects,
      log: this.host.log,
      now: () => this.host.now(),
      onDone: (why) => {
        doneReason = { reason: why };
      },
    });
    let specs: unknown;
    try {
      specs = await withTimeout(
        Promise.resolve().then(() => runtime.job.getRunnableTasks(ctx)),
        this.host.options.planTimeoutMs,
        this.host.timers,
        () =>
          new TaskTimeoutError(
            this.host.options.planTimeoutMs,
            ` (getRunnableTasks of instance "${runtime.config.id}" did not return within ${this.host.options.planTimeoutMs} ms)`,
          ),
      );
    } catch (error) {
      this.reportPlanError(runtime, error);
      report([], `the plan failed: ${toErrorInfo(error).message}`);
      return;
    }
    // The instance may have been removed or disabled while it was planning.
    if (this.host.stopping() || this.host.instances.get(runtime.config.id) !== runtime || (!manual && !isActive(runtime))) {
      report([], this.host.stopping() ? 'the runner stopped before the plan ended; the trigger is asked for again on its next start' : `instance "${runtime.config.id}" was disabled or removed while it was planned`);
      if (this.host.stopping()) for (const trigger of triggers) this.host.journal.addTrigger(trigger);
      return;
    }
    // A runner takes at most `maxQueued` waiting tasks: of a plan returning more, the rest is not
    // resolved (hashed) at all, and the instance is asked again when room frees.
    const room = Math.max(0, this.host.options.maxQueued - this.host.dispatch.queued);
    // admit() then sees room + 1 candidates exactly when the plan holds more than there is room
    // for, and marks the instance backlogged.
    const known = (signature: string) => this.passesOver(runtime, signature, reason);
    const outcome = this.withLimits(runtime, resolveSpecs(runtime.job, runtime.config.id, specs, { newBatch: room + 1, known }));
    for (const rejected of outcome.rejected) this.reportPlanError(runtime, rejected);
    if (reason === 'schedule') {
      // One write per tick, so that a status page can tell when scheduled plans stopped happening.
      await this.setStatus(runtime, {
        lastPlannedAt: this.host.now(),
        ...(outcome.rejected.length === 0 ? { planError: undefined } : {}),
      });
    } else if (outcome.rejected.length === 0 && runtime.status?.planError) {
      await this.setStatus(runtime, { planError: undefined });
    }
    if (!manual && !isActive(runtime)) {
      // Another runner on the store retired it while this one planned.
      report([], `instance "${runtime.config.id}" is done; it is not planned again`);
      this.host.cancelInstanceWork(runtime, `instance "${runtime.config.id}" is done`, 'continuous');
      return;
    }
    this.reconcileContinuous(runtime, outcome.tasks);
    const admitted = await this.admit(runtime, outcome.tasks, reason === 'followup' || reason === 'manual' ? reason : 'schedule', triggers, plannedAt);
    if (!admitted.replanned) {
      report(admitted.runIds, outcome.rejected.length > 0 && admitted.runIds.length === 0 ? `the plan's tasks were rejected: ${toErrorInfo(outcome.rejected[0]).message}` : admitted.note);
    }
    if (doneReason) await this.retire(runtime, doneReason.reason);
  }

  /** Whether a plan's task is passed over: it is held already, or (on a follow-up) it ended since the tick. */
  private passesOver(runtime: InstanceRuntime, signature: string, origin: string): boolean {
    return this.host.held.has(signature) || (origin === 'followup' && runtime.finishedSinceTick.has(signature));
  }

  /** Continuous tasks the job no longer returns are stopped; those it returns stay wanted. */
  private reconcileContinuous(runtime: InstanceRuntime, tasks: PlannedTask[]): void {
    if (runtime.continuousHeld.size === 0) return;
    const returned = new Set(tasks.flatMap((t) => (t.kind === 'continuous' ? [t.signature] : [])));
    for (const attempt of [...runtime.continuousHeld.values()]) {
      if (!returned.has(attempt.planned.signature)) {
        this.host.cancel(attempt, `the job no longer returns continuous task "${attempt.planned.task}"`);
        continue;
      }
      attempt.wanted = true;
      if (attempt.state === 'backoff' && attempt.restartDue) {
        attempt.restartDue = false;
        this.host.dispatch.enqueue(attempt);
        this.host.schedulePump();
      }
    }
  }

  /**
   * Leases what it can of `tasks` and queues it. `plannedAt`: when the plan that returned them
   * started reading the run history; a signature released since is not taken (it may just have
   * run). Returns the runs it created, or a note saying why there are none.
   */
  private async admit(
    runtime: InstanceRuntime,
    tasks: PlannedTask[],
    origin: RunOrigin,
    triggers: Trigger[] = [],
    plannedAt?: number,
  ): Promise<{ runIds: string[]; note?: string; replanned?: boolean }> {
    const room = Math.max(0, this.host.options.maxQueued - this.host.dispatch.queued);
    const candidates: PlannedTask[] = [];
    const skipped: string[] = [];
    const inactive = !isActive(runtime);
    for (const task of tasks) {
      if (this.passesOver(runtime, task.signature, origin)) {
        // One note per task name: a plan may hand back thousands of tasks that are held.
        const note = `"${task.task}" is running already`;
        if (this.host.held.has(task.signature) && skipped.length < MAX_SKIP_NOTES && !skipped.includes(note)) skipped.push(note);
        continue;
      }
      if (task.kind === 'continuous' && this.host.options.once) {
        this.host.log.info(`continuous task "${task.task}" of "${runtime.config.id}" is not started in --once mode`);
        skipped.push(`continuous task "${task.task}" is not started by "ujr run --once"`);
        continue;
      }
      if (task.kind === 'continuous' && inactive) {
        // A manual run of a disabled instance may run its batch tasks once; a continuous task
        // would keep running while the instance says disabled.
        this.host.log.info(`continuous task "${task.task}" of "${runtime.config.id}" is not started: the instance is disabled or done`);
        skipped.push(`continuous task "${task.task}" is not started while instance "${runtime.config.id}" is disabled or done; enable it to run it`);
        continue;
      }
      if (candidates.length >= room) {
        runtime.backlogged = true;
        break;
      }
      candidates.push(task);
    }
    this.host.emit('planned', runtime.config.id, tasks.length);
    const none = (note: string) => ({ runIds: [], note: skipped.length > 0 ? `nothing new to run: ${skipped.join('; ')}` : note });
    if (candidates.length === 0) {
      // Nothing to lease, so no race with a release: a later race is asked again as a first one.
      runtime.replansAfterRelease = 0;
      return none(tasks.length === 0 ? 'the plan returned no task' : 'nothing new to run');
    }
    const now = this.host.now();
    const runIds = candidates.map(() => this.host.nextId());
    let grants;
    try {
      // Leases this runner let go wait in the journal until its next commit: write them out
      // first, or a plan right after a task ended would be refused that task's signature.
      await this.host.journal.flush().catch(() => undefined);
      grants = await this.host.store.acquireLeases(
        candidates.map((task, i) => ({
          signature: task.signature,
          owner: this.host.owner,
          ttlMs: this.host.options.leaseTtlMs,
          runId: runIds[i] as string,
          instanceId: runtime.config.id,
          task: task.task,
          ...(plannedAt !== undefined ? { notReleasedSince: plannedAt } : {}),
        })),
        now,
      );
    } catch (error) {
      // Do not hammer a failing store: the next follow-up or tick asks again.
      runtime.backlogged = false;
      this.host.reportStoreError(error);
      return { runIds: [], note: `the store failed: ${toErrorInfo(error).message}` };
    }
    if (this.host.stopping() || this.host.instances.get(runtime.config.id) !== runtime) {
      for (const grant of grants) if (grant.granted) this.host.journal.release(refOf(grant.lease));
      return { runIds: [], note: 'the runner stopped, or the instance was removed, while its tasks were leased' };
    }
    const created: string[] = [];
    let releasedSincePlan = 0;
    grants.forEach((grant, i) => {
      const task = candidates[i] as PlannedTask;
      if (!grant.granted) {
        this.host.counters.deduplicated += 1;
        if (grant.holder.owner === null) releasedSincePlan += 1;
        skipped.push(grant.holder.owner === null ? `"${task.task}" ended after the plan read the run history` : `"${task.task}" is running already (${grant.holder.owner})`);
        this.host.emit('deduplicated', runtime.config.id, task.signature, grant.holder.owner);
        return;
      }
      if (this.host.held.has(task.signature)) {
        // Taken by another plan of ours in the meantime; ours already runs it.
        this.host.journal.release(refOf(grant.lease));
        return;
      }
      const run = newRun(runtime, task, { id: runIds[i] as string, attempt: 1, origin: grant.takenOver ? 'takeover' : origin, token: grant.lease.token, runner: this.host.owner, queuedAt: this.host.now() });
      const trigger = triggers[0];
      if (trigger) run.triggerId = trigger.id;
      const attempt: Attempt = {
        planned: task,
        instance: runtime,
        run,
        lease: refOf(grant.lease),
        state: 'queued',
        timers: [],
        logLines: 0,
        lastRenewal: now,
        wanted: true,
        lastCheckpoint: grant.checkpoint?.value,
        restarts: 0,
        restartDue: false,
        lost: false,
      };
      if (trigger && trigger.task !== undefined) attempt.trigger = trigger;
      this.host.held.set(task.signature, attempt);
      if (task.kind === 'continuous') runtime.continuousHeld.set(task.signature, attempt);
      created.push(run.id);
      if (grant.takenOver) void this.interruptTakenOver(grant.takenOver.runId, grant.takenOver.owner, attempt.lease);
      this.host.dispatch.enqueue(attempt);
    });
    // Refused every lease (other runners hold them): room did not shrink, so asking again at once
    // would get the same answer in a loop. Its next follow-up or tick asks again.
    if (!grants.some((grant) => grant.granted)) runtime.backlogged = false;
    if (releasedSincePlan > 0 && runtime.replansAfterRelease < 2) {
      // A task was let go while this plan read the history (by another runner, or by this one or
      // its sweeper within the same millisecond): ask the job again shortly, now that the history
      // shows how that task ended (a manual plan answers its triggers then).
      runtime.replansAfterRelease += 1;
      if (created.length === 0) runtime.pendingTriggers.push(...triggers.filter((t) => t.task === undefined));
      // It is the same plan asked again: a scheduled one stays scheduled (its runs say so
      // whether or not a release fell in the millisecond it read the history).
      const reason = origin === 'manual' && triggers.some((t) => t.task === undefined) ? 'manual' : origin === 'schedule' ? 'schedule' : 'followup';
      runtime.followupPending = true;
      runtime.replanDelayed = true;
      this.host.timers
        .setTimeout(() => {
          runtime.followupPending = false;
          runtime.replanDelayed = false;
          this.requestPlan(runtime, reason);
        }, 2)
        .unref();
      if (created.length === 0 && triggers.some((t) => t.task === undefined)) return { runIds: [], replanned: true };
    } else if (releasedSincePlan === 0) {
      runtime.replansAfterRelease = 0;
    }
    this.host.dispatch.pump();
    return created.length > 0 ? { runIds: created } : none('nothing new to run');
  }

  /** A runner died holding this signature; its run is marked interrupted (under the new lease). */
  private async interruptTakenOver(runId: string | null, owner: string | null, fence: LeaseRef): Promise<void> {
    this.host.counters.takenOver += 1;
    if (runId === null) return;
    try {
      // The lease names the run it was taken for; its retries (under the same lease) follow it.
      let run = await this.host.store.getRun(runId);
      for (let hops = 0; run?.nextRunId !== undefined && hops < MAX_ATTEMPT_LINKS; hops += 1) {
        run = await this.host.store.getRun(run.nextRunId);
      }
      if (!run || (run.status !== 'running' && run.status !== 'queued' && run.status !== 'retrying')) return;
      run.status = 'interrupted';
      run.endedAt = this.host.now();
      run.error = {
        name: 'LeaseExpiredError',
        message: `runner ${owner ?? '?'} stopped renewing its lease (it died or hung); runner ${this.host.owner} took the task over`,
      };
      this.host.journal.putRun(run, fence);
      this.host.emit('run', run);
    } catch (error) {
      this.host.reportStoreError(error);
    }
  }

  private async retire(runtime: InstanceRuntime, reason: string | undefined): Promise<void> {
    const retiredAt = this.host.now();
    await this.setStatus(runtime, { retiredAt, retiredReason: reason });
    this.host.log.info(`instance "${runtime.config.id}" is done${reason ? `: ${reason}` : ''}; it will not be planned again`);
    this.host.cancelInstanceWork(runtime, `instance "${runtime.config.id}" is done`, 'continuous');
    this.host.emit('retired', runtime.config.id, reason);
  }

  /**
   * Writes `patch` over the instance's stored status, read again first: another runner on the
   * store may have retired the instance (or recorded a plan error) since this one last looked.
   */
  private async setStatus(runtime: InstanceRuntime, patch: Partial<Omit<InstanceStatus, 'instanceId'>>): Promise<void> {
    try {
      const stored = await this.host.store.getInstanceStatus(runtime.config.id);
      const next: InstanceStatus = { ...stored, ...patch, instanceId: runtime.config.id };
      for (const key of Object.keys(next) as (keyof InstanceStatus)[]) if (next[key] === undefined) delete next[key];
      runtime.status = next;
      await this.host.store.setInstanceStatus(runtime.config.id, Object.keys(next).length > 1 ? next : undefined);
    } catch (error) {
      this.host.reportStoreError(error);
    }
  }

  private reportPlanError(runtime: InstanceRuntime, error: unknown): void {
    const info = toErrorInfo(error);
    this.host.counters.planErrors += 1;
    this.host.log.error(`instance "${runtime.config.id}": ${info.message}`);
    this.host.emit('planError', runtime.config.id, info);
    void this.setStatus(runtime, { planError: { ...info, at: this.host.now() } });
  }

  /**
   * As soon as a task of an instance ends (and its record is stored), the job is asked again;
   * while more of its batch tasks wait than one round of slots, once they are nearly gone.
   */
  followUp(runtime: InstanceRuntime): void {
    if (runtime.followupPending || this.host.stopping() || !this.host.instances.has(runtime.config.id)) return;
    if (runtime.batchQueued > this.host.dispatch.followupRoom(runtime)) {
      runtime.followupDeferred = true;
      return;
    }
    runtime.followupPending = true;
    this.host.journal.flush().then(
      () => {
        runtime.followupPending = false;
        if (isActive(runtime)) this.requestPlan(runtime, 'followup');
        else this.host.checkIdle();
      },
      () => {
        runtime.followupPending = false;
        this.host.checkIdle();
      },
    );
  }

  /** Instances that returned more than there was room for are asked again once half of it frees. */
  replanBacklogged(): void {
    if (this.host.dispatch.queued >= this.host.options.maxQueued / 2) return;
    for (const runtime of this.host.instances.values()) {
      if (runtime.backlogged && !runtime.planning) {
        runtime.backlogged = false;
        this.requestPlan(runtime, 'followup');
      }
    }
  }
}
