/**
 * The DynamoDB store on DynamoDB Local: the whole store contract, then the board's lifecycle
 * (post, claim, heartbeat, checkpoint, finish, repost), its batched reads and the instances
 * table. Each test gets three fresh tables, deleted afterwards.
 */
import { DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DynamoStore, DynamoStoreError } from '../../../core/adapters/aws/dynamo-store.js';
import { MANIFEST_PK, SETTLE_MS } from '../../../core/adapters/aws/dynamo/queue-manifests.js';
import { ENDING_GRACE_MS } from '../../../core/adapters/aws/dynamo/sweeper.js';
import type { TableNames } from '../../../core/adapters/aws/tables.js';
import type { PostRequest } from '../../../core/cloud/board.js';
import { StoreError } from '../../../core/errors.js';
import { runIdFor } from '../../../core/run-ids.js';
import type { RunRecord } from '../../../core/types.js';
import { describeStoreContract } from '../../contract/store-contract.js';
import { countOperations, freshDynamoStore } from '../../helpers/stores.js';
import { makeRun, T0 } from '../../helpers/records.js';
import { emulatorClientConfig } from '../../servers/endpoints.js';

const client = new DynamoDBClient(emulatorClientConfig('dynamodb'));

afterAll(() => {
  client.destroy();
});

describeStoreContract('dynamodb', () => freshDynamoStore(client));

function postRequest(signature: string, overrides: Partial<PostRequest> = {}): PostRequest {
  return {
    signature,
    owner: `queue:run-${signature}`,
    ttlMs: 1000,
    runId: `run-${signature}`,
    instanceId: 'collector-a',
    jobType: 'collector',
    task: 'fetch',
    kind: 'batch',
    route: 'queue',
    input: { page: 1, tags: ['a', ''], empty: {}, ratio: 0.1 },
    attempt: 1,
    maxAttempts: 3,
    origin: 'schedule',
    queuedAt: T0,
    timeoutMs: 500,
    retry: { attempts: 3, backoffMs: 100, factor: 2, maxBackoffMs: 1000, jitter: 0.5 },
    ...overrides,
  };
}

/** Posts one entry and returns its token, failing the test when it is not granted. */
async function postOne(store: DynamoStore, request: PostRequest, now = T0): Promise<number> {
  const [grant] = await store.post([request], now);
  if (!grant?.granted) throw new Error(`expected ${request.signature} to be granted`);
  return grant.lease.token;
}

function finishedRun(id: string, signature: string, token: number, overrides: Partial<RunRecord> = {}): RunRecord {
  return makeRun(id, { signature, status: 'succeeded', runner: 'worker-1', fencingToken: token, startedAt: T0 + 1, endedAt: T0 + 2, result: { ok: true }, ...overrides });
}

describe('DynamoStore board', () => {
  let store: DynamoStore;
  let names: TableNames;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ store, names, cleanup } = await freshDynamoStore(client));
  });

  afterEach(async () => {
    await cleanup();
  });

  it('posts a free signature with token 1 and gives the entry back whole when claimed', async () => {
    const request = postRequest('s1');

    const [grant] = await store.post([request], T0);
    const entry = await store.claim({ signature: 's1', token: 1, owner: request.owner, newOwner: 'worker-1', ttlMs: 2000, now: T0 + 5 });

    expect(grant).toStrictEqual({
      granted: true,
      lease: { signature: 's1', owner: request.owner, expiresAt: T0 + 1000, token: 1, runId: 'run-s1', instanceId: 'collector-a', task: 'fetch' },
    });
    expect(entry).toStrictEqual({
      signature: 's1',
      owner: 'worker-1',
      token: 2,
      expiresAt: T0 + 2005,
      startedAt: T0 + 5,
      runId: 'run-s1',
      instanceId: 'collector-a',
      jobType: 'collector',
      task: 'fetch',
      kind: 'batch',
      route: 'queue',
      input: request.input,
      attempt: 1,
      maxAttempts: 3,
      origin: 'schedule',
      queuedAt: T0,
      timeoutMs: 500,
      retry: request.retry,
    });
  });

  it('post returns the checkpoint and the expired entry it took over', async () => {
    const first = postRequest('s1', { route: 'conductor', kind: 'continuous', owner: 'conductor:a', ttlMs: 100 });
    await postOne(store, first);
    await store.claim({ signature: 's1', token: 1, owner: 'conductor:a', newOwner: 'conductor-1', ttlMs: 100, now: T0 + 1 });
    await store.saveCheckpoint({ signature: 's1', owner: 'conductor-1', token: 2 }, { signature: 's1', value: { cursor: 7 }, runId: 'run-s1', at: T0 + 2 });

    const [grant] = await store.post([postRequest('s1', { route: 'conductor', kind: 'continuous', owner: 'conductor:b', runId: 'run-2' })], T0 + 500);

    expect(grant).toMatchObject({
      granted: true,
      lease: { owner: 'conductor:b', token: 3, runId: 'run-2' },
      takenOver: { signature: 's1', owner: 'conductor-1', token: 2, expiresAt: T0 + 101, runId: 'run-s1', jobType: 'collector', kind: 'continuous', startedAt: T0 + 1 },
      checkpoint: { signature: 's1', value: { cursor: 7 }, runId: 'run-s1', at: T0 + 2 },
    });
  });

  it('refuses a post while the entry is held and reports the holder', async () => {
    await postOne(store, postRequest('s1'));

    const [refused] = await store.post([postRequest('s1', { owner: 'queue:other' })], T0 + 999);

    expect(refused).toMatchObject({ granted: false, holder: { signature: 's1', owner: 'queue:run-s1', token: 1, expiresAt: T0 + 1000 } });
  });

  it('claims a dispatched entry once: a second delivery of the same message finds the token moved on', async () => {
    const token = await postOne(store, postRequest('s1'));
    const claim = { signature: 's1', token, owner: 'queue:run-s1', ttlMs: 1000, now: T0 + 1 };

    const first = await store.claim({ ...claim, newOwner: 'worker-1' });
    const duplicate = await store.claim({ ...claim, newOwner: 'worker-2' });

    expect(first).toMatchObject({ owner: 'worker-1', token: token + 1 });
    expect(duplicate).toBeUndefined();
    expect((await store.getLease('s1'))?.owner).toBe('worker-1');
  });

  it('drops a stale delivery whose fencing token moved on after a re-post', async () => {
    await postOne(store, postRequest('s1', { ttlMs: 10 }));
    const newToken = await postOne(store, postRequest('s1', { owner: 'queue:again' }), T0 + 20);

    const stale = await store.claim({ signature: 's1', token: 1, owner: 'queue:run-s1', newOwner: 'worker-1', ttlMs: 1000, now: T0 + 21 });

    expect(newToken).toBe(2);
    expect(stale).toBeUndefined();
  });

  it('claims an expired lease without naming its owner, and only once it has expired', async () => {
    await postOne(store, postRequest('s1', { route: 'conductor', owner: 'conductor:a', ttlMs: 100 }));
    await store.claim({ signature: 's1', token: 1, owner: 'conductor:a', newOwner: 'conductor-1', ttlMs: 100, now: T0 });

    const early = await store.claim({ signature: 's1', token: 2, newOwner: 'conductor-2', ttlMs: 100, now: T0 + 99 });
    const late = await store.claim({ signature: 's1', token: 2, newOwner: 'conductor-2', ttlMs: 100, now: T0 + 100 });
    const again = await store.claim({ signature: 's1', token: 2, newOwner: 'conductor-3', ttlMs: 100, now: T0 + 300 });

    expect(early).toBeUndefined();
    expect(late).toMatchObject({ owner: 'conductor-2', token: 3, expiresAt: T0 + 200 });
    expect(again).toBeUndefined();
  });

  it('does not claim a lease taken through acquireLeases, which carries no task', async () => {
    await store.acquireLeases([{ signature: 's1', owner: 'runner-1', ttlMs: 10, runId: 'r1', instanceId: 'a', task: 't' }], T0);

    const claimed = await store.claim({ signature: 's1', token: 1, newOwner: 'conductor-1', ttlMs: 100, now: T0 + 50 });

    expect(claimed).toBeUndefined();
  });

  it('heartbeat extends a held lease with its progress, reports a requested stop, and reports a lost lease', async () => {
    await postOne(store, postRequest('s1', { route: 'conductor', owner: 'conductor:a' }));
    await store.claim({ signature: 's1', token: 1, owner: 'conductor:a', newOwner: 'conductor-1', ttlMs: 100, now: T0 });
    const ref = { signature: 's1', owner: 'conductor-1', token: 2 };
    const progress = { current: 2, total: 5, message: 'page 2', updatedAt: T0 + 10 };

    const beat = await store.heartbeat(ref, 100, T0 + 10, progress);
    await store.requestStop('s1', 2);
    const asked = await store.heartbeat(ref, 100, T0 + 20);
    const lost = await store.heartbeat({ ...ref, token: 1 }, 100, T0 + 30);
    const [entry] = await store.listRoute('conductor');

    expect(beat).toStrictEqual({ held: true, stopRequested: false });
    expect(asked).toStrictEqual({ held: true, stopRequested: true });
    expect(lost).toStrictEqual({ held: false, stopRequested: false });
    expect(entry).toMatchObject({ expiresAt: T0 + 120, progress, stopRequested: true });
  });

  it('ignores a stop request whose token moved on', async () => {
    await postOne(store, postRequest('s1'));

    await store.requestStop('s1', 7);
    await store.requestStop('never-posted', 1);

    expect((await store.peek(['s1'], T0)).held.get('s1')).not.toHaveProperty('stopRequested');
    expect(await store.getLease('never-posted')).toBeUndefined();
  });

  it('saves a checkpoint only while the lease is held, and hands it to the next grant', async () => {
    await postOne(store, postRequest('s1'));
    const checkpoint = { signature: 's1', value: { cursor: 3, deep: [1.5, null, ''] }, runId: 'run-s1', at: T0 + 1 };

    const held = await store.saveCheckpoint({ signature: 's1', owner: 'queue:run-s1', token: 1 }, checkpoint);
    const fencedOff = await store.saveCheckpoint({ signature: 's1', owner: 'queue:run-s1', token: 2 }, { ...checkpoint, value: 'late' });

    expect([held, fencedOff]).toStrictEqual([true, false]);
    expect(await store.getCheckpoint('s1')).toStrictEqual(checkpoint);
  });

  it('finish writes the run and releases the lease only when owner and token still match, and nothing otherwise', async () => {
    await postOne(store, postRequest('s1'));
    await postOne(store, postRequest('s2'));
    const run1 = finishedRun('r1', 's1', 1);
    const run2 = finishedRun('r2', 's2', 1);

    const released = await store.finish({ signature: 's1', owner: 'queue:run-s1', token: 1 }, run1);
    const refused = await store.finish({ signature: 's2', owner: 'someone-else', token: 1 }, run2);

    expect([released, refused]).toStrictEqual([true, false]);
    expect(await store.getRun('r1')).toStrictEqual(run1);
    // A refused finish writes nothing: the record is written only after the fenced release.
    expect(await store.getRun('r2')).toBeUndefined();
    expect(await store.getLease('s1')).toStrictEqual({ signature: 's1', owner: null, expiresAt: 0, token: 1, runId: 'run-s1', instanceId: 'collector-a', task: 'fetch' });
    expect((await store.getLease('s2'))?.owner).toBe('queue:run-s2');
    expect(await store.listRoute('queue')).toMatchObject([{ signature: 's2' }]);
  });

  it('refuses a post whose plan read the history before the lease was last released', async () => {
    await postOne(store, postRequest('s1'));
    await store.finish({ signature: 's1', owner: 'queue:run-s1', token: 1 }, finishedRun('r1', 's1', 1));
    const releasedAt = (await store.peek(['s1'], T0)).releasedAt.get('s1')!;

    const [stale] = await store.post([postRequest('s1', { notReleasedSince: releasedAt })], T0 + 10);
    const [fresh] = await store.post([postRequest('s1', { notReleasedSince: releasedAt + 1 })], T0 + 10);

    expect(stale).toMatchObject({ granted: false, holder: { owner: null, token: 1 } });
    expect(fresh).toMatchObject({ granted: true, lease: { token: 2 } });
  });

  it('repost hands a held entry to the next attempt with the next token and clears the attempt’s progress', async () => {
    await postOne(store, postRequest('s1'));
    await store.claim({ signature: 's1', token: 1, owner: 'queue:run-s1', newOwner: 'worker-1', ttlMs: 1000, now: T0 + 1 });
    await store.heartbeat({ signature: 's1', owner: 'worker-1', token: 2 }, 1000, T0 + 2, { current: 1, updatedAt: T0 + 2 });

    const token = await store.repost({ signature: 's1', owner: 'worker-1', token: 2 }, { owner: 'queue:s1:2', ttlMs: 5000, now: T0 + 10, runId: 'run-2', attempt: 2, origin: 'retry' });
    const stale = await store.repost({ signature: 's1', owner: 'worker-1', token: 2 }, { owner: 'queue:s1:3', ttlMs: 5000, now: T0 + 11, runId: 'run-3', attempt: 3, origin: 'retry' });
    const entry = await store.claim({ signature: 's1', token: 3, owner: 'queue:s1:2', newOwner: 'worker-2', ttlMs: 1000, now: T0 + 20 });

    expect(token).toBe(3);
    expect(stale).toBeUndefined();
    expect(entry).toMatchObject({ token: 4, runId: 'run-2', attempt: 2, origin: 'retry', queuedAt: T0 + 10, startedAt: T0 + 20, jobType: 'collector' });
    expect(entry).not.toHaveProperty('progress');
  });

  it('never gives a token back: release, re-post and acquireLeases keep counting up', async () => {
    const tokens: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const token = await postOne(store, postRequest('s1', { owner: `queue:${i}` }), T0 + i);
      tokens.push(token);
      await store.finish({ signature: 's1', owner: `queue:${i}`, token }, finishedRun(`r${i}`, 's1', token));
    }
    const [acquired] = await store.acquireLeases([{ signature: 's1', owner: 'runner-1', ttlMs: 10, runId: 'r9', instanceId: 'collector-a', task: 'fetch' }], T0 + 10);

    expect(tokens).toStrictEqual([1, 2, 3]);
    expect(acquired).toMatchObject({ granted: true, lease: { token: 4 } });
    expect(acquired).not.toHaveProperty('takenOver');
  });

  it('peek returns only held, unexpired board entries, reading 100 keys per BatchGetItem and no single items', async () => {
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    const peeker = new DynamoStore({ client: counted, tables: names });
    const signatures = Array.from({ length: 250 }, (_, i) => `sig-${String(i).padStart(3, '0')}`);
    await store.post(signatures.slice(0, 200).map((s) => postRequest(s)), T0);
    await store.post(signatures.slice(200, 210).map((s) => postRequest(s, { ttlMs: 10 })), T0);
    await store.commit({ fenced: signatures.slice(0, 10).map((s) => ({ fence: { signature: s, owner: `queue:run-${s}`, token: 1 }, release: true })) });
    const counts = countOperations(counted);

    const { held, releasedAt } = await peeker.peek(signatures, T0 + 100);

    counted.destroy();
    expect(held.size).toBe(190);
    expect([...held.keys()].sort()).toStrictEqual(signatures.slice(10, 200));
    expect(held.get('sig-100')).toMatchObject({ owner: 'queue:run-sig-100', token: 1, route: 'queue', input: postRequest('x').input });
    expect(held.get('sig-100')).not.toHaveProperty('checkpoint');
    expect(Object.fromEntries(counts)).toStrictEqual({ BatchGetItem: 3 });
    // The released ten say when they were released; the expired ten were never released.
    expect([...releasedAt.keys()].sort()).toStrictEqual(signatures.slice(0, 10).sort());
  });

  it('lists the entries of one route, and every held lease of every route as active', async () => {
    await store.post(
      [
        postRequest('q1'),
        postRequest('c1', { route: 'conductor', kind: 'continuous' }),
        postRequest('c2', { route: 'conductor', kind: 'continuous', ttlMs: 10 }),
        postRequest('f1', { route: 'fargate' }),
      ],
      T0,
    );
    await store.acquireLeases([{ signature: 'local', owner: 'runner-1', ttlMs: 1000, runId: 'r1', instanceId: 'collector-a', task: 'fetch' }], T0);
    await store.finish({ signature: 'f1', owner: 'queue:run-f1', token: 1 }, finishedRun('rf', 'f1', 1));

    const conductor = await store.listRoute('conductor');
    const queue = await store.listRoute('queue');
    const active = await store.listActiveLeases(T0 + 100);

    // Expired entries stay on their route until released (a conductor may take them over).
    expect(conductor.map((e) => e.signature)).toStrictEqual(['c1', 'c2']);
    expect(conductor[1]).toMatchObject({ route: 'conductor', kind: 'continuous', expiresAt: T0 + 10 });
    expect(queue.map((e) => e.signature)).toStrictEqual(['q1']);
    expect(active.map((l) => l.signature)).toStrictEqual(['c1', 'local', 'q1']);
    expect(active[1]).toStrictEqual({ signature: 'local', owner: 'runner-1', expiresAt: T0 + 1000, token: 1, runId: 'r1', instanceId: 'collector-a', task: 'fetch' });
  });

  it('hands a trigger to exactly one of several callers taking at once', async () => {
    for (let i = 0; i < 6; i += 1) await store.addTrigger({ id: `t${i}`, instanceId: 'a', at: T0 + i });

    const takes = await Promise.all([store.takeTriggers(6), store.takeTriggers(6), store.takeTriggers(6)]);

    const ids = takes.flat().map((t) => t.id);
    expect(ids.sort()).toStrictEqual(['t0', 't1', 't2', 't3', 't4', 't5']);
  });
});

describe('DynamoStore queue manifests', () => {
  let store: DynamoStore;
  let names: TableNames;
  let cleanup: () => Promise<void>;
  const doc = DynamoDBDocumentClient.from(client);

  beforeEach(async () => {
    ({ store, names, cleanup } = await freshDynamoStore(client));
  });

  afterEach(async () => {
    await cleanup();
  });

  /** The manifests as stored: each one's signatures, sorted, oldest manifest first. */
  async function manifests(): Promise<string[][]> {
    const { Items = [] } = await doc.send(new QueryCommand({ TableName: names.runs, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': MANIFEST_PK }, ConsistentRead: true }));
    return Items.map((item) => [...(item.signatures as Set<string>)].sort());
  }

  async function byRoutePartition(route: string): Promise<number> {
    const { Count = 0 } = await doc.send(new QueryCommand({ TableName: names.leases, IndexName: 'byRoute', KeyConditionExpression: 'routeKey = :r', ExpressionAttributeValues: { ':r': route } }));
    return Count;
  }

  function release(signature: string, token = 1): Promise<boolean> {
    return store.finish({ signature, owner: `queue:run-${signature}`, token }, finishedRun(`r-${signature}`, signature, token));
  }

  it('lists the queue route from the manifest its post wrote, with nothing in the byRoute index; other routes stay indexed', async () => {
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    const poster = new DynamoStore({ client: counted, tables: names });
    const counts = countOperations(counted);

    await poster.post([postRequest('q1'), postRequest('q2'), postRequest('c1', { route: 'conductor', kind: 'continuous' })], T0);

    counted.destroy();
    // Three grants and one manifest of the two queue posts.
    expect(Object.fromEntries(counts)).toStrictEqual({ UpdateItem: 3, PutItem: 1 });
    expect(await manifests()).toStrictEqual([['q1', 'q2']]);
    expect([await byRoutePartition('queue'), await byRoutePartition('conductor')]).toStrictEqual([0, 1]);
    expect((await store.listRoute('queue')).map((entry) => [entry.signature, entry.route])).toStrictEqual([
      ['q1', 'queue'],
      ['q2', 'queue'],
    ]);
    expect((await store.listRoute('conductor')).map((entry) => entry.signature)).toStrictEqual(['c1']);
  });

  it('writes no manifest for a post the board refused, and lists a released entry no more', async () => {
    await postOne(store, postRequest('q1'));
    const [refused] = await store.post([postRequest('q1', { owner: 'queue:other' })], T0 + 1);
    expect(refused?.granted).toBe(false);
    expect(await manifests()).toStrictEqual([['q1']]);

    await release('q1');

    expect(await store.listRoute('queue')).toStrictEqual([]);
  });

  it('prunes as it sweeps: deletes a manifest whose entries all ended, shrinks one that lost half, leaves a young one alone', async () => {
    await store.post(['a', 'b', 'c', 'd'].map((s) => postRequest(s)), T0);
    await store.post([postRequest('e')], T0);
    await release('a');
    await release('b');

    // Ten seconds have not passed: a grant might not read back yet, so nothing is pruned.
    await store.sweep(T0 + SETTLE_MS - 1);
    expect(await manifests()).toStrictEqual([['a', 'b', 'c', 'd'], ['e']]);

    await store.sweep(T0 + SETTLE_MS);
    expect(await manifests()).toStrictEqual([['c', 'd'], ['e']]);

    await release('e');
    await store.sweep(T0 + SETTLE_MS + 1);
    expect(await manifests()).toStrictEqual([['c', 'd']]);
    expect((await store.listRoute('queue')).map((entry) => entry.signature)).toStrictEqual(['c', 'd']);

    // A signature posted again after its release is in the manifest of that post; the older one
    // keeps it too while it is leased (a manifest cannot tell one post from the next), and a
    // listing reads it once. Once it ends, both go.
    await release('c');
    await release('d');
    await postOne(store, postRequest('c'), T0 + 2 * SETTLE_MS);
    await store.sweep(T0 + 2 * SETTLE_MS);
    expect(await manifests()).toStrictEqual([['c'], ['c']]);
    expect((await store.listRoute('queue')).map((entry) => entry.signature)).toStrictEqual(['c']);
    await release('c', 2);
    await store.sweep(T0 + 3 * SETTLE_MS);
    expect(await manifests()).toStrictEqual([]);
  });

  it('splits the signatures of a large post into manifests DynamoDB can hold, each listed once', async () => {
    const long = Array.from({ length: 1500 }, (_, i) => `${'x'.repeat(300)}-${String(i).padStart(4, '0')}`);

    await store.post(long.map((s) => postRequest(s)), T0);

    const stored = await manifests();
    expect(stored.length).toBeGreaterThan(1);
    expect(stored.flat().sort()).toStrictEqual([...long].sort());
    expect((await store.listRoute('queue')).length).toBe(1500);
  });
});

describe('DynamoStore fenced writes and the sweeper', () => {
  let store: DynamoStore;
  let names: TableNames;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ store, names, cleanup } = await freshDynamoStore(client));
  });

  afterEach(async () => {
    await cleanup();
  });

  async function lease(signature: string, owner: string, now = T0, ttlMs = 1000): Promise<number> {
    const [grant] = await store.acquireLeases([{ signature, owner, ttlMs, runId: `run-${owner}`, instanceId: 'collector-a', task: 'fetch' }], now);
    if (!grant?.granted) throw new Error(`expected ${signature} to be granted to ${owner}`);
    return grant.lease.token;
  }

  it('refuses a stale holder’s run, log lines, checkpoint and release whole, and applies the current holder’s', async () => {
    const staleToken = await lease('s1', 'first', T0, 100);
    const token = await lease('s1', 'second', T0 + 200);
    const stale = { signature: 's1', owner: 'first', token: staleToken };
    const current = { signature: 's1', owner: 'second', token };

    const result = await store.commit({
      fenced: [
        {
          fence: stale,
          runs: [makeRun('stale', { signature: 's1', runner: 'first', status: 'succeeded', fencingToken: staleToken, endedAt: T0 + 300, result: { by: 'first' } })],
          logs: [{ runId: 'stale', seq: 1, at: T0, level: 'info', message: 'late' }],
          checkpoint: { signature: 's1', value: { by: 'first' }, runId: 'stale', at: T0 + 300 },
          release: true,
        },
        { fence: current, runs: [makeRun('fresh', { signature: 's1', runner: 'second', status: 'running', fencingToken: token })], checkpoint: { signature: 's1', value: { by: 'second' }, runId: 'fresh', at: T0 + 300 } },
      ],
    });

    expect(result).toStrictEqual({ refused: [stale] });
    expect(await store.getRun('stale')).toBeUndefined();
    expect(await store.getLogs('stale')).toStrictEqual([]);
    expect((await store.getCheckpoint('s1'))?.value).toStrictEqual({ by: 'second' });
    expect(await store.getLease('s1')).toMatchObject({ owner: 'second', token });
    expect((await store.getRun('fresh'))?.status).toBe('running');
  });

  it('never replaces a final run record, and still applies the rest of the group', async () => {
    const token = await lease('s1', 'w');
    const ref = { signature: 's1', owner: 'w', token };
    await store.commit({ fenced: [{ fence: ref, runs: [makeRun('r1', { signature: 's1', runner: 'w', status: 'interrupted', fencingToken: token, endedAt: T0 + 5 })] }] });

    const result = await store.commit({
      fenced: [{ fence: ref, runs: [makeRun('r1', { signature: 's1', runner: 'w', status: 'succeeded', fencingToken: token, endedAt: T0 + 9 })], logs: [{ runId: 'r1', seq: 1, at: T0, level: 'info', message: 'kept' }], release: true }],
    });

    expect(result.refused).toStrictEqual([]);
    expect((await store.getRun('r1'))?.status).toBe('interrupted');
    expect((await store.getLogs('r1')).map((line) => line.message)).toStrictEqual(['kept']);
    expect((await store.getLease('s1'))?.owner).toBeNull();
  });

  it('still releases when the group’s only run record is already final (taken over and recorded by another)', async () => {
    const token = await lease('s1', 'w');
    const ref = { signature: 's1', owner: 'w', token };
    await store.commit({ fenced: [{ fence: ref, runs: [makeRun('r1', { signature: 's1', runner: 'w', status: 'interrupted', fencingToken: token, endedAt: T0 + 5 })] }] });

    const result = await store.commit({ fenced: [{ fence: ref, runs: [makeRun('r1', { signature: 's1', runner: 'w', status: 'cancelled', fencingToken: token, endedAt: T0 + 9 })], release: true }] });

    expect(result.refused).toStrictEqual([]);
    expect((await store.getRun('r1'))?.status).toBe('interrupted');
    expect((await store.getLease('s1'))?.owner).toBeNull();
  });

  it('splits a group of more than 100 writes into fenced transactions, the run record and the release last', async () => {
    const token = await lease('s1', 'w');
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    const writer = new DynamoStore({ client: counted, tables: names, now: () => T0 });
    const counts = countOperations(counted);
    const logs = Array.from({ length: 250 }, (_, i) => ({ runId: 'r1', seq: i + 1, at: T0 + i, level: 'info' as const, message: `line ${i + 1}` }));

    const result = await writer.commit({ fenced: [{ fence: { signature: 's1', owner: 'w', token }, runs: [makeRun('r1', { signature: 's1', runner: 'w', status: 'succeeded', fencingToken: token, endedAt: T0 + 9 })], logs, release: true }] });

    counted.destroy();
    expect(result.refused).toStrictEqual([]);
    // The reads: the pointers of the signature written, and which of its runs are stored already;
    // the update: this store's first run of the instance notes it as an instance with runs.
    expect(Object.fromEntries(counts)).toStrictEqual({ UpdateItem: 1, BatchGetItem: 2, TransactWriteItems: 3 });
    expect(await store.getLogs('r1')).toHaveLength(250);
    expect((await store.getRun('r1'))?.status).toBe('succeeded');
    expect((await store.getLease('s1'))?.owner).toBeNull();
  });

  it('finishes a task with the fenced release of its lease, then its final record: two single-item updates, no transaction', async () => {
    const token = await lease('s1', 'w');
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    const writer = new DynamoStore({ client: counted, tables: names, now: () => T0 });
    const counts = countOperations(counted);
    // An id as the runtime mints it: it says where the record is, so no locator is written.
    const id = runIdFor('collector-a', 'fetch', T0);
    const run = makeRun(id, { signature: 's1', runner: 'w', status: 'succeeded', fencingToken: token, startedAt: T0 + 1, endedAt: T0 + 9, result: { n: 1 } });

    const result = await writer.commit({ fenced: [{ fence: { signature: 's1', owner: 'w', token }, runs: [run], release: true }], at: T0 + 9 });
    const stale = await writer.commit({ fenced: [{ fence: { signature: 's1', owner: 'w', token }, runs: [{ ...run, id: 'r2' }], release: true }] });

    counted.destroy();
    expect(result.refused).toStrictEqual([]);
    expect(stale.refused).toStrictEqual([{ signature: 's1', owner: 'w', token }]);
    // The release and the record (an update that keeps the prior of a record written before), the
    // stale release, and this store's note that the instance has runs (once per store).
    expect(Object.fromEntries(counts)).toStrictEqual({ UpdateItem: 4 });
    expect(await store.getRun(id)).toStrictEqual(run);
    expect(await store.getRun('r2')).toBeUndefined();
    expect(await store.getLease('s1')).toMatchObject({ owner: null, token });
  });

  it('leaves a live record alone while the release that ended its run is recent, and sweeps it once the grace is over', async () => {
    const token = await lease('s1', 'w', T0, 60_000);
    await store.commit({ fenced: [{ fence: { signature: 's1', owner: 'w', token }, runs: [makeRun('r1', { signature: 's1', runner: 'w', status: 'running', fencingToken: token, startedAt: T0 })] }] });
    // The holder's release named r1 as ended, and its final record never came (it died in between).
    await client.send(
      new UpdateItemCommand({
        TableName: names.leases,
        Key: { signature: { S: 's1' } },
        UpdateExpression: 'SET expiresAt = :zero, releasedAt = :at, endedRunId = :run REMOVE #owner',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: { ':zero': { N: '0' }, ':at': { N: String(T0 + 100) }, ':run': { S: 'r1' } },
      }),
    );

    const during = await store.sweep(T0 + 100 + ENDING_GRACE_MS - 1);
    const after = await store.sweep(T0 + 100 + ENDING_GRACE_MS);

    expect(during).toStrictEqual([]);
    expect(after.map(({ run }) => [run.id, run.status])).toStrictEqual([['r1', 'interrupted']]);
  });

  it('writes a release-only or checkpoint-only group as one conditional update, no transaction', async () => {
    const token = await lease('s1', 'w');
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    const writer = new DynamoStore({ client: counted, tables: names, now: () => T0 });
    const counts = countOperations(counted);

    const result = await writer.commit({ fenced: [{ fence: { signature: 's1', owner: 'w', token }, checkpoint: { signature: 's1', value: 1, runId: 'r', at: T0 }, release: true }] });

    counted.destroy();
    expect(result.refused).toStrictEqual([]);
    expect(Object.fromEntries(counts)).toStrictEqual({ UpdateItem: 1 });
    expect(await store.getLease('s1')).toMatchObject({ owner: null, token });
    expect((await store.getCheckpoint('s1'))?.value).toBe(1);
  });

  it('sweeps a running run whose lease expired, releasing the lease in the same transaction so its waking holder is refused', async () => {
    const token = await lease('s1', 'dead', T0, 100);
    const ref = { signature: 's1', owner: 'dead', token };
    await store.commit({ fenced: [{ fence: ref, runs: [makeRun('r1', { signature: 's1', runner: 'dead', status: 'running', fencingToken: token, startedAt: T0 })] }] });

    const early = await store.sweep(T0 + 50);
    const swept = await store.sweep(T0 + 200);
    const again = await store.sweep(T0 + 300);
    const late = await store.commit({ fenced: [{ fence: ref, runs: [makeRun('r1', { signature: 's1', runner: 'dead', status: 'succeeded', fencingToken: token, endedAt: T0 + 400 })], release: true }] });

    expect(early).toStrictEqual([]);
    expect(swept.map(({ run }) => [run.id, run.status, run.endedAt, run.error?.name])).toStrictEqual([['r1', 'interrupted', T0 + 200, 'LeaseExpiredError']]);
    expect(swept[0]!.run.error?.message).toMatch(/stopped renewing its lease/);
    expect(swept[0]!.lease).toMatchObject({ owner: 'dead', token });
    expect(again).toStrictEqual([]);
    expect(late.refused).toStrictEqual([ref]);
    expect(await store.getRun('r1')).toMatchObject({ status: 'interrupted', endedAt: T0 + 200 });
    expect(await store.getLease('s1')).toMatchObject({ owner: null, token });
    expect(await store.listRuns({ status: ['queued', 'running', 'retrying'] })).toStrictEqual([]);
  });

  it('sweeps a live run whose lease moved to a newer token, leaving the newer holder’s lease and live run alone', async () => {
    const oldToken = await lease('s1', 'old', T0, 100);
    await store.commit({ fenced: [{ fence: { signature: 's1', owner: 'old', token: oldToken }, runs: [makeRun('r-old', { signature: 's1', runner: 'old', status: 'queued', fencingToken: oldToken })] }] });
    const token = await lease('s1', 'new', T0 + 150, 10_000);
    await store.commit({ fenced: [{ fence: { signature: 's1', owner: 'new', token }, runs: [makeRun('r-new', { signature: 's1', runner: 'new', status: 'running', fencingToken: token, startedAt: T0 + 150 })] }] });

    const swept = await store.sweep(T0 + 200);

    expect(swept.map(({ run }) => run.id)).toStrictEqual(['r-old']);
    expect((await store.getRun('r-old'))?.status).toBe('interrupted');
    expect((await store.getRun('r-new'))?.status).toBe('running');
    expect(await store.getLease('s1')).toMatchObject({ owner: 'new', token });
  });

  it('sweeps a board entry that a worker claimed and never recorded: its run ends interrupted and the entry is released', async () => {
    await postOne(store, postRequest('s1'));
    await postOne(store, postRequest('s2'));
    await store.claim({ signature: 's1', token: 1, owner: 'queue:run-s1', newOwner: 'worker-dead', ttlMs: 100, now: T0 + 10 });

    const swept = await store.sweep(T0 + 5000);

    expect(swept.map(({ run }) => [run.id, run.status, run.runner, run.fencingToken, run.startedAt])).toStrictEqual([['run-s1', 'interrupted', 'worker-dead', 2, T0 + 10]]);
    expect(await store.getRun('run-s1')).toMatchObject({ status: 'interrupted', error: { name: 'LeaseExpiredError' }, input: postRequest('s1').input });
    expect((await store.getLease('s1'))?.owner).toBeNull();
    // Posted but never claimed: no run to end; the next post takes it over.
    expect((await store.getLease('s2'))?.owner).toBe('queue:run-s2');
    expect(await store.claim({ signature: 's1', token: 2, owner: 'worker-dead', newOwner: 'x', ttlMs: 100, now: T0 + 6000 })).toBeUndefined();
  });

  it('reposts for a retry with the failed attempt’s record in one transaction, and the next attempt carries previousRunId', async () => {
    await postOne(store, postRequest('s1'));
    await store.claim({ signature: 's1', token: 1, owner: 'queue:run-s1', newOwner: 'worker-1', ttlMs: 1000, now: T0 + 1 });
    const { result: _result, ...ended } = finishedRun('run-s1', 's1', 2, { status: 'failed', error: { name: 'Error', message: 'boom' }, nextRunId: 'run-2', runner: 'worker-1' });
    const failed: RunRecord = ended;
    const next = { owner: 'queue:s1:2', ttlMs: 5000, now: T0 + 10, runId: 'run-2', attempt: 2, origin: 'retry' as const, previousRunId: 'run-s1' };

    const token = await store.repost({ signature: 's1', owner: 'worker-1', token: 2 }, next, failed);
    const stale = await store.repost({ signature: 's1', owner: 'worker-1', token: 2 }, { ...next, runId: 'run-3' }, { ...failed, id: 'run-x' });
    const entry = await store.claim({ signature: 's1', token: 3, owner: 'queue:s1:2', newOwner: 'worker-2', ttlMs: 1000, now: T0 + 20 });

    expect([token, stale]).toStrictEqual([3, undefined]);
    expect(await store.getRun('run-s1')).toStrictEqual(failed);
    expect(await store.getRun('run-x')).toBeUndefined();
    expect(entry).toMatchObject({ runId: 'run-2', attempt: 2, previousRunId: 'run-s1' });
  });

  it('keeps what became of a trigger', async () => {
    await store.commit({ triggerResults: [{ id: 't1', instanceId: 'a', at: T0, runIds: ['r1', 'r2'] }, { id: 't2', instanceId: 'a', at: T0, runIds: [], note: 'the plan returned nothing' }] });

    expect(await store.getTriggerResult('t1')).toStrictEqual({ id: 't1', instanceId: 'a', at: T0, runIds: ['r1', 'r2'] });
    expect(await store.getTriggerResult('t2')).toStrictEqual({ id: 't2', instanceId: 'a', at: T0, runIds: [], note: 'the plan returned nothing' });
    expect(await store.getTriggerResult('t3')).toBeUndefined();
    expect(await store.takeTriggers(10)).toStrictEqual([]);
  });
});

describe('DynamoStore run history', () => {
  let store: DynamoStore;
  let names: TableNames;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ store, names, cleanup } = await freshDynamoStore(client));
  });

  /** Writes records under a lease taken for the purpose (every run write is fenced). */
  async function writeRuns(runs: RunRecord[]): Promise<void> {
    const [grant] = await store.acquireLeases([{ signature: 'history-writer', owner: 'writer', ttlMs: 60_000, runId: 'w', instanceId: 'collector-a', task: 'fetch' }], T0);
    if (!grant?.granted) throw new Error('expected the writer lease');
    const { refused } = await store.commit({ fenced: [{ fence: { signature: 'history-writer', owner: 'writer', token: grant.lease.token }, runs }] });
    expect(refused).toStrictEqual([]);
  }

  afterEach(async () => {
    await cleanup();
  });

  it('lists the runs of every task with runs, days or years apart, newest first, with no index of all runs or of an instance’s', async () => {
    const day = 86_400_000;
    await writeRuns([
      makeRun('today', { queuedAt: T0 - 1000 }),
      makeRun('last-month', { queuedAt: T0 - 30 * day, instanceId: 'collector-b' }),
      makeRun('last-year', { queuedAt: T0 - 300 * day, status: 'failed', endedAt: T0 - 300 * day + 5 }),
      makeRun('years-ago', { queuedAt: T0 - 900 * day, instanceId: 'collector-c', status: 'succeeded', endedAt: T0 - 900 * day + 5 }),
    ]);
    // Another store (another process): it finds the instances with runs in the instances table.
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    const reader = new DynamoStore({ client: counted, tables: names, now: () => T0 });
    const counts = countOperations(counted);

    const all = await reader.listRuns({});
    const ended = await reader.listRuns({ status: ['failed', 'succeeded'], since: T0 - 1000 * day, limit: 1 });
    const limited = await reader.listRuns({ limit: 2 });
    const readsOfAll = Object.fromEntries(counts);
    counts.clear();
    const live = await reader.listRuns({ status: ['queued', 'running'] });

    counted.destroy();
    expect(all.map((r) => r.id)).toStrictEqual(['today', 'last-month', 'last-year', 'years-ago']);
    expect(ended.map((r) => r.id)).toStrictEqual(['last-year']);
    expect(limited.map((r) => r.id)).toStrictEqual(['today', 'last-month']);
    // Each listing: one Scan of the instances table, and per task with runs (one per instance
    // here) one Query of its partition.
    expect(readsOfAll).toStrictEqual({ Scan: 3, Query: 9 });
    // Live runs only: the sparse byLive index, one Query.
    expect(live.map((r) => r.id)).toStrictEqual(['today', 'last-month']);
    expect(Object.fromEntries(counts)).toStrictEqual({ Query: 1 });
  });

  it('lists an instance’s runs across its tasks and inputs, and finds its newest run, from the tasks it has runs of', async () => {
    await writeRuns([
      makeRun('fetch-1', { queuedAt: T0 + 1, signature: 'collector-a/fetch/1', status: 'succeeded', endedAt: T0 + 500 }),
      makeRun('fetch-2', { queuedAt: T0 + 2, signature: 'collector-a/fetch/2', status: 'failed', endedAt: T0 + 10 }),
      makeRun('parse', { queuedAt: T0 + 3, task: 'parse', signature: 'collector-a/parse/x' }),
      makeRun('elsewhere', { queuedAt: T0 + 4, instanceId: 'collector-b', signature: 'collector-b/fetch/x' }),
    ]);
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    const reader = new DynamoStore({ client: counted, tables: names, now: () => T0 });
    const counts = countOperations(counted);

    const listed = await reader.listRuns({ instanceId: 'collector-a' });
    const reads = Object.fromEntries(counts);
    const last = await reader.lastRun({ instanceId: 'collector-a' });
    const lastEnded = await reader.lastRun({ instanceId: 'collector-a', status: ['failed', 'succeeded'] });

    counted.destroy();
    expect(listed.map((r) => r.id)).toStrictEqual(['parse', 'fetch-2', 'fetch-1']);
    // The instance's tasks with runs (one read by key), then one Query per task.
    expect(reads).toStrictEqual({ GetItem: 1, Query: 2 });
    // Newest by queue time, as listed.
    expect(last?.id).toBe('parse');
    expect(lastEnded?.id).toBe('fetch-2');
  });

  it('answers a task’s newest live run from the live-run index, not by reading back past its final runs', async () => {
    await writeRuns([
      makeRun('running', { queuedAt: T0, status: 'running', startedAt: T0 + 1 }),
      ...Array.from({ length: 60 }, (_, i) => makeRun(`done-${String(i).padStart(2, '0')}`, { queuedAt: T0 + 10 + i, status: 'succeeded', endedAt: T0 + 20 + i })),
    ]);
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    const reader = new DynamoStore({ client: counted, tables: names, now: () => T0 });
    const counts = countOperations(counted);

    const live = await reader.lastRun({ instanceId: 'collector-a', task: 'fetch', status: ['queued', 'running'] });
    const listed = await reader.listRuns({ instanceId: 'collector-a', task: 'fetch', status: 'running' });

    counted.destroy();
    expect(live?.id).toBe('running');
    expect(listed.map((run) => run.id)).toStrictEqual(['running']);
    expect(Object.fromEntries(counts)).toStrictEqual({ Query: 2 });
  });

  it('lists a signature’s runs, and finds its newest, by queue time although a long run ended last', async () => {
    await writeRuns([
      makeRun('long', { queuedAt: T0, status: 'succeeded', startedAt: T0 + 1, endedAt: T0 + 10_000_000 }),
      ...Array.from({ length: 5 }, (_, i) => makeRun(`short-${i}`, { queuedAt: T0 + 100 + i, status: 'failed', endedAt: T0 + 200 + i })),
    ]);

    const listed = await store.listRuns({ signature: 'collector-a/fetch/x', limit: 3 });
    const last = await store.lastRun({ signature: 'collector-a/fetch/x' });
    const lastFailure = await store.lastRun({ instanceId: 'collector-a', task: 'fetch', status: ['failed', 'cancelled'] });

    expect(listed.map((r) => r.id)).toStrictEqual(['short-4', 'short-3', 'short-2']);
    expect(last?.id).toBe('short-4');
    expect(lastFailure?.id).toBe('short-4');
  });

  /** Takes the run's signature and ends it as a worker does: the run's final record and the release. */
  async function finish(run: RunRecord, now: number): Promise<void> {
    const [grant] = await store.acquireLeases([{ signature: run.signature, owner: run.runner, ttlMs: 60_000, runId: run.id, instanceId: run.instanceId, task: run.task }], now);
    if (!grant?.granted) throw new Error(`expected the lease of ${run.signature}`);
    const { refused } = await store.commit({ fenced: [{ fence: { signature: run.signature, owner: run.runner, token: grant.lease.token }, runs: [run], release: true }], at: now });
    expect(refused).toStrictEqual([]);
  }

  const ended = (id: string, status: RunRecord['status'], endedAt: number) => makeRun(id, { status, queuedAt: endedAt - 20, startedAt: endedAt - 10, endedAt });

  it('answers lastRun by signature from the pointers of its lease item: two reads by key, no query', async () => {
    // Ids as the runtime mints them, which say where their records are (no locator to read).
    const minted = (run: RunRecord) => ({ ...run, id: runIdFor(run.instanceId, run.task, run.queuedAt) });
    const ok = minted(ended('ok', 'succeeded', T0 + 10));
    const failed = minted(ended('failed', 'failed', T0 + 20));
    await finish(ok, T0 + 10);
    await finish(failed, T0 + 20);
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    const reader = new DynamoStore({ client: counted, tables: names, now: () => T0 });
    const counts = countOperations(counted);

    const last = await reader.lastRun({ signature: 'collector-a/fetch/x' });
    const success = await reader.lastRun({ signature: 'collector-a/fetch/x', status: 'succeeded' });
    // The newest run answers another status filter it matches.
    const failure = await reader.lastRun({ signature: 'collector-a/fetch/x', status: ['failed', 'cancelled'] });

    counted.destroy();
    expect([last?.id, success?.id, failure?.id]).toStrictEqual([failed.id, ok.id, failed.id]);
    expect(Object.fromEntries(counts)).toStrictEqual({ GetItem: 6 });
  });

  it('keeps the pointers on the newest run when a record that ended earlier is written after it', async () => {
    await finish(ended('late', 'succeeded', T0 + 100), T0 + 100);
    await finish(ended('early', 'succeeded', T0 + 50), T0 + 200);

    expect((await store.lastRun({ signature: 'collector-a/fetch/x' }))?.id).toBe('late');
    expect((await store.lastRun({ signature: 'collector-a/fetch/x', status: 'succeeded' }))?.id).toBe('late');
    expect((await store.listRuns({ signature: 'collector-a/fetch/x' })).map((r) => r.id)).toStrictEqual(['late', 'early']);
  });

  it('points a signature at the run the sweeper ended, and at a retried attempt’s record', async () => {
    await finish(ended('ok', 'succeeded', T0 + 10), T0 + 10);
    await postOne(store, postRequest('collector-a/fetch/x', { queuedAt: T0 + 20 }), T0 + 20);
    await store.claim({ signature: 'collector-a/fetch/x', token: 2, owner: 'queue:run-collector-a/fetch/x', newOwner: 'worker-dead', ttlMs: 100, now: T0 + 30 });

    await store.sweep(T0 + 5000);

    expect(await store.lastRun({ signature: 'collector-a/fetch/x' })).toMatchObject({ id: 'run-collector-a/fetch/x', status: 'interrupted' });
    expect((await store.lastRun({ signature: 'collector-a/fetch/x', status: 'succeeded' }))?.id).toBe('ok');
    expect((await store.listRuns({ signature: 'collector-a/fetch/x' })).map((r) => r.id)).toStrictEqual(['run-collector-a/fetch/x', 'ok']);
  });

  it('answers from the runs before when a task’s end released its lease and its record never came', async () => {
    await finish(ended('before', 'succeeded', T0 + 10), T0 + 10);
    // A writer that dies between the release and the record: its record's write fails.
    const dying = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    dying.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UpdateItemCommand' && (args.input as { TableName?: string }).TableName === names.runs) throw new Error('killed');
        return next(args);
      },
      { step: 'initialize', name: 'dieBeforeTheRecord' },
    );
    const writer = new DynamoStore({ client: dying, tables: names, now: () => T0 });
    const [grant] = await writer.acquireLeases([{ signature: 'collector-a/fetch/x', owner: 'w', ttlMs: 60_000, runId: 'lost', instanceId: 'collector-a', task: 'fetch' }], T0 + 20);
    if (!grant?.granted) throw new Error('expected the lease');

    const error: unknown = await writer.commit({ fenced: [{ fence: { signature: 'collector-a/fetch/x', owner: 'w', token: grant.lease.token }, runs: [{ ...ended('lost', 'succeeded', T0 + 30), runner: 'w' }], release: true }] }).catch((e: unknown) => e);

    dying.destroy();
    expect(error).toBeInstanceOf(Error);
    expect((await store.getLease('collector-a/fetch/x'))?.owner).toBeNull();
    expect(await store.getRun('lost')).toBeUndefined();
    expect((await store.lastRun({ signature: 'collector-a/fetch/x' }))?.id).toBe('before');
    expect((await store.lastRun({ signature: 'collector-a/fetch/x', status: 'succeeded' }))?.id).toBe('before');
    expect((await store.listRuns({ signature: 'collector-a/fetch/x' })).map((r) => r.id)).toStrictEqual(['before']);
  });

  it('finds a run whose id does not say where its record is through a locator item, and prunes the locator with the run', async () => {
    const doc = DynamoDBDocumentClient.from(client);
    const partition = async (runId: string) =>
      (await doc.send(new QueryCommand({ TableName: names.runs, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': `run#${runId}` }, ConsistentRead: true }))).Items ?? [];
    // Another program's id, and a minted id whose run was queued at another time than it says (a takeover's, say).
    const foreign = ended('from-elsewhere', 'failed', T0 + 10);
    const moved = { ...ended('x', 'failed', T0 + 20), id: runIdFor('collector-a', 'fetch', T0 + 999) };
    const minted = { ...ended('x', 'succeeded', T0 + 30) };
    minted.id = runIdFor(minted.instanceId, minted.task, minted.queuedAt);
    await finish(foreign, T0 + 10);
    await finish(moved, T0 + 20);
    await finish(minted, T0 + 30);
    const counted = new DynamoDBClient(emulatorClientConfig('dynamodb'));
    const reader = new DynamoStore({ client: counted, tables: names, now: () => T0 });
    const counts = countOperations(counted);

    const read = await Promise.all([foreign.id, moved.id, minted.id].map((id) => reader.getRun(id)));
    const reads = Object.fromEntries(counts);
    const locators = [(await partition(foreign.id)).length, (await partition(moved.id)).length, (await partition(minted.id)).length];
    const removed = await store.pruneRuns(T0 + 25);

    counted.destroy();
    expect(read).toStrictEqual([foreign, moved, minted]);
    // The foreign id: its locator, then the record; the moved one: the key it says (no record there) too; the minted one: its record.
    expect(reads).toStrictEqual({ GetItem: 2 + 3 + 1 });
    expect(locators).toStrictEqual([1, 1, 0]);
    expect(removed).toBe(2);
    expect([await partition(foreign.id), await partition(moved.id)]).toStrictEqual([[], []]);
    expect(await store.getRun(foreign.id)).toBeUndefined();
    expect((await store.listRuns({ instanceId: 'collector-a', task: 'fetch' })).map((run) => run.id)).toStrictEqual([minted.id]);
  });

  it('walks a signature’s runs past pruned ones, and moves a pointer off a pruned run', async () => {
    const cutoff = T0 + 1000;
    await finish(ended('old-success', 'succeeded', T0 + 100), T0 + 100);
    await finish(ended('pruned', 'failed', T0 + 200), T0 + 200);
    await finish(ended('kept', 'failed', cutoff + 100), cutoff + 100);
    await finish(makeRun('other', { signature: 'other', status: 'failed', queuedAt: T0, endedAt: T0 + 300 }), T0 + 300);

    const removed = await store.pruneRuns(cutoff);

    expect(removed).toBe(2);
    expect((await store.listRuns({ signature: 'collector-a/fetch/x' })).map((r) => r.id)).toStrictEqual(['kept', 'old-success']);
    expect((await store.lastRun({ signature: 'collector-a/fetch/x', status: 'failed' }))?.id).toBe('kept');
    expect(await store.lastRun({ signature: 'other' })).toBeUndefined();
    expect(await store.listRuns({ signature: 'other' })).toStrictEqual([]);
  });

  it('fails with a DynamoStoreError naming the table and the operation when a table is missing', async () => {
    const missing = new DynamoStore({ client, tables: { leases: 'no-such-leases', runs: 'no-such-runs', instances: 'no-such-instances' } });

    const error: unknown = await missing.getRun('r1').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(StoreError);
    expect(error).toBeInstanceOf(DynamoStoreError);
    // 'r1' does not say where its record is: the first read is of its locator.
    expect(error).toMatchObject({ table: 'no-such-runs', operation: 'GetItem (find a run’s record)', retryable: false, cause: { name: 'ResourceNotFoundException' } });
    expect((error as Error).message).toContain('no-such-runs');
  });

  it('refuses an item it did not write, naming the table', async () => {
    await client.send(new PutItemCommand({ TableName: names.runs, Item: { pk: { S: 'run#bad' }, sk: { S: 'run' }, id: { S: 'bad' }, input: { S: 'not json' } } }));

    const error: unknown = await store.getRun('bad').catch((e: unknown) => e);

    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).toContain(names.runs);
  });
});

describe('DynamoStore instances table', () => {
  let store: DynamoStore;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    ({ store, cleanup } = await freshDynamoStore(client));
  });

  afterEach(async () => {
    await cleanup();
  });

  it('loads entries with their overrides and statuses in one read, state items left out', async () => {
    await store.putInstanceEntry({ id: 'a', job: 'collector', params: { query: 'q', nested: { list: [1, 'x', null] } }, enabled: true });
    await store.putInstanceEntry({ id: 'b', job: 'collector', params: {} });
    await store.setInstanceOverride('a', { enabled: false, schedule: '*/5 * * * *' });
    await store.setInstanceOverride('a', { schedule: undefined });
    await store.setInstanceStatus('b', { instanceId: 'b', retiredAt: T0, retiredReason: 'done' });
    await store.setState('a', 'cursor', { page: 3 });

    const { entries, statuses } = await store.loadInstancesAndStatus();

    expect([...entries].sort((x, y) => String(x.id).localeCompare(String(y.id)))).toStrictEqual([
      { id: 'a', job: 'collector', params: { query: 'q', nested: { list: [1, 'x', null] } }, enabled: false },
      { id: 'b', job: 'collector', params: {} },
    ]);
    expect(statuses).toStrictEqual([{ instanceId: 'b', retiredAt: T0, retiredReason: 'done' }]);
    expect(await store.listInstanceEntries()).toHaveLength(2);
  });

  it('keeps overrides when the entry is written again', async () => {
    await store.putInstanceEntry({ id: 'a', job: 'collector', enabled: true, params: { v: 1 } });
    await store.setInstanceOverride('a', { enabled: false });

    await store.putInstanceEntry({ id: 'a', job: 'collector', enabled: true, params: { v: 2 } });

    expect(await store.listInstanceEntries()).toStrictEqual([{ id: 'a', job: 'collector', enabled: false, params: { v: 2 } }]);
  });

  it('refuses to override an instance without an entry, and an entry without an id', async () => {
    await expect(store.setInstanceOverride('ghost', { enabled: false })).rejects.toThrow(/no entry/);
    await expect(store.putInstanceEntry({ job: 'collector' })).rejects.toBeInstanceOf(StoreError);
  });
});
