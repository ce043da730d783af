/** The task queue on SQS: dispatch messages in batches of 10, delayed retries, and the DLQ. */
import { SendMessageBatchCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { DispatchMessage } from '../../cloud/messages.js';
import type { SendFailure, TaskQueue } from '../../cloud/ports.js';

/** SQS's largest batch. */
const BATCH = 10;

export class SqsTaskQueue implements TaskQueue {
  constructor(private readonly options: { client: SQSClient; queueUrl: string; deadLetterQueueUrl: string }) {}

  async send(messages: DispatchMessage[]): Promise<SendFailure[]> {
    const batches: DispatchMessage[][] = [];
    for (let i = 0; i < messages.length; i += BATCH) batches.push(messages.slice(i, i + BATCH));
    const failures = await Promise.all(batches.map((batch) => this.sendBatch(batch)));
    return failures.flat();
  }

  private async sendBatch(batch: DispatchMessage[]): Promise<SendFailure[]> {
    try {
      const result = await this.options.client.send(
        new SendMessageBatchCommand({
          QueueUrl: this.options.queueUrl,
          Entries: batch.map((message, index) => ({ Id: String(index), MessageBody: JSON.stringify(message) })),
        }),
      );
      return (result.Failed ?? []).flatMap((failed) => {
        const message = batch[Number(failed.Id)];
        return message ? [{ message, error: `${failed.Code ?? 'error'}: ${failed.Message ?? 'SendMessageBatch refused it'}` }] : [];
      });
    } catch (error) {
      return batch.map((message) => ({ message, error: `SendMessageBatch to ${this.options.queueUrl} failed: ${(error as Error).message}` }));
    }
  }

  async sendLater(message: DispatchMessage, delaySec: number): Promise<void> {
    await this.options.client.send(
      new SendMessageCommand({ QueueUrl: this.options.queueUrl, MessageBody: JSON.stringify(message), DelaySeconds: Math.max(0, Math.min(900, Math.round(delaySec))) }),
    );
  }

  async sendToDeadLetter(message: DispatchMessage, reason: string): Promise<void> {
    await this.options.client.send(
      new SendMessageCommand({
        QueueUrl: this.options.deadLetterQueueUrl,
        MessageBody: JSON.stringify(message),
        MessageAttributes: { reason: { DataType: 'String', StringValue: reason.slice(0, 4096) } },
      }),
    );
  }
}
