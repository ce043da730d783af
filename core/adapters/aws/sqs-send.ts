/** Sending JSON messages to an SQS queue in batches of 10 (SQS's largest), reporting the ones that could not be sent. */
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { QueueAddress } from './queue-url.js';

/** SQS's largest batch. */
const BATCH = 10;

export interface Unsent<T> {
  message: T;
  error: string;
}

/** Sends `messages` as JSON bodies, 10 per SendMessageBatch, the batches in parallel; never throws. */
export async function sendJsonBatches<T>(client: SQSClient, queue: QueueAddress, messages: readonly T[]): Promise<Unsent<T>[]> {
  const batches: T[][] = [];
  for (let i = 0; i < messages.length; i += BATCH) batches.push(messages.slice(i, i + BATCH));
  return (await Promise.all(batches.map((batch) => sendBatch(client, queue, batch)))).flat();
}

async function sendBatch<T>(client: SQSClient, queue: QueueAddress, batch: T[]): Promise<Unsent<T>[]> {
  let queueUrl = queue.configured;
  try {
    queueUrl = await queue.url();
    const result = await client.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: batch.map((message, index) => ({ Id: String(index), MessageBody: JSON.stringify(message) })),
      }),
    );
    return (result.Failed ?? []).flatMap((failed) => {
      const message = batch[Number(failed.Id)];
      return message === undefined ? [] : [{ message, error: `${failed.Code ?? 'error'}: ${failed.Message ?? 'SendMessageBatch refused it'}` }];
    });
  } catch (error) {
    return batch.map((message) => ({ message, error: `SendMessageBatch to ${queueUrl} failed: ${(error as Error).message}` }));
  }
}
