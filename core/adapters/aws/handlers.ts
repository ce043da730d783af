/**
 * The Lambda handlers, as factories over their dependencies (tests pass emulator-backed or fake
 * ones; functions/ binds them to real clients once per cold start).
 *
 * - Scheduler: an EventBridge Scheduler tick (`{}` or `{ "tick": true }`), or an ad-hoc run
 *   `{ "instanceId": "...", "task"?: "...", "input"?: {...} }` from `ujr trigger --stack`.
 * - Worker: an SQS batch, processed with Powertools' BatchProcessor, reporting partial batch
 *   failures (ReportBatchItemFailures): only failed records come back.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import { jsonSchema } from '../../cloud/messages.js';
import type { Telemetry } from '../../cloud/ports.js';
import type { Scheduler, TickReport } from '../../cloud/scheduler.js';
import type { TaskWorker } from '../../cloud/worker.js';

export const schedulerEventSchema = z.union([
  z.object({ instanceId: z.string().min(1), task: z.string().min(1).optional(), input: jsonSchema.optional() }).strict(),
  z.object({ tick: z.literal(true).optional() }).strict(),
]);

export type SchedulerEvent = z.infer<typeof schedulerEventSchema>;

export function makeSchedulerHandler(deps: { scheduler: Scheduler; telemetry: Telemetry }) {
  return async (event: unknown): Promise<TickReport> => {
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
      return report;
    } finally {
      deps.telemetry.flush();
    }
  };
}

export function makeWorkerHandler(deps: { worker: TaskWorker; telemetry: Telemetry }) {
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    const processor = new BatchProcessor(EventType.SQS);
    const handleRecord = async (record: SQSRecord) => {
      await deps.worker.handle({
        body: record.body,
        receiveCount: Number(record.attributes.ApproximateReceiveCount ?? '1'),
        remainingMs: () => context.getRemainingTimeInMillis(),
        deliveryId: `${context.awsRequestId}/${record.messageId}`,
      });
    };
    try {
      return await processPartialResponse(event, handleRecord, processor, { context, throwOnFullBatchFailure: false });
    } finally {
      deps.telemetry.flush();
    }
  };
}
