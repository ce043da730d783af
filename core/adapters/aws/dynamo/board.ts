/**
 * The board (core/cloud/board.ts) on the leases table: posting tasks (a grant that carries the
 * task), peeking at what is held, claiming, heartbeats, checkpoints, finishing, reposting the next
 * attempt, listing a route and asking a holder to stop. Posting is the grant of ./leases.ts with
 * the task's attributes (and, for the queue route, a manifest: ./queue-manifests.ts); `claim`, `heartbeat`, `saveCheckpoint`, `repost` and `requestStop` are
 * single updates fenced on token (and owner), `finish` the fenced release then the record (./fenced-writes.ts).
 * A claim returns the whole entry (`ALL_NEW`), a heartbeat returns `stopRequested` as an updated
 * value. `peek` reads only lease items, 100 keys a `BatchGetItem`, eventually consistent: a stale
 * answer costs a refused `post`, never a double run.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { BoardEntry, ClaimRequest, HeartbeatResult, PeekResult, PostRequest, RepostRequest, Route } from '../../../cloud/board.js';
import { mapLimitInKeyOrder } from '../../../concurrency.js';
import { StoreError } from '../../../errors.js';
import type { Checkpoint, LeaseGrant, LeaseRef } from '../../../ports/store.js';
import type { Progress, RunRecord } from '../../../types.js';
import { LEASE_ATTRIBUTES, TASK_ATTRIBUTES, checkpointAttribute, checkpointOf, entryOf, leaseOf, parseLeaseItem, taskAttributes } from '../dynamo-items.js';
import { Expr, fenced, updateExpression } from './expressions.js';
import { locatorPuts, runUpdate, type FencedWriter } from './fenced-writes.js';
import { bySignature, requestedLease, type Leases } from './leases.js';
import { POINTER_ATTRIBUTES, advance, pointerSets, pointersOf } from './run-pointers.js';
import type { TableCalls } from './table-calls.js';

/** The board's entries on the leases table. */
export class BoardEntries {
  constructor(
    private readonly calls: TableCalls,
    private readonly leases: Leases,
    private readonly writer: FencedWriter,
  ) {}

  async peek(signatures: string[], now: number): Promise<PeekResult> {
    const { tables } = this.calls;
    const items = await this.leases.batchGetLeases([...new Set(signatures)], [...LEASE_ATTRIBUTES, ...TASK_ATTRIBUTES, 'releasedAt'], false);
    const held = new Map<string, BoardEntry>();
    const releasedAt = new Map<string, number>();
    for (const item of items) {
      const lease = parseLeaseItem(item, tables.leases);
      const entry = entryOf(lease, tables.leases, false);
      if (entry && entry.expiresAt > now) held.set(entry.signature, entry);
      else if (lease?.releasedAt !== undefined) releasedAt.set(lease.signature, lease.releasedAt);
    }
    return { held, releasedAt };
  }

  /** Grants each request with its task; then lists what it granted on the queue route in a manifest (./queue-manifests.ts). */
  async post(requests: PostRequest[], now: number): Promise<LeaseGrant[]> {
    const grants = await this.grantAll(requests, now);
    const queued = requests.filter((request, i) => request.route === 'queue' && grants[i]?.granted === true).map(bySignature);
    await this.leases.manifests.record(queued, now);
    return grants;
  }

  private async grantAll(requests: PostRequest[], now: number): Promise<LeaseGrant[]> {
    const { tables } = this.calls;
    return mapLimitInKeyOrder(requests, this.calls.concurrency, bySignature, async (request): Promise<LeaseGrant> => {
      const lease = requestedLease(request, now);
      const write = await this.leases.grant(lease, taskAttributes(request), now, request.notReleasedSince);
      if (!write.granted) {
        const holder = entryOf(write.holder, tables.leases, false) ?? this.leases.holderLease(write.holder, request.signature);
        return { granted: false, holder };
      }
      const grant: LeaseGrant = { granted: true, lease: { ...lease, token: write.token } };
      if (write.old?.owner !== undefined) {
        // The whole entry it replaced, so the caller can record the interrupted run.
        const takenOver = entryOf(write.old, tables.leases, false) ?? leaseOf(write.old, tables.leases);
        if (takenOver) grant.takenOver = takenOver;
      }
      const checkpoint = checkpointOf(write.old);
      if (checkpoint) grant.checkpoint = checkpoint;
      return grant;
    });
  }

  async claim(request: ClaimRequest): Promise<BoardEntry | undefined> {
    const { doc, tables } = this.calls;
    const e = new Expr();
    const expected =
      request.owner !== undefined
        ? `${e.n('owner')} = ${e.v(request.owner)}`
        : `attribute_exists(${e.n('owner')}) AND ${e.n('expiresAt')} <= ${e.v(request.now)}`;
    const result = await this.calls.conditional('leases', 'UpdateItem (claim a board entry)', () =>
      doc.send(
        new UpdateCommand({
          TableName: tables.leases,
          Key: { signature: request.signature },
          UpdateExpression: updateExpression(
            [
              `${e.n('owner')} = ${e.v(request.newOwner)}`,
              `${e.n('token')} = ${e.n('token')} + ${e.v(1)}`,
              `${e.n('expiresAt')} = ${e.v(request.now + request.ttlMs)}`,
              `${e.n('startedAt')} = ${e.v(request.now)}`,
              ...(request.runId !== undefined ? [`${e.n('runId')} = ${e.v(request.runId)}`] : []),
              ...(request.origin !== undefined ? [`${e.n('origin')} = ${e.v(request.origin)}`] : []),
            ],
            // What a posted entry said while it waited (for its limits) is not what it says running.
            request.owner !== undefined ? [e.n('progress')] : [],
          ),
          // Only an entry with a task can be claimed (not a lease taken through acquireLeases).
          ConditionExpression: `${e.n('token')} = ${e.v(request.token)} AND ${expected} AND attribute_exists(${e.n('jobType')})`,
          ReturnValues: 'ALL_NEW',
          ...e.params(),
        }),
      ),
    );
    if (!result.ok) return undefined;
    const entry = entryOf(parseLeaseItem(result.value.Attributes, tables.leases), tables.leases);
    if (!entry) throw new StoreError(`claimed board entry ${request.signature} in table ${tables.leases} but it has no complete task; it was not posted by this adapter`);
    return entry;
  }

  async heartbeat(ref: LeaseRef, ttlMs: number, now: number, progress?: Progress): Promise<HeartbeatResult> {
    const { doc, tables } = this.calls;
    const e = new Expr();
    const sets = [
      `${e.n('expiresAt')} = ${e.v(now + ttlMs)}`,
      // Written only when absent, so that the update returns it (UPDATED_NEW) without a read.
      `${e.n('stopRequested')} = if_not_exists(${e.n('stopRequested')}, ${e.v(false)})`,
    ];
    if (progress !== undefined) sets.push(`${e.n('progress')} = ${e.v(JSON.stringify(progress))}`);
    const result = await this.calls.conditional('leases', 'UpdateItem (heartbeat)', () =>
      doc.send(
        new UpdateCommand({
          TableName: tables.leases,
          Key: { signature: ref.signature },
          UpdateExpression: updateExpression(sets, []),
          ConditionExpression: fenced(e, ref),
          ReturnValues: 'UPDATED_NEW',
          ...e.params(),
        }),
      ),
    );
    if (!result.ok) return { held: false, stopRequested: false };
    return { held: true, stopRequested: result.value.Attributes?.stopRequested === true };
  }

  async saveCheckpoint(ref: LeaseRef, checkpoint: Checkpoint): Promise<boolean> {
    const { doc, tables } = this.calls;
    const e = new Expr();
    const result = await this.calls.conditional('leases', 'UpdateItem (save a checkpoint)', () =>
      doc.send(
        new UpdateCommand({
          TableName: tables.leases,
          Key: { signature: ref.signature },
          UpdateExpression: `SET ${e.n('checkpoint')} = ${e.v(checkpointAttribute(checkpoint))}`,
          ConditionExpression: fenced(e, ref),
          ...e.params(),
        }),
      ),
    );
    return result.ok;
  }

  async finish(ref: LeaseRef, run: RunRecord): Promise<boolean> {
    const { refused } = await this.writer.commit({ fenced: [{ fence: ref, runs: [run], release: true }] });
    return refused.length === 0;
  }

  async repost(ref: LeaseRef, next: RepostRequest, ended?: RunRecord): Promise<number | undefined> {
    const { doc, tables } = this.calls;
    const e = new Expr();
    // The ended attempt is its signature's newest run: the lease item's pointers move to it (./run-pointers.ts).
    const seen = ended && pointersOf(await this.leases.readLeaseItem(ref.signature, 'GetItem (read a lease’s run pointers)', ['signature', ...POINTER_ATTRIBUTES]));
    const moved = ended && seen && advance(seen, [ended], new Set());
    const update = {
      TableName: tables.leases,
      Key: { signature: ref.signature },
      UpdateExpression: updateExpression(
        [
          `${e.n('owner')} = ${e.v(next.owner)}`,
          `${e.n('token')} = ${e.n('token')} + ${e.v(1)}`,
          `${e.n('expiresAt')} = ${e.v(next.now + next.ttlMs)}`,
          `${e.n('runId')} = ${e.v(next.runId)}`,
          `${e.n('attempt')} = ${e.v(next.attempt)}`,
          `${e.n('origin')} = ${e.v(next.origin)}`,
          `${e.n('queuedAt')} = ${e.v(next.now)}`,
          ...(next.previousRunId !== undefined ? [`${e.n('previousRunId')} = ${e.v(next.previousRunId)}`] : []),
          ...(next.notBefore !== undefined ? [`${e.n('notBefore')} = ${e.v(next.notBefore)}`] : []),
          ...(next.progress !== undefined ? [`${e.n('progress')} = ${e.v(JSON.stringify(next.progress))}`] : []),
          ...(seen && moved ? pointerSets(e, seen, moved.next) : []),
        ],
        [
          e.n('startedAt'),
          ...(next.progress === undefined ? [e.n('progress')] : []),
          ...(next.previousRunId === undefined ? [e.n('previousRunId')] : []),
          ...(next.notBefore === undefined ? [e.n('notBefore')] : []),
        ],
      ),
      ConditionExpression: fenced(e, ref),
      ...e.params(),
    };
    if (ended) {
      await this.writer.noteInstances([ended]);
      // The ended attempt's record and the repost, fenced together: the condition held on
      // `token`, so the new token is the old one plus one.
      const record = { Update: runUpdate(tables.runs, ended, moved?.priors.get(ended.id)) };
      const outcome = await this.calls.transact('TransactWriteItems (record an attempt and repost its entry)', [{ Update: update }, record, ...locatorPuts(tables.runs, ended)], 0);
      return outcome.ok ? ref.token + 1 : undefined;
    }
    const result = await this.calls.conditional('leases', 'UpdateItem (repost a board entry)', () =>
      doc.send(new UpdateCommand({ ...update, ReturnValues: 'UPDATED_NEW' })),
    );
    if (!result.ok) return undefined;
    const token: unknown = result.value.Attributes?.token;
    if (typeof token !== 'number') throw new StoreError(`reposted board entry ${ref.signature} in table ${tables.leases} but DynamoDB returned no token`);
    return token;
  }

  async listRoute(route: Route): Promise<BoardEntry[]> {
    const { tables } = this.calls;
    const signatures = await this.leases.routeSignatures(route);
    const items = await this.leases.batchGetLeases(signatures, [...LEASE_ATTRIBUTES, ...TASK_ATTRIBUTES], true);
    const entries: BoardEntry[] = [];
    for (const item of items) {
      const entry = entryOf(parseLeaseItem(item, tables.leases), tables.leases, false);
      // Released or reposted elsewhere between the index query and the read: not on this route now.
      if (entry && entry.route === route) entries.push(entry);
    }
    return entries.sort((a, b) => (a.signature < b.signature ? -1 : a.signature > b.signature ? 1 : 0));
  }

  async requestStop(signature: string, token: number): Promise<void> {
    const { doc, tables } = this.calls;
    const e = new Expr();
    await this.calls.conditional('leases', 'UpdateItem (request a stop)', () =>
      doc.send(
        new UpdateCommand({
          TableName: tables.leases,
          Key: { signature },
          UpdateExpression: `SET ${e.n('stopRequested')} = ${e.v(true)}`,
          ConditionExpression: `${e.n('token')} = ${e.v(token)} AND attribute_exists(${e.n('owner')})`,
          ...e.params(),
        }),
      ),
    );
  }
}
