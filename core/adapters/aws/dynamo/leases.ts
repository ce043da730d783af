/**
 * Leases on the leases table, as the Store port sees them (acquire, renew, read, list the live
 * ones, read a signature's checkpoint), and the lease-item primitives the board, the fenced
 * writes and the sweeper share: the grant, strongly consistent reads of one item, batched reads
 * of many, and the `byRoute` index.
 *
 * One item per signature, never deleted: its `token` is the signature's fencing token and must
 * never go back, so release only clears the owner (`owner` removed, `expiresAt` 0) and the task,
 * keeping token, run id, instance, task name and the signature's last checkpoint, which lives in
 * the same item. That is what lets a grant return the checkpoint with no further read: a grant
 * is one `UpdateItem` per signature, conditioned on "no owner, or expired", that increments the
 * token (`if_not_exists(token, 0) + 1`) and returns the old item (`ALL_OLD`): the checkpoint,
 * and the lease taken over when it had an owner. A refusal returns the holder the same way
 * (`ReturnValuesOnConditionCheckFailure`). Requests of one call run 16 at a time; those for one
 * signature run one after another, in the order given. The sparse, keys-only `byRoute` index
 * (partition = route, set while leased) lists what is leased on the conductor and Fargate routes;
 * leases taken through the plain Store port carry no task and sit in a `runner` partition, which
 * `listActiveLeases` reads and `listRoute` never does. The queue route's signatures come from its
 * manifests (./queue-manifests.ts).
 */
import { BatchGetCommand, GetCommand, UpdateCommand, type NativeAttributeValue, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { mapLimit, mapLimitInKeyOrder } from '../../../concurrency.js';
import { StoreError } from '../../../errors.js';
import type { Checkpoint, Lease, LeaseGrant, LeaseRef, LeaseRequest } from '../../../ports/store.js';
import { LEASE_ATTRIBUTES, TASK_ATTRIBUTES, checkpointOf, leaseOf, parseLeaseItem, type Item } from '../dynamo-items.js';
import { LEASE_ROUTE_KEYS, LEASES_TABLE } from '../tables.js';
import { Expr, fenced, updateExpression } from './expressions.js';
import { QueueManifests } from './queue-manifests.js';
import { BATCH_CONCURRENCY, BATCH_GET_KEYS, chunks, type TableCalls } from './table-calls.js';

/** A lease item as read. */
export type LeaseItem = ReturnType<typeof parseLeaseItem>;

/** A grant's write: the token it gave and the item before it, or the item of the holder that refused it. */
export type GrantWrite = { granted: true; token: number; old: LeaseItem } | { granted: false; holder: LeaseItem };

/** The key that orders lease calls: requests for one signature are answered in the order given. */
/** The lease a request asks for, before the grant gives it its token. */
export function requestedLease(request: Pick<LeaseRequest, 'signature' | 'owner' | 'ttlMs' | 'runId' | 'instanceId' | 'task'>, now: number): Lease {
  return {
    signature: request.signature,
    owner: request.owner,
    expiresAt: now + request.ttlMs,
    token: 0,
    runId: request.runId,
    instanceId: request.instanceId,
    task: request.task,
  };
}

export function bySignature(item: { signature: string }): string {
  return item.signature;
}

/** The leases table: the Store port's leases and the lease-item primitives. */
export class Leases {
  constructor(
    private readonly calls: TableCalls,
    readonly manifests: QueueManifests,
  ) {}

  async acquireLeases(requests: LeaseRequest[], now: number): Promise<LeaseGrant[]> {
    const { tables } = this.calls;
    return mapLimitInKeyOrder(requests, this.calls.concurrency, bySignature, async (request): Promise<LeaseGrant> => {
      const lease = requestedLease(request, now);
      const write = await this.grant(lease, { routeKey: 'runner' }, now, request.notReleasedSince);
      if (!write.granted) return { granted: false, holder: this.holderLease(write.holder, request.signature) };
      const grant: LeaseGrant = { granted: true, lease: { ...lease, token: write.token } };
      if (write.old?.owner !== undefined) {
        const takenOver = leaseOf(write.old, tables.leases);
        if (takenOver) grant.takenOver = takenOver;
      }
      const checkpoint = checkpointOf(write.old);
      if (checkpoint) grant.checkpoint = checkpoint;
      return grant;
    });
  }

  async renewLeases(refs: LeaseRef[], ttlMs: number, now: number): Promise<boolean[]> {
    const { doc, tables } = this.calls;
    return mapLimitInKeyOrder(refs, this.calls.concurrency, bySignature, async (ref) => {
      const e = new Expr();
      const result = await this.calls.conditional('leases', 'UpdateItem (renew a lease)', () =>
        doc.send(
          new UpdateCommand({
            TableName: tables.leases,
            Key: { signature: ref.signature },
            UpdateExpression: `SET ${e.n('expiresAt')} = ${e.v(now + ttlMs)}`,
            ConditionExpression: fenced(e, ref),
            ...e.params(),
          }),
        ),
      );
      return result.ok;
    });
  }

  async getLease(signature: string): Promise<Lease | undefined> {
    return leaseOf(await this.readLeaseItem(signature, 'GetItem (read a lease)', LEASE_ATTRIBUTES), this.calls.tables.leases);
  }

  async listActiveLeases(now: number): Promise<Lease[]> {
    const { tables } = this.calls;
    const signatures = [...new Set((await Promise.all([...LEASE_ROUTE_KEYS, 'queue'].map((route) => this.routeSignatures(route)))).flat())];
    const items = await this.batchGetLeases(signatures, LEASE_ATTRIBUTES, true);
    const leases: Lease[] = [];
    for (const item of items) {
      const lease = leaseOf(parseLeaseItem(item, tables.leases), tables.leases);
      if (lease && lease.owner !== null && lease.expiresAt > now) leases.push(lease);
    }
    return leases.sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
  }

  async getCheckpoint(signature: string): Promise<Checkpoint | undefined> {
    return checkpointOf(await this.readLeaseItem(signature, 'GetItem (read a checkpoint)', ['signature', 'checkpoint']));
  }

  /**
   * Grants `lease` if nobody holds it or its holder expired: one conditional update that
   * increments the token, sets the lease and `attributes`, and removes the task attributes not
   * set (so a lease never carries a previous task's fields).
   */
  async grant(lease: Lease, attributes: Item, now: number, notReleasedSince?: number): Promise<GrantWrite> {
    const { doc, tables } = this.calls;
    const e = new Expr();
    const set: Item = {
      owner: lease.owner,
      expiresAt: lease.expiresAt,
      runId: lease.runId,
      instanceId: lease.instanceId,
      task: lease.task,
      ...attributes,
    };
    const sets = [`${e.n('token')} = if_not_exists(${e.n('token')}, ${e.v(0)}) + ${e.v(1)}`];
    for (const [name, value] of Object.entries(set)) sets.push(`${e.n(name)} = ${e.v(value)}`);
    const removes = TASK_ATTRIBUTES.filter((name) => !(name in set)).map((name) => e.n(name));
    const result = await this.calls.conditional('leases', 'UpdateItem (grant a lease)', () =>
      doc.send(
        new UpdateCommand({
          TableName: tables.leases,
          Key: { signature: lease.signature },
          UpdateExpression: updateExpression(sets, removes),
          ConditionExpression:
            `(attribute_not_exists(${e.n('owner')}) OR ${e.n('expiresAt')} <= ${e.v(now)})` +
            (notReleasedSince === undefined ? '' : ` AND (attribute_not_exists(${e.n('releasedAt')}) OR ${e.n('releasedAt')} < ${e.v(notReleasedSince)})`),
          ReturnValues: 'ALL_OLD',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          ...e.params(),
        }),
      ),
    );
    if (!result.ok) {
      const holder = result.item ? parseLeaseItem(result.item, tables.leases) : await this.readLeaseItem(lease.signature, 'GetItem (read a lease holder)');
      return { granted: false, holder };
    }
    const old = parseLeaseItem(result.value.Attributes, tables.leases);
    // The condition held, so nobody wrote in between: the token is the old one plus one.
    return { granted: true, token: (old?.token ?? 0) + 1, old };
  }

  /** The lease of the holder that refused a grant. */
  holderLease(item: LeaseItem, signature: string): Lease {
    const { tables } = this.calls;
    const holder = leaseOf(item, tables.leases);
    if (!holder) throw new StoreError(`lease ${signature} in table ${tables.leases} was refused but has no holder; try again`);
    return holder;
  }

  /** One lease item, strongly consistent; only `attributes` when given. */
  async readLeaseItem(signature: string, operation: string, attributes?: readonly string[]): Promise<LeaseItem> {
    const { doc, tables } = this.calls;
    const e = new Expr();
    const projection = attributes && { ProjectionExpression: attributes.map((name) => e.n(name)).join(', ') };
    const output = await this.calls.call('leases', operation, () =>
      doc.send(new GetCommand({ TableName: tables.leases, Key: { signature }, ConsistentRead: true, ...projection, ...e.params() })),
    );
    return parseLeaseItem(output.Item, tables.leases);
  }

  /** Signatures in a route's partition of the `byRoute` index. */
  /**
   * Signatures that may be leased on `route` (read their lease items to know): the `byRoute`
   * partition of the route, or for the queue, the signatures of its manifests.
   */
  async routeSignatures(route: string): Promise<string[]> {
    if (route === 'queue') return QueueManifests.signatures(await this.manifests.list());
    const [index] = LEASES_TABLE.globalSecondaryIndexes;
    const e = new Expr();
    const input: QueryCommandInput = {
      TableName: this.calls.tables.leases,
      IndexName: index.indexName,
      KeyConditionExpression: `${e.n(index.partitionKey.name)} = ${e.v(route)}`,
      ...e.params(),
    };
    const signatures: string[] = [];
    for await (const item of this.calls.queryItems('leases', `Query (list the ${route} route)`, input)) {
      if (typeof item.signature === 'string') signatures.push(item.signature);
    }
    return signatures;
  }

  /** Lease items of `signatures` (those that exist), 100 keys per BatchGetItem, unprocessed keys retried. */
  async batchGetLeases(signatures: readonly string[], attributes: readonly string[], consistent: boolean): Promise<Item[]> {
    const { doc } = this.calls;
    const table = this.calls.tables.leases;
    const pages = await mapLimit(chunks(signatures, BATCH_GET_KEYS), BATCH_CONCURRENCY, async (chunk) => {
      const e = new Expr();
      const projection = attributes.map((a) => e.n(a)).join(', ');
      let keys: Record<string, NativeAttributeValue>[] = chunk.map((signature) => ({ signature }));
      const items: Item[] = [];
      for (let attempt = 0; keys.length > 0; attempt += 1) {
        if (attempt > 0) await this.calls.backoff(attempt, 'leases', 'BatchGetItem', `${keys.length} keys`);
        const request = keys;
        const output = await this.calls.call('leases', 'BatchGetItem (read leases)', () =>
          doc.send(
            new BatchGetCommand({
              RequestItems: {
                [table]: { Keys: request, ProjectionExpression: projection, ConsistentRead: consistent, ExpressionAttributeNames: e.names },
              },
            }),
          ),
        );
        items.push(...(output.Responses?.[table] ?? []));
        keys = output.UnprocessedKeys?.[table]?.Keys ?? [];
      }
      return items;
    });
    return pages.flat();
  }
}
