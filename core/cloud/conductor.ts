/**
 * The conductor: a long-lived container (an ECS service of N of them) that runs continuous tasks
 * from the board. It polls the `conductor` route, claims entries posted for a conductor and
 * entries whose lease expired (a conductor died: it takes the task over and resumes from the
 * checkpoint kept in the entry), renews its short leases by heartbeat, stops a task when the
 * scheduler asks, and on SIGTERM aborts its tasks, lets them checkpoint, records them
 * `interrupted` and posts them back for another conductor.
 *
 * A continuous task that ends (returns, fails or is stopped) is recorded and released; the
 * scheduler posts it again on its next tick if the job still returns it.
 *
 * In the deployed container each handler runs in a process of its own (the deps' executor:
 * containers/main.ts starts the container's own program again as a task host, supervised by the
 * ProcessExecutor that runs the local runner's continuous tasks). The conductor keeps everything
 * that touches the board: claims, the renewals on a timer (with the progress the task reported),
 * checkpoints, stop requests, the records and the releases, all fenced by the lease's token; the
 * child only runs the handler and asks the conductor over IPC. A task that blocks its event loop
 * for minutes (a CPU-bound step, a synchronous library call) therefore cannot delay the renewals
 * of the other tasks' leases, a task process that crashes ends only its own attempt (recorded
 * `failed` with the error), and the process of a task that does not return within the grace
 * period after an abort is killed.
 *
 * Shared limits (issue 15): an entry that names limit buckets (the scheduler resolved them at plan
 * time) takes them before it is claimed, holder this conductor and the run; its concurrency slots
 * are renewed with the lease and released when the attempt ends. Refused, it is not claimed: the
 * entry stays pending for any conductor, says what it waits for (a heartbeat fenced on the pending
 * lease, written when the bucket it waits for changes, which also keeps the lease past the wait)
 * and this conductor asks again when the bucket can grant (a concurrency slot: at its next poll).
 * Two conductors may both be granted for one entry: the one that loses the claim gives its slots
 * back at once (its rate token is spent). A continuous task that throws `RateLimitedError` drains
 * the buckets it names and is handed back, the same run, not before the API's Retry-After.
 *
 * Every record is fenced by the lease it was made under: the `running` record at start and the
 * final one (with the release) by this conductor's claim; the `interrupted` record of a dead
 * conductor's run by the NEW claim that took it over. A conductor whose lease moved on writes
 * nothing more (the taker or the sweeper has recorded its run `interrupted`).
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { ShutdownError } from '../errors.js';
import { MAX_RESULT_BYTES } from '../limits.js';
import { clockTime, waitingFor, waitingMessage } from '../engine/limit-messages.js';
import { bucketId, type LimitStore } from '../ports/limits.js';
import type { Executor } from '../engine/executor.js';
import type { ErrorInfo, RunRecord } from '../types.js';
import type { LeaseRef } from '../ports/store.js';
import type { RateLimitRequest } from '../engine/executor.js';
import { monotonicFactory } from 'ulid';
import { runIdFor } from '../run-ids.js';
import { baseRun, endedRun, entryFields, runAttempt, type AttemptDeps } from './attempt.js';
import { FollowUpRequests } from './follow-ups.js';
import type { BoardEntry } from './board.js';
import { drainBuckets, LimitHold, notConfigured, specsOf } from './limit-hold.js';
import type { InstanceDirectory } from './instances.js';
import type { PlanQueue } from './ports.js';

export interface ConductorConfig {
  /** Continuous tasks this conductor runs at once. Default 4. */
  capacity: number;
  /** Lease lifetime; renewed every third of it. A dead conductor's tasks are taken over after it. Default 30 s. */
  leaseTtlMs: number;
  /** How often the board is looked at. Default 5 s. */
  pollMs: number;
  /** After SIGTERM, how long tasks get to checkpoint and return. Default 10 s (ECS waits 30 s). */
  graceMs: number;
  /** How long an entry handed back at shutdown waits for another conductor. Default 10 min. */
  pendingTtlMs: number;
}

export const DEFAULT_CONDUCTOR_CONFIG: ConductorConfig = {
  capacity: 4,
  leaseTtlMs: 30_000,
  pollMs: 5_000,
  graceMs: 10_000,
  pendingTtlMs: 10 * 60_000,
};

export interface ConductorDeps extends AttemptDeps {
  instances: InstanceDirectory;
  config: ConductorConfig;
  /** This conductor's owner id. Default: host, pid and a random suffix. */
  owner?: string;
  /**
   * Where the handlers run: a ProcessExecutor (a process per task) in the deployed container.
   * Default: in this process's event loop, where a handler that blocks it stops every renewal.
   */
  executor?: Executor;
  /** Where follow-up requests go when a task ends (./follow-ups.ts). Default: none (its instance waits for its tick). */
  planQueue?: PlanQueue;
  /** The shared limits' buckets (issue 15). Without it, an entry that names limits is not started. */
  limits?: LimitStore;
}

/** Owners of entries waiting for a conductor start with this (see the scheduler). */
const PENDING_PREFIX = 'conductor:';
/** The unique part of a pending owner. */
const ownerId = monotonicFactory();

export class Conductor {
  readonly owner: string;
  private readonly running = new Map<string, Promise<void>>();
  /** Entries refused by their limits, by signature: when this conductor asks their buckets again. */
  private readonly limitWaits = new Map<string, number>();
  private readonly stopping = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<number> | undefined;

  constructor(private readonly deps: ConductorDeps) {
    this.owner = deps.owner ?? `conductor@${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  }

  /** Signatures this conductor runs now. */
  runningSignatures(): string[] {
    return [...this.running.keys()];
  }

  start(): void {
    const loop = () => {
      this.polling = this.pollOnce().catch((error: unknown) => {
        this.deps.telemetry.log('error', `could not read the board: ${(error as Error).message}; trying again`, { owner: this.owner });
        return 0;
      });
      void this.polling.finally(() => {
        if (!this.stopping.signal.aborted) this.timer = setTimeout(loop, this.deps.config.pollMs);
      });
    };
    loop();
  }

  /** Claims what it can run; returns how many tasks it started. */
  async pollOnce(): Promise<number> {
    const { board, now, config, telemetry } = this.deps;
    if (this.stopping.signal.aborted) return 0;
    const entries = await board.listRoute('conductor');
    // A wait is kept only while its entry is on the board (one released or taken elsewhere is gone).
    const listed = new Set(entries.map((entry) => entry.signature));
    for (const signature of this.limitWaits.keys()) if (!listed.has(signature)) this.limitWaits.delete(signature);
    let started = 0;
    for (const entry of entries) {
      if (this.running.size >= config.capacity || this.stopping.signal.aborted) break;
      if (this.running.has(entry.signature)) continue;
      const pending = entry.owner.startsWith(PENDING_PREFIX);
      const expired = entry.expiresAt <= now();
      if (!pending && !expired) continue;
      // One asked to stop is claimed only to be called off: it waits for nothing and takes no limits.
      const stopping = entry.stopRequested === true;
      if (!stopping && entry.notBefore !== undefined && entry.notBefore > now()) continue;
      if (!stopping && (this.limitWaits.get(entry.signature) ?? 0) > now()) continue;
      // A takeover keeps the entry's queue time, which its id says too (core/run-ids.ts).
      const runId = pending ? entry.runId : runIdFor(entry.instanceId, entry.task, entry.queuedAt);
      let hold: LimitHold | undefined;
      if (entry.limits !== undefined && entry.limits.length > 0 && !stopping) {
        const taken = await this.takeLimits(entry, runId, pending);
        if (taken === 'wait') continue;
        hold = taken;
      }
      this.limitWaits.delete(entry.signature);
      const claimed = await board.claim({
        signature: entry.signature,
        token: entry.token,
        ...(pending ? { owner: entry.owner } : { runId, origin: 'takeover' as const }),
        newOwner: this.owner,
        ttlMs: config.leaseTtlMs,
        now: now(),
      });
      if (!claimed) {
        await hold?.release();
        continue;
      }
      const ref = { signature: claimed.signature, owner: this.owner, token: claimed.token };
      if (!pending) {
        telemetry.count('takenOver', entry.jobType);
        telemetry.log('warn', `took over continuous task "${entry.task}" from ${entry.owner}, whose lease expired`, entryFields(entry));
        // Fenced by the new claim: written only while this conductor still holds the entry.
        await board.commit({ fenced: [{ fence: ref, runs: [interrupted(entry, now())] }] });
      }
      if (claimed.stopRequested) {
        // Asked to stop before anyone started it: take it off the board without running it.
        await hold?.release();
        const run = endedRun(claimed, this.owner, now(), 'cancelled', { name: 'CancelledError', message: 'asked to stop before it started' });
        await board.finish(ref, run);
        continue;
      }
      started += 1;
      const supervised = this.supervise(claimed, hold).finally(() => this.running.delete(claimed.signature));
      this.running.set(claimed.signature, supervised);
    }
    return started;
  }

  /**
   * Takes the entry's limit buckets, as each limit is configured now, before the claim (holder:
   * this conductor and the run, so that a conductor that loses the claim frees only its own
   * slots). Refused (or not takeable now): `wait`, and the entry is left on the board for then.
   */
  private async takeLimits(entry: BoardEntry, runId: string, pending: boolean): Promise<LimitHold | 'wait'> {
    const { board, now, config, telemetry, limits } = this.deps;
    const fields = entryFields(entry);
    const later = (until: number): 'wait' => {
      this.limitWaits.set(entry.signature, until);
      return 'wait';
    };
    if (!limits) {
      telemetry.log('error', `continuous task "${entry.task}" takes shared limits and this conductor has no limit store; deploy it with one (core/adapters/aws/runtime.ts)`, fields);
      return later(now() + config.pendingTtlMs);
    }
    const definitions = (await this.deps.instances.get()).limits;
    const resolved = specsOf(entry.limits ?? [], definitions);
    if (!resolved.ok) {
      // Left for the scheduler: its next plan of the instance reports the limit as a plan error.
      telemetry.log('error', `${notConfigured(entry, resolved.missing, definitions)}; the task is not started`, fields);
      return later(now() + config.pendingTtlMs);
    }
    const grant = await limits.acquireLimits({ holder: `${this.owner}/${runId}`, ttlMs: config.leaseTtlMs, limits: resolved.specs }, now());
    if (grant.granted) return new LimitHold({ limits, telemetry, now }, resolved.specs, grant.permit, fields);
    const at = now();
    // A slot's holder may free it before it expires: asked again at the next poll.
    const until = grant.waitingOn.reason === 'concurrency' ? Math.min(grant.retryAt, at + config.pollMs) : grant.retryAt;
    const said = waitingFor(entry.progress?.message);
    // Only a pending entry's lease is the dispatcher's to extend; an expired one is the sweeper's to end.
    if (pending && (said === undefined || bucketId(said) !== bucketId(grant.waitingOn) || entry.expiresAt < until + config.pendingTtlMs / 2)) {
      const progress = { current: 0, message: waitingMessage({ ...grant.waitingOn, until: grant.retryAt }), updatedAt: at };
      await board.heartbeat({ signature: entry.signature, owner: entry.owner, token: entry.token }, Math.max(entry.expiresAt, until + config.pendingTtlMs) - at, at, progress);
      telemetry.log('info', `continuous task "${entry.task}" is ${progress.message}; not started`, fields);
    }
    return later(until);
  }

  /**
   * Aborts every task, waits for them to checkpoint and return (their processes are killed after
   * the grace period), records and hands them back; no task process outlives it.
   */
  async stop(): Promise<void> {
    this.stopping.abort(new ShutdownError());
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
    await Promise.allSettled(this.running.values());
    await this.deps.executor?.close();
  }

  private async supervise(entry: BoardEntry, hold: LimitHold | undefined): Promise<void> {
    const { telemetry } = this.deps;
    const fields = entryFields(entry);
    const ref = { signature: entry.signature, owner: this.owner, token: entry.token };
    try {
      await this.attempt(entry, hold, ref);
    } catch (error) {
      telemetry.log('error', `supervising the task failed: ${(error as Error).message}; its lease expires and it is taken over`, fields);
    } finally {
      await hold?.release();
    }
  }

  /** Starts the claimed entry's handler and records how it ended (or hands it back). */
  private async attempt(entry: BoardEntry, hold: LimitHold | undefined, ref: LeaseRef): Promise<void> {
    const { board, now, config, telemetry } = this.deps;
    const fields = entryFields(entry);
    const snapshot = await this.deps.instances.get();
    const loaded = snapshot.instances.get(entry.instanceId);
    const definition = loaded && Object.hasOwn(loaded.job.tasks, entry.task) ? loaded.job.tasks[entry.task] : undefined;
    if (!loaded || !definition) {
      const run = endedRun(entry, this.owner, now(), 'failed', {
        name: 'ConfigError',
        message: `instance "${entry.instanceId}" or its task "${entry.task}" is not configured any more; the task was taken off the board`,
      });
      await board.finish(ref, run);
      return;
    }
    const { refused } = await board.commit({ fenced: [{ fence: ref, runs: [baseRun(entry, this.owner, now())] }] });
    if (refused.length > 0) {
      telemetry.log('warn', 'the lease moved on before the task started; it was not started', fields);
      return;
    }
    telemetry.count('started', entry.jobType);
    const result = await runAttempt(this.deps, {
      entry,
      job: loaded.job,
      definition,
      params: loaded.config.params,
      owner: this.owner,
      budgetMs: definition.timeoutMs,
      leaseTtlMs: config.leaseTtlMs,
      renewEveryMs: Math.max(100, Math.floor(config.leaseTtlMs / 3)),
      graceMs: config.graceMs,
      signal: this.stopping.signal,
      maxResultBytes: MAX_RESULT_BYTES,
      executor: this.deps.executor,
      ...(hold ? { onRenewed: () => hold.renew(config.leaseTtlMs), backoff: (name: string, ms: number) => hold.backoff(entry.task, name, ms) } : {}),
    });
    // The attempt is over: its concurrency slots are free for others before it is recorded.
    await hold?.release();
    const { run } = result;
    const { outcome } = result;
    if (!outcome.ok && outcome.rateLimited && result.abortReason === undefined) {
      await this.handBackRateLimited(entry, ref, hold, outcome.rateLimited, outcome.error);
      return;
    }
    telemetry.duration(entry.jobType, (run.endedAt ?? now()) - (run.startedAt ?? now()));
    if (result.abortReason instanceof ShutdownError) {
      // The interrupted record and the hand-back in one fenced transaction.
      const at = now();
      const next = { owner: `${PENDING_PREFIX}${ownerId()}`, ttlMs: config.pendingTtlMs, now: at, runId: runIdFor(entry.instanceId, entry.task, at), attempt: 1, origin: 'restart' as const };
      const handedBack = await board.repost(ref, next, run);
      telemetry.log('info', handedBack === undefined ? 'stopped; the lease had already moved on, nothing recorded' : 'stopped; handed the task back to the board', fields);
      return;
    }
    if (run.status === 'interrupted') {
      // The lease moved on: the taker (or the sweeper) records this run; write nothing.
      telemetry.log('warn', 'the lease moved on during the task; nothing recorded by this conductor', fields);
      return;
    }
    if (!(await board.finish(ref, run))) {
      telemetry.log('warn', 'the lease moved on before the task ended; nothing recorded by this conductor', fields);
      return;
    }
    telemetry.count(run.status === 'succeeded' ? 'succeeded' : run.status === 'failed' ? 'failed' : 'dropped', entry.jobType);
    telemetry.log(run.status === 'failed' ? 'error' : 'info', `continuous task ended: ${run.status}${run.error ? ` (${run.error.message})` : ''}`, fields);
    // Its job is asked again now, as locally, rather than at the next tick.
    const followUp = new FollowUpRequests({ queue: this.deps.planQueue, telemetry, now });
    followUp.ended(run);
    await followUp.flush();
  }

  /**
   * The task threw `RateLimitedError`: the buckets of the limit it named (all its rate limits,
   * unnamed) back off for the time the API asked, and the same run (same id and attempt) goes back
   * on the board for any conductor, not before then. Not a failure.
   */
  private async handBackRateLimited(entry: BoardEntry, ref: LeaseRef, hold: LimitHold | undefined, request: RateLimitRequest, error: ErrorInfo): Promise<void> {
    const { board, now, config, telemetry } = this.deps;
    const fields = entryFields(entry);
    const at = now();
    const until = at + request.retryAfterMs;
    const drained = await drainBuckets(this.deps, hold?.specs ?? [], request, at, fields);
    // The run keeps its id, whose time is its queue time (core/run-ids.ts): the entry keeps its queuedAt.
    const token = await board.repost(ref, {
      owner: `${PENDING_PREFIX}${ownerId()}`,
      ttlMs: until - entry.queuedAt + config.pendingTtlMs,
      now: entry.queuedAt,
      runId: entry.runId,
      attempt: entry.attempt,
      origin: entry.origin,
      notBefore: until,
      progress: { current: 0, message: `rate limited by the API: queued again at ${clockTime(until)}`, updatedAt: at },
      ...(entry.previousRunId !== undefined ? { previousRunId: entry.previousRunId } : {}),
    });
    if (token === undefined) {
      telemetry.log('warn', 'the lease moved on during the attempt; the rate-limited task is not handed back by this conductor', fields);
      return;
    }
    telemetry.log('warn', `rate limited (${error.name}: ${error.message}): handed back to start again in ${request.retryAfterMs} ms, not counted as a failure${drained}`, fields);
  }
}

/** The run of a conductor that died holding the entry. */
function interrupted(entry: BoardEntry, at: number): RunRecord {
  return endedRun(
    entry,
    entry.owner,
    at,
    'interrupted',
    { name: 'LeaseExpiredError', message: `${entry.owner} stopped renewing its lease (it died or hung); another conductor took the task over from its last checkpoint` },
    entry.startedAt ?? at,
  );
}
