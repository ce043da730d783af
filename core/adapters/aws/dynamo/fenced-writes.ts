/**
 * Write batches (`commit`): what a holder writes under its lease (run records, log lines,
 * checkpoint, release: a `FencedWrites` group), applied only while the lease item still has the
 * holder's owner and token, checked in the same write; and the batch's unfenced triggers and
 * trigger results, written by `BatchWriteItem`.
 * - a group that touches only the lease item (a checkpoint, a release, both) is one
 *   `UpdateItem` conditioned on owner and token (one write unit, as before fencing);
 * - a task's end (one final run record of the fence's signature, the release, perhaps a
 *   checkpoint, no log lines: what `finish` writes) is no transaction: the fenced `UpdateItem` of
 *   the lease item, naming the ended run (`endedRunId`), then the record's `PutItem`, which only
 *   an accepted release is followed by (one write unit each where the transaction cost two each);
 * - any other group with run records or log lines is one `TransactWriteItems`: the lease item's update
 *   (checkpoint, release) or else a `ConditionCheck` on it, plus the Puts. Transactions cost two
 *   write units per item (index writes are not doubled). A group of more than 100
 *   actions is split: log lines go first, each part carrying the lease condition, and the part
 *   with the run records and the lease update goes last. A refused lease condition refuses the
 *   group (its fence goes to `refused`), a part already applied stays (log lines only).
 * - a run Put ({@link runPut}) is conditioned on "no item, or its status is live": a final
 *   record is never replaced. When that condition alone fails the transaction, the group is
 *   applied again without that record.
 */
import { PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mapLimitInKeyOrder } from '../../../concurrency.js';
import { StoreError } from '../../../errors.js';
import type { CommitResult, FencedWrites, LeaseRef, WriteBatch } from '../../../ports/store.js';
import { LIVE_STATUSES, TERMINAL_STATUSES, type RunRecord } from '../../../types.js';
import { RUN_SK, TASK_ATTRIBUTES, checkpointAttribute, logItem, runItem, triggerResultItem, type Item } from '../dynamo-items.js';
import { Expr, fenced, updateExpression } from './expressions.js';
import type { Leases } from './leases.js';
import type { TableCalls } from './table-calls.js';
import type { Triggers } from './triggers.js';

/** DynamoDB's limit of actions in one TransactWriteItems. */
const TRANSACT_ITEMS = 100;

/** One item per key, the last one given (a batch may carry the same record twice). */
function lastByKey<T>(items: readonly T[], key: (item: T) => string): T[] {
  const map = new Map<string, T>();
  for (const item of items) {
    const k = key(item);
    map.delete(k);
    map.set(k, item);
  }
  return [...map.values()];
}

/** A transaction's Put of a run record that never replaces a final one. */
export function runPut(runsTable: string, run: RunRecord): Record<string, unknown> {
  const e = new Expr();
  return {
    Put: {
      TableName: runsTable,
      Item: runItem(run),
      ConditionExpression: `attribute_not_exists(${e.n('pk')}) OR ${e.n('status')} IN (${LIVE_STATUSES.map((status) => e.v(status)).join(', ')})`,
      ...e.params(),
    },
  };
}

/** Applies write batches: fenced groups under their leases, triggers and their results as they come. */
export class FencedWriter {
  constructor(
    private readonly calls: TableCalls,
    private readonly leases: Leases,
    private readonly triggers: Triggers,
  ) {}

  async commit(batch: WriteBatch): Promise<CommitResult> {
    const unfenced: Item[] = [
      ...(batch.triggers ?? []).map((trigger) => this.triggers.item(trigger)),
      ...lastByKey(batch.triggerResults ?? [], (result) => result.id).map(triggerResultItem),
    ];
    const [applied] = await Promise.all([
      // Groups of one signature in the order given: a release must not overtake the writes before it.
      mapLimitInKeyOrder(batch.fenced ?? [], this.calls.concurrency, (group) => group.fence.signature, (group) => this.applyFenced(group, batch.at ?? this.calls.now())),
      this.calls.batchWrite('runs', unfenced.map((Item) => ({ PutRequest: { Item } }))),
    ]);
    const refused: LeaseRef[] = [];
    (batch.fenced ?? []).forEach((group, i) => {
      if (!applied[i]) refused.push(group.fence);
    });
    return { refused };
  }

  /** Applies one fenced group; `false` when its lease was not current (nothing of it applied). */
  private async applyFenced(group: FencedWrites, at: number): Promise<boolean> {
    const { doc, tables } = this.calls;
    const { fence } = group;
    let runs = lastByKey(group.runs ?? [], (run) => run.id);
    const logs = lastByKey(group.logs ?? [], (line) => `${line.runId}\u0000${line.seq}`).map(logItem);
    const leaseWrite = group.checkpoint !== undefined || group.release === true;
    const [only] = runs;
    if (only && runs.length === 1 && logs.length === 0 && group.release === true && only.signature === fence.signature && TERMINAL_STATUSES.has(only.status)) {
      return this.finish(group, only, at);
    }
    const leaseOnly = async (): Promise<boolean> => {
      // Nothing but the lease item: one conditional update, or a read when there is nothing to write.
      if (!leaseWrite) {
        const lease = await this.leases.readLeaseItem(fence.signature, 'GetItem (check a fence)', ['signature', 'owner', 'token']);
        return lease?.owner === fence.owner && lease.token === fence.token;
      }
      const update = this.fencedLeaseUpdate(group, at);
      const result = await this.calls.conditional('leases', 'UpdateItem (fenced checkpoint or release)', () => doc.send(new UpdateCommand(update)));
      return result.ok;
    };
    // Log lines first, the run records last, with the checkpoint and release: every part carries
    // the lease condition, and a part past the first 100 actions goes before the last one.
    for (;;) {
      if (runs.length === 0 && logs.length === 0) return leaseOnly();
      const puts = [...logs.map((Item) => ({ Put: { TableName: tables.runs, Item } })), ...runs.map((run) => runPut(tables.runs, run))];
      const parts: Record<string, unknown>[][] = [];
      for (let end = puts.length; end > 0; end -= TRANSACT_ITEMS - 1) parts.unshift(puts.slice(Math.max(0, end - (TRANSACT_ITEMS - 1)), end));
      let ok = true;
      let finalRuns: string[] | undefined;
      for (const [i, part] of parts.entries()) {
        const last = i === parts.length - 1;
        const lease = last && leaseWrite ? { Update: this.fencedLeaseUpdate(group, at) } : { ConditionCheck: this.fenceCheck(fence) };
        const outcome = await this.calls.transact('TransactWriteItems (fenced writes)', [lease, ...part], 0);
        if (outcome.ok) continue;
        if (outcome.refused) return false;
        // A run already final is never replaced: leave it out and apply the rest.
        finalRuns = outcome.failed.map((index) => part[index - 1]).flatMap((action) => {
          const item = (action as { Put?: { Item?: Item } } | undefined)?.Put?.Item;
          return item && item.sk === RUN_SK && typeof item.id === 'string' ? [item.id] : [];
        });
        ok = false;
        break;
      }
      if (ok) return true;
      if (!finalRuns || finalRuns.length === 0) throw new StoreError(`a fenced write of ${fence.signature} was cancelled for no reason this adapter knows; try again`);
      const drop = new Set(finalRuns);
      runs = runs.filter((run) => !drop.has(run.id));
    }
  }

  /**
   * A task's end, without a transaction: the fenced update of the lease item (the release, the
   * checkpoint, and `endedRunId`, the run whose final record follows), then the record's Put. A
   * holder whose token moved on is refused at the first write and writes nothing; the Put only
   * follows an accepted release, and never replaces a final record. Between the two writes the
   * run has no final record yet: the sweeper leaves a live record of `endedRunId` alone for
   * `ENDING_GRACE_MS` after the release (./sweeper.ts), and a plan that read the history
   * that shortly after a release has its post refused (`notReleasedSince`).
   */
  private async finish(group: FencedWrites, run: RunRecord, at: number): Promise<boolean> {
    const { doc } = this.calls;
    const update = this.fencedLeaseUpdate(group, at, run.id);
    const released = await this.calls.conditional('leases', 'UpdateItem (fenced release with the run’s end)', () => doc.send(new UpdateCommand(update)));
    if (!released.ok) return false;
    const { Put } = runPut(this.calls.tables.runs, run) as { Put: ConstructorParameters<typeof PutCommand>[0] };
    // A record already final (the sweeper's, say) stays: the condition refuses this one.
    await this.calls.conditional('runs', 'PutItem (a run’s final record)', () => doc.send(new PutCommand(Put)));
    return true;
  }

  private fenceCheck(ref: LeaseRef): Record<string, unknown> {
    const e = new Expr();
    return { TableName: this.calls.tables.leases, Key: { signature: ref.signature }, ConditionExpression: fenced(e, ref), ...e.params() };
  }

  /** The lease item's update of a fenced group: its checkpoint and, with `release`, the release. */
  private fencedLeaseUpdate(group: FencedWrites, at: number, endedRunId?: string): ConstructorParameters<typeof UpdateCommand>[0] {
    const e = new Expr();
    const sets: string[] = [];
    const removes: string[] = [];
    if (group.checkpoint) sets.push(`${e.n('checkpoint')} = ${e.v(checkpointAttribute({ ...group.checkpoint, signature: group.fence.signature }))}`);
    if (endedRunId !== undefined) sets.push(`${e.n('endedRunId')} = ${e.v(endedRunId)}`);
    if (group.release) {
      sets.push(`${e.n('expiresAt')} = ${e.v(0)}`, `${e.n('releasedAt')} = ${e.v(at)}`);
      removes.push(e.n('owner'), ...TASK_ATTRIBUTES.map((name) => e.n(name)));
    }
    return {
      TableName: this.calls.tables.leases,
      Key: { signature: group.fence.signature },
      UpdateExpression: updateExpression(sets, removes),
      ConditionExpression: fenced(e, group.fence),
      ...e.params(),
    };
  }
}
