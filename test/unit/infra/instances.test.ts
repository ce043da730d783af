/**
 * The instance seed: validated as the runtime validates instances, and marshalled into DynamoDB's
 * attribute-value format exactly as the SDK's document client (the one DynamoStore writes with)
 * marshals the same JSON.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { marshall } from '@aws-sdk/util-dynamodb';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../../core/package-root.js';
import type { Json } from '../../../core/types.js';
import jobTypes from '../../../jobs/index.js';
import { InstanceSeedError } from '../../../infra/errors.js';
import { loadSeedEntries, loadSeedLimits, readInstances, seedLimitsUpdateItem, seedUpdateItem, toAttributeValue } from '../../../infra/instances.js';

const EXAMPLE_INSTANCES = join(ROOT, 'jobs', 'instances.json');

describe('loadSeedEntries', () => {
  it('reads an instances file, entry by entry as written', () => {
    const file = JSON.parse(readFileSync(EXAMPLE_INSTANCES, 'utf8')) as { instances: { id: string }[] };
    const entries = loadSeedEntries(EXAMPLE_INSTANCES, jobTypes);
    expect(entries.map((entry) => entry.id)).toEqual(file.instances.map((entry) => entry.id));
    expect(entries.map((entry) => entry.config)).toEqual(file.instances);
  });

  it('takes entries given in code, dropping what is not JSON', () => {
    const entries = loadSeedEntries([{ id: 'a', job: 'summary', params: { source: 'metrics' }, schedule: undefined }], jobTypes);
    expect(entries).toEqual([{ id: 'a', config: { id: 'a', job: 'summary', params: { source: 'metrics' } } }]);
  });

  it('refuses invalid entries, naming each instance and field', () => {
    const load = () =>
      loadSeedEntries(
        [
          { id: 'a', job: 'summary', params: { source: 'metrics' }, schedule: 'every tuesday' },
          { id: 'b', job: 'collector', params: { intervalMs: 'often' } },
        ],
        jobTypes,
      );
    expect(load).toThrow(InstanceSeedError);
    expect(load).toThrow(/instance "a": schedule: .*; the instances prop: instance "b": params.intervalMs/);
  });

  it('refuses an instances file that is not JSON, naming it', () => {
    const notJson = join(ROOT, 'jobs', 'index.ts');
    expect(() => readInstances(notJson)).toThrow(InstanceSeedError);
    expect(() => readInstances(notJson)).toThrow(`the instances file ${notJson} is not valid JSON`);
  });

  it('reads an instances file with comments and trailing commas, as the local runner does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ujr-seed-'));
    const path = join(dir, 'instances.json');
    writeFileSync(path, '{\n  // the summary\n  "instances": [\n    { "id": "a", "job": "summary", "params": { "source": "metrics" }, /* on */ "enabled": true, },\n  ],\n}\n');
    try {
      expect(loadSeedEntries(path, jobTypes)).toEqual([{ id: 'a', config: { id: 'a', job: 'summary', params: { source: 'metrics' }, enabled: true } }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses two instances with one id', () => {
    expect(() => loadSeedEntries([{ id: 'a', job: 'summary', params: { source: 'x' } }, { id: 'a', job: 'summary', params: { source: 'y' } }], jobTypes)).toThrow(
      /instance "a": id: this id is used by another instance/,
    );
  });
});

describe('toAttributeValue', () => {
  it.each<[string, Json]>([
    ['an instance entry', { id: 'metrics', job: 'collector', params: { intervalMs: 1000, url: 'https://example.org/' }, enabled: true, concurrency: 2 }],
    ['nested lists, nulls, empty strings, negative and fractional numbers', { a: [1, [2, 'x'], null, { b: false }], c: '', d: -1.5, e: {} }],
  ])('marshals %s as the document client does', (_what, value) => {
    expect(toAttributeValue(value)).toEqual({ M: marshall(value as Record<string, unknown>) });
  });
});

describe('seedUpdateItem', () => {
  it('keys the config item of the instance and sets the entry as its config', () => {
    const update = seedUpdateItem('instances', { id: 'metrics', config: { id: 'metrics', job: 'collector' } });
    expect(update.Key).toEqual({ instanceId: { S: 'metrics' }, kind: { S: 'config' } });
    expect(update.ExpressionAttributeValues[':config']).toEqual({ M: { id: { S: 'metrics' }, job: { S: 'collector' } } });
  });
});

describe('loadSeedLimits', () => {
  /** An instances file holding `file`, read as the construct reads it. */
  function source(file: Json) {
    const dir = mkdtempSync(join(tmpdir(), 'ujr-seed-limits-'));
    try {
      const path = join(dir, 'instances.json');
      writeFileSync(path, JSON.stringify(file));
      return readInstances(path);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('reads the limits of jobs/instances.json as written', () => {
    const file = JSON.parse(readFileSync(EXAMPLE_INSTANCES, 'utf8')) as { limits: Json };
    expect(loadSeedLimits(readInstances(EXAMPLE_INSTANCES))).toEqual(file.limits);
  });

  it('seeds nothing for a file without "limits" (the item is left as it is)', () => {
    expect(loadSeedLimits(source({ instances: [] }))).toBeUndefined();
  });

  it('refuses a malformed limit, naming the file, the limit and its field', () => {
    const bad = source({ instances: [], limits: { 'feed-api': { rate: 300 }, host: { concurrency: 0 }, fine: { concurrency: 2 } } });
    expect(() => loadSeedLimits(bad)).toThrow(InstanceSeedError);
    expect(() => loadSeedLimits(bad)).toThrow(/the shared limits to deploy have 2 problem\(s\): .*instances\.json: limits\.feed-api\.per: a rate needs "per".*; .*instances\.json: limits\.host\.concurrency: use a whole number of at least 1/);
  });

  it('takes the limits prop with entries given in code, as given', () => {
    const limits = { 'feed-api': { rate: 300, per: '15m' }, 'archive-host': { concurrency: 3 } };
    expect(loadSeedLimits(readInstances([]), limits)).toEqual(limits);
  });

  it('takes the limits prop with a file without "limits"', () => {
    expect(loadSeedLimits(source({ instances: [] }), { host: { concurrency: 2 } })).toEqual({ host: { concurrency: 2 } });
  });

  it('refuses a malformed limit of the prop as it refuses the file\'s, naming the prop, the limit and its field', () => {
    const bad = () => loadSeedLimits(readInstances([]), { host: { concurrency: 0 } });
    expect(bad).toThrow(InstanceSeedError);
    expect(bad).toThrow('the shared limits to deploy have 1 problem(s): the limits prop: limits.host.concurrency: use a whole number of at least 1 (how many may run at once); fix them in the limits prop');
  });

  it('refuses limits given both as the prop and in the file, naming both', () => {
    const both = () => loadSeedLimits(source({ instances: [], limits: {} }), { host: { concurrency: 2 } });
    expect(both).toThrow(InstanceSeedError);
    expect(both).toThrow(/^the shared limits are given twice, as the limits prop and as "limits" in .*instances\.json; keep one of them$/);
  });

  it('renders the UpdateItem of the limits item as the document client marshals it', () => {
    const limits = { 'feed-api': { rate: 300, per: '15m' }, host: { concurrency: 3 } };
    const update = seedLimitsUpdateItem('instances', limits);
    expect(update.Key).toEqual({ instanceId: { S: 'limits' }, kind: { S: 'limits' } });
    expect(update.UpdateExpression).toBe('SET #limits = :limits');
    expect(update.ExpressionAttributeValues[':limits']).toEqual({ M: marshall(limits) });
  });
});
