/**
 * JobRunner as a user's CDK app uses it: `ujr/cdk` in a plain App and Stack (no feature flags of
 * this repository), over a jobs module outside jobs/ (test/fixtures/user-project/), synthesized
 * with bundling and checked by cdk-nag. By default nothing needs Docker: the containers run the
 * official Node.js image and fetch the bundled code from an S3 asset; `containerImage: 'docker'`
 * builds an image from the same bundle instead.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { addNagChecks, CODE_FETCH_IMAGE, InstanceSeedError, JobRunner, NODE_IMAGE, STACK_OUTPUTS, type JobRunnerProps } from 'ujr/cdk';
import { STACK_OUTPUTS as CLI_STACK_OUTPUTS } from '../../../core/adapters/aws/stack-outputs.js';
import { render, resourcesOf } from './synth.js';

const PROJECT = 'test/fixtures/user-project';
const USER_RUNNER = { jobs: `${PROJECT}/jobs.ts`, instances: `${PROJECT}/instances.json`, stackOutputs: true } as const satisfies JobRunnerProps;

interface AssetManifest {
  files: Record<string, { source: { path: string; packaging: string }; destinations: Record<string, { bucketName: string; objectKey: string }> }>;
  dockerImages?: Record<string, { source: { directory: string; platform?: string } }>;
}

interface Report {
  pluginReports: { pluginName: string; violations: { ruleName: string; violatingConstructs: { constructPath: string }[] }[] }[];
}

interface ContainerDefinition {
  Name: string;
  Image: unknown;
  Command?: unknown[];
  Environment?: { Name: string; Value: unknown }[];
}

const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

/** A user's app: a plain App and Stack, a JobRunner, cdk-nag's checks; synthesized with bundling, without CDK's CloudFormation validation. */
function synthesizeUserApp(props: Partial<JobRunnerProps> = {}) {
  const outdir = mkdtempSync(join(tmpdir(), 'ujr-user-cdk-'));
  outdirs.push(outdir);
  const app = new App({ outdir });
  const stack = new Stack(app, 'Research');
  const runner = new JobRunner(stack, 'Jobs', { ...USER_RUNNER, ...props });
  addNagChecks(app);
  const validation = process.env.CDK_VALIDATION;
  process.env.CDK_VALIDATION = 'false';
  try {
    app.synth();
  } finally {
    if (validation === undefined) delete process.env.CDK_VALIDATION;
    else process.env.CDK_VALIDATION = validation;
  }
  const manifest = JSON.parse(readFileSync(join(outdir, `${stack.artifactId}.assets.json`), 'utf8')) as AssetManifest;
  const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as Report;
  const template = Template.fromStack(stack);
  const containers = new Map(
    resourcesOf(template, 'AWS::ECS::TaskDefinition').map(([id, definition]) => [id, definition.Properties?.ContainerDefinitions as ContainerDefinition[]]),
  );
  return { outdir, stack, runner, template, manifest, report, containers };
}

describe('a user\'s app over its own jobs module', () => {
  const { outdir, runner, template, manifest, report, containers } = synthesizeUserApp();
  const codeAssets = Object.values(manifest.files).filter((file) => file.source.path.endsWith('.mjs'));
  const code = codeAssets[0];
  const codeFile = join(outdir, code?.source.path ?? '');
  const destination = Object.values(code?.destinations ?? {})[0];

  it('passes cdk-nag\'s AwsSolutions and Serverless packs with no finding left', () => {
    expect(report.pluginReports.flatMap((plugin) => plugin.violations)).toEqual([]);
  });

  it('bundles the user\'s jobs, not the repository\'s examples, into the container code', () => {
    const text = readFileSync(codeFile, 'utf8');
    expect(text).toContain('ujr-user-project-greeting');
    expect(text).toContain('"greeter"');
    for (const example of ['"collector"', '"processor"', '"archiver"', '"summary"']) expect(text).not.toContain(example);
    expect(runner.jobTypes).toEqual(['greeter']);
  });

  it('runs the public Node.js image after an init container from the AWS CLI image, and no image asset of ours', () => {
    expect(manifest.dockerImages ?? {}).toEqual({});
    template.resourceCountIs('AWS::ECS::TaskDefinition', 2);
    for (const definitions of containers.values()) {
      expect(definitions.map((container) => [container.Name, container.Image]).sort()).toEqual(
        [['fetch-code', CODE_FETCH_IMAGE], [definitions.find((c) => c.Name !== 'fetch-code')?.Name, NODE_IMAGE]].sort(),
      );
    }
  });

  it('has the containers fetch exactly the code asset (one file) and check its SHA-256, computed from that file', () => {
    expect(codeAssets).toHaveLength(1);
    const sha256 = createHash('sha256').update(readFileSync(codeFile)).digest('hex');
    for (const definitions of containers.values()) {
      const fetch = definitions.find((container) => container.Name === 'fetch-code');
      expect(fetch?.Command).toEqual(['s3api', 'get-object', '--bucket', { 'Fn::Sub': destination?.bucketName }, '--key', destination?.objectKey, '/ujr/code/index.mjs']);
      const node = definitions.find((container) => container.Name !== 'fetch-code');
      expect(node?.Environment?.find((v) => v.Name === 'UJR_CODE_SHA256')?.Value).toBe(sha256);
    }
  });

  it('lets the task roles GetObject exactly the code asset\'s key, and grants nothing else on the assets bucket', () => {
    const objectArn = `arn:<AWS::Partition>:s3:::${destination?.bucketName ?? ''}/${destination?.objectKey ?? ''}`;
    const onAssets = resourcesOf(template, 'AWS::IAM::Policy').flatMap(([id, policy]) =>
      (policy.Properties?.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] }).Statement.filter((statement) => JSON.stringify(statement.Resource).includes('-assets-')).map((statement) => ({ id, statement })),
    );
    expect(onAssets.map(({ id }) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual(['JobsConductorTaskTaskRoleDefaultPolicy', 'JobsLongTaskTaskRoleDefaultPolicy']);
    for (const { statement } of onAssets) expect({ action: statement.Action, resource: render(statement.Resource) }).toEqual({ action: 's3:GetObject', resource: objectArn });
  });

  it('writes the outputs the CLI reads at the stack\'s top level, as asked', () => {
    const outputs = Object.keys(template.findOutputs('*'));
    expect(outputs.sort()).toEqual(Object.values(STACK_OUTPUTS).sort());
    for (const key of Object.values(CLI_STACK_OUTPUTS)) expect(outputs).toContain(key);
  });

  it('seeds the instances of the user\'s file and alarms on the failure rate of its job type', () => {
    const seeds = resourcesOf(template, 'Custom::UjrInstanceConfig');
    expect(seeds.map(([, seed]) => render(seed.Properties?.Create))).toEqual([expect.stringContaining('"instanceId":{"S":"hello-world"}')]);
    const alarms = resourcesOf(template, 'AWS::CloudWatch::Alarm').map(([, alarm]) => JSON.stringify(alarm.Properties?.Metrics ?? []));
    expect(alarms.filter((metrics) => metrics.includes('"jobType","Value":"greeter"'))).toHaveLength(1);
  });
});

describe('a user\'s app with containerImage: \'docker\'', () => {
  const { outdir, manifest, report, containers } = synthesizeUserApp({ containerImage: 'docker' });
  const images = Object.values(manifest.dockerImages ?? {});

  it('builds one image asset, for ARM64, from a generated context: a Dockerfile on the Node.js image and the bundle', () => {
    expect(images.map((image) => image.source.platform)).toEqual(['linux/arm64']);
    const context = join(outdir, images[0]?.source.directory ?? '');
    expect(readFileSync(join(context, 'Dockerfile'), 'utf8')).toContain(`FROM ${NODE_IMAGE}\n`);
    expect(readFileSync(join(context, 'index.mjs'), 'utf8')).toContain('ujr-user-project-greeting');
    expect(existsSync(join(context, 'package.json'))).toBe(false);
  });

  it('runs that image in both task definitions, without an init container or a code asset', () => {
    for (const definitions of containers.values()) {
      expect(definitions).toHaveLength(1);
      expect(render(definitions[0]?.Image)).toContain('container-assets');
      expect(definitions[0]?.Environment?.some((v) => v.Name === 'UJR_CODE_SHA256')).toBe(false);
    }
    expect(Object.values(manifest.files).filter((file) => file.source.path.endsWith('.mjs'))).toEqual([]);
  });

  it('passes cdk-nag with no finding left (the image pull\'s ECR login acknowledged)', () => {
    expect(report.pluginReports.flatMap((plugin) => plugin.violations)).toEqual([]);
  });
});

describe('addNagChecks', () => {
  it('adds both packs to a plain app: a planted unencrypted queue stops its synthesis', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'ujr-user-cdk-'));
    outdirs.push(outdir);
    const app = new App({ outdir });
    new sqs.Queue(new Stack(app, 'Planted'), 'Queue', { encryption: sqs.QueueEncryption.UNENCRYPTED });
    addNagChecks(app);
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});

    expect(() => app.synth()).toThrow();

    error.mockRestore();
    const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as Report;
    expect(report.pluginReports.map((plugin) => plugin.pluginName).sort()).toEqual(['AwsSolutions', 'Serverless']);
    expect(report.pluginReports.flatMap((plugin) => plugin.violations.map((v) => v.ruleName))).toContain('AwsSolutions-SQS2');
  });
});

describe('a user\'s invalid instance entry', () => {
  it('stops the synthesis, naming the instance and the field', () => {
    const construct = () => new JobRunner(new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Research'), 'Jobs', { jobs: USER_RUNNER.jobs, instances: [{ id: 'nobody', job: 'greeter', params: { who: '' } }] });

    expect(construct).toThrow(InstanceSeedError);
    expect(construct).toThrow(/the instances prop: instance "nobody": params\.who: /);
  });
});
