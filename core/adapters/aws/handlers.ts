/**
 * The Lambda handlers, as factories over their dependencies (tests pass emulator-backed or fake
 * ones; functions/ binds them to real clients once per cold start).
 *
 * - Scheduler: an EventBridge Scheduler tick (`{}` or `{ "tick": true }`), an ad-hoc run
 *   `{ "instanceId": "...", "task"?: "...", "input"?: {...} }` from `ujr trigger --stack`, or a
 *   batch of follow-up requests from the plan queue (SQS event source). After a tick, when shared
 *   limits are configured, it reads their buckets for their metrics: one Scan of the instances
 *   table, filtered to them; and, only when a bucket is closed (no token, every slot taken, or
 *   backing off), the board's entries, to count the tasks waiting for each bucket.
 * - Worker: an SQS batch, processed with Powertools' BatchProcessor, reporting partial batch
 *   failures (ReportBatchItemFailures): only failed records come back.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import { FollowUpRequests } from '../../cloud/follow-ups.js';
import { jsonSchema, parseFollowUpMessage, type FollowUpMessage } from '../../cloud/messages.js';
import type { InstanceDirectory } from '../../cloud/instances.js';
import type { PlanQueue, Telemetry } from '../../cloud/ports.js';
import type { LimitState, LimitStore } from '../../ports/limits.js';
import { withWaiting } from '../../engine/limit-messages.js';
import { boardEntries, type Board } from '../../cloud/board.js';
import { baseRun } from '../../cloud/attempt.js';
import type { Scheduler, TickReport } from '../../cloud/scheduler.js';
import type { TaskWorker } from '../../cloud/worker.js';

export const schedulerEventSchema = z.union([
  z.object({ instanceId: z.string().min(1), task: z.string().min(1).optional(), input: jsonSchema.optional() }).strict(),
  z.object({ tick: z.literal(true).optional() }).strict(),
]);

export type SchedulerEvent = z.infer<typeof schedulerEventSchema>;

/** A batch from the plan queue (Lambda's SQS event source): follow-up requests. */
const planQueueEventSchema = z.looseObject({
  Records: z.array(z.looseObject({ messageId: z.string(), body: z.string(), eventSource: z.literal('aws:sqs') })).min(1),
});

/** The scheduler function's handler: a batch from the plan queue gets a batch response, anything else a tick report. */
export interface SchedulerHandler {
  (event: SQSEvent): Promise<SQSBatchResponse>;
  (event: unknown): Promise<TickReport>;
}

/**
 * What the scheduler's handler needs: the scheduler, telemetry and, for the limits' metrics, the
 * store's limits and the instances (which say whether any limit is configured).
 */
export interface SchedulerHandlerDeps {
  scheduler: Scheduler;
  telemetry: Telemetry;
  board?: Pick<Board, 'listRoute'> & { limits?: Pick<LimitStore, 'listLimitStates'> };
  instances?: Pick<InstanceDirectory, 'get'>;
  now?: () => number;
}

export function makeSchedulerHandler(deps: SchedulerHandlerDeps): SchedulerHandler {
  return (async (event: unknown): Promise<TickReport | SQSBatchResponse> => {
    const batch = planQueueEventSchema.safeParse(event);
    if (batch.success) return followUps(deps, batch.data.Records);
    const parsed = schedulerEventSchema.safeParse(event ?? {});
    if (!parsed.success) {
      throw new Error(
        `the scheduler was invoked with ${JSON.stringify(event)?.slice(0, 200)}; send {} for a tick or { "instanceId": "...", "task"?: "...", "input"?: {} } for an ad-hoc run`,
      );
    }
    try {
      const request = parsed.data;
      const report = 'instanceId' in request ? await deps.scheduler.runNow(request) : await deps.scheduler.tick();
      deps.telemetry.log('info', 'tick', { report });
      if (!('instanceId' in request)) await sampleLimits(deps);
      return report;
    } finally {
      deps.telemetry.flush();
    }
  }) as SchedulerHandler;
}

/**
 * Hands the shared limits' buckets to the metrics, with the tasks waiting for each; a failed read
 * is logged, never fails the tick. With no limit configured (the instances the tick just read say
 * so) nothing is read. Tasks wait only for a closed bucket, so the board (every posted entry: a
 * read that grows with the backlog) is read only when a bucket is closed.
 */
async function sampleLimits(deps: SchedulerHandlerDeps): Promise<void> {
  const board = deps.board;
  const limits = board?.limits;
  if (!board || !limits) return;
  try {
    if (deps.instances && (await deps.instances.get()).limits.size === 0) return;
    const now = (deps.now ?? Date.now)();
    const states = await limits.listLimitStates(now);
    const entries = states.some((state) => closed(state, now)) ? await boardEntries(board) : [];
    deps.telemetry.limits(withWaiting(states, entries.map((entry) => ({ status: baseRun(entry, entry.owner, entry.startedAt).status, progress: entry.progress }))));
  } catch (error) {
    deps.telemetry.log('warn', `could not read the shared limits for their metrics: ${(error as Error).message}`);
  }
}

/** Whether a task asking `state`'s bucket now would be refused by it. */
function closed(state: LimitState, now: number): boolean {
  return (state.blockedUntil !== undefined && state.blockedUntil > now) || (state.tokens !== undefined && state.tokens < 1) || (state.concurrency !== undefined && state.held >= state.concurrency);
}

/**
 * Plans the instances a batch of follow-up requests names. A body ujr did not send is logged and
 * dropped (it would come back forever); when planning fails (the store, say), the whole batch
 * comes back, and past the queue's retention the instances' ticks plan them anyway.
 */
async function followUps(deps: { scheduler: Scheduler; telemetry: Telemetry }, records: { messageId: string; body: string }[]): Promise<SQSBatchResponse> {
  const requests: FollowUpMessage[] = [];
  for (const record of records) {
    try {
      requests.push(parseFollowUpMessage(record.body));
    } catch (error) {
      deps.telemetry.log('error', `dropped plan-queue message ${record.messageId}: ${(error as Error).message}`);
    }
  }
  try {
    const report = await deps.scheduler.followUp(requests);
    deps.telemetry.log('info', 'follow-up', { report });
    return { batchItemFailures: [] };
  } catch (error) {
    deps.telemetry.log('error', `follow-up plans failed: ${(error as Error).message}; the requests come back after the queue's visibility timeout`);
    return { batchItemFailures: records.map((record) => ({ itemIdentifier: record.messageId })) };
  } finally {
    deps.telemetry.flush();
  }
}

/**
 * The worker's handler. With a plan queue, each instance whose tasks ended for good in the batch
 * is asked for a follow-up plan once, after the batch (core/cloud/follow-ups.ts).
 */
export function makeWorkerHandler(deps: { worker: TaskWorker; telemetry: Telemetry; planQueue?: PlanQueue; now?: () => number }) {
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    const processor = new BatchProcessor(EventType.SQS);
    const ended = new FollowUpRequests({ queue: deps.planQueue, telemetry: deps.telemetry, now: deps.now ?? Date.now });
    const handleRecord = async (record: SQSRecord) => {
      const outcome = await deps.worker.handle({
        body: record.body,
        receiveCount: Number(record.attributes.ApproximateReceiveCount ?? '1'),
        remainingMs: () => context.getRemainingTimeInMillis(),
        deliveryId: `${context.awsRequestId}/${record.messageId}`,
      });
      if (outcome.kind === 'ran') ended.ended(outcome.run);
    };
    try {
      const response = await processPartialResponse(event, handleRecord, processor, { context, throwOnFullBatchFailure: false });
      await ended.flush();
      return response;
    } finally {
      deps.telemetry.flush();
    }
  };
}
