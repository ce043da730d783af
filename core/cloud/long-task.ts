/**
 * A batch task longer than the worker Lambda allows, run in a one-off Fargate container: the same
 * claim, attempt and record as in the worker, with the container's own clock as the only limit.
 * Its retries run in the same container after their backoff (a queue worker could not run them),
 * and so does every other wait the worker would hand to the queue: a rate-limited attempt's
 * Retry-After, and a later attempt's wait for its shared limits (the first attempt's limits were
 * taken by the scheduler before it started the container: see core/cloud/scheduler.ts).
 */
import type { RunRecord } from '../types.js';
import { FollowUpRequests } from './follow-ups.js';
import { parseDispatchMessage, type DispatchMessage } from './messages.js';
import type { PlanQueue } from './ports.js';
import { TaskWorker, type DeliveryOutcome, type WorkerDeps } from './worker.js';

/**
 * Runs the task of `body` and its retries; returns the runs recorded. With a plan queue, its
 * instance is asked for a follow-up plan once the task has ended for good.
 */
export async function runLongTask(deps: Omit<WorkerDeps, 'redispatch'> & { planQueue?: PlanQueue }, body: string, containerId: string, sleep = defaultSleep): Promise<RunRecord[]> {
  let next: { message: DispatchMessage; delayMs: number } | undefined = { message: parseDispatchMessage(body), delayMs: 0 };
  const later = (message: DispatchMessage, delayMs: number) => {
    next = { message, delayMs };
    return Promise.resolve();
  };
  const worker = new TaskWorker({
    ...deps,
    redispatch: later,
    // Nothing this container hands back may reach the worker Lambda's queue: it could not run it.
    queue: {
      send: (messages) => deps.queue.send(messages),
      sendLater: (message, delaySec) => later(message, delaySec * 1000),
      sendToDeadLetter: (message, reason) => deps.queue.sendToDeadLetter(message, reason),
    },
  });
  const runs: RunRecord[] = [];
  for (let delivery = 1; next !== undefined; delivery++) {
    const { message, delayMs } = next;
    next = undefined;
    await sleep(delayMs);
    const margin = deps.config.safetyMarginMs + deps.config.graceMs;
    const outcome: DeliveryOutcome = await worker.handle({
      body: JSON.stringify(message),
      receiveCount: 1,
      remainingMs: () => message.timeoutMs + margin,
      deliveryId: `${containerId}/${delivery}`,
    });
    if (outcome.kind === 'ran') runs.push(outcome.run);
  }
  const followUp = new FollowUpRequests({ queue: deps.planQueue, telemetry: deps.telemetry, now: deps.now });
  for (const run of runs) followUp.ended(run);
  await followUp.flush();
  return runs;
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
