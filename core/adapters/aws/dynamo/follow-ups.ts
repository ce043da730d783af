/**
 * The follow-up gate of each instance (core/cloud/board.ts `FollowUpGate`): one item per instance
 * in the instances table (`kind: 'followup'`) with the start of the latest follow-up plan
 * (`planFrom`), until when that plan holds the gate (`planUntil`, absent once it ended), and the
 * latest request that arrived while it planned (`pendingAt`). Each decision is one conditional
 * write on that item, so two scheduler invocations never plan one instance as a follow-up at once,
 * and a request is never lost between a plan that started too early to see its tasks end and the
 * end of that plan.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import type { FollowUpGate } from '../../../cloud/board.js';
import { FOLLOWUP_KIND } from '../dynamo-items.js';
import { Expr } from './expressions.js';
import type { TableCalls } from './table-calls.js';

const gateItemSchema = z.looseObject({
  planFrom: z.number().optional(),
  planUntil: z.number().optional(),
  pendingAt: z.number().optional(),
});

/** Rounds of claim-or-mark-pending when the gate keeps changing under the request. */
const ATTEMPTS = 5;

export class FollowUps {
  constructor(private readonly calls: TableCalls) {}

  async begin(instanceId: string, requestedAt: number, now: number, ttlMs: number): Promise<FollowUpGate> {
    const { doc, tables } = this.calls;
    const Key = { instanceId, kind: FOLLOWUP_KIND };
    for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
      // Claim: no plan holds the gate, and none started after the request (it would cover it).
      const c = new Expr();
      const claimed = await this.calls.conditional('instances', 'UpdateItem (claim a follow-up plan)', () =>
        doc.send(
          new UpdateCommand({
            TableName: tables.instances,
            Key,
            UpdateExpression: `SET ${c.n('planFrom')} = ${c.v(now)}, ${c.n('planUntil')} = ${c.v(now + ttlMs)} REMOVE ${c.n('pendingAt')}`,
            ConditionExpression:
              `(attribute_not_exists(${c.n('planUntil')}) OR ${c.n('planUntil')} < ${c.v(now)}) ` +
              `AND (attribute_not_exists(${c.n('planFrom')}) OR ${c.n('planFrom')} <= ${c.v(requestedAt)})`,
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            ...c.params(),
          }),
        ),
      );
      if (claimed.ok) return { kind: 'claimed', from: now };
      const gate = gateItemSchema.parse(claimed.item ?? {});
      if (gate.planFrom !== undefined && gate.planFrom > requestedAt) return { kind: 'covered' };
      if (gate.planFrom === undefined || gate.planUntil === undefined || gate.planUntil < now) continue;
      // A plan that started before the request holds the gate: it plans again when it ends.
      const p = new Expr();
      const marked = await this.calls.conditional('instances', 'UpdateItem (leave a follow-up pending)', () =>
        doc.send(
          new UpdateCommand({
            TableName: tables.instances,
            Key,
            UpdateExpression: `SET ${p.n('pendingAt')} = ${p.v(requestedAt)}`,
            ConditionExpression:
              `${p.n('planFrom')} = ${p.v(gate.planFrom)} AND ${p.n('planUntil')} >= ${p.v(now)} ` +
              `AND (attribute_not_exists(${p.n('pendingAt')}) OR ${p.n('pendingAt')} < ${p.v(requestedAt)})`,
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            ...p.params(),
          }),
        ),
      );
      if (marked.ok) return { kind: 'pending' };
      const latest = gateItemSchema.parse(marked.item ?? {});
      // A later request is pending already, under the same plan: this one is in it.
      if (latest.planFrom === gate.planFrom && latest.planUntil !== undefined && latest.planUntil >= now && (latest.pendingAt ?? -Infinity) >= requestedAt) {
        return { kind: 'pending' };
      }
    }
    throw new Error(`the follow-up gate of instance "${instanceId}" kept changing under ${ATTEMPTS} attempts; the next tick plans it`);
  }

  async end(instanceId: string, from: number): Promise<number | undefined> {
    const { doc, tables } = this.calls;
    const e = new Expr();
    const ended = await this.calls.conditional('instances', 'UpdateItem (end a follow-up plan)', () =>
      doc.send(
        new UpdateCommand({
          TableName: tables.instances,
          Key: { instanceId, kind: FOLLOWUP_KIND },
          UpdateExpression: `REMOVE ${e.n('planUntil')}, ${e.n('pendingAt')}`,
          ConditionExpression: `${e.n('planFrom')} = ${e.v(from)}`,
          ReturnValues: 'ALL_OLD',
          ...e.params(),
        }),
      ),
    );
    if (!ended.ok) return undefined;
    return gateItemSchema.parse(ended.value.Attributes ?? {}).pendingAt;
  }
}
