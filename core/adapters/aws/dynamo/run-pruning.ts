/**
 * Pruning the runs table (`pruneRuns`, maintenance): deletes every final run that ended before a
 * time, with its log lines and locator (its whole `run#<id>` partition), keeping each signature's
 * latest success (the planner's history). Finding them is a Scan of run briefs; deleting is a
 * Query per pruned run for the keys of that partition and `BatchWriteItem` deletes of those and
 * the record; then the signatures' run pointers and
 * chains are moved off the pruned runs (./run-pointers.ts).
 */
import { UpdateCommand, type QueryCommandInput, type ScanCommandInput } from '@aws-sdk/lib-dynamodb';
import { mapLimit } from '../../../concurrency.js';
import { TERMINAL_STATUSES } from '../../../types.js';
import { RUN_BRIEF_ATTRIBUTES, RUN_SK_PREFIX, runBriefOf, runKey, runPk, type Item, type RunBrief } from '../dynamo-items.js';
import { Expr, updateExpression } from './expressions.js';
import { readPointers } from './run-pointers.js';
import { newer } from './run-queries.js';
import { BATCH_CONCURRENCY, type TableCalls } from './table-calls.js';

/** Prunes ended runs from the runs table. */
export class RunPruner {
  constructor(private readonly calls: TableCalls) {}

  async pruneRuns(endedBefore: number): Promise<number> {
    const { tables } = this.calls;
    const e = new Expr();
    const input: ScanCommandInput = {
      TableName: tables.runs,
      FilterExpression: `begins_with(${e.n('sk')}, ${e.v(RUN_SK_PREFIX)})`,
      ProjectionExpression: RUN_BRIEF_ATTRIBUTES.map((a) => e.n(a)).join(', '),
      ConsistentRead: true,
      ...e.params(),
    };
    const briefs = [];
    for await (const item of this.calls.scanItems('runs', 'Scan (find runs to prune)', input)) briefs.push(runBriefOf(item, tables.runs));
    // The latest success of each signature stays, in the order of lastRun.
    const latestSuccess = new Map<string, (typeof briefs)[number]>();
    for (const run of briefs) {
      if (run.status !== 'succeeded') continue;
      const best = latestSuccess.get(run.signature);
      if (!best || newer(run, best)) latestSuccess.set(run.signature, run);
    }
    const keep = new Set([...latestSuccess.values()].map((run) => run.id));
    const doomed = briefs.filter(
      (run) => TERMINAL_STATUSES.has(run.status) && run.endedAt !== undefined && run.endedAt < endedBefore && !keep.has(run.id),
    );
    const keys = (
      await mapLimit(doomed, BATCH_CONCURRENCY, async (run) => {
        const k = new Expr();
        const partition: QueryCommandInput = {
          TableName: tables.runs,
          KeyConditionExpression: `${k.n('pk')} = ${k.v(runPk(run.id))}`,
          ProjectionExpression: `${k.n('pk')}, ${k.n('sk')}`,
          ConsistentRead: true,
          ...k.params(),
        };
        const found: Item[] = [runKey(run)];
        for await (const item of this.calls.queryItems('runs', 'Query (list a pruned run’s items)', partition)) {
          const { pk, sk }: { pk?: unknown; sk?: unknown } = item;
          if (typeof pk === 'string' && typeof sk === 'string') found.push({ pk, sk });
        }
        return found;
      })
    ).flat();
    await this.calls.batchWrite('runs', keys.map((Key) => ({ DeleteRequest: { Key } })));
    await this.repairChains(briefs, new Set(doomed.map((run) => run.id)));
    return doomed.length;
  }

  /**
   * Keeps the pointers of each signature that lost runs true (./run-pointers.ts): a kept run
   * whose prior was pruned now names the nearest kept run before it, and a lease item's pointer
   * to a pruned run moves to the newest run left (`lastRunId`) or the nearest kept one before it
   * (`headRunId`). The latest success is never pruned, so `lastSuccessId` stays.
   */
  private async repairChains(briefs: readonly RunBrief[], pruned: ReadonlySet<string>): Promise<void> {
    const { doc, tables } = this.calls;
    if (pruned.size === 0) return;
    const byId = new Map(briefs.map((run) => [run.id, run]));
    const keptBefore = (id: string | undefined): string | undefined => {
      const visited = new Set<string>();
      while (id !== undefined && pruned.has(id) && !visited.has(id)) {
        visited.add(id);
        id = byId.get(id)?.priorRunId;
      }
      return id !== undefined && pruned.has(id) ? undefined : id;
    };
    const relinks = briefs.filter((run) => !pruned.has(run.id) && run.priorRunId !== undefined && pruned.has(run.priorRunId));
    await mapLimit(relinks, BATCH_CONCURRENCY, async (run) => {
      const e = new Expr();
      const prior = keptBefore(run.priorRunId);
      await this.calls.conditional('runs', 'UpdateItem (link a run past pruned ones)', () =>
        doc.send(
          new UpdateCommand({
            TableName: tables.runs,
            Key: runKey(run),
            UpdateExpression: prior === undefined ? `REMOVE ${e.n('priorRunId')}` : `SET ${e.n('priorRunId')} = ${e.v(prior)}`,
            ConditionExpression: `attribute_exists(${e.n('pk')})`,
            ...e.params(),
          }),
        ),
      );
    });
    const signatures = [...new Set(briefs.filter((run) => pruned.has(run.id)).map((run) => run.signature))];
    await mapLimit(signatures, BATCH_CONCURRENCY, async (signature) => {
      const seen = await readPointers(this.calls, signature);
      const e = new Expr();
      const sets: string[] = [];
      const removes: string[] = [];
      const conditions: string[] = [];
      if (seen.lastRunId !== undefined && pruned.has(seen.lastRunId)) {
        let newest: RunBrief | undefined;
        for (const run of briefs) if (run.signature === signature && !pruned.has(run.id) && (!newest || newer(run, newest))) newest = run;
        if (newest) sets.push(`${e.n('lastRunId')} = ${e.v(newest.id)}`, `${e.n('lastRunAt')} = ${e.v(newest.queuedAt)}`);
        else removes.push(e.n('lastRunId'), e.n('lastRunAt'));
        conditions.push(`${e.n('lastRunId')} = ${e.v(seen.lastRunId)}`);
      }
      if (seen.headRunId !== undefined && pruned.has(seen.headRunId)) {
        const head = keptBefore(seen.headRunId);
        if (head !== undefined) sets.push(`${e.n('headRunId')} = ${e.v(head)}`);
        else removes.push(e.n('headRunId'));
        conditions.push(`${e.n('headRunId')} = ${e.v(seen.headRunId)}`);
      }
      if (conditions.length === 0) return;
      // A pointer moved meanwhile (a run written since) is left as it is.
      await this.calls.conditional('leases', 'UpdateItem (move pointers off pruned runs)', () =>
        doc.send(
          new UpdateCommand({
            TableName: tables.leases,
            Key: { signature },
            UpdateExpression: updateExpression(sets, removes),
            ConditionExpression: conditions.join(' AND '),
            ...e.params(),
          }),
        ),
      );
    });
  }
}
