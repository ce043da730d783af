/**
 * The CloudFormation outputs of a ujr stack that the CLI's `--stack <name>` mode reads: table,
 * bucket, queue, function and log group names, and the region. The CDK stack emits one output
 * under each key of {@link STACK_OUTPUTS} (as its logical id, so that DescribeStacks and
 * `cdk deploy --outputs-file` both show exactly these keys).
 *
 * Outputs come from DescribeStacks, or, when `UJR_STACK_OUTPUTS` names a JSON file, from that file
 * (tests, offline use, or the file `npx cdk deploy --outputs-file outputs.json` writes). The file
 * may hold `{ "<stack>": { ...outputs } }` (CDK's layout) or the outputs as one flat object.
 */
import { readFile } from 'node:fs/promises';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { z } from 'zod';
import { ConfigError } from '../../errors.js';

/** The output key of each thing the CLI needs; every ujr stack emits all of them. */
export const STACK_OUTPUTS = {
  /** The leases table (the board): what is leased, running or queued right now. */
  leasesTable: 'LeasesTableName',
  /** The runs table: run records, their log lines and pending triggers. */
  runsTable: 'RunsTableName',
  /** The instances table: each instance's entry (with run-time overrides), status and state. */
  instancesTable: 'InstancesTableName',
  /** The S3 bucket of the object store. */
  dataBucket: 'DataBucketName',
  /** The task queue's URL. */
  taskQueueUrl: 'TaskQueueUrl',
  /** The task queue's ARN: where `ujr redrive` moves dead letters back to. */
  taskQueueArn: 'TaskQueueArn',
  /** The task queue's dead-letter queue's URL (its depth). */
  deadLetterQueueUrl: 'DeadLetterQueueUrl',
  /** The dead-letter queue's ARN: the source of `ujr redrive` (StartMessageMoveTask). */
  deadLetterQueueArn: 'DeadLetterQueueArn',
  /** The scheduler Lambda: `ujr trigger --stack` invokes it with `{ instanceId, task?, input? }`. */
  schedulerFunction: 'SchedulerFunctionName',
  /** Log group of the scheduler Lambda (plans). */
  schedulerLogGroup: 'SchedulerLogGroupName',
  /** Log group of the worker Lambda (batch task runs). */
  workerLogGroup: 'WorkerLogGroupName',
  /** Log group of the conductor containers (continuous task runs). */
  conductorLogGroup: 'ConductorLogGroupName',
  /** The region the stack is deployed in: every client of the CLI uses it. */
  region: 'Region',
} as const;

/**
 * Outputs read when present: stacks that have them get more out of the CLI, older ones still work.
 * `LongTaskLogGroupName`: log group of the one-off Fargate tasks that run long batch tasks (`ujr logs`
 * searches it too).
 */
export const OPTIONAL_STACK_OUTPUTS = {
  longTaskLogGroup: 'LongTaskLogGroupName',
} as const;

export type StackOutputKey = (typeof STACK_OUTPUTS)[keyof typeof STACK_OUTPUTS];

const name = z.string().trim().min(1, 'is empty');
const url = z.url('is not a URL');
const arn = z.string().regex(/^arn:[\w-]+:[\w-]+:[\w-]*:\d*:.+$/, 'is not an ARN');

/** The parsed outputs of a ujr stack, by output key. */
export const stackOutputsSchema = z.object({
  [STACK_OUTPUTS.leasesTable]: name,
  [STACK_OUTPUTS.runsTable]: name,
  [STACK_OUTPUTS.instancesTable]: name,
  [STACK_OUTPUTS.dataBucket]: name,
  [STACK_OUTPUTS.taskQueueUrl]: url,
  [STACK_OUTPUTS.taskQueueArn]: arn,
  [STACK_OUTPUTS.deadLetterQueueUrl]: url,
  [STACK_OUTPUTS.deadLetterQueueArn]: arn,
  [STACK_OUTPUTS.schedulerFunction]: name,
  [STACK_OUTPUTS.schedulerLogGroup]: name,
  [STACK_OUTPUTS.workerLogGroup]: name,
  [STACK_OUTPUTS.conductorLogGroup]: name,
  [STACK_OUTPUTS.region]: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'is not an AWS region (e.g. eu-west-1)'),
  [OPTIONAL_STACK_OUTPUTS.longTaskLogGroup]: name.optional(),
});

export type StackOutputs = z.infer<typeof stackOutputsSchema>;

/** The stack's outputs cannot be read or are incomplete; the message says what to do. */
export class StackOutputsError extends ConfigError {
  constructor(
    message: string,
    readonly stackName: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** No stack of that name in the account and region used. */
export class StackNotFoundError extends StackOutputsError {}

/** The stack (or outputs file) lacks outputs this version of ujr needs. */
export class MissingStackOutputError extends StackOutputsError {
  constructor(
    message: string,
    stackName: string,
    readonly missing: readonly string[],
  ) {
    super(message, stackName);
  }
}

export interface LoadStackOutputsOptions {
  /** Default: a client with the SDK's default region and credentials (AWS_PROFILE, AWS_REGION, …). */
  cloudformation?: CloudFormationClient;
  /** Where `UJR_STACK_OUTPUTS` and `AWS_PROFILE` are read. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Reads and validates the outputs of stack `stackName`: from the JSON file named by
 * `UJR_STACK_OUTPUTS` when set, else with CloudFormation's DescribeStacks.
 *
 * @throws {StackNotFoundError} when the stack does not exist (the message names region and profile).
 * @throws {MissingStackOutputError} when an output is missing (the stack predates this ujr version).
 * @throws {StackOutputsError} when the outputs cannot be read or an output is malformed.
 * @example
 * ```ts
 * const outputs = await loadStackOutputs('ujr');
 * const runsTable = outputs[STACK_OUTPUTS.runsTable];
 * ```
 */
export async function loadStackOutputs(stackName: string, options: LoadStackOutputsOptions = {}): Promise<StackOutputs> {
  const env = options.env ?? process.env;
  const file = env.UJR_STACK_OUTPUTS;
  if (file !== undefined && file !== '') {
    return validate(await readOutputsFile(file, stackName), stackName, `the outputs file ${file} (UJR_STACK_OUTPUTS)`, 'write the file again (npx cdk deploy --outputs-file)');
  }
  const client = options.cloudformation ?? new CloudFormationClient({});
  try {
    return await describeStack(client, stackName, env);
  } finally {
    if (!options.cloudformation) client.destroy();
  }
}

async function describeStack(client: CloudFormationClient, stackName: string, env: NodeJS.ProcessEnv): Promise<StackOutputs> {
  const region = await client.config.region().catch(() => undefined);
  const where = `region ${region ?? '(none set)'}, profile ${env.AWS_PROFILE ?? 'default'}`;
  let stack;
  try {
    stack = (await client.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof Error && error.name === 'ValidationError' && /does not exist/i.test(message)) {
      throw new StackNotFoundError(
        `no CloudFormation stack "${stackName}" in ${where}: deploy it with "npx cdk deploy", or pick the account and region it is in (AWS_PROFILE, AWS_REGION)`,
        stackName,
        { cause: error },
      );
    }
    const advice = region === undefined ? 'set AWS_REGION (or a profile with a region)' : 'check the credentials in use (aws sso login, AWS_PROFILE)';
    throw new StackOutputsError(`cannot read stack "${stackName}" (${where}): ${message}; ${advice}`, stackName, { cause: error });
  }
  if (!stack) {
    throw new StackNotFoundError(`no CloudFormation stack "${stackName}" in ${where}: deploy it with "npx cdk deploy"`, stackName);
  }
  const outputs: Record<string, string> = {};
  for (const output of stack.Outputs ?? []) {
    if (output.OutputKey && output.OutputValue !== undefined) outputs[output.OutputKey] = output.OutputValue;
  }
  const status = stack.StackStatus ? ` (status ${stack.StackStatus})` : '';
  return validate(outputs, stackName, `stack "${stackName}"${status} in ${where}`, 'redeploy it with "npx cdk deploy"');
}

const outputsFileSchema = z.record(z.string(), z.unknown());
const flatOutputsSchema = z.record(z.string(), z.string());

async function readOutputsFile(file: string, stackName: string): Promise<Record<string, string>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new StackOutputsError(
      `cannot read the stack outputs file ${file} (UJR_STACK_OUTPUTS): ${(error as Error).message}; point UJR_STACK_OUTPUTS at the JSON file "npx cdk deploy --outputs-file" wrote, or unset it to read the stack from AWS`,
      stackName,
      { cause: error },
    );
  }
  const object = outputsFileSchema.safeParse(raw);
  if (!object.success) {
    throw new StackOutputsError(`the stack outputs file ${file} (UJR_STACK_OUTPUTS) must hold a JSON object`, stackName);
  }
  const flat = flatOutputsSchema.safeParse(object.data);
  if (flat.success) return flat.data;
  const nested = flatOutputsSchema.safeParse(object.data[stackName]);
  if (nested.success) return nested.data;
  const stacks = Object.keys(object.data).filter((key) => typeof object.data[key] === 'object');
  throw new StackOutputsError(
    object.data[stackName] === undefined
      ? `the stack outputs file ${file} (UJR_STACK_OUTPUTS) has no outputs of stack "${stackName}"; it has ${stacks.map((s) => `"${s}"`).join(', ') || 'none'}`
      : `the stack outputs file ${file} (UJR_STACK_OUTPUTS): the outputs of "${stackName}" must be an object of strings`,
    stackName,
  );
}

function validate(outputs: Record<string, string>, stackName: string, source: string, fix: string): StackOutputs {
  const required: string[] = Object.values(STACK_OUTPUTS);
  const missing = required.filter((key) => outputs[key] === undefined);
  if (missing.length > 0) {
    throw new MissingStackOutputError(
      `${source} has no output${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: the stack predates this version of ujr; ${fix}`,
      stackName,
      missing,
    );
  }
  const parsed = stackOutputsSchema.safeParse(outputs);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `output ${issue.path.join('.')} ${issue.message} (${JSON.stringify(outputs[String(issue.path[0])])})`);
    throw new StackOutputsError(`${source}: ${problems.join('; ')}; ${fix}`, stackName);
  }
  return parsed.data;
}
