/**
 * Triggers and what became of them, on the runs table: a trigger is `trigger`/`<at>#<ulid>`
 * (the ulid orders triggers added at the same `at` as they came in), its result
 * `trigger#<id>`/`result`. Each trigger goes to whoever deletes it first (`takeTriggers`).
 * Triggers and results a write batch carries are written by the batch (./fenced-writes.ts),
 * with items built here.
 */
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, type NativeAttributeValue } from '@aws-sdk/lib-dynamodb';
import { monotonicFactory } from 'ulid';
import { mapLimit } from '../../../concurrency.js';
import type { Trigger, TriggerResult } from '../../../ports/store.js';
import { TRIGGER_PK, TRIGGER_RESULT_SK, triggerItem, triggerOf, triggerResultOf, triggerResultPk, type Item } from '../dynamo-items.js';
import { Expr } from './expressions.js';
import type { TableCalls } from './table-calls.js';

/** The triggers of the runs table. */
export class Triggers {
  /** Orders triggers added at the same `at` as they came in. */
  private readonly nextTriggerOrder = monotonicFactory();

  constructor(private readonly calls: TableCalls) {}

  /** The item of a trigger added now: its order among those of the same `at` is taken here. */
  item(trigger: Trigger): Item {
    return triggerItem(trigger, this.nextTriggerOrder());
  }

  async addTrigger(trigger: Trigger): Promise<void> {
    const { doc, tables } = this.calls;
    await this.calls.call('runs', 'PutItem (add a trigger)', () => doc.send(new PutCommand({ TableName: tables.runs, Item: this.item(trigger) })));
  }

  async getTriggerResult(id: string): Promise<TriggerResult | undefined> {
    const { doc, tables } = this.calls;
    const output = await this.calls.call('runs', 'GetItem (read a trigger result)', () =>
      doc.send(new GetCommand({ TableName: tables.runs, Key: { pk: triggerResultPk(id), sk: TRIGGER_RESULT_SK }, ConsistentRead: true })),
    );
    return output.Item === undefined ? undefined : triggerResultOf(output.Item, tables.runs);
  }

  async takeTriggers(limit: number): Promise<Trigger[]> {
    const { doc, tables } = this.calls;
    const count = Math.floor(limit);
    if (!(count > 0)) return [];
    const taken: Trigger[] = [];
    let startKey: Record<string, NativeAttributeValue> | undefined;
    do {
      const e = new Expr();
      const page = await this.calls.call('runs', 'Query (list triggers)', () =>
        doc.send(
          new QueryCommand({
            TableName: tables.runs,
            KeyConditionExpression: `${e.n('pk')} = ${e.v(TRIGGER_PK)}`,
            ConsistentRead: true,
            Limit: count - taken.length,
            ...(startKey ? { ExclusiveStartKey: startKey } : {}),
            ...e.params(),
          }),
        ),
      );
      const found = (page.Items ?? []).map((item) => triggerOf(item, tables.runs));
      // Each trigger goes to whoever deletes it: one that another caller deleted first is skipped.
      const mine = await mapLimit(found, this.calls.concurrency, async ({ sk, trigger }) => {
        const d = new Expr();
        const result = await this.calls.conditional('runs', 'DeleteItem (take a trigger)', () =>
          doc.send(
            new DeleteCommand({
              TableName: tables.runs,
              Key: { pk: TRIGGER_PK, sk },
              ConditionExpression: `attribute_exists(${d.n('pk')})`,
              ...d.params(),
            }),
          ),
        );
        return result.ok ? trigger : undefined;
      });
      for (const trigger of mine) if (trigger) taken.push(trigger);
      startKey = page.LastEvaluatedKey;
    } while (startKey && taken.length < count);
    return taken;
  }
}
