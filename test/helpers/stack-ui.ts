/**
 * The status page over a deployment on the emulators (`ujr ui --stack`), for its API and Chromium
 * tests: a LocalAwsStack (DynamoDB Local, the SQS emulator, s3rver), its outputs in a
 * UJR_STACK_OUTPUTS file, and the CLI's AWS context over them, as test/integration/aws/cli-aws.test.ts
 * builds it.
 *
 * - Lambda is mocked at the SDK edge: an Invoke of the scheduler function runs the real scheduler
 *   handler in-process, as Lambda would (errors answered as `FunctionError`).
 * - CloudWatch Logs has no emulator: FilterLogEvents is mocked; tests give it lines per run id.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CloudWatchLogsClient, FilterLogEventsCommand, type FilteredLogEvent } from '@aws-sdk/client-cloudwatch-logs';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { mockClient, type AwsClientStub } from 'aws-sdk-client-mock';
import { openAwsCliContext, type AwsCliContext } from '../../core/adapters/aws/cli-context.js';
import { makeSchedulerHandler, makeWorkerHandler } from '../../core/adapters/aws/handlers.js';
import { STACK_OUTPUTS, type StackOutputs } from '../../core/adapters/aws/stack-outputs.js';
import { stackTarget, type Target } from '../../core/cli/targets.js';
import { secretsResolver } from '../../core/cloud/secrets.js';
import jobs from '../fixtures/aws/jobs.js';
import { LocalAwsStack } from './aws-stack.js';
import { answerInvoke, type InvokeInput } from './lambda-invoke.js';
import { SqsEventSource } from './sqs-event-source.js';
import { EMULATOR_CREDENTIALS, EMULATOR_REGION } from '../servers/emulators.js';

export const STACK = 'ujr-test';
export const JOBS_MODULE = fileURLToPath(new URL('../fixtures/aws/jobs.ts', import.meta.url));
export const SCHEDULER_FUNCTION = 'ujr-test-Scheduler-1A2B3C';
export const LOG_GROUPS = { worker: '/aws/lambda/ujr-test-Worker', conductor: '/ujr/ujr-test/conductor', scheduler: '/aws/lambda/ujr-test-Scheduler' };

/** Secrets resolved from a map, so no test reaches SSM. */
const resolveParams = secretsResolver({ get: (ref) => Promise.reject(new Error(`no parameter ${ref.id}`)) });

export class StackUiFixture {
  readonly stack = new LocalAwsStack({ maxReceiveCount: 3, visibilityTimeoutSec: 1 });
  readonly lambda = new LambdaClient({ region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS });
  readonly lambdaMock: AwsClientStub<LambdaClient> = mockClient(this.lambda);
  readonly logs = new CloudWatchLogsClient({ region: EMULATOR_REGION, credentials: EMULATOR_CREDENTIALS });
  readonly logsMock: AwsClientStub<CloudWatchLogsClient> = mockClient(this.logs);
  /** What the scheduler function was invoked with, in order. */
  readonly invocations: unknown[] = [];
  /** CloudWatch Logs lines by `<log group> <run id>`: what FilterLogEvents answers for that group and filter. */
  readonly logLines = new Map<string, FilteredLogEvent[]>();
  dir = '';
  outputsFile = '';

  async create(): Promise<this> {
    await this.stack.create();
    this.dir = await mkdtemp(join(tmpdir(), 'ujr-ui-stack-'));
    const outputs: StackOutputs = {
      [STACK_OUTPUTS.leasesTable]: this.stack.names.leases,
      [STACK_OUTPUTS.runsTable]: this.stack.names.runs,
      [STACK_OUTPUTS.instancesTable]: this.stack.names.instances,
      [STACK_OUTPUTS.dataBucket]: this.stack.names.bucket,
      [STACK_OUTPUTS.taskQueueUrl]: this.stack.queueUrl,
      [STACK_OUTPUTS.taskQueueArn]: await this.queueArn(this.stack.queueUrl),
      [STACK_OUTPUTS.deadLetterQueueUrl]: this.stack.deadLetterQueueUrl,
      [STACK_OUTPUTS.deadLetterQueueArn]: await this.queueArn(this.stack.deadLetterQueueUrl),
      [STACK_OUTPUTS.schedulerFunction]: SCHEDULER_FUNCTION,
      [STACK_OUTPUTS.schedulerLogGroup]: LOG_GROUPS.scheduler,
      [STACK_OUTPUTS.workerLogGroup]: LOG_GROUPS.worker,
      [STACK_OUTPUTS.conductorLogGroup]: LOG_GROUPS.conductor,
      [STACK_OUTPUTS.region]: EMULATOR_REGION,
    };
    this.outputsFile = join(this.dir, 'outputs.json');
    await writeFile(this.outputsFile, JSON.stringify({ [STACK]: outputs }, null, 2));
    this.playSchedulerFunction();
    this.logsMock.on(FilterLogEventsCommand).callsFake((input: { logGroupName?: string; filterPattern?: string }) => {
      const runId = /\$\.runId = "([^"]+)"/.exec(input.filterPattern ?? '')?.[1] ?? '';
      return { events: this.logLines.get(`${input.logGroupName ?? ''} ${runId}`) ?? [] };
    });
    return this;
  }

  /** The CLI's AWS context over the emulators and mocks (as `ujr --stack ujr-test` opens it). */
  openContext(name = STACK): Promise<AwsCliContext> {
    return openAwsCliContext(name, {
      env: { UJR_STACK_OUTPUTS: this.outputsFile },
      clients: { dynamodb: this.stack.clients.dynamodb, sqs: this.stack.clients.sqs, lambda: this.lambda, logs: this.logs },
    });
  }

  /** The context and the CLI's stack target over it, with the fixture job types. */
  async openTarget(): Promise<{ aws: AwsCliContext; target: Target }> {
    const aws = await this.openContext();
    return { aws, target: stackTarget(aws, { jobsModule: JOBS_MODULE, jobsModuleRequired: true }) };
  }

  /** One scheduled tick of the stack's scheduler. */
  async tick(): Promise<void> {
    await this.stack.scheduler(jobs, {}, { resolveParams }).scheduler.tick();
  }

  /** Plays Lambda's SQS mapping for the worker function until the task queue is empty. */
  async drainWorker(): Promise<void> {
    const { worker, telemetry } = this.stack.worker(jobs);
    const source = new SqsEventSource({ client: this.stack.clients.sqs, queueUrl: this.stack.queueUrl, handler: makeWorkerHandler({ worker, telemetry }), functionTimeoutMs: 60_000 });
    await source.drain({ timeoutMs: 20_000 });
  }

  async destroy(): Promise<void> {
    this.lambdaMock.restore();
    this.logsMock.restore();
    this.lambda.destroy();
    this.logs.destroy();
    await this.stack.destroy();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** An Invoke of the scheduler function runs the real handler in-process and answers as Lambda does. */
  private playSchedulerFunction(): void {
    const handler = makeSchedulerHandler(this.stack.scheduler(jobs, {}, { resolveParams }));
    this.lambdaMock.on(InvokeCommand).callsFake((input: InvokeInput) => answerInvoke(SCHEDULER_FUNCTION, handler, input, (event) => this.invocations.push(event)));
  }

  private async queueArn(url: string): Promise<string> {
    const result = await this.stack.clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
    return result.Attributes?.QueueArn ?? '';
  }
}

/** A line as Powertools Logger writes it to CloudWatch Logs. */
export function powertoolsLine(level: string, message: string, at: number, fields: Record<string, unknown>): string {
  return JSON.stringify({ level, message, sampling_rate: 0, service: 'ujr-worker', timestamp: new Date(at).toISOString(), ...fields });
}
