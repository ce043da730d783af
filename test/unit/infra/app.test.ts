/**
 * The app as `npx cdk synth` builds it: bundled by our esbuild bundler (no Docker), through CDK's
 * CloudFormation validation and cdk-nag's AWS Solutions and Serverless packs, with nothing left
 * unacknowledged; and every acknowledgement in code names a finding that really occurs, with its
 * reason. A planted violation proves the packs run at all.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { IConstruct } from 'constructs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createApp } from '../../../infra/app.js';
import { cdkContext, synthesize } from './synth.js';

interface Violation {
  ruleName: string;
  severity: string;
  violatingConstructs: { constructPath: string }[];
}

interface Report {
  pluginReports: { pluginName: string; violations: Violation[] }[];
}

function readReport(outdir: string): Report {
  return JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as Report;
}

/** Builds the app without bundling and without CDK's CloudFormation validation, synthesizes it, and returns the validation report. */
function synthesizeQuickly(extend: (stack: IConstruct) => void = () => {}): { report: Report; error: unknown } {
  const outdir = mkdtempSync(join(tmpdir(), 'ujr-cdk-'));
  const validation = process.env.CDK_VALIDATION;
  process.env.CDK_VALIDATION = 'false';
  try {
    const { app, stack } = createApp({ app: { context: { ...cdkContext(), 'aws:cdk:bundling-stacks': [] }, outdir }, stackName: 'Test' });
    extend(stack);
    let error: unknown;
    try {
      app.synth();
    } catch (caught) {
      error = caught;
    }
    return { report: readReport(outdir), error };
  } finally {
    if (validation === undefined) delete process.env.CDK_VALIDATION;
    else process.env.CDK_VALIDATION = validation;
    rmSync(outdir, { recursive: true, force: true });
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the app', () => {
  const { outdir, stack } = synthesize({}, { full: true, stackName: 'Ujr' });

  it('passes CloudFormation validation and cdk-nag\'s AwsSolutions and Serverless packs with no finding left, warnings included', () => {
    const report = readReport(outdir);
    expect(report.pluginReports.flatMap((plugin) => plugin.violations)).toEqual([]);
  });

  it('bundles both functions and the container with our esbuild bundler, without Docker', () => {
    const manifest = JSON.parse(readFileSync(join(outdir, `${stack.artifactId}.assets.json`), 'utf8')) as {
      files: Record<string, { source: { path: string; packaging: string } }>;
      dockerImages?: Record<string, unknown>;
    };
    const staged = Object.values(manifest.files).map((file) => join(outdir, file.source.path));
    for (const name of ['scheduler', 'worker']) {
      expect(staged.some((dir) => existsSync(join(dir, name, 'index.mjs'))), name).toBe(true);
    }
    const code = Object.values(manifest.files).filter((file) => file.source.path.endsWith('.mjs'));
    expect(code.map((file) => file.source.packaging)).toEqual(['file']);
    expect(manifest.dockerImages ?? {}).toEqual({});
    const sha256 = createHash('sha256').update(readFileSync(join(outdir, code[0]?.source.path ?? ''))).digest('hex');
    const definitions = Template.fromStack(stack).findResources('AWS::ECS::TaskDefinition');
    for (const definition of Object.values(definitions) as { Properties: { ContainerDefinitions: { Environment?: { Name: string; Value: unknown }[] }[] } }[]) {
      const digests = definition.Properties.ContainerDefinitions.flatMap((container) => container.Environment ?? []).filter((v) => v.Name === 'UJR_CODE_SHA256');
      expect(digests.map((v) => v.Value)).toEqual([sha256]);
    }
  });
});

describe('cdk-nag', () => {
  it('stops the synthesis on a finding nobody acknowledged, and reports only that one', () => {
    vi.spyOn(console, 'error').mockImplementation(() => {});
    const { report, error } = synthesizeQuickly((stack) => new sqs.Queue(stack, 'Planted', { encryption: sqs.QueueEncryption.UNENCRYPTED }));
    expect(error).toBeInstanceOf(Error);
    const violations = report.pluginReports.flatMap((plugin) => plugin.violations);
    expect(new Set(violations.flatMap((v) => v.violatingConstructs.map((c) => c.constructPath)))).toEqual(new Set(['Test/Planted/Resource']));
    expect(new Set(violations.map((v) => v.ruleName))).toEqual(new Set(['AwsSolutions-SQS2', 'AwsSolutions-SQS3', 'AwsSolutions-SQS4', 'Serverless-SQSRedrivePolicy']));
  });

  it('has every acknowledgement in code name a finding that occurs, with its reason, and every finding acknowledged', () => {
    const acknowledged: { path: string; id: string; reason: string }[] = [];
    vi.spyOn(console, 'error').mockImplementation(() => {});
    vi.spyOn(Validations.prototype, 'acknowledge').mockImplementation(function (this: Validations, acknowledgment) {
      // Ours only: CDK acknowledges some of its own CloudFormation-validation rules (not run here).
      if (/^(AwsSolutions|Serverless)-/.test(acknowledgment.id)) {
        acknowledged.push({ path: (this as unknown as { scope: IConstruct }).scope.node.path, id: acknowledgment.id, reason: acknowledgment.reason });
      }
    });
    const { report } = synthesizeQuickly();
    const findings = report.pluginReports.flatMap((plugin) => plugin.violations.flatMap((v) => v.violatingConstructs.map((c) => ({ id: v.ruleName, path: c.constructPath }))));
    const covers = (ack: { path: string; id: string }, finding: { path: string; id: string }) => ack.id === finding.id && (finding.path === ack.path || finding.path.startsWith(`${ack.path}/`));

    expect(acknowledged.length).toBeGreaterThan(0);
    for (const ack of acknowledged) {
      expect(ack.reason.length, `${ack.id} on ${ack.path} gives no reason`).toBeGreaterThan(30);
      expect(findings.some((finding) => covers(ack, finding)), `${ack.id} on ${ack.path} acknowledges nothing`).toBe(true);
    }
    for (const finding of findings) expect(acknowledged.some((ack) => covers(ack, finding)), `${finding.id} on ${finding.path}`).toBe(true);
  });
});
