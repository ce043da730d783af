/**
 * The AWS edge of the CLI's `--stack <name>` mode: everything `ujr status|runs|logs|trigger|jobs|
 * redrive --stack` needs from a deployed stack, as plain values and the Store port (the CLI itself
 * never imports an SDK). Built from the stack's outputs (./stack-outputs.ts) with SDK clients in
 * the stack's region; tests inject clients pointed at the emulators or mocked.
 *
 * - the DynamoDB adapter of the store over the stack's three tables (runs, board, instances);
 * - the scheduler Lambda, invoked synchronously for an ad-hoc run (`ujr trigger`);
 * - CloudWatch Logs, searched by run id in the functions' and containers' log groups (`ujr logs`);
 * - SQS message move tasks from the dead-letter queue back to the task queue (`ujr redrive`).
 *
 * Every client honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> (emulators); the
 * dead-letter queue's URL is then sent to the SQS endpoint, never to its own host (./queue-url.ts).
 */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient, FilterLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetQueueAttributesCommand, ListMessageMoveTasksCommand, SQSClient, StartMessageMoveTaskCommand } from '@aws-sdk/client-sqs';
import { z } from 'zod';
import { tickReportSchema, type RunNowRequest, type TickReport } from '../../cloud/scheduler.js';
import { UjrError } from '../../errors.js';
import { DynamoStore } from './dynamo-store.js';
import { QueueAddress } from './queue-url.js';
import { loadStackOutputs, STACK_OUTPUTS, OPTIONAL_STACK_OUTPUTS, type StackOutputs } from './stack-outputs.js';

/** The SDK clients the CLI uses on AWS; any left out is built in the stack's region. */
export interface AwsCliClients {
  cloudformation: CloudFormationClient;
  dynamodb: DynamoDBClient;
  lambda: LambdaClient;
  logs: CloudWatchLogsClient;
  sqs: SQSClient;
}

export interface AwsCliContextOptions {
  /** Clients to use instead of building them (tests: emulators and mocks). */
  clients?: Partial<AwsCliClients>;
  /** Where `UJR_STACK_OUTPUTS` and `AWS_PROFILE` are read. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/** One line of CloudWatch Logs that mentions a run. */
export interface RunLogEvent {
  logGroup: string;
  /** Epoch ms. */
  timestamp: number;
  /** The line as written (Powertools Logger: one JSON object). */
  message: string;
  eventId: string;
}

/** An SQS message move task (a DLQ redrive), as ListMessageMoveTasks reports it. */
export interface MoveTask {
  taskHandle?: string;
  status: string;
  sourceArn?: string;
  destinationArn?: string;
  moved: number;
  toMove?: number;
  startedAt?: number;
  failureReason?: string;
}

/** An AWS call of the CLI failed; the message names the resource and what to check. */
export class AwsCliError extends UjrError {}

/** The scheduler function ran and threw: the request was refused (unknown task, broken instance) or the function failed. */
export class SchedulerFunctionError extends AwsCliError {
  constructor(
    message: string,
    readonly errorType: string,
  ) {
    super(message);
  }
}

/** What the CLI's `--stack` mode works with. */
export interface AwsCliContext {
  readonly stackName: string;
  readonly outputs: StackOutputs;
  /** The Store port (and board) over the stack's tables. */
  readonly store: DynamoStore;
  /** Where `findRunLogs` looks. */
  readonly logGroups: readonly string[];
  /** Invokes the scheduler function synchronously with an ad-hoc run; resolves with what it dispatched. */
  invokeScheduler(request: RunNowRequest): Promise<TickReport>;
  /** Log lines whose JSON has `runId` equal to `runId`, oldest first, from every log group (at or after `startTime`). */
  findRunLogs(runId: string, options?: { startTime?: number }): Promise<RunLogEvent[]>;
  /** Messages waiting in the dead-letter queue (approximate). */
  deadLetterDepth(): Promise<number>;
  /** Starts moving the dead-letter queue's messages back to the task queue. */
  startRedrive(): Promise<{ taskHandle: string; approximateNumberOfMessagesToMove: number | undefined }>;
  /** The dead-letter queue's recent move tasks, newest first. */
  listRedrives(): Promise<MoveTask[]>;
  /** Destroys the clients this context built (injected ones belong to the caller). */
  close(): void;
}


const functionErrorSchema = z.looseObject({ errorType: z.string().optional(), errorMessage: z.string().optional() });

/**
 * Reads the outputs of stack `stackName` and builds the context over them.
 *
 * @example
 * ```ts
 * const aws = await openAwsCliContext('ujr');
 * try {
 *   console.log(await aws.store.listRuns({ limit: 5 }));
 * } finally {
 *   aws.close();
 * }
 * ```
 */
export async function openAwsCliContext(stackName: string, options: AwsCliContextOptions = {}): Promise<AwsCliContext> {
  const given = options.clients ?? {};
  const outputs = await loadStackOutputs(stackName, { ...(given.cloudformation ? { cloudformation: given.cloudformation } : {}), ...(options.env ? { env: options.env } : {}) });
  const region = outputs[STACK_OUTPUTS.region];
  const built: { destroy(): void }[] = [];
  const own = <T extends { destroy(): void }>(client: T): T => {
    built.push(client);
    return client;
  };
  // Built on first use: `ujr runs` needs no Lambda client, `ujr logs` no SQS client.
  let lambda = given.lambda;
  let logs = given.logs;
  let sqs = given.sqs;
  const lambdaClient = () => (lambda ??= own(new LambdaClient({ region })));
  const logsClient = () => (logs ??= own(new CloudWatchLogsClient({ region })));
  const sqsClient = () => (sqs ??= own(new SQSClient({ region })));
  let deadLetterQueue: QueueAddress | undefined;
  const deadLetterQueueUrl = () =>
    (deadLetterQueue ??= new QueueAddress(sqsClient(), outputs[STACK_OUTPUTS.deadLetterQueueUrl], `output ${STACK_OUTPUTS.deadLetterQueueUrl} of stack "${stackName}"`)).url();
  // DynamoDB throttles under bursts; its SDK v2 default was 10 attempts, as in the runtime.
  const dynamodb = given.dynamodb ?? own(new DynamoDBClient({ region, maxAttempts: 10 }));
  const store = new DynamoStore({
    client: dynamodb,
    tables: { leases: outputs[STACK_OUTPUTS.leasesTable], runs: outputs[STACK_OUTPUTS.runsTable], instances: outputs[STACK_OUTPUTS.instancesTable] },
  });
  const longTaskLogGroup = outputs[OPTIONAL_STACK_OUTPUTS.longTaskLogGroup];
  const logGroups = [
    outputs[STACK_OUTPUTS.workerLogGroup],
    outputs[STACK_OUTPUTS.conductorLogGroup],
    outputs[STACK_OUTPUTS.schedulerLogGroup],
    ...(longTaskLogGroup ? [longTaskLogGroup] : []),
  ];
  const functionName = outputs[STACK_OUTPUTS.schedulerFunction];
  const dlqArn = outputs[STACK_OUTPUTS.deadLetterQueueArn];

  const failed = (what: string, error: unknown): AwsCliError => {
    const name = error instanceof Error ? error.name : 'Error';
    const message = error instanceof Error ? error.message : String(error);
    const advice =
      name === 'AccessDeniedException' || name === 'AccessDenied' || name === 'UnrecognizedClientException'
        ? '; check the credentials in use (AWS_PROFILE) and that they may do this'
        : name === 'ResourceNotFoundException' || name.includes('NonExistent')
          ? `; the stack "${stackName}" may have been changed or deleted: redeploy it (npx cdk deploy)`
          : '';
    return new AwsCliError(`${what} failed: ${name}: ${message}${advice}`, { cause: error });
  };

  const listRedrives = async (): Promise<MoveTask[]> => {
    try {
      const result = await sqsClient().send(new ListMessageMoveTasksCommand({ SourceArn: dlqArn, MaxResults: 10 }));
      return (result.Results ?? []).map(
        (entry): MoveTask => ({
          ...(entry.TaskHandle ? { taskHandle: entry.TaskHandle } : {}),
          status: entry.Status ?? 'UNKNOWN',
          ...(entry.SourceArn ? { sourceArn: entry.SourceArn } : {}),
          ...(entry.DestinationArn ? { destinationArn: entry.DestinationArn } : {}),
          moved: entry.ApproximateNumberOfMessagesMoved ?? 0,
          ...(entry.ApproximateNumberOfMessagesToMove !== undefined ? { toMove: entry.ApproximateNumberOfMessagesToMove } : {}),
          ...(entry.StartedTimestamp !== undefined ? { startedAt: entry.StartedTimestamp } : {}),
          ...(entry.FailureReason ? { failureReason: entry.FailureReason } : {}),
        }),
      );
    } catch (error) {
      throw failed(`listing the message move tasks of ${dlqArn}`, error);
    }
  };

  return {
    stackName,
    outputs,
    store,
    logGroups,

    async invokeScheduler(request) {
      let output;
      try {
        output = await lambdaClient().send(
          new InvokeCommand({ FunctionName: functionName, InvocationType: 'RequestResponse', Payload: new TextEncoder().encode(JSON.stringify(request)) }),
        );
      } catch (error) {
        throw failed(`invoking the scheduler function ${functionName}`, error);
      }
      const text = output.Payload ? new TextDecoder().decode(output.Payload) : '';
      const payload = parseJsonText(text);
      if (output.FunctionError) {
        const error = functionErrorSchema.safeParse(payload);
        const errorType = (error.success ? error.data.errorType : undefined) ?? output.FunctionError;
        const errorMessage = (error.success ? error.data.errorMessage : undefined) ?? text.slice(0, 500);
        throw new SchedulerFunctionError(`the scheduler function ${functionName} refused the request: ${errorType}: ${errorMessage}`, errorType);
      }
      const report = tickReportSchema.safeParse(payload);
      if (!report.success) {
        throw new AwsCliError(
          `the scheduler function ${functionName} answered ${JSON.stringify(text.slice(0, 200))}, not a tick report; is the stack's code older than this ujr? Redeploy it (npx cdk deploy)`,
        );
      }
      return report.data;
    },

    async findRunLogs(runId, options = {}) {
      const filterPattern = `{ $.runId = ${JSON.stringify(runId)} }`;
      const perGroup = await Promise.all(
        logGroups.map(async (logGroupName) => {
          const events: RunLogEvent[] = [];
          let nextToken: string | undefined;
          do {
            let page;
            try {
              page = await logsClient().send(
                new FilterLogEventsCommand({
                  logGroupName,
                  filterPattern,
                  ...(options.startTime !== undefined ? { startTime: Math.max(0, Math.floor(options.startTime)) } : {}),
                  ...(nextToken ? { nextToken } : {}),
                }),
              );
            } catch (error) {
              // A log group nothing has written to yet (no conductor ever ran) may not exist.
              if (error instanceof Error && error.name === 'ResourceNotFoundException') return events;
              throw failed(`searching log group ${logGroupName}`, error);
            }
            for (const event of page.events ?? []) {
              if (event.message === undefined) continue;
              events.push({
                logGroup: logGroupName,
                timestamp: event.timestamp ?? 0,
                message: event.message,
                eventId: event.eventId ?? `${logGroupName}/${event.timestamp ?? 0}/${events.length}`,
              });
            }
            nextToken = page.nextToken;
          } while (nextToken);
          return events;
        }),
      );
      return perGroup.flat().sort((a, b) => a.timestamp - b.timestamp);
    },

    async deadLetterDepth() {
      const queueUrl = await deadLetterQueueUrl();
      try {
        const result = await sqsClient().send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
        return Number(result.Attributes?.ApproximateNumberOfMessages ?? 0);
      } catch (error) {
        throw failed(`reading the dead-letter queue ${queueUrl}`, error);
      }
    },

    async startRedrive() {
      let taskHandle: string | undefined;
      try {
        const started = await sqsClient().send(new StartMessageMoveTaskCommand({ SourceArn: dlqArn, DestinationArn: outputs[STACK_OUTPUTS.taskQueueArn] }));
        taskHandle = started.TaskHandle;
      } catch (error) {
        throw failed(`starting a message move task from ${dlqArn}`, error);
      }
      if (!taskHandle) throw new AwsCliError(`SQS started a message move task from ${dlqArn} but returned no task handle`);
      const task = (await listRedrives()).find((t) => t.taskHandle === taskHandle);
      return { taskHandle, approximateNumberOfMessagesToMove: task?.toMove };
    },

    listRedrives,

    close() {
      for (const client of built) client.destroy();
    },
  };
}

function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
