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
 */
import { backoffDelay, DEFAULT_RETRY } from '../retry.js';
import { MAX_RESULT_BYTES } from '../limits.js';
import type { LeaseRef } from '../ports/store.js';
import type { Json, RunRecord, TaskDefinition } from '../types.js';
import { resolveSpecs } from '../engine/planner.js';
import { runIdFor } from '../run-ids.js';
import { endedRun, entryFields, runAttempt, type AttemptDeps, type AttemptResult } from './attempt.js';
import type { BoardEntry } from './board.js';
import { PoisonMessageError } from './errors.js';
import type { InstanceDirectory, LoadedInstance } from './instances.js';
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
}

export const DEFAULT_WORKER_CONFIG: WorkerConfig = {
  safetyMarginMs: 10_000,
  graceMs: 2_000,
  maxReceiveCount: 5,
  queueLeaseTtlMs: 15 * 60_000,
  maxResultBytes: MAX_RESULT_BYTES,
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
    const entry = await this.deps.board.claim({
      signature: message.signature,
      token: message.token,
      owner: message.owner,
      newOwner: owner,
      ttlMs: message.timeoutMs + safetyMarginMs + graceMs,
      now: now(),
    });
    if (!entry) {
      telemetry.count('dropped', loaded.job.name);
      telemetry.log('info', 'dropped a duplicate or stale delivery: the lease moved on', { ...messageFields(message, loaded), token: message.token });
      return { kind: 'dropped', why: 'stale' };
    }
    if (entry.stopRequested) {
      // Cancelled (from the status page) while it waited in the queue: it never starts.
      const run = endedRun(entry, owner, now(), 'cancelled', { name: 'CancelledError', message: `task "${entry.task}" of instance "${loaded.config.id}" was asked to stop before it started` });
      await this.deps.board.finish(refOf(entry, owner), run);
      return { kind: 'dropped', why: 'stop requested' };
    }
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
      leaseTtlMs: message.timeoutMs + safetyMarginMs + graceMs,
      graceMs,
      maxResultBytes: this.deps.config.maxResultBytes,
    });
    telemetry.duration(entry.jobType, (result.run.endedAt ?? now()) - (result.run.startedAt ?? now()));
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
      const retry: DispatchMessage = { ...message, token, owner: next.owner, runId: next.runId, attempt: next.attempt };
      delete retry.notBefore;
      if (this.deps.redispatch) {
        await this.deps.redispatch(retry, delayMs);
      } else {
        if (delayMs > MAX_DELAY_SEC * 1000) retry.notBefore = now() + delayMs;
        await queue.sendLater(retry, Math.min(MAX_DELAY_SEC, Math.ceil(delayMs / 1000)));
      }
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
    return { v: 1, signature: message.signature, token: grant.lease.token, owner, instanceId: message.instanceId, task: message.task, runId, attempt: 1, timeoutMs: message.timeoutMs };
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
