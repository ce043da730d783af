/**
 * Follow-up requests: when a task of an instance ends for good, its job is asked again within a
 * second, as the local runner asks it the moment the task's record is stored, instead of at the
 * next tick. Whoever records the end (the worker Lambda per batch, a container per task) notes the
 * ended runs here and sends one request per instance to the plan queue; the scheduler plans each
 * instance through its follow-up gate (core/cloud/board.ts `FollowUpGate`), so however many tasks
 * end at once, an instance has at most one follow-up plan in flight and one pending.
 *
 * Follow-ups are a shortcut, not the guarantee: a request that cannot be sent is logged and the
 * instance is planned at its next tick as before.
 */
import { TERMINAL_STATUSES, type RunRecord } from '../types.js';
import type { EndedRun, FollowUpMessage } from './messages.js';
import type { PlanQueue, Telemetry } from './ports.js';

/** Ended runs one request carries at most (the message schema's limit). */
const MAX_ENDED = 100;

export class FollowUpRequests {
  private readonly byInstance = new Map<string, EndedRun[]>();

  constructor(private readonly deps: { queue: PlanQueue | undefined; telemetry: Telemetry; now: () => number }) {}

  /** Notes a run whose record was just stored; only a final one (not an attempt that will be retried) asks for a plan. */
  ended(run: RunRecord): void {
    if (!this.deps.queue || !TERMINAL_STATUSES.has(run.status) || run.nextRunId !== undefined) return;
    const status = run.status as EndedRun['status'];
    const runs = this.byInstance.get(run.instanceId) ?? [];
    if (runs.length >= MAX_ENDED) runs.shift();
    runs.push({ runId: run.id, signature: run.signature, task: run.task, status, endedAt: run.endedAt ?? this.deps.now() });
    this.byInstance.set(run.instanceId, runs);
  }

  /** Sends one request per instance noted since the last flush. */
  async flush(): Promise<void> {
    const { queue, telemetry, now } = this.deps;
    if (!queue || this.byInstance.size === 0) return;
    const at = now();
    const messages: FollowUpMessage[] = [...this.byInstance].map(([instanceId, ended]) => ({ v: 1, followUp: instanceId, at, ended }));
    this.byInstance.clear();
    let failures: Awaited<ReturnType<PlanQueue['send']>>;
    try {
      failures = await queue.send(messages);
    } catch (error) {
      failures = messages.map((message) => ({ message, error: (error as Error).message }));
    }
    for (const { message, error } of failures) {
      telemetry.log('warn', `could not ask for a follow-up plan of instance "${message.followUp}": ${error}; its next tick plans it`, { instanceId: message.followUp });
    }
  }
}
