/**
 * Which instances have runs, for the run queries that name no instance (`ujr runs` without
 * `--instance`, `ujr status`'s recent failures): they read the `byInstance` index of each, in
 * place of an index of every run by day, which took a write unit with every run record.
 *
 * One item per instance in the instances table (`kind: 'runs'`), written with the first run
 * record of the instance this store writes (an idempotent update, remembered for the life of the
 * store object: in Lambda, once per instance and container), never deleted. Listing them is a
 * Scan of the instances table, which holds a few items per instance.
 */
import { UpdateCommand, type ScanCommandInput } from '@aws-sdk/lib-dynamodb';
import { mapLimit } from '../../../concurrency.js';
import { RUNS_KIND } from '../dynamo-items.js';
import { Expr } from './expressions.js';
import type { TableCalls } from './table-calls.js';

/** The instances with run records, as the instances table lists them. */
export class RunInstances {
  /** Instances this store has noted (or found) already. */
  private readonly known = new Set<string>();

  constructor(private readonly calls: TableCalls) {}

  /** Notes that runs of these instances are about to be written. */
  async note(instanceIds: Iterable<string>): Promise<void> {
    const { doc, tables } = this.calls;
    const fresh = [...new Set(instanceIds)].filter((id) => !this.known.has(id));
    await mapLimit(fresh, this.calls.concurrency, async (instanceId) => {
      const e = new Expr();
      await this.calls.call('instances', 'UpdateItem (note an instance with runs)', () =>
        doc.send(
          new UpdateCommand({
            TableName: tables.instances,
            Key: { instanceId, kind: RUNS_KIND },
            UpdateExpression: `SET ${e.n('since')} = if_not_exists(${e.n('since')}, ${e.v(this.calls.now())})`,
            ...e.params(),
          }),
        ),
      );
      this.known.add(instanceId);
    });
  }

  /** Every instance with run records. */
  async list(): Promise<string[]> {
    const e = new Expr();
    const input: ScanCommandInput = {
      TableName: this.calls.tables.instances,
      FilterExpression: `${e.n('kind')} = ${e.v(RUNS_KIND)}`,
      ProjectionExpression: e.n('instanceId'),
      ConsistentRead: true,
      ...e.params(),
    };
    const ids: string[] = [];
    for await (const item of this.calls.scanItems('instances', 'Scan (list the instances with runs)', input)) {
      if (typeof item.instanceId === 'string') {
        ids.push(item.instanceId);
        this.known.add(item.instanceId);
      }
    }
    return ids.sort();
  }
}
