/**
 * Limits on DynamoDB Local: the whole limit contract, then the item layout (one bucket item per
 * (name, key) in the instances table, invisible to the instance scans) and the calls each
 * operation costs, counted as DynamoDB receives them.
 */
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DynamoStore } from '../../../core/adapters/aws/dynamo-store.js';
import { dynamoLimits, type DynamoLimits } from '../../../core/adapters/aws/dynamo/limits.js';
import { createTables, deleteTables, type TableNames } from '../../../core/adapters/aws/tables.js';
import type { LimitGrant, LimitPermit, LimitSpec } from '../../../core/ports/limits.js';
import { describeLimitStoreContract } from '../../contract/limit-store-contract.js';
import { countOperations, freshTableNames } from '../../helpers/stores.js';
import { emulatorClientConfig } from '../../servers/endpoints.js';

const client = new DynamoDBClient(emulatorClientConfig('dynamodb'));

afterAll(() => {
  client.destroy();
});


describeLimitStoreContract('dynamodb', async () => {
  const names = freshTableNames();
  await createTables(client, names);
  return {
    limits: dynamoLimits({ client, tables: names }),
    cleanup: async () => {
      await deleteTables(client, names);
    },
  };
});


const T0 = 1_700_000_000_000;
const API: LimitSpec = { name: 'api', key: 'cred-1', rate: { count: 10, perMs: 1000, burst: 2 } };
const HOST: LimitSpec = { name: 'host', key: 'archive.example', concurrency: 3 };

function permitOf(grant: LimitGrant): LimitPermit {
  if (!grant.granted) throw new Error(`expected a grant, waiting on ${grant.waitingOn.name} (${grant.waitingOn.reason})`);
  return grant.permit;
}

describe('DynamoDB limits', () => {
  let names: TableNames;
  let counted: DynamoDBClient;
  let counts: Map<string, number>;
  let store: DynamoStore;
  let limits: DynamoLimits;

  beforeEach(async () => {
    names = freshTableNames();
    await createTables(client, names);
    counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    counts = countOperations(counted);
    store = new DynamoStore({ client: counted, tables: names });
    limits = dynamoLimits({ client: counted, tables: names });
  });

  afterEach(async () => {
    await store.close();
    counted.destroy();
    await deleteTables(client, names);
  });

  /** What `act` sent, operation by operation. */
  async function callsOf(act: () => Promise<unknown>): Promise<Record<string, number>> {
    counts.clear();
    await act();
    return Object.fromEntries(counts);
  }

  it('keeps one item per bucket in the instances table, small, and out of the instance scans', async () => {
    await store.putInstanceEntry({ id: 'collector-a', job: 'collector' });
    // A full cap of 3 holders with run-id-sized names: the largest this bucket item gets.
    for (const holder of ['run-01HZZZZZZZZZZZZZZZZZZZZZZZ-1', 'run-01HZZZZZZZZZZZZZZZZZZZZZZZ-2', 'run-01HZZZZZZZZZZZZZZZZZZZZZZZ-3']) {
      permitOf(await limits.acquireLimits({ holder, ttlMs: 30_000, limits: [{ ...API, rate: { count: 10, perMs: 1000, burst: 5 } }, HOST] }, T0));
    }

    const raw = await client.send(new GetItemCommand({ TableName: names.instances, Key: { instanceId: { S: 'limit#host#archive.example' }, kind: { S: 'bucket' } } }));
    const { entries, statuses } = await store.loadInstancesAndStatus();

    expect(raw.Item?.limitName?.S).toBe('host');
    expect(Object.keys(raw.Item?.holders?.M ?? {})).toHaveLength(3);
    // Well under 1 KB, so each write is 1 WCU (2 in a transaction).
    expect(JSON.stringify(raw.Item).length).toBeLessThan(1000);
    expect(entries.map((entry) => entry.id)).toEqual(['collector-a']);
    expect(statuses).toEqual([]);
    expect(await store.listInstanceEntries()).toHaveLength(1);
  });

  it('costs one read and one write per acquire of one limit, granted or refused', async () => {
    const granted = await callsOf(() => limits.acquireLimits({ holder: 'a', ttlMs: 1000, limits: [API] }, T0));
    await limits.acquireLimits({ holder: 'b', ttlMs: 1000, limits: [API] }, T0);
    const refused = await callsOf(async () => expect((await limits.acquireLimits({ holder: 'c', ttlMs: 1000, limits: [API] }, T0)).granted).toBe(false));

    expect(granted).toEqual({ GetItem: 1, UpdateItem: 1 });
    expect(refused).toEqual({ GetItem: 1, UpdateItem: 1 });
  });

  it('costs one batch read and one transaction per acquire of several limits, and one write per slot to renew or release', async () => {
    let permit: LimitPermit | undefined;
    const acquire = await callsOf(async () => {
      permit = permitOf(await limits.acquireLimits({ holder: 'a', ttlMs: 1000, limits: [API, HOST] }, T0));
    });
    const held = permit as LimitPermit;
    const renew = await callsOf(() => limits.renewLimits(held, 1000, T0 + 500));
    const release = await callsOf(() => limits.releaseLimits(held, T0 + 600));

    expect(acquire).toEqual({ BatchGetItem: 1, TransactWriteItems: 1 });
    expect(renew).toEqual({ UpdateItem: 1 });
    expect(release).toEqual({ UpdateItem: 1 });
  });

  it('retries a lost race from the item the refused write returned, without reading again', async () => {
    const calls = await callsOf(() =>
      Promise.all(Array.from({ length: 5 }, (_, i) => limits.acquireLimits({ holder: `h${i}`, ttlMs: 1000, limits: [HOST] }, T0))),
    );
    const grants = (await limits.listLimitStates(T0)).find((s) => s.name === 'host');

    expect(grants).toMatchObject({ held: 3, granted: 3, refused: 2 });
    // 5 first reads; every other attempt starts from the item its refused write returned.
    expect(calls.GetItem).toBe(5);
    expect(calls.UpdateItem ?? 0).toBeGreaterThanOrEqual(5);
  });
});
