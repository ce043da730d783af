/**
 * The worker: takes one delivered dispatch message, claims its board entry, runs the attempt and
 * records it. Used by the worker Lambda (one call per SQS record) and by the long-task container.
 *
 * - A duplicate or stale delivery finds the token or owner moved on at the claim and is dropped,
 *   never run twice.
 * - The handler's timeout must fit in what is left of the invocation, with a margin to record and
 *   release; a task that does not fit is not claimed and its message is sent again for a later one.
 * - Every record is fenced by the claim's lease: the final record and the release are one
 *   transaction (`finish`). A worker whose token moved on (its lease expired and was taken over or
 *   swept) writes nothing, even if its handler returned ok: the taker or the sweeper records its
 *   run `interrupted`.
 * - A failed attempt with attempts left is recorded `failed` with `nextRunId`, in the same
 *   transaction that reposts the entry for the next attempt (lease kept, `previousRunId` set); a
 *   delayed message follows. The last failure is recorded `failed`, the job's `revert` runs, the
 *   lease is released and the message goes to the dead-letter queue.
 * - A message ujr cannot use (unparseable, unknown instance or task) fails its delivery; on its
 *   last delivery the run is recorded failed where possible, and the queue moves it to the DLQ.
 * - Shared limits (issue 15): a message that names limit buckets takes them from the limit store
 *   before the claim (holder: the claimer's owner id; slots last as long as its lease, renewed
 *   with it, released when the attempt ends). Refused, it claims nothing and counts no attempt: the
 *   message is sent again, delayed until the bucket can grant (see `waitForLimits`). A handler that
 *   throws `RateLimitedError` (or calls `tctx.limits.backoff`) drains the buckets for the time the
 *   API asked; the same run is handed back to the queue for then, not counted as a failure.
 */
import { backoffDelay, DEFAULT_RETRY } from '../retry.js';
import { MAX_RESULT_BYTES } from '../limits.js';
import type { RateLimitRequest } from '../engine/executor.js';
import { waitingMessage } from '../engine/limit-messages.js';
import { bucketId, type LimitRef, type LimitStore } from '../ports/limits.js';
import type { LeaseRef } from '../ports/store.js';
import type { Json, RunRecord, TaskDefinition } from '../types.js';
import { resolveSpecs } from '../engine/planner.js';
import { runIdFor } from '../run-ids.js';
import { endedRun, entryFields, runAttempt, type AttemptDeps, type AttemptResult } from './attempt.js';
import type { BoardEntry } from './board.js';
import { PoisonMessageError } from './errors.js';
import { drainBuckets, LimitHold, notConfigured, permitOf, specsOf } from './limit-hold.js';
import type { InstanceDirectory, InstanceSnapshot, LoadedInstance } from './instances.js';
import { parseDispatchMessage, type DispatchMessage } from './messages.js';
import type { TaskQueue } from './ports.js';

/** SQS's longest message delay. */
export const MAX_DELAY_SEC = 900;

export interface WorkerConfig {
  /** Kept back from the invocation's remaining time to record, release and reply. Default 10 s. */
  safetyMarginMs: number;
  /** After an abort, how long a handler gets to return. Default 2 s. */
  graceMs: number;
  /** The queue's maxReceiveCount: on that delivery a poison message is recorded before the DLQ. */
  maxReceiveCount: number;
  /** How long a retry may wait in the queue, on top of its delay and timeout, before the lease expires. Default 15 min. */
  queueLeaseTtlMs: number;
  /** Largest JSON result kept in a run record. Default `MAX_RESULT_BYTES` (128 KiB; DynamoDB items hold 400 KB). */
  maxResultBytes: number;
  /**
   * How soon a task refused for want of a concurrency slot asks again, at most: the store can only
   * say when the earliest slot expires (a lease period away), and its holder may free it sooner.
   * Each ask of a waiting task costs a read, a write and a send. Default 2 s.
   */
  limitPollMs: number;
}

export const DEFAULT_WORKER_CONFIG: WorkerConfig = {
  safetyMarginMs: 10_000,
  graceMs: 2_000,
  maxReceiveCount: 5,
  queueLeaseTtlMs: 15 * 60_000,
  maxResultBytes: MAX_RESULT_BYTES,
  limitPollMs: 2_000,
};

export interface WorkerDeps extends AttemptDeps {
  queue: TaskQueue;
  /**
   * Dispatches the next attempt of a failed task after `delayMs`. Default: a delayed queue message.
   * The long-task container runs its retries itself (the queue's worker could not).
   */
  redispatch?: (message: DispatchMessage, delayMs: number) => Promise<void>;
  instances: InstanceDirectory;
  config: WorkerConfig;
  random?: () => number;
  /** The shared limits' buckets (issue 15). Without it, a message that names limits cannot run (it is poison). */
  limits?: LimitStore;
}

export interface Delivery {
  body: string;
  /** How many times this message has been received, this time included. */
  receiveCount: number;
  /** Milliseconds left before the invocation (or container budget) ends. */
  remainingMs(): number;
  /** Unique per delivery; the claimer's owner id is made from it. */
  deliveryId: string;
}

export type DeliveryOutcome =
  | { kind: 'ran'; run: RunRecord }
  | { kind: 'dropped'; why: string }
  | { kind: 'deferred'; until: number };

export class TaskWorker {
  /**
   * The acquire in flight per set of buckets: the tasks of one batch that take the same buckets
   * ask one after the other. Asked at once, all but one would lose the race on the bucket item and
   * write again (a write unit each: measured 4.8 writes a grant for 10 at once, in bench:aws).
   */
  private readonly acquiring = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: WorkerDeps) {}

  /** Handles one delivery; throws when the delivery should count as failed (the message comes back). */
  async handle(delivery: Delivery): Promise<DeliveryOutcome> {
    let message = parseDispatchMessage(delivery.body);
    const { now, queue, telemetry } = this.deps;
    const snapshot = await this.deps.instances.get();
    const loaded = snapshot.instances.get(message.instanceId);
    const definition = loaded && Object.hasOwn(loaded.job.tasks, message.task) ? loaded.job.tasks[message.task] : undefined;
    if (!loaded || !definition) {
      const problem = snapshot.problems.find((p) => p.instanceId === message.instanceId);
      const why = !loaded
        ? `instance "${message.instanceId}" is ${problem ? `broken (${problem.field ?? 'entry'}: ${problem.message})` : 'not configured'}; fix or re-add it in the instances table`
        : `job type "${loaded.job.name}" has no task "${message.task}" (this deployment's code differs from the one that planned it); its tasks are: ${Object.keys(loaded.job.tasks).join(', ')}`;
      return this.poison(message, delivery, why, loaded);
    }
    if (message.notBefore !== undefined && message.notBefore > now()) {
      const delaySec = Math.min(MAX_DELAY_SEC, Math.ceil((message.notBefore - now()) / 1000));
      await queue.sendLater(message, delaySec);
      return { kind: 'deferred', until: message.notBefore };
    }
    const { safetyMarginMs, graceMs } = this.deps.config;
    if (delivery.remainingMs() - safetyMarginMs - graceMs < message.timeoutMs) {
      // Sent again for a later invocation, at once: failing the delivery would wait out the
      // queue's visibility timeout (six times the worker's).
      await queue.sendLater(message, 0);
      telemetry.log('info', `task "${message.task}" needs up to ${message.timeoutMs} ms but this invocation has ${delivery.remainingMs()} ms left; queued again for a later invocation`, messageFields(message, loaded));
      return { kind: 'deferred', until: now() };
    }
    if (message.redrive) {
      const reposted = await this.postRedriven(message, message.redrive, loaded);
      if (!reposted) return { kind: 'dropped', why: 'redriven task already ran again' };
      message = reposted;
    }
    const owner = `worker:${delivery.deliveryId}`;
    const leaseTtlMs = message.timeoutMs + safetyMarginMs + graceMs;
    let held: LimitHold | undefined;
    if (message.limitsHeld) {
      // A long task's first attempt: the scheduler took its limits before it started this container.
      held = await this.heldFor(message, snapshot.limits, delivery, loaded);
      message = { ...message };
      delete message.limitsHeld;
    } else if (message.limits !== undefined && message.limits.length > 0) {
      const taken = await this.takeLimits(message, message.limits, snapshot.limits, delivery, loaded, owner, leaseTtlMs);
      if (taken.kind !== 'granted') return taken;
      held = taken.held;
    }
    try {
      return await this.claimAndRun(message, snapshot, loaded, definition, owner, leaseTtlMs, held);
    } finally {
      await held?.release();
    }
  }

  private async claimAndRun(
    message: DispatchMessage,
    snapshot: InstanceSnapshot,
    loaded: LoadedInstance,
    definition: TaskDefinition,
    owner: string,
    leaseTtlMs: number,
    held: LimitHold | undefined,
  ): Promise<DeliveryOutcome> {
    const { now, telemetry } = this.deps;
    const { graceMs } = this.deps.config;
    const entry = await this.deps.board.claim({
      signature: message.signature,
      token: message.token,
      owner: message.owner,
      newOwner: owner,
      ttlMs: leaseTtlMs,
      now: now(),
    });
    if (!entry) {
      telemetry.count('dropped', loaded.job.name);
      telemetry.log('info', 'dropped a duplicate or stale delivery: the lease moved on', { ...messageFields(message, loaded), token: message.token });
      return { kind: 'dropped', why: 'stale' };
    }
    if (entry.stopRequested) return this.callOff(entry, owner, loaded);
    // Manual runs go ahead on a disabled instance, as locally; scheduled ones are called off.
    const off = !loaded.config.enabled || snapshot.statuses.get(loaded.config.id)?.retiredAt !== undefined;
    if (off && entry.origin !== 'manual') {
      const run = endedRun(entry, owner, now(), 'cancelled', {
        name: 'CancelledError',
        message: `instance "${loaded.config.id}" was disabled or retired after this task was planned`,
      });
      await this.deps.board.finish(refOf(entry, owner), run);
      return { kind: 'dropped', why: 'instance off' };
    }
    telemetry.count('started', entry.jobType);
    const result = await runAttempt(this.deps, {
      entry,
      job: loaded.job,
      definition,
      params: loaded.config.params,
      owner,
      budgetMs: message.timeoutMs,
      leaseTtlMs,
      graceMs,
      maxResultBytes: this.deps.config.maxResultBytes,
      ...(held ? { onRenewed: () => held.renew(leaseTtlMs), backoff: (name: string, ms: number) => held.backoff(entry.task, name, ms) } : {}),
    });
    telemetry.duration(entry.jobType, (result.run.endedAt ?? now()) - (result.run.startedAt ?? now()));
    // The attempt is over: its concurrency slots are free for others before it is recorded.
    await held?.release();
    const outcome = result.outcome;
    if (!outcome.ok && outcome.rateLimited && result.abortReason === undefined) {
      const requeued = await this.requeueRateLimited(message, entry, result.ref, outcome.rateLimited, outcome.error, held);
      if (!requeued) return { kind: 'dropped', why: 'the lease moved on before the rate-limited attempt was handed back' };
      return { kind: 'deferred', until: requeued };
    }
    const recorded = await this.settle(message, entry, definition, loaded, result);
    if (!recorded) return { kind: 'dropped', why: 'the lease moved on before the attempt was recorded' };
    return { kind: 'ran', run: result.run };
  }

  /** Records the attempt and does what its ending calls for; `false` when the lease was lost (nothing recorded). */
  private async settle(message: DispatchMessage, entry: BoardEntry, definition: TaskDefinition, loaded: LoadedInstance, result: AttemptResult): Promise<boolean> {
    const { board, telemetry, queue, now } = this.deps;
    const { run, outcome, ref } = result;
    const fields = entryFields(entry);
    const lost = () => {
      telemetry.log('warn', 'the lease moved on during the attempt (it expired and was taken over or swept); nothing was recorded by this worker, the run ends interrupted', { ...fields, token: ref.token });
      return false;
    };
    if (run.status === 'interrupted') return lost();
    if (run.status !== 'failed') {
      if (!(await board.finish(ref, run))) return lost();
      if (run.status === 'succeeded') telemetry.count('succeeded', entry.jobType);
      return true;
    }
    const retryable = !outcome.ok && outcome.retryable;
    if (retryable && entry.attempt < entry.maxAttempts) {
      const delayMs = backoffDelay(entry.retry ?? DEFAULT_RETRY, entry.attempt, this.deps.random);
      const queuedAt = now();
      const next = { runId: runIdFor(entry.instanceId, entry.task, queuedAt), attempt: entry.attempt + 1, owner: `queue:${entry.signature}:${entry.attempt + 1}` };
      run.nextRunId = next.runId;
      const token = await board.repost(
        ref,
        {
          owner: next.owner,
          ttlMs: delayMs + message.timeoutMs + this.deps.config.queueLeaseTtlMs,
          now: queuedAt,
          runId: next.runId,
          attempt: next.attempt,
          origin: 'retry',
          previousRunId: run.id,
        },
        run,
      );
      if (token === undefined) return lost();
      const retry: DispatchMessage = { ...message, token, owner: next.owner, runId: next.runId, attempt: next.attempt, leaseExpiresAt: queuedAt + delayMs + message.timeoutMs + this.deps.config.queueLeaseTtlMs };
      if (this.deps.redispatch) await this.deps.redispatch(retry, delayMs);
      else await this.sendLater(retry, delayMs, now());
      telemetry.count('retried', entry.jobType);
      telemetry.log('warn', `attempt ${entry.attempt} of ${entry.maxAttempts} failed; retrying in ${delayMs} ms`, { ...fields, error: run.error?.message, nextRunId: next.runId });
      return true;
    }
    await this.revert(definition, entry, loaded, run);
    if (!(await board.finish(ref, run))) return lost();
    const deadLetter: DispatchMessage = { ...message, redrive: { input: entry.input, deadLetteredAt: now() } };
    delete deadLetter.notBefore;
    await queue.sendToDeadLetter(deadLetter, `${run.error?.name ?? 'Error'}: ${run.error?.message ?? 'failed'}`);
    telemetry.count('failed', entry.jobType);
    telemetry.log('error', `task failed for good after attempt ${entry.attempt}`, { ...fields, error: run.error?.message, stack: run.error?.stack });
    return true;
  }

  /**
   * Posts a task moved back from the dead-letter queue as a new run (attempt 1, origin manual),
   * unless it ran again since it was dead-lettered: the post is refused when the lease was
   * released after that, so a duplicate of the redriven message cannot run it twice.
   */
  private async postRedriven(message: DispatchMessage, redrive: { input: Json; deadLetteredAt: number }, loaded: LoadedInstance): Promise<DispatchMessage | undefined> {
    const { board, now } = this.deps;
    const outcome = resolveSpecs(loaded.job, loaded.config.id, [{ task: message.task, input: redrive.input, signature: message.signature }]);
    const planned = outcome.tasks[0];
    if (!planned) throw new PoisonMessageError(`the redriven task cannot be planned again: ${outcome.rejected[0]?.message ?? 'rejected'}`);
    const queuedAt = now();
    const runId = runIdFor(loaded.config.id, message.task, queuedAt);
    const owner = `queue:${runId}`;
    const [grant] = await board.post(
      [
        {
          signature: message.signature,
          owner,
          ttlMs: message.timeoutMs + this.deps.config.queueLeaseTtlMs,
          runId,
          instanceId: loaded.config.id,
          jobType: loaded.job.name,
          task: message.task,
          kind: 'batch',
          route: 'queue',
          input: redrive.input,
          attempt: 1,
          maxAttempts: planned.retry.attempts,
          origin: 'manual',
          queuedAt,
          timeoutMs: message.timeoutMs,
          retry: planned.retry,
          notReleasedSince: redrive.deadLetteredAt,
        },
      ],
      now(),
    );
    if (!grant?.granted) return undefined;
    const next: DispatchMessage = { v: 1, signature: message.signature, token: grant.lease.token, owner, instanceId: message.instanceId, task: message.task, runId, attempt: 1, timeoutMs: message.timeoutMs, leaseExpiresAt: grant.lease.expiresAt };
    if (message.limits) next.limits = message.limits;
    return next;
  }

  /**
   * Takes the message's limit buckets before the claim, as each limit is configured now. Refused,
   * the task is not claimed and no attempt is counted: the message waits for the bucket (see
   * {@link waitForLimits}). A limit no longer configured makes the message poison, naming it.
   */
  private async takeLimits(
    message: DispatchMessage,
    refs: NonNullable<DispatchMessage['limits']>,
    definitions: InstanceSnapshot['limits'],
    delivery: Delivery,
    loaded: LoadedInstance,
    owner: string,
    leaseTtlMs: number,
  ): Promise<{ kind: 'granted'; held: LimitHold } | Exclude<DeliveryOutcome, { kind: 'ran' }>> {
    const { now, telemetry } = this.deps;
    const limits = this.deps.limits;
    if (!limits) return this.poison(message, delivery, 'it takes shared limits and this worker has no limit store; deploy the worker with one (core/adapters/aws/runtime.ts)', loaded);
    const resolved = specsOf(refs, definitions);
    if (!resolved.ok) return this.poison(message, delivery, `${notConfigured(message, resolved.missing, definitions)}, or the run fails on its last delivery`, loaded);
    const { specs } = resolved;
    const grant = await this.oneAtATime(specs.map((spec) => `${spec.name}\u0000${spec.key}`).sort().join('\u0001'), () =>
      limits.acquireLimits({ holder: owner, ttlMs: leaseTtlMs, limits: specs }, now()),
    );
    if (grant.granted) {
      return { kind: 'granted', held: new LimitHold({ limits, telemetry, now }, specs, grant.permit, messageFields(message, loaded)) };
    }
    // A slot's holder may free it before it expires: ask again within limitPollMs (as the local runner polls).
    const until = grant.waitingOn.reason === 'concurrency' ? Math.min(grant.retryAt, now() + this.deps.config.limitPollMs) : grant.retryAt;
    return this.waitForLimits(message, loaded, owner, until, grant.waitingOn, waitingMessage({ ...grant.waitingOn, until: grant.retryAt }));
  }

  /**
   * The limits the scheduler took for a long task (holder: the dispatcher's owner, as the message
   * names it), as each is configured now; a limit no longer configured makes the message poison.
   */
  private async heldFor(message: DispatchMessage, definitions: InstanceSnapshot['limits'], delivery: Delivery, loaded: LoadedInstance): Promise<LimitHold> {
    const { now, telemetry, limits } = this.deps;
    if (!limits) return this.poison(message, delivery, 'it holds shared limits and this container has no limit store; deploy it with one (core/adapters/aws/runtime.ts)', loaded);
    const resolved = specsOf(message.limits ?? [], definitions);
    if (!resolved.ok) return this.poison(message, delivery, notConfigured(message, resolved.missing, definitions), loaded);
    return new LimitHold({ limits, telemetry, now }, resolved.specs, permitOf(message.owner, resolved.specs, message.leaseExpiresAt ?? now()), messageFields(message, loaded));
  }

  /** Records a claimed task that was asked to stop before it started (cancelled from the page while it waited) `cancelled`. */
  private async callOff(entry: BoardEntry, owner: string, loaded: LoadedInstance): Promise<{ kind: 'dropped'; why: string }> {
    const run = endedRun(entry, owner, this.deps.now(), 'cancelled', { name: 'CancelledError', message: `task "${entry.task}" of instance "${loaded.config.id}" was asked to stop before it started` });
    await this.deps.board.finish(refOf(entry, owner), run);
    return { kind: 'dropped', why: 'stop requested' };
  }

  /**
   * Sends `message` back to the queue to run `delayMs` after `at`: SQS delays a message 15 minutes
   * at the most, and `notBefore` carries the rest (a delivery before it is sent on again).
   */
  private async sendLater(message: DispatchMessage, delayMs: number, at: number, minDelaySec = 0): Promise<void> {
    const next: DispatchMessage = { ...message };
    delete next.notBefore;
    if (delayMs > MAX_DELAY_SEC * 1000) next.notBefore = at + delayMs;
    await this.deps.queue.sendLater(next, Math.max(minDelaySec, Math.min(MAX_DELAY_SEC, Math.ceil(delayMs / 1000))));
  }

  /** Runs `fn` after the one before it of the same key has settled (this process's acquires of one set of buckets). */
  private async oneAtATime<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.acquiring.get(key) ?? Promise.resolve();
    const mine = before.then(fn, fn);
    const settled = mine.then(
      () => undefined,
      () => undefined,
    );
    this.acquiring.set(key, settled);
    try {
      return await mine;
    } finally {
      if (this.acquiring.get(key) === settled) this.acquiring.delete(key);
    }
  }

  /**
   * A task refused by its limits waits for the bucket without being claimed: the message is sent
   * again, delayed until `until` (at most SQS's 15 minutes a send; past that `notBefore` carries
   * the rest), and this delivery succeeds, so SQS deletes it.
   *
   * Why a new message rather than ChangeMessageVisibility of this one: every receive of a message
   * counts towards the queue's maxReceiveCount, so a task refused that many times would be moved
   * to the dead-letter queue without ever running, and the worker's poison accounting, which reads
   * the receive count, would take a waiting task for a broken one. A new message starts from zero.
   * It is safe with duplicate deliveries: every copy names the same lease (signature, owner,
   * token), and the claim is conditioned on it, so however many copies a duplicate delivery, or a
   * worker that dies between this send and SQS's delete, leaves in the queue, one claims and runs
   * the task and the others are dropped as stale. (A stale copy that gets a grant before its claim
   * fails spends one token; its concurrency slots are released at once.)
   *
   * The first time a bucket refuses the task, and whenever the wait would outlast the dispatcher's
   * lease on the entry, a heartbeat fenced on that lease stores what the task waits for in the
   * entry (the page and `ujr status --stack` count the tasks waiting for each limit from it) and
   * extends the lease past the wait, so that the next tick does not take the waiting task for a
   * lost one; the message remembers the bucket (`waitingOn`), so that refusals by the same bucket
   * write nothing more: they read the entry instead (eventually consistent, half a read unit).
   * Either way, a message whose lease moved on is stale and dropped, and a task asked to stop
   * while it waits (cancelled from the page, its instance switched off) is claimed and recorded
   * `cancelled` now, rather than when its bucket would grant. (In the long-task container the wait
   * is the container's own: see ./long-task.ts.)
   */
  private async waitForLimits(message: DispatchMessage, loaded: LoadedInstance, owner: string, until: number, on: LimitRef, why: string): Promise<Exclude<DeliveryOutcome, { kind: 'ran' }>> {
    const { board, now, telemetry } = this.deps;
    const at = now();
    const next: DispatchMessage = { ...message, waitingOn: bucketId(on) };
    const extend = message.leaseExpiresAt === undefined || message.leaseExpiresAt < until + message.timeoutMs + this.deps.config.safetyMarginMs;
    const stale = () => {
      telemetry.count('dropped', loaded.job.name);
      telemetry.log('info', 'dropped a duplicate or stale delivery waiting for its limits: the lease moved on', { ...messageFields(message, loaded), token: message.token });
      return { kind: 'dropped' as const, why: 'stale' };
    };
    let stopRequested: boolean;
    if (extend || message.waitingOn !== next.waitingOn) {
      const needed = Math.max(message.leaseExpiresAt ?? 0, until + message.timeoutMs + this.deps.config.queueLeaseTtlMs);
      const beat = await board.heartbeat({ signature: message.signature, owner: message.owner, token: message.token }, needed - at, at, { current: 0, message: why, updatedAt: at });
      if (!beat.held) return stale();
      stopRequested = beat.stopRequested;
      next.leaseExpiresAt = needed;
    } else {
      const entry = (await board.peek([message.signature], at)).held.get(message.signature);
      if (!entry || entry.owner !== message.owner || entry.token !== message.token) return stale();
      stopRequested = entry.stopRequested === true;
    }
    if (stopRequested) {
      const entry = await board.claim({ signature: message.signature, token: message.token, owner: message.owner, newOwner: owner, ttlMs: 60_000, now: now() });
      return entry ? this.callOff(entry, owner, loaded) : stale();
    }
    // At least a second: SQS delays are whole seconds, and a message sent back at once would ask the bucket again in a loop.
    await this.sendLater(next, Math.max(0, until - at), at, 1);
    telemetry.log('debug', `task "${message.task}" is ${why}; queued again for then, not claimed`, messageFields(message, loaded));
    return { kind: 'deferred', until };
  }

  /**
   * The handler threw `RateLimitedError`: its limits of that name (all its rate limits, unnamed)
   * are drained for the time the API asked, and the same run (same id and attempt; no record
   * written) is handed back to the queue for then, as the local runner queues it again. Not a
   * failure, not a retry. Returns when it runs again, or `undefined` when the lease was lost.
   */
  private async requeueRateLimited(
    message: DispatchMessage,
    entry: BoardEntry,
    ref: LeaseRef,
    request: RateLimitRequest,
    error: { name: string; message: string },
    held: LimitHold | undefined,
  ): Promise<number | undefined> {
    const { board, now, telemetry } = this.deps;
    const at = now();
    const until = at + request.retryAfterMs;
    const fields = entryFields(entry);
    const drained = await drainBuckets(this.deps, held?.specs ?? [], request, at, fields);
    // The run keeps its id, whose time is its queue time (core/run-ids.ts): the entry keeps its
    // queuedAt, and the lease runs from then to past the delay, the task's timeout and the wait in the queue.
    const ttlMs = until - entry.queuedAt + message.timeoutMs + this.deps.config.queueLeaseTtlMs;
    const owner = `queue:${entry.runId}`;
    const token = await board.repost(ref, {
      owner,
      ttlMs,
      now: entry.queuedAt,
      runId: entry.runId,
      attempt: entry.attempt,
      origin: entry.origin,
      ...(entry.previousRunId !== undefined ? { previousRunId: entry.previousRunId } : {}),
    });
    if (token === undefined) {
      telemetry.log('warn', 'the lease moved on during the attempt (it expired and was taken over or swept); the rate-limited task is not queued again by this worker', { ...fields, token: ref.token });
      return undefined;
    }
    const next: DispatchMessage = { ...message, token, owner, leaseExpiresAt: entry.queuedAt + ttlMs };
    delete next.notBefore;
    delete next.redrive;
    // The long-task container runs it again itself, as it does its retries.
    if (this.deps.redispatch) await this.deps.redispatch(next, request.retryAfterMs);
    else await this.sendLater(next, request.retryAfterMs, at);
    telemetry.log('warn', `rate limited (${error.name}: ${error.message}): queued again in ${request.retryAfterMs} ms, not counted as a failure${drained}`, fields);
    return until;
  }

  private async revert(definition: TaskDefinition, entry: BoardEntry, loaded: LoadedInstance, run: RunRecord): Promise<void> {
    if (!definition.revert || !run.error) return;
    const fields = entryFields(entry);
    const log = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string) => this.deps.telemetry.log(level, message, { ...fields, phase: 'revert' });
    try {
      await definition.revert(entry.input, run.error, {
        instanceId: entry.instanceId,
        params: loaded.config.params,
        log: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
        objects: this.deps.objects,
      });
    } catch (error) {
      this.deps.telemetry.log('error', `revert of task "${entry.task}" failed: ${(error as Error).message}`, fields);
    }
  }

  /** Fails the delivery; on the queue's last delivery, records the run as failed first (where the lease is still this message's). */
  private async poison(message: DispatchMessage, delivery: Delivery, why: string, loaded: LoadedInstance | undefined): Promise<never> {
    const { board, now, telemetry } = this.deps;
    telemetry.count('dropped', loaded?.job.name ?? 'unknown');
    if (delivery.receiveCount >= this.deps.config.maxReceiveCount) {
      const owner = `worker:${delivery.deliveryId}`;
      const entry = await board.claim({ signature: message.signature, token: message.token, owner: message.owner, newOwner: owner, ttlMs: 60_000, now: now() });
      if (entry) {
        const run = endedRun(entry, owner, now(), 'failed', { name: 'PoisonMessageError', message: why });
        await board.finish(refOf(entry, owner), run);
      }
    }
    telemetry.log('error', `cannot run this message (delivery ${delivery.receiveCount} of ${this.deps.config.maxReceiveCount}): ${why}`, messageFields(message, loaded));
    throw new PoisonMessageError(why);
  }
}

function refOf(entry: BoardEntry, owner: string): LeaseRef {
  return { signature: entry.signature, owner, token: entry.token };
}

function messageFields(message: DispatchMessage, loaded: LoadedInstance | undefined) {
  return { instanceId: message.instanceId, jobType: loaded?.job.name, task: message.task, signature: message.signature, runId: message.runId };
}
