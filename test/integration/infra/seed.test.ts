/**
 * The deploy-time instance seed on DynamoDB Local: the UpdateItem the stack's custom resource
 * sends (infra/instances.ts, exactly as rendered into the template) writes entries the DynamoDB
 * store reads back, and a redeploy with changed entries keeps the overrides set at run time.
 */
import { join } from 'node:path';
import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DynamoStore } from '../../../core/adapters/aws/dynamo-store.js';
import { createTables, deleteTables, type TableNames } from '../../../core/adapters/aws/tables.js';
import { ROOT } from '../../../core/package-root.js';
import jobTypes from '../../../jobs/index.js';
import { InstanceDirectory } from '../../../core/cloud/instances.js';
import { loadSeedEntries, loadSeedLimits, readInstances, seedLimitsUpdateItem, seedUpdateItem, type SeedEntry } from '../../../infra/instances.js';
import { emulatorClientConfig, uniqueName } from '../../servers/endpoints.js';

const client = new DynamoDBClient(emulatorClientConfig('dynamodb'));

afterAll(() => {
  client.destroy();
});

/** What the AwsCustomResource does at create and at update: one UpdateItem per entry. */
async function deploy(table: string, entries: readonly SeedEntry[]): Promise<void> {
  for (const entry of entries) await client.send(new UpdateItemCommand(seedUpdateItem(table, entry)));
}

describe('the instance seed', () => {
  let names: TableNames;
  let store: DynamoStore;

  beforeEach(async () => {
    names = { leases: uniqueName('ujr-leases'), runs: uniqueName('ujr-runs'), instances: uniqueName('ujr-instances') };
    await createTables(client, names);
    store = new DynamoStore({ client, tables: names });
  });

  afterEach(async () => {
    await store.close();
    await deleteTables(client, names);
  });

  it('writes the entries of jobs/instances.json as the store reads them', async () => {
    const entries = loadSeedEntries(join(ROOT, 'jobs', 'instances.json'), jobTypes);

    await deploy(names.instances, entries);

    const byId = (entry: Record<string, unknown>) => [entry.id, entry] as const;
    expect(new Map((await store.listInstanceEntries()).map(byId))).toEqual(new Map(entries.map((entry) => byId(entry.config))));
  });

  it('replaces the configuration on redeploy and keeps the overrides set at run time', async () => {
    const [first] = loadSeedEntries([{ id: 'summary', job: 'summary', params: { source: 'metrics' }, schedule: '30s' }], jobTypes);
    if (!first) throw new Error('no entry');
    await deploy(names.instances, [first]);
    await store.setInstanceOverride('summary', { enabled: false });

    const [changed] = loadSeedEntries([{ id: 'summary', job: 'summary', params: { source: 'other' }, schedule: '1m' }], jobTypes);
    if (!changed) throw new Error('no entry');
    await deploy(names.instances, [changed]);

    expect(await store.listInstanceEntries()).toEqual([{ id: 'summary', job: 'summary', params: { source: 'other' }, schedule: '1m', enabled: false }]);
  });

  it('leaves instances added at run time alone', async () => {
    await store.putInstanceEntry({ id: 'added', job: 'summary', params: { source: 'metrics' } });

    await deploy(names.instances, loadSeedEntries([{ id: 'seeded', job: 'summary', params: { source: 'metrics' } }], jobTypes));

    expect((await store.listInstanceEntries()).map((entry) => entry.id).sort()).toEqual(['added', 'seeded']);
  });

  it('writes the shared limits of jobs/instances.json where the runtime reads them, and a redeploy replaces them live', async () => {
    const directory = new InstanceDirectory({ catalog: store, jobs: jobTypes, maxAgeMs: 0, now: Date.now });
    const limits = loadSeedLimits(readInstances(join(ROOT, 'jobs', 'instances.json')));
    if (!limits) throw new Error('jobs/instances.json has no limits');

    await client.send(new UpdateItemCommand(seedLimitsUpdateItem(names.instances, limits)));
    const first = await directory.get();
    await client.send(new UpdateItemCommand(seedLimitsUpdateItem(names.instances, { 'quota-api': { rate: 2, per: '1m', burst: 2 }, host: { concurrency: 3 } })));
    const second = await directory.get();

    expect([...first.limits.keys()]).toEqual(Object.keys(limits));
    expect(first.problems).toEqual([]);
    expect(second.limits.get('quota-api')).toEqual({ name: 'quota-api', rate: { count: 2, perMs: 60_000, burst: 2 } });
    expect(second.limits.get('host')).toEqual({ name: 'host', concurrency: 3 });
  });
});
