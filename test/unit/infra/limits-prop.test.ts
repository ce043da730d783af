/**
 * The `limits` prop of JobRunner: shared limits given in code (with instances given in code) are
 * validated at synth and seeded into the limits item exactly as an instances file's are.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { marshall } from '@aws-sdk/util-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { afterAll, describe, expect, it } from 'vitest';
import type { LimitsConfig } from '../../../core/limit-config.js';
import { InstanceSeedError } from '../../../infra/errors.js';
import { seedLimitsUpdateItem } from '../../../infra/instances.js';
import { JobRunner, type JobRunnerProps } from '../../../infra/job-runner.js';
import { cdkContext, logicalId, render, resourcesOf, synthesize } from './synth.js';

const instances = [{ id: 'only', job: 'summary', params: { source: 'metrics' }, schedule: '5m' }];

/** A runner over the example jobs with `props`, constructed (not synthesized) in a stack of its own. */
const construct = (props: Partial<JobRunnerProps>) => () => new JobRunner(new Stack(new App({ context: cdkContext() }), 'Limits'), 'Runner', { jobs: 'jobs/index.ts', ...props });

/** A temporary instances file holding `file`, removed after the tests of the calling suite (call it at collection). */
function instancesFile(file: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'ujr-limits-prop-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'instances.json');
  writeFileSync(path, JSON.stringify(file));
  return path;
}

describe('the limits prop with instances given in code', () => {
  // Prepare
  const limits: LimitsConfig = { 'feed-api': { rate: 300, per: '15m' }, 'archive-host': { concurrency: 3 } };
  // Act
  const { template } = synthesize({ instances, limits });
  const seeds = resourcesOf(template, 'Custom::UjrLimits');
  const callOf = (property: unknown) => JSON.parse(render(property)) as { parameters: { ExpressionAttributeValues: Record<string, unknown> } };

  it('seeds one limits item that the deploy writes with those limits, on create and on update, and never deletes', () => {
    // Assess
    expect(seeds).toHaveLength(1);
    const [, seed] = seeds[0] ?? [];
    const table = `<${logicalId(template, 'AWS::DynamoDB::Table', 'RunnerInstancesTable')}>`;
    const expected = { service: 'DynamoDB', action: 'UpdateItem', parameters: seedLimitsUpdateItem(table, limits), physicalResourceId: { id: 'limits' }, logApiResponseData: false };
    expect(callOf(seed?.Properties?.Create)).toEqual(expected);
    expect(callOf(seed?.Properties?.Update)).toEqual(expected);
    expect(seed?.Properties?.Delete).toBeUndefined();
  });

  it('writes the limits as the document client marshals them, as given', () => {
    const [, seed] = seeds[0] ?? [];
    expect(callOf(seed?.Properties?.Create).parameters.ExpressionAttributeValues[':limits']).toEqual({ M: marshall(limits) });
  });

  it('still seeds the instances given with them', () => {
    const configs = resourcesOf(template, 'Custom::UjrInstanceConfig');
    expect(configs).toHaveLength(1);
    expect(render(configs[0]?.[1].Properties?.Create)).toContain('"instanceId":{"S":"only"}');
  });
});

describe('limits props a deployment refuses', () => {
  const fileWithLimits = instancesFile({ instances, limits: { 'feed-api': { rate: 300, per: '15m' } } });

  it('refuses a malformed limit of the prop, naming the prop, the limit and its field', () => {
    const bad = construct({ instances, limits: { 'feed-api': { rate: 300 }, fine: { concurrency: 2 } } });
    expect(bad).toThrow(InstanceSeedError);
    expect(bad).toThrow('the shared limits to deploy have 1 problem(s): the limits prop: limits.feed-api.per: a rate needs "per", the time it counts over (e.g. "15m"); fix them in the limits prop');
  });

  it('refuses a limit field the prop does not know (what a JavaScript user can write), naming it', () => {
    const limits = { 'archive-host': { concurrency: 3, max: 4 } } as LimitsConfig;
    expect(construct({ instances, limits })).toThrow(/the limits prop: limits\.archive-host\.max: unknown field "max"/);
  });

  it('refuses limits given both as the prop and in the instances file, naming both and saying to keep one', () => {
    const both = construct({ instances: fileWithLimits, limits: { 'archive-host': { concurrency: 3 } } });
    expect(both).toThrow(InstanceSeedError);
    expect(both).toThrow(`the shared limits are given twice, as the limits prop and as "limits" in ${fileWithLimits}; keep one of them`);
  });
});

describe('the limits prop with an instances file that has no "limits"', () => {
  // Prepare
  const limits: LimitsConfig = { 'archive-host': { concurrency: 3 } };
  // Act
  const { template } = synthesize({ instances: instancesFile({ instances }), limits });

  it('seeds the prop\'s limits', () => {
    // Assess
    const seeds = resourcesOf(template, 'Custom::UjrLimits');
    expect(seeds).toHaveLength(1);
    expect(render(seeds[0]?.[1].Properties?.Create)).toContain(JSON.stringify({ ':limits': { M: marshall(limits) } }).slice(1, -1));
  });
});
