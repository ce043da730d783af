/**
 * The sweeper (`sweep`): ends the runs whose holders are gone. A worker writes no record until
 * its attempt ends, so a dead worker's run exists only on the board: live runs come from the
 * sparse `byLive` index of the runs table (`liveKey` is set only while a run is queued, running or
 * retrying, so a final record never writes it), started board entries from `byRoute` and, for
 * the queue route, from its manifests (./queue-manifests.ts), which the sweep then prunes with
 * what it read. Their leases are read by `BatchGetItem`, 100 keys a call: those of live runs
 * consistently, the other board entries eventually consistent (0.5 read unit per leased entry and
 * tick; every write for them is conditioned on the lease as read). No Scan: a tick's sweep costs
 * three Queries and the reads of what is leased.
 */
import { UpdateCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { baseRun } from '../../../cloud/attempt.js';
import { mapLimit } from '../../../concurrency.js';
import { leaseBacksRun, sweepReleases, sweptRun } from '../../../ports/fencing.js';
import type { Lease, LeaseRef, SweptRun } from '../../../ports/store.js';
import { LIVE_STATUSES, type RunRecord } from '../../../types.js';
import { LEASE_ATTRIBUTES, LIVE_KEY, TASK_ATTRIBUTES, entryOf, leaseOf, parseLeaseItem, runKey } from '../dynamo-items.js';
import { runIndex } from '../tables.js';
import { Expr, fenced, updateExpression } from './expressions.js';
import { runPuts } from './fenced-writes.js';
import type { LeaseItem, Leases } from './leases.js';
import { QueueManifests } from './queue-manifests.js';
import type { RunHistory } from './run-history.js';
import type { RunInstances } from './run-instances.js';
import { POINTER_ATTRIBUTES, advanceAfterWrite, pointersOf } from './run-pointers.js';
import type { TableCalls } from './table-calls.js';

/**
 * How long after a release the sweeper leaves alone a live record of the run that release ended
 * (`endedRunId` on the lease item): the holder writes the final record just after the release
 * (./fenced-writes.ts), and a record still live this long after was lost with its holder.
 */
export const ENDING_GRACE_MS = 60_000;

/** Whether the lease was released by the end of `run`, whose final record is on its way. */
function endingRecorded(item: LeaseItem | undefined, run: RunRecord, now: number): boolean {
  return item?.owner === undefined && item?.endedRunId === run.id && (item.releasedAt ?? -Infinity) > now - ENDING_GRACE_MS;
}

/** Ends the runs whose holders are gone. */
export class Sweeper {
  constructor(
    private readonly calls: TableCalls,
    private readonly leases: Leases,
    private readonly history: RunHistory,
    private readonly instances: RunInstances,
  ) {}

  /**
   * Ends every live run whose lease is not live at `now`, and every board entry a claimer started
   * whose lease expired without a record (a worker that died mid-task writes none). Each run is
   * one conditional write (still live, same holder), in one transaction with the release of its
   * lease when that lease expired still naming the run's holder (still expired, same owner and
   * token), so that a holder waking up later finds its fence gone. Live runs come from the sparse
   * `byLive` index (eventually consistent: the conditions decide), board entries from `byRoute` and
   * the queue manifests.
   */
  async sweep(now: number): Promise<SweptRun[]> {
    const { doc, tables } = this.calls;
    const liveRuns: RunRecord[] = [];
    const { partitionKey } = runIndex('byLive');
    const e = new Expr();
    const live: QueryCommandInput = {
      TableName: tables.runs,
      IndexName: 'byLive',
      KeyConditionExpression: `${e.n(partitionKey.name)} = ${e.v(LIVE_KEY)}`,
      ...e.params(),
    };
    const [, routed, manifests] = await Promise.all([
      (async () => {
        for await (const run of this.history.queryRuns(live)) liveRuns.push(run);
      })(),
      Promise.all((['conductor', 'fargate'] as const).map((route) => this.leases.routeSignatures(route))),
      this.leases.manifests.list(),
    ]);
    const ofLiveRuns = new Set(liveRuns.map((run) => run.signature));
    const onlyRouted = [...new Set([...routed.flat(), ...QueueManifests.signatures(manifests)])].filter((signature) => !ofLiveRuns.has(signature));
    // A live run's lease is read consistently: a lease that moved past the run's owner and token
    // never comes back to them, so the run may be ended without a condition on the lease, but a
    // stale read could show the state before the run's own grant. Board entries without a run are
    // read eventually consistent (half the read units): each of their writes is conditioned on the
    // lease as read, so a stale read only fails a condition or defers the entry to the next sweep.
    const attributes = [...LEASE_ATTRIBUTES, ...TASK_ATTRIBUTES, 'releasedAt', 'endedRunId', ...POINTER_ATTRIBUTES];
    const items = (await Promise.all([this.leases.batchGetLeases([...ofLiveRuns], attributes, true), this.leases.batchGetLeases(onlyRouted, attributes, false)])).flat();
    const leaseItems = new Map<string, NonNullable<LeaseItem>>();
    for (const item of items) {
      const parsed = parseLeaseItem(item, tables.leases);
      if (parsed) leaseItems.set(parsed.signature, parsed);
    }
    type Candidate = { run: RunRecord; lease: Lease | undefined; fromBoard: boolean };
    const candidates: Candidate[] = [];
    const seen = new Set<string>();
    for (const run of liveRuns) {
      const item = leaseItems.get(run.signature);
      const lease = leaseOf(item, tables.leases);
      seen.add(run.id);
      if (leaseBacksRun(lease, run, now) || endingRecorded(item, run, now)) continue;
      candidates.push({ run, lease, fromBoard: false });
    }
    for (const item of leaseItems.values()) {
      const entry = entryOf(item, tables.leases, false);
      // Only entries a claimer started: one only posted for a dispatcher has no run yet.
      if (!entry || entry.startedAt === undefined || entry.expiresAt > now || seen.has(entry.runId)) continue;
      // What its claimer would have recorded as it started (a dead worker recorded nothing).
      const run = baseRun(entry, entry.owner, entry.startedAt);
      if (entry.progress !== undefined) run.progress = entry.progress;
      candidates.push({ run, lease: leaseOf(item, tables.leases), fromBoard: true });
    }
    // The manifests' signatures still leased on the queue route as read; the rest are done with.
    const queued = new Set<string>();
    for (const item of leaseItems.values()) if (entryOf(item, tables.leases, false)?.route === 'queue') queued.add(item.signature);
    await this.instances.note(candidates.filter(({ fromBoard }) => fromBoard).map(({ run }) => run));
    const swept = await mapLimit(candidates, this.calls.concurrency, async ({ run, lease, fromBoard }): Promise<SweptRun | undefined> => {
      const ended = sweptRun(run, lease, Math.max(now, run.startedAt ?? run.queuedAt));
      const heldByRun = sweepReleases(lease, run);
      const actions: Record<string, unknown>[] = [];
      const pointers = pointersOf(leaseItems.get(run.signature));
      if (fromBoard) {
        actions.push(...runPuts(tables.runs, ended, pointers.headRunId !== run.id ? pointers.headRunId : undefined));
      } else {
        const u = new Expr();
        actions.push({
          Update: {
            TableName: tables.runs,
            Key: runKey(run),
            UpdateExpression: updateExpression(
              [
                `${u.n('status')} = ${u.v('interrupted')}`,
                `${u.n('endedAt')} = ${u.v(ended.endedAt)}`,
                `${u.n('error')} = ${u.v(JSON.stringify(ended.error))}`,
              ],
              [u.n('liveKey')],
            ),
            ConditionExpression: `${u.n('status')} IN (${LIVE_STATUSES.map((status) => u.v(status)).join(', ')}) AND ${u.n('runner')} = ${u.v(run.runner)} AND ${u.n('fencingToken')} = ${u.v(run.fencingToken)}`,
            ...u.params(),
          },
        });
      }
      if (heldByRun) actions.push({ Update: this.sweepRelease({ signature: run.signature, owner: run.runner, token: run.fencingToken }, now) });
      const outcome =
        actions.length === 1 && !fromBoard
          ? await this.calls.conditional('runs', 'UpdateItem (sweep a run)', () => doc.send(new UpdateCommand(actions[0]!.Update as ConstructorParameters<typeof UpdateCommand>[0])))
          : await this.calls.transact('TransactWriteItems (sweep a run and release its lease)', actions, -1);
      if (!outcome.ok) return undefined;
      // The ended run is its signature's newest now: the lease item's pointers follow (./run-pointers.ts).
      await advanceAfterWrite(this.calls, ended, pointers, fromBoard);
      return { run: ended, lease };
    });
    await this.leases.manifests.prune(manifests, queued, now);
    return swept.filter((run): run is SweptRun => run !== undefined);
  }

  /**
   * The sweeper's release of an expired lease still held by `ref`: clears the owner and the task,
   * keeps token and checkpoint, and only if the lease expired by `expiredBy`. It leaves
   * `releasedAt` alone: the task did not end, so no plan can have missed its end.
   */
  private sweepRelease(ref: LeaseRef, expiredBy: number): ConstructorParameters<typeof UpdateCommand>[0] {
    const e = new Expr();
    return {
      TableName: this.calls.tables.leases,
      Key: { signature: ref.signature },
      UpdateExpression: updateExpression([`${e.n('expiresAt')} = ${e.v(0)}`], [e.n('owner'), ...TASK_ATTRIBUTES.map((name) => e.n(name))]),
      ConditionExpression: `${fenced(e, ref)} AND ${e.n('expiresAt')} <= ${e.v(expiredBy)}`,
      ...e.params(),
    };
  }
}
