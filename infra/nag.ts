/**
 * Acknowledging cdk-nag findings precisely. cdk-nag 3 names each wildcard finding after the
 * resource as it appears in the template (`AwsSolutions-IAM5[Resource::<Bucket.Arn>/*]`) and has
 * no prefix matching, so the acknowledgement is computed from the same ARN the grant used, with
 * cdk-nag's own flattening: it names exactly that resource and nothing else.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference.js';
import type { IConstruct } from 'constructs';

/** The finding id AwsSolutions-IAM5 reports for a wildcard `resourceArn` (a token or a plain ARN). */
export function wildcardResourceFinding(scope: IConstruct, resourceArn: string): string {
  return `AwsSolutions-IAM5[Resource::${flattenCfnReference(Stack.of(scope).resolve(resourceArn))}]`;
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
  for (const arn of resourceArns) Validations.of(scope).acknowledge({ id: wildcardResourceFinding(scope, arn), reason });
}

/** Acknowledges findings that are not about one resource, each with its reason. */
export function acknowledge(scope: IConstruct, findings: Readonly<Record<string, string>>): void {
  for (const [id, reason] of Object.entries(findings)) Validations.of(scope).acknowledge({ id, reason });
}
