/**
 * Pruning the runs table (`pruneRuns`, maintenance): deletes every final run that ended before a
 * time, with its log lines (its whole `run#<id>` partition), keeping each signature's latest
 * success (the planner's history). Finding them is a Scan of run briefs; deleting is a Query per
 * pruned run for its keys and `BatchWriteItem` deletes.
 */
import type { QueryCommandInput, ScanCommandInput } from '@aws-sdk/lib-dynamodb';
import { mapLimit } from '../../../concurrency.js';
import { TERMINAL_STATUSES } from '../../../types.js';
import { RUN_BRIEF_ATTRIBUTES, RUN_SK, runBriefOf, runPk, type Item } from '../dynamo-items.js';
import { Expr } from './expressions.js';
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
      FilterExpression: `${e.n('sk')} = ${e.v(RUN_SK)}`,
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
        const found: Item[] = [];
        for await (const item of this.calls.queryItems('runs', 'Query (list a pruned run’s items)', partition)) {
          const { pk, sk }: { pk?: unknown; sk?: unknown } = item;
          if (typeof pk === 'string' && typeof sk === 'string') found.push({ pk, sk });
        }
        return found;
      })
    ).flat();
    await this.calls.batchWrite('runs', keys.map((Key) => ({ DeleteRequest: { Key } })));
    return doomed.length;
  }
}
