/**
 * cdk-nag, for those who use it: the checks of this repository's app ({@link addNagChecks}) and
 * precise acknowledgements of the findings the construct knowingly raises. cdk-nag is not a
 * dependency of ujr: it is loaded when present (from the app's project first, then from ujr's
 * location), and without it nothing is checked, so there is nothing to acknowledge.
 *
 * cdk-nag 3 names each wildcard finding after the resource as it appears in the template
 * (`AwsSolutions-IAM5[Resource::<Bucket.Arn>/*]`) and has no prefix matching, so the
 * acknowledgement is computed from the same ARN the grant used, with cdk-nag's own flattening: it
 * names exactly that resource and nothing else.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { NagUnavailableError } from './errors.js';

type CdkNag = typeof import('cdk-nag');
type FlattenModule = typeof import('cdk-nag/lib/utils/flatten-cfn-reference.js');

/** `specifier` required from the app's project, else from ujr's location; undefined when cdk-nag is not installed. */
function requireNag<T>(specifier: string): T | undefined {
  for (const base of [join(process.cwd(), 'package.json'), import.meta.url]) {
    try {
      return createRequire(base)(specifier) as T;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw error;
    }
  }
  return undefined;
}

let flatten: FlattenModule['flattenCfnReference'] | null | undefined;

/** cdk-nag's flattening of a CloudFormation value, or undefined without cdk-nag. */
function flattenOf(): FlattenModule['flattenCfnReference'] | undefined {
  flatten ??= requireNag<FlattenModule>('cdk-nag/lib/utils/flatten-cfn-reference.js')?.flattenCfnReference ?? null;
  return flatten ?? undefined;
}

/**
 * Adds cdk-nag's AWS Solutions and Serverless packs to `scope` (an app or a stack) as validation
 * plugins: the synthesis stops on any finding nobody acknowledged. Needs cdk-nag 3 installed in
 * your project (`npm install --save-dev cdk-nag`); a JobRunner acknowledges its own findings.
 *
 * @example
 * ```ts
 * const app = new App();
 * new UjrStack(app, 'Ujr', { runner: { jobs: 'jobs/index.ts' } });
 * addNagChecks(app);
 * ```
 */
export function addNagChecks(scope: IConstruct): void {
  const nag = requireNag<CdkNag>('cdk-nag');
  if (!nag) throw new NagUnavailableError('addNagChecks needs cdk-nag, which ujr does not install: run `npm install --save-dev cdk-nag@3` in your CDK project');
  Validations.of(scope).addPlugins(new nag.AwsSolutionsChecks(scope), new nag.ServerlessChecks(scope));
}

/** The finding id AwsSolutions-IAM5 reports for a wildcard `resourceArn` (a token or a plain ARN); undefined without cdk-nag. */
export function wildcardResourceFinding(scope: IConstruct, resourceArn: string): string | undefined {
  const flattenCfnReference = flattenOf();
  return flattenCfnReference && `AwsSolutions-IAM5[Resource::${flattenCfnReference(Stack.of(scope).resolve(resourceArn))}]`;
}

/**
 * Acknowledges AwsSolutions-IAM5 for each wildcard ARN in the policies under `scope` (a role:
 * its default policy is a child), with the reason the wildcard is needed.
 *
 * @example
 * ```ts
 * acknowledgeWildcardResources(role, [bucket.arnForObjects('*')], 'jobs choose their keys');
 * ```
 */
export function acknowledgeWildcardResources(scope: IConstruct, resourceArns: readonly string[], reason: string): void {
  for (const arn of resourceArns) {
    const id = wildcardResourceFinding(scope, arn);
    if (id !== undefined) Validations.of(scope).acknowledge({ id, reason });
  }
}

/** Acknowledges findings that are not about one resource, each with its reason. */
export function acknowledge(scope: IConstruct, findings: Readonly<Record<string, string>>): void {
  for (const [id, reason] of Object.entries(findings)) Validations.of(scope).acknowledge({ id, reason });
}
