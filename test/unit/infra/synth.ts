/**
 * Synthesis for the infra tests: the app's own context (cdk.json's feature flags), no account, no
 * Docker; image assets are only staged, never built. Two costly steps are left to the tests that
 * ask for them (test/unit/infra/app.test.ts synthesizes the app exactly as `npx cdk synth` does):
 * bundling the code (`aws:cdk:bundling-stacks: []` skips it; `bundle: true` keeps it) and CDK's
 * built-in CloudFormation validation (a WASM rule engine, ~15 s on this template;
 * `CDK_VALIDATION=false` skips it; `full: true` does both). The cdk-nag plugins always run.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Annotations, Template } from 'aws-cdk-lib/assertions';
import type { App } from 'aws-cdk-lib';
import { afterAll } from 'vitest';
import { ROOT } from '../../../core/package-root.js';
import { createApp } from '../../../infra/app.js';
import type { JobRunnerProps } from '../../../infra/job-runner.js';
import type { UjrStack } from '../../../infra/stack.js';

/** The context of cdk.json, as `npx cdk synth` passes it. */
export function cdkContext(): Record<string, unknown> {
  const parsed: unknown = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8'));
  if (typeof parsed !== 'object' || parsed === null || !('context' in parsed) || typeof parsed.context !== 'object' || parsed.context === null) {
    throw new Error('cdk.json has no "context" object');
  }
  return { ...parsed.context };
}

export interface Synthesized {
  app: App;
  stack: UjrStack;
  template: Template;
  /** Warnings and errors CDK attached to the stack's constructs. */
  annotations: Annotations;
  /** The cloud assembly's directory. */
  outdir: string;
}

/** A fresh output directory, removed after the file's tests. */
function tempOutdir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ujr-cdk-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Builds the app as infra/app.ts does (cdk-nag plugins included) around a runner with `props`
 * (over the example jobs unless they say otherwise), and synthesizes its stack's template.
 */
export function synthesize(props: Partial<JobRunnerProps> = {}, options: { full?: boolean; bundle?: boolean; stackName?: string } = {}): Synthesized {
  const outdir = tempOutdir();
  const context = { ...cdkContext(), ...(options.full || options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }) };
  const { app, stack } = createApp({ app: { context, outdir }, stackName: options.stackName ?? 'Test', stack: { runner: props } });
  const validation = process.env.CDK_VALIDATION;
  if (!options.full) process.env.CDK_VALIDATION = 'false';
  try {
    return { app, stack, template: Template.fromStack(stack), annotations: Annotations.fromStack(stack), outdir };
  } finally {
    if (validation === undefined) delete process.env.CDK_VALIDATION;
    else process.env.CDK_VALIDATION = validation;
  }
}

/** A CloudFormation `Fn::Join` / `Ref` / `Fn::GetAtt` / `Fn::Sub` value rendered with placeholders, for reading parameters. */
export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) {
    if ('Fn::Join' in value && Array.isArray(value['Fn::Join'])) {
      const [separator, parts] = value['Fn::Join'] as [string, unknown[]];
      return parts.map(render).join(separator);
    }
    if ('Ref' in value) return `<${String(value.Ref)}>`;
    if ('Fn::Sub' in value && typeof value['Fn::Sub'] === 'string') return value['Fn::Sub'];
    if ('Fn::GetAtt' in value && Array.isArray(value['Fn::GetAtt'])) return `<${(value['Fn::GetAtt'] as string[]).join('.')}>`;
  }
  return JSON.stringify(value);
}

/** Resources of a type, as `[logicalId, resource]`. */
export function resourcesOf(template: Template, type: string): [string, { Properties?: Record<string, unknown>; DeletionPolicy?: string; UpdateReplacePolicy?: string }][] {
  return Object.entries(template.findResources(type));
}

/** The logical id of the only resource of `type` whose id starts with `prefix`. */
export function logicalId(template: Template, type: string, prefix: string): string {
  const ids = resourcesOf(template, type)
    .map(([id]) => id)
    .filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) throw new Error(`expected one ${type} named ${prefix}…, found ${ids.length}: ${ids.join(', ')}`);
  return ids[0] as string;
}
