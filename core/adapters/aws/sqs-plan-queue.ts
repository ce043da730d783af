/** The plan queue on SQS: follow-up requests from workers and containers to the scheduler function. */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { FollowUpMessage } from '../../cloud/messages.js';
import type { PlanQueue } from '../../cloud/ports.js';
import { QueueAddress } from './queue-url.js';
import { sendJsonBatches, type Unsent } from './sqs-send.js';

/**
 * The plan queue. Its URL goes through the queue-URL rule (./queue-url.ts): with an SQS endpoint
 * configured (an emulator), requests are sent to it, never to the host the URL names.
 *
 * @throws {QueueUrlError} from the constructor when the URL is malformed.
 */
export class SqsPlanQueue implements PlanQueue {
  private readonly queue: QueueAddress;

  constructor(private readonly options: { client: SQSClient; queueUrl: string; name?: string }) {
    this.queue = new QueueAddress(options.client, options.queueUrl, options.name ?? 'queueUrl');
  }

  send(messages: FollowUpMessage[]): Promise<Unsent<FollowUpMessage>[]> {
    return sendJsonBatches(this.options.client, this.queue, messages);
  }
}
