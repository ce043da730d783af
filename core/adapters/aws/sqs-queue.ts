/** The task queue on SQS: dispatch messages in batches of 10, delayed retries, and the DLQ. */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { DispatchMessage } from '../../cloud/messages.js';
import type { SendFailure, TaskQueue } from '../../cloud/ports.js';
import { QueueAddress } from './queue-url.js';
import { sendJsonBatches } from './sqs-send.js';

export interface SqsTaskQueueOptions {
  client: SQSClient;
  queueUrl: string;
  deadLetterQueueUrl: string;
  /**
   * Where the two URLs were set, named when one is malformed.
   * @default `{ queueUrl: 'queueUrl', deadLetterQueueUrl: 'deadLetterQueueUrl' }`
   */
  names?: { queueUrl: string; deadLetterQueueUrl: string };
}

/**
 * The task queue. Both URLs go through the queue-URL rule (./queue-url.ts): with an SQS endpoint
 * configured (an emulator), they are sent to it, never to the host they name.
 *
 * @throws {QueueUrlError} from the constructor when a URL is malformed.
 * @example
 * ```ts
 * const queue = new SqsTaskQueue({ client: new SQSClient({}), queueUrl: env.UJR_TASK_QUEUE_URL, deadLetterQueueUrl: env.UJR_DEAD_LETTER_QUEUE_URL });
 * const failures = await queue.send(messages);
 * ```
 */
export class SqsTaskQueue implements TaskQueue {
  private readonly queue: QueueAddress;
  private readonly deadLetterQueue: QueueAddress;

  constructor(private readonly options: SqsTaskQueueOptions) {
    const names = options.names ?? { queueUrl: 'queueUrl', deadLetterQueueUrl: 'deadLetterQueueUrl' };
    this.queue = new QueueAddress(options.client, options.queueUrl, names.queueUrl);
    this.deadLetterQueue = new QueueAddress(options.client, options.deadLetterQueueUrl, names.deadLetterQueueUrl);
  }

  send(messages: DispatchMessage[]): Promise<SendFailure[]> {
    return sendJsonBatches(this.options.client, this.queue, messages);
  }

  async sendLater(message: DispatchMessage, delaySec: number): Promise<void> {
    await this.options.client.send(
      new SendMessageCommand({ QueueUrl: await this.queue.url(), MessageBody: JSON.stringify(message), DelaySeconds: Math.max(0, Math.min(900, Math.round(delaySec))) }),
    );
  }

  async sendToDeadLetter(message: DispatchMessage, reason: string): Promise<void> {
    await this.options.client.send(
      new SendMessageCommand({
        QueueUrl: await this.deadLetterQueue.url(),
        MessageBody: JSON.stringify(message),
        MessageAttributes: { reason: { DataType: 'String', StringValue: reason.slice(0, 4096) } },
      }),
    );
  }
}
