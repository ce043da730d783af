/**
 * Write batches (`commit`): what a holder writes under its lease (run records, log lines,
 * checkpoint, release: a `FencedWrites` group), applied only while the lease item still has the
 * holder's owner and token, checked in the same write; and the batch's unfenced triggers and
 * trigger results, written by `BatchWriteItem`.
 * - a group that touches only the lease item (a checkpoint, a release, both) is one
 *   `UpdateItem` conditioned on owner and token (one write unit, as before fencing);
 * - a task's end (one final run record of the fence's signature, the release, perhaps a
 *   checkpoint, no log lines: what `finish` writes) is no transaction: the fenced `UpdateItem` of
 *   the lease item, naming the ended run (`endedRunId`) and moving the signature's run pointers
 *   to it (./run-pointers.ts), then the record's write, which only an accepted release is
 *   followed by (one write unit each where the transaction cost two each);
 * - any other group with run records or log lines is one `TransactWriteItems`: the lease item's
 *   update (checkpoint, release, run pointers) or else a `ConditionCheck` on it, the pointer
 *   updates of other signatures whose runs it carries, plus the Puts; the pointers and which
 *   records exist already are read first (two `BatchGetItem`s). Transactions cost two write
 *   units per item (index writes are not doubled). A group of more than 100 actions is split:
 *   log lines go first, each part carrying the lease condition, and the part with the run
 *   records, the lease update and the pointers goes last. A refused lease condition refuses the
 *   group (its fence goes to `refused`), a part already applied stays (log lines only).
 * - a run write ({@link runPuts}, {@link runUpdate}) is conditioned on "no item, or its status is
 *   live": a final record is never replaced. When that condition alone fails the transaction,
 *   the group is applied again without that record. A run whose id does not say where its record
 *   is (core/run-ids.ts) gets its locator item written with it (an id the runtime mints needs none).
 */
import { BatchGetCommand, PutCommand, UpdateCommand, type NativeAttributeValue } from '@aws-sdk/lib-dynamodb';
import { mapLimit, mapLimitInKeyOrder } from '../../../concurrency.js';
import { StoreError } from '../../../errors.js';
import { fenceHolds } from '../../../ports/fencing.js';
import type { CommitResult, FencedWrites, LeaseRef, WriteBatch } from '../../../ports/store.js';
import { idLocates } from '../../../run-ids.js';
import { LIVE_STATUSES, TERMINAL_STATUSES, type RunRecord } from '../../../types.js';
import { OPTIONAL_RUN_ATTRIBUTES, RUN_SK_PREFIX, TASK_ATTRIBUTES, checkpointAttribute, locatorItem, logItem, parseLeaseItem, priorOf, runItem, runKey, triggerResultItem, type Item } from '../dynamo-items.js';
import { Expr, fenced, updateExpression } from './expressions.js';
import type { LeaseItem, Leases } from './leases.js';
import { HEAD_PRIOR_ATTRIBUTE, POINTER_ATTRIBUTES, advance, ahead, pointerSets, pointersOf, type RunPointers } from './run-pointers.js';
import { BATCH_CONCURRENCY, BATCH_GET_KEYS, chunks, type TableCalls } from './table-calls.js';
import type { RunInstances } from './run-instances.js';
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

/** The condition of every run write: no record yet, or a live one (a final record is never replaced). */
function notFinal(e: Expr): string {
  return `attribute_not_exists(${e.n('pk')}) OR ${e.n('status')} IN (${LIVE_STATUSES.map((status) => e.v(status)).join(', ')})`;
}

/**
 * A transaction's Put of a run record that never replaces a final one (`priorRunId`: see
 * ./run-pointers.ts), and the Put of its locator when its id does not say where it is.
 */
export function runPuts(runsTable: string, run: RunRecord, priorRunId?: string): Record<string, unknown>[] {
  const e = new Expr();
  return [...locatorPuts(runsTable, run), { Put: { TableName: runsTable, Item: runItem(run, priorRunId), ConditionExpression: notFinal(e), ...e.params() } }];
}

/** The transaction Put of a run's locator item, when its id does not say where its record is (core/run-ids.ts). */
export function locatorPuts(runsTable: string, run: RunRecord): Record<string, unknown>[] {
  return idLocates(run) ? [] : [{ Put: { TableName: runsTable, Item: locatorItem(run) } }];
}

/**
 * The same write as an update, which keeps the `priorRunId` of a record written before (a live
 * one) and sets `priorRunId` only on a new one.
 */
export function runUpdate(runsTable: string, run: RunRecord, priorRunId: string | undefined): ConstructorParameters<typeof UpdateCommand>[0] {
  const item = runItem(run);
  const e = new Expr();
  const sets = Object.entries(item)
    .filter(([name]) => name !== 'pk' && name !== 'sk')
    .map(([name, value]) => `${e.n(name)} = ${e.v(value)}`);
  if (priorRunId !== undefined) sets.push(`${e.n('priorRunId')} = if_not_exists(${e.n('priorRunId')}, ${e.v(priorRunId)})`);
  const removes = OPTIONAL_RUN_ATTRIBUTES.filter((name) => !(name in item)).map((name) => e.n(name));
  return { TableName: runsTable, Key: runKey(run), UpdateExpression: updateExpression(sets, removes), ConditionExpression: notFinal(e), ...e.params() };
}

/** The lease condition that `at`/`id` moves a pointer forward (or leaves it where it is). */
function pointerAdvances(e: Expr, atName: 'lastRunAt' | 'lastSuccessAt', idName: 'lastRunId' | 'lastSuccessId', at: number, id: string): string {
  const a = e.n(atName);
  const i = e.n(idName);
  const atValue = e.v(at);
  return `(attribute_not_exists(${i}) OR ${a} < ${atValue} OR (${a} = ${atValue} AND ${i} <= ${e.v(id)}))`;
}

/** How the pointers of the signatures a group writes move, and the prior of each of its runs. */
interface PointerPlan {
  bySignature: Map<string, { seen: RunPointers; next: RunPointers }>;
  priors: Map<string, string | undefined>;
}

/** Extra `SET` clauses and conditions of a lease item's update. */
type LeaseExtras = (e: Expr) => { sets: string[]; conditions: string[] };

/** Applies write batches: fenced groups under their leases, triggers and their results as they come. */
export class FencedWriter {
  constructor(
    private readonly calls: TableCalls,
    private readonly leases: Leases,
    private readonly triggers: Triggers,
    private readonly instances: RunInstances,
  ) {}

  /** Notes the tasks of runs about to be written as tasks with runs (./run-instances.ts). */
  noteInstances(runs: readonly RunRecord[]): Promise<void> {
    return this.instances.note(runs);
  }

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
    await this.noteInstances(runs);
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
    // Log lines first, the run records last, with the checkpoint, the release and the pointers of
    // the signatures written: every part carries the lease condition, and a part past the first
    // 100 actions goes before the last one.
    for (;;) {
      if (runs.length === 0 && logs.length === 0) return leaseOnly();
      const plan = await this.planPointers(runs);
      const own = plan.bySignature.get(fence.signature);
      const ownSets: LeaseExtras | undefined = own && ((e) => ({ sets: pointerSets(e, own.seen, own.next), conditions: [] }));
      const movesOwn = own !== undefined && pointerSets(new Expr(), own.seen, own.next).length > 0;
      const others = [...plan.bySignature].filter(([signature]) => signature !== fence.signature).flatMap(([signature, { seen, next }]) => {
        const e = new Expr();
        const sets = pointerSets(e, seen, next);
        return sets.length === 0 ? [] : [{ Update: { TableName: tables.leases, Key: { signature }, UpdateExpression: updateExpression(sets, []), ...e.params() } }];
      });
      const puts = [...logs.map((Item) => ({ Put: { TableName: tables.runs, Item } })), ...runs.flatMap((run) => runPuts(tables.runs, run, plan.priors.get(run.id)))];
      const room = TRANSACT_ITEMS - 1 - others.length;
      if (room < 1) throw new StoreError(`a fenced write of ${fence.signature} carries run records of ${others.length + 1} signatures, more than one transaction holds; commit them in smaller groups`);
      const parts: Record<string, unknown>[][] = [];
      for (let end = puts.length, size = room; end > 0; end -= size, size = TRANSACT_ITEMS - 1) parts.unshift(puts.slice(Math.max(0, end - size), end));
      let ok = true;
      let finalRuns: string[] | undefined;
      for (const [i, part] of parts.entries()) {
        const last = i === parts.length - 1;
        const lease = last && (leaseWrite || movesOwn) ? { Update: this.fencedLeaseUpdate(group, at, ownSets) } : { ConditionCheck: this.fenceCheck(fence) };
        const extra = last ? others : [];
        const outcome = await this.calls.transact('TransactWriteItems (fenced writes)', [lease, ...extra, ...part], 0);
        if (outcome.ok) continue;
        if (outcome.refused) return false;
        // A run already final is never replaced: leave it out and apply the rest.
        finalRuns = outcome.failed.map((index) => part[index - 1 - extra.length]).flatMap((action) => {
          const item = (action as { Put?: { Item?: Item } } | undefined)?.Put?.Item;
          return item && typeof item.sk === 'string' && item.sk.startsWith(RUN_SK_PREFIX) && typeof item.id === 'string' ? [item.id] : [];
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
    const { doc, tables } = this.calls;
    const queuedAt = run.queuedAt;
    // The pointers move to this run unless a newer run of the signature was written (a record
    // written out of order): the condition says so, and the update goes again without them.
    let moveLast = true;
    let moveSuccess = run.status === 'succeeded';
    let old: LeaseItem;
    for (let attempt = 0; ; attempt += 1) {
      const extras: LeaseExtras = (e) => {
        const sets = [
          `${e.n('endedRunId')} = ${e.v(run.id)}`,
          // Every operand reads the item as it was: the head before this update.
          `${e.n(HEAD_PRIOR_ATTRIBUTE)} = if_not_exists(${e.n('headRunId')}, ${e.v('')})`,
          `${e.n('headRunId')} = ${e.v(run.id)}`,
        ];
        const conditions: string[] = [];
        if (moveLast) {
          sets.push(`${e.n('lastRunId')} = ${e.v(run.id)}`, `${e.n('lastRunAt')} = ${e.v(queuedAt)}`);
          conditions.push(pointerAdvances(e, 'lastRunAt', 'lastRunId', queuedAt, run.id));
        }
        if (moveSuccess) {
          sets.push(`${e.n('lastSuccessId')} = ${e.v(run.id)}`, `${e.n('lastSuccessAt')} = ${e.v(queuedAt)}`);
          conditions.push(pointerAdvances(e, 'lastSuccessAt', 'lastSuccessId', queuedAt, run.id));
        }
        return { sets, conditions };
      };
      const update = this.fencedLeaseUpdate(group, at, extras);
      const released = await this.calls.conditional('leases', 'UpdateItem (fenced release with the run’s end)', () =>
        doc.send(new UpdateCommand({ ...update, ReturnValues: 'ALL_OLD', ReturnValuesOnConditionCheckFailure: 'ALL_OLD' })),
      );
      if (released.ok) {
        old = parseLeaseItem(released.value.Attributes, tables.leases);
        break;
      }
      const holder = released.item ? parseLeaseItem(released.item, tables.leases) : undefined;
      if (!holder || !fenceHolds({ owner: holder.owner ?? null, token: holder.token ?? -1 }, group.fence)) return false;
      if (attempt >= 2) throw new StoreError(`the release of ${group.fence.signature} in table ${tables.leases} kept failing a condition while its fence held; try again`);
      moveLast = moveLast && ahead(queuedAt, run.id, holder.lastRunAt, holder.lastRunId);
      moveSuccess = moveSuccess && ahead(queuedAt, run.id, holder.lastSuccessAt, holder.lastSuccessId);
    }
    // A record first written now follows the head before it; one written before (live) keeps its own.
    const prior = old?.headRunId !== run.id ? old?.headRunId : undefined;
    // The locator first: a locator whose record never comes finds nothing, a record without one could not be found by id.
    if (!idLocates(run)) await this.calls.call('runs', 'PutItem (a run’s locator)', () => doc.send(new PutCommand({ TableName: tables.runs, Item: locatorItem(run) })));
    // A record already final (the sweeper's, say) stays: the condition refuses this one.
    await this.calls.conditional('runs', 'UpdateItem (a run’s final record)', () => doc.send(new UpdateCommand(runUpdate(tables.runs, run, prior))));
    return true;
  }

  /** The pointers of the signatures `runs` belong to as they are, and as writing `runs` leaves them. */
  private async planPointers(runs: readonly RunRecord[]): Promise<PointerPlan> {
    const { tables } = this.calls;
    const signatures = [...new Set(runs.map((run) => run.signature))];
    const [leaseItems, stored] = await Promise.all([this.leases.batchGetLeases(signatures, ['signature', ...POINTER_ATTRIBUTES], true), this.storedPriors(runs)]);
    const seen = new Map<string, RunPointers>();
    for (const item of leaseItems) {
      const lease = parseLeaseItem(item, tables.leases);
      if (lease) seen.set(lease.signature, pointersOf(lease));
    }
    const plan: PointerPlan = { bySignature: new Map(), priors: new Map(stored) };
    for (const signature of signatures) {
      const before = seen.get(signature) ?? {};
      const { next, priors } = advance(before, runs.filter((run) => run.signature === signature), new Set(stored.keys()));
      plan.bySignature.set(signature, { seen: before, next });
      for (const [id, prior] of priors) plan.priors.set(id, prior);
    }
    return plan;
  }

  /** The `priorRunId` of each of these runs whose record is stored already (`undefined`: stored without one). */
  private async storedPriors(runs: readonly RunRecord[]): Promise<Map<string, string | undefined>> {
    const { doc, tables } = this.calls;
    const found = new Map<string, string | undefined>();
    await mapLimit(chunks(runs, BATCH_GET_KEYS), BATCH_CONCURRENCY, async (chunk) => {
      const e = new Expr();
      let keys: Record<string, NativeAttributeValue>[] = chunk.map((run) => runKey(run));
      for (let attempt = 0; keys.length > 0; attempt += 1) {
        if (attempt > 0) await this.calls.backoff(attempt, 'runs', 'BatchGetItem', `${keys.length} keys`);
        const request = keys;
        const output = await this.calls.call('runs', 'BatchGetItem (read the priors of runs)', () =>
          doc.send(
            new BatchGetCommand({
              RequestItems: { [tables.runs]: { Keys: request, ProjectionExpression: `${e.n('id')}, ${e.n('priorRunId')}`, ConsistentRead: true, ExpressionAttributeNames: e.names } },
            }),
          ),
        );
        for (const item of output.Responses?.[tables.runs] ?? []) if (typeof item.id === 'string') found.set(item.id, priorOf(item, tables.runs));
        keys = output.UnprocessedKeys?.[tables.runs]?.Keys ?? [];
      }
    });
    return found;
  }

  private fenceCheck(ref: LeaseRef): Record<string, unknown> {
    const e = new Expr();
    return { TableName: this.calls.tables.leases, Key: { signature: ref.signature }, ConditionExpression: fenced(e, ref), ...e.params() };
  }

  /** The lease item's update of a fenced group: its checkpoint and, with `release`, the release. */
  private fencedLeaseUpdate(group: FencedWrites, at: number, extras?: LeaseExtras): ConstructorParameters<typeof UpdateCommand>[0] {
    const e = new Expr();
    const sets: string[] = [];
    const removes: string[] = [];
    const more = extras?.(e) ?? { sets: [], conditions: [] };
    if (group.checkpoint) sets.push(`${e.n('checkpoint')} = ${e.v(checkpointAttribute({ ...group.checkpoint, signature: group.fence.signature }))}`);
    sets.push(...more.sets);
    if (group.release) {
      sets.push(`${e.n('expiresAt')} = ${e.v(0)}`, `${e.n('releasedAt')} = ${e.v(at)}`);
      removes.push(e.n('owner'), ...TASK_ATTRIBUTES.map((name) => e.n(name)));
    }
    return {
      TableName: this.calls.tables.leases,
      Key: { signature: group.fence.signature },
      UpdateExpression: updateExpression(sets, removes),
      ConditionExpression: [fenced(e, group.fence), ...more.conditions].join(' AND '),
      ...e.params(),
    };
  }
}
