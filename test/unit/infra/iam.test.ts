/**
 * Least privilege, checked on every policy of the synthesized stack (identity policies, roles'
 * inline policies, bucket, queue, topic and key policies): no wildcard action is allowed, every
 * `Resource: "*"` is one AWS requires and is justified here, the fleet and secret grants are
 * scoped, and the granted data actions are the ones the adapters call.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TABLES } from '../../../core/adapters/aws/tables.js';
import { ROOT } from '../../../core/package-root.js';
import { DYNAMODB_DATA_ACTIONS, S3_BUCKET_ACTIONS, S3_OBJECT_ACTIONS, S3_OBJECT_READ_ACTIONS } from '../../../infra/job-runner.js';
import { logicalId, render, resourcesOf, synthesize } from './synth.js';

const { template } = synthesize();

interface Statement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource?: unknown;
  Principal?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

interface Located {
  /** The logical id of the resource holding the policy. */
  holder: string;
  type: string;
  statement: Statement;
}

const list = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/** Every statement of every policy in the template. */
function statements(): Located[] {
  const found: Located[] = [];
  const add = (holder: string, type: string, document: unknown) => {
    for (const statement of (document as { Statement: Statement[] }).Statement) found.push({ holder, type, statement });
  };
  for (const type of ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy', 'AWS::S3::BucketPolicy', 'AWS::SQS::QueuePolicy', 'AWS::SNS::TopicPolicy']) {
    for (const [id, resource] of resourcesOf(template, type)) add(id, type, resource.Properties?.PolicyDocument);
  }
  for (const [id, role] of resourcesOf(template, 'AWS::IAM::Role')) {
    for (const policy of list(role.Properties?.Policies as { PolicyDocument: unknown }[] | undefined)) add(id, 'AWS::IAM::Role', policy.PolicyDocument);
  }
  for (const [id, key] of resourcesOf(template, 'AWS::KMS::Key')) add(id, 'AWS::KMS::Key', key.Properties?.KeyPolicy);
  return found;
}

const all = statements();
const allowed = all.filter(({ statement }) => statement.Effect === 'Allow');

/** The statements of the default policy of a role whose logical id starts with `rolePrefix`. */
function policyOf(rolePrefix: string): Statement[] {
  const role = logicalId(template, 'AWS::IAM::Role', rolePrefix);
  return resourcesOf(template, 'AWS::IAM::Policy')
    .filter(([, policy]) => list(policy.Properties?.Roles as unknown[]).some((ref) => render(ref) === `<${role}>`))
    .flatMap(([, policy]) => (policy.Properties?.PolicyDocument as { Statement: Statement[] }).Statement);
}

function actionsOn(statementsOfRole: Statement[]): Set<string> {
  return new Set(statementsOfRole.flatMap((statement) => list(statement.Action)));
}

/**
 * The only `Resource: "*"` grants, each with why AWS leaves no narrower choice. In a key policy
 * `"*"` means the key itself.
 */
const STAR_RESOURCES_JUSTIFIED: Record<string, string> = {
  'xray:PutTraceSegments': 'X-Ray has no resource-level permissions (active tracing of the Lambdas).',
  'xray:PutTelemetryRecords': 'X-Ray has no resource-level permissions (active tracing of the Lambdas).',
  'ecr:GetAuthorizationToken': 'An ECR login token is account-wide: the execution roles need it to pull the image.',
};

describe('IAM', () => {
  it('reads every policy of the stack (the check is not vacuous)', () => {
    expect(allowed.length).toBeGreaterThan(20);
    expect(new Set(all.map(({ type }) => type))).toEqual(new Set(['AWS::IAM::Policy', 'AWS::S3::BucketPolicy', 'AWS::SQS::QueuePolicy', 'AWS::SNS::TopicPolicy', 'AWS::KMS::Key']));
  });

  it('allows no wildcard action, save the account\'s administration of its own KMS key', () => {
    const wildcards = allowed.filter(({ statement }) => list(statement.Action).some((action) => action.includes('*')));
    // The default key policy: the account (root) administers the key through IAM. Without it the
    // key could not be managed or deleted; no role of the stack is granted anything by it.
    expect(wildcards.map(({ type, statement }) => ({ type, action: statement.Action, principal: render((statement.Principal as { AWS: unknown }).AWS) }))).toEqual([
      { type: 'AWS::KMS::Key', action: 'kms:*', principal: 'arn:<AWS::Partition>:iam::<AWS::AccountId>:root' },
    ]);
  });

  it('grants "*" resources only for actions that have no resource-level permissions, each justified above', () => {
    for (const { type, statement } of allowed) {
      if (!list(statement.Resource).includes('*') || type === 'AWS::KMS::Key') continue;
      for (const action of list(statement.Action)) expect(STAR_RESOURCES_JUSTIFIED, `${action} on "*"`).toHaveProperty([action]);
    }
  });

  it('lets CloudWatch use the alarm topic\'s key, and publish to the topic for this account\'s alarms only', () => {
    const keyStatements = allowed.filter(({ type }) => type === 'AWS::KMS::Key').map(({ statement }) => statement);
    expect(keyStatements).toContainEqual(expect.objectContaining({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey'] }));
    const topicStatements = allowed.filter(({ type }) => type === 'AWS::SNS::TopicPolicy').map(({ statement }) => statement);
    expect(topicStatements).toEqual([
      expect.objectContaining({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: 'sns:Publish', Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } } }),
    ]);
  });

  it('denies every request without TLS to the buckets and queues', () => {
    const denials = all.filter(({ statement }) => statement.Effect === 'Deny' && JSON.stringify(statement.Condition) === JSON.stringify({ Bool: { 'aws:SecureTransport': 'false' } }));
    expect(new Set(denials.map(({ type }) => type))).toEqual(new Set(['AWS::S3::BucketPolicy', 'AWS::SQS::QueuePolicy', 'AWS::SNS::TopicPolicy']));
    expect(denials.filter(({ type }) => type === 'AWS::SQS::QueuePolicy')).toHaveLength(4);
  });
});

describe('the scheduler\'s fleet permissions', () => {
  const scheduler = policyOf('RunnerSchedulerRole');
  const service = logicalId(template, 'AWS::ECS::Service', 'RunnerConductorService');
  const cluster = logicalId(template, 'AWS::ECS::Cluster', 'RunnerCluster');
  const family = (resourcesOf(template, 'AWS::ECS::TaskDefinition').find(([id]) => id.startsWith('RunnerLongTask'))?.[1].Properties?.Family ?? '') as string;

  it('sizes only the conductor service', () => {
    const ecs = scheduler.filter((s) => list(s.Action).some((a) => a === 'ecs:UpdateService' || a === 'ecs:DescribeServices'));
    expect(ecs).toEqual([expect.objectContaining({ Action: ['ecs:DescribeServices', 'ecs:UpdateService'], Resource: { Ref: service } })]);
  });

  it('runs only the long-task family, only in its cluster', () => {
    const runTask = scheduler.filter((s) => list(s.Action).includes('ecs:RunTask'));
    expect(runTask).toHaveLength(1);
    expect(render(runTask[0]?.Resource)).toBe(`arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task-definition/${family}:*`);
    expect(runTask[0]?.Condition).toEqual({ ArnEquals: { 'ecs:cluster': { 'Fn::GetAtt': [cluster, 'Arn'] } } });
  });

  it('passes only the long task\'s two roles, and only to ECS tasks', () => {
    const passRole = scheduler.filter((s) => list(s.Action).includes('iam:PassRole'));
    expect(passRole).toHaveLength(1);
    expect(list(passRole[0]?.Resource).map(render).sort()).toEqual([
      `<${logicalId(template, 'AWS::IAM::Role', 'RunnerLongTaskExecutionRole')}.Arn>`,
      `<${logicalId(template, 'AWS::IAM::Role', 'RunnerLongTaskTaskRole')}.Arn>`,
    ]);
    expect(passRole[0]?.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } });
  });

  it('is the only role that may touch the fleet', () => {
    const holdersOf = (action: string) => new Set(allowed.filter(({ statement }) => list(statement.Action).includes(action)).map(({ holder }) => holder));
    const schedulerPolicy = logicalId(template, 'AWS::IAM::Policy', 'RunnerSchedulerRoleDefaultPolicy');
    for (const action of ['ecs:UpdateService', 'ecs:DescribeServices', 'ecs:RunTask', 'iam:PassRole']) expect(holdersOf(action), action).toEqual(new Set([schedulerPolicy]));
  });
});

describe('the containers\' code', () => {
  const taskRolePolicies = ['RunnerConductorTaskTaskRoleDefaultPolicy', 'RunnerLongTaskTaskRoleDefaultPolicy'].map((prefix) => logicalId(template, 'AWS::IAM::Policy', prefix));
  const assets = allowed.filter(({ statement }) => list(statement.Resource).some((resource) => render(resource).includes('-assets-')));
  const fetchCommands = resourcesOf(template, 'AWS::ECS::TaskDefinition').map(([, definition]) =>
    (definition.Properties?.ContainerDefinitions as { Name: string; Command?: unknown[] }[]).find((container) => container.Name === 'fetch-code')?.Command ?? [],
  );

  it('is readable by the two task roles only, with one GetObject of exactly the object the init container fetches', () => {
    expect(assets.map(({ holder }) => holder).sort()).toEqual([...taskRolePolicies].sort());
    for (const [index, { statement }] of assets.entries()) {
      const command = fetchCommands[index] ?? [];
      expect(statement.Action).toBe('s3:GetObject');
      expect(statement.Condition).toBeUndefined();
      expect(render(statement.Resource)).toBe(`arn:<AWS::Partition>:s3:::${render(command[3])}/${String(command[5])}`);
      expect(render(statement.Resource)).not.toContain('*');
    }
  });
});

describe('secrets', () => {
  it.each(['RunnerSchedulerRole', 'RunnerWorkerRole', 'RunnerConductorTaskTaskRole', 'RunnerLongTaskTaskRole'])('%s reads SSM parameters under /ujr/ and secrets named ujr/… only', (role) => {
    const policy = policyOf(role);
    const ssm = policy.filter((s) => list(s.Action).includes('ssm:GetParameter'));
    const secrets = policy.filter((s) => list(s.Action).includes('secretsmanager:GetSecretValue'));
    expect(ssm.map((s) => render(s.Resource))).toEqual(['arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/ujr/*']);
    expect(secrets.map((s) => render(s.Resource))).toEqual(['arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:ujr/*']);
  });
});

describe('data permissions', () => {
  /** AWS SDK v3 command → the IAM action it needs. */
  const commandActions: Record<string, string[]> = {
    GetCommand: ['dynamodb:GetItem'],
    PutCommand: ['dynamodb:PutItem'],
    UpdateCommand: ['dynamodb:UpdateItem'],
    DeleteCommand: ['dynamodb:DeleteItem'],
    QueryCommand: ['dynamodb:Query'],
    ScanCommand: ['dynamodb:Scan'],
    BatchGetCommand: ['dynamodb:BatchGetItem'],
    BatchWriteCommand: ['dynamodb:BatchWriteItem'],
    // IAM authorises a transaction's actions one by one; the adapter's are ConditionCheck, Put and Update.
    TransactWriteCommand: ['dynamodb:ConditionCheckItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
    PutObjectCommand: ['s3:PutObject'],
    GetObjectCommand: ['s3:GetObject'],
    HeadObjectCommand: ['s3:GetObject'],
    ListObjectsV2Command: ['s3:ListBucket'],
    DeleteObjectCommand: ['s3:DeleteObject'],
  };

  /** The commands a source file constructs (`new …Command(`). */
  function commandsOf(file: string): Set<string> {
    const source = readFileSync(join(ROOT, file), 'utf8');
    return new Set([...source.matchAll(/new (\w+Command)\(/g)].map((match) => match[1] as string));
  }

  /** The IAM actions an adapter's commands need (over all its files); fails on a command this test does not know yet. */
  function actionsCalledBy(...files: string[]): Set<string> {
    const calls = files.flatMap((file) => [...commandsOf(file)].map((command) => ({ file, command })));
    expect(calls.length).toBeGreaterThan(0);
    return new Set(
      calls.flatMap(({ file, command }) => {
        const actions = commandActions[command];
        if (!actions) throw new Error(`${file} calls ${command}: add its IAM action to this test and to infra/job-runner.ts`);
        return actions;
      }),
    );
  }

  /** The TypeScript sources under a folder of the repository, recursively. */
  function sourcesUnder(dir: string): string[] {
    return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
      .map((file) => `${dir}/${file.split(sep).join('/')}`);
  }

  /** The DynamoDB adapter: the DynamoStore facade and the modules it composes. */
  const dynamoAdapter = ['core/adapters/aws/dynamo-store.ts', ...sourcesUnder('core/adapters/aws/dynamo')];

  it('grants exactly the DynamoDB actions the DynamoDB adapter calls, and nothing else in the core calls DynamoDB data actions', () => {
    expect(dynamoAdapter).toEqual(expect.arrayContaining(['core/adapters/aws/dynamo/table-calls.ts', 'core/adapters/aws/dynamo/leases.ts']));
    expect(actionsCalledBy(...dynamoAdapter)).toEqual(new Set(DYNAMODB_DATA_ACTIONS));
    const dataCommands = new Set(Object.entries(commandActions).flatMap(([command, actions]) => (actions.some((a) => a.startsWith('dynamodb:')) ? [command] : [])));
    const callers = sourcesUnder('core').filter((file) => [...commandsOf(file)].some((command) => dataCommands.has(command)));
    expect(callers.sort()).toEqual(dynamoAdapter.filter((file) => commandsOf(file).size > 0).sort());
  });

  it('grants exactly the S3 actions the object store calls', () => {
    expect(actionsCalledBy('core/adapters/aws/s3-objects.ts')).toEqual(new Set([...S3_OBJECT_ACTIONS, ...S3_BUCKET_ACTIONS]));
  });

  it.each(['RunnerSchedulerRole', 'RunnerWorkerRole', 'RunnerConductorTaskTaskRole', 'RunnerLongTaskTaskRole'])('%s may use the three tables and their indexes by name, and list and read the bucket', (role) => {
    const policy = policyOf(role);
    const dynamo = policy.find((s) => list(s.Action).includes('dynamodb:GetItem'));
    expect(list(dynamo?.Action).sort()).toEqual([...DYNAMODB_DATA_ACTIONS].sort());
    const resources = list(dynamo?.Resource).map(render);
    expect(resources.some((r) => r.endsWith('/index/*'))).toBe(false);
    // Every index of core/adapters/aws/tables.ts, by name (the adapter queries them all).
    const indexes = Object.values(TABLES).flatMap((table) => table.globalSecondaryIndexes.map((index) => index.indexName));
    expect(indexes).toContain('byRoute');
    for (const index of indexes) expect(resources.some((r) => r.endsWith(`/index/${index}`)), index).toBe(true);
    expect(resources.filter((r) => !r.includes('/index/'))).toHaveLength(3);
    const actions = actionsOn(policy);
    for (const action of [...S3_OBJECT_READ_ACTIONS, ...S3_BUCKET_ACTIONS]) expect(actions.has(action), action).toBe(true);
  });

  it('lets the runtimes that run tasks write the bucket, and the scheduler (plans only read) not', () => {
    const writes = ['s3:PutObject', 's3:DeleteObject'];
    for (const role of ['RunnerWorkerRole', 'RunnerConductorTaskTaskRole', 'RunnerLongTaskTaskRole']) {
      for (const action of writes) expect(actionsOn(policyOf(role)).has(action), `${role} ${action}`).toBe(true);
    }
    for (const action of writes) expect(actionsOn(policyOf('RunnerSchedulerRole')).has(action), action).toBe(false);
    expect(S3_OBJECT_ACTIONS).toEqual(expect.arrayContaining([...S3_OBJECT_READ_ACTIONS]));
  });

  it('lets each runtime send only where it sends', () => {
    const taskQueue = `<${logicalId(template, 'AWS::SQS::Queue', 'RunnerTaskQueue')}.Arn>`;
    const deadLetterQueue = `<${logicalId(template, 'AWS::SQS::Queue', 'RunnerDeadLetterQueue')}.Arn>`;
    const sendsTo = (role: string) =>
      policyOf(role)
        .filter((s) => list(s.Action).includes('sqs:SendMessage'))
        .flatMap((s) => list(s.Resource).map(render))
        .sort();
    const planQueue = `<${logicalId(template, 'AWS::SQS::Queue', 'RunnerPlanQueue')}.Arn>`;
    expect(sendsTo('RunnerSchedulerRole')).toEqual([taskQueue]);
    // Follow-up requests go to the plan queue from whoever records a task's end.
    expect(sendsTo('RunnerWorkerRole')).toEqual([deadLetterQueue, planQueue, taskQueue].sort());
    expect(sendsTo('RunnerLongTaskTaskRole')).toEqual([deadLetterQueue, planQueue, taskQueue].sort());
    expect(sendsTo('RunnerConductorTaskTaskRole')).toEqual([planQueue]);
  });

  it('lets the seed write config items of the instances table, and nothing else', () => {
    const seed = policyOf('RunnerSeedRole').filter((s) => !list(s.Action).some((a) => a.startsWith('logs:')));
    expect(seed).toEqual([expect.objectContaining({ Action: 'dynamodb:UpdateItem', Resource: { 'Fn::GetAtt': [logicalId(template, 'AWS::DynamoDB::Table', 'RunnerInstancesTable'), 'Arn'] } })]);
  });
});
