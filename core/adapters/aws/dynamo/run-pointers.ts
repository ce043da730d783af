/**
 * The pointers a lease item keeps to its signature's runs, in place of an index of runs by
 * signature (which took a write unit with every run record). Every run of a signature is written
 * under that signature's lease, so the lease item, which the write updates anyway (the release),
 * keeps them at no extra write:
 * - `lastRunId`/`lastRunAt`: the newest run in the order of `lastRun` (queue time, then the
 *   greater id), and `lastSuccessId`/`lastSuccessAt`: the newest success. `lastRun` by
 *   signature, the question plans ask, is two consistent reads by key;
 * - `headRunId`: the run of the signature whose record was first written last. Each run item
 *   names the head before it (`priorRunId`, set once, when its record is first written), so
 *   walking back from the head (and from the two pointers) reaches the signature's runs, newest
 *   written first: how `listRuns` by signature and the rarer `lastRun` filters are answered.
 *
 * The local SQLite store does the same (its schema 5); this module holds the order and the
 * arithmetic, the writes that carry them are in ./fenced-writes.ts, ./board.ts and ./sweeper.ts.
 */
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { RunRecord } from '../../../types.js';
import { parseLeaseItem } from '../dynamo-items.js';
import { Expr, updateExpression } from './expressions.js';
import type { TableCalls } from './table-calls.js';

/** The pointer attributes of a lease item (never removed by a release or a grant). */
export const POINTER_ATTRIBUTES = ['lastRunId', 'lastRunAt', 'lastSuccessId', 'lastSuccessAt', 'headRunId'] as const;

/**
 * The head before the last task's end moved it (`''`: none). A task's end writes the lease item
 * first and the record just after (./fenced-writes.ts); if the record never comes (its writer
 * died in between), the head names a run with no record, and a walk goes on from here.
 */
export const HEAD_PRIOR_ATTRIBUTE = 'headPriorRunId';

export interface RunPointers {
  lastRunId?: string | undefined;
  lastRunAt?: number | undefined;
  lastSuccessId?: string | undefined;
  lastSuccessAt?: number | undefined;
  headRunId?: string | undefined;
  /** See {@link HEAD_PRIOR_ATTRIBUTE}; never written by {@link pointerSets}. */
  headPriorRunId?: string | undefined;
}

/** Whether a run at `at` with `id` comes after the pointed run (`pointerAt`, `pointerId`) in the order of `lastRun`. */
export function ahead(at: number, id: string, pointerAt: number | undefined, pointerId: string | undefined): boolean {
  return pointerId === undefined || pointerAt === undefined || at > pointerAt || (at === pointerAt && id >= pointerId);
}

/**
 * The pointers after `runs` are written in the order given over `seen`, and the prior (the head
 * before it) of each run whose record is written for the first time (`existing`: those already
 * stored, whose prior stays).
 */
export function advance(seen: RunPointers, runs: readonly RunRecord[], existing: ReadonlySet<string>): { next: RunPointers; priors: Map<string, string | undefined> } {
  const next: RunPointers = { ...seen };
  const priors = new Map<string, string | undefined>();
  for (const run of runs) {
    if (!existing.has(run.id) && !priors.has(run.id) && next.headRunId !== run.id) {
      priors.set(run.id, next.headRunId);
      next.headRunId = run.id;
    }
    const at = run.queuedAt;
    if (next.lastRunId === run.id || ahead(at, run.id, next.lastRunAt, next.lastRunId)) {
      next.lastRunId = run.id;
      next.lastRunAt = at;
    }
    if (run.status === 'succeeded' && (next.lastSuccessId === run.id || ahead(at, run.id, next.lastSuccessAt, next.lastSuccessId))) {
      next.lastSuccessId = run.id;
      next.lastSuccessAt = at;
    }
  }
  return { next, priors };
}

/** `SET` clauses for the pointers that `next` changes over `seen`. */
export function pointerSets(e: Expr, seen: RunPointers, next: RunPointers): string[] {
  const sets: string[] = [];
  for (const name of POINTER_ATTRIBUTES) {
    const value = next[name];
    if (value !== undefined && value !== seen[name]) sets.push(`${e.n(name)} = ${e.v(value)}`);
  }
  return sets;
}

/** The pointers of a lease item as read. */
export function pointersOf(item: RunPointers | undefined): RunPointers {
  if (!item) return {};
  const { lastRunId, lastRunAt, lastSuccessId, lastSuccessAt, headRunId, headPriorRunId } = item;
  return { lastRunId, lastRunAt, lastSuccessId, lastSuccessAt, headRunId, headPriorRunId: headPriorRunId === '' ? undefined : headPriorRunId };
}

/** The run pointers of a signature's lease item, read consistently (one read unit). */
export async function readPointers(calls: TableCalls, signature: string): Promise<RunPointers> {
  const { doc, tables } = calls;
  const e = new Expr();
  const output = await calls.call('leases', 'GetItem (read a signature’s run pointers)', () =>
    doc.send(
      new GetCommand({
        TableName: tables.leases,
        Key: { signature },
        ConsistentRead: true,
        ProjectionExpression: ['signature', ...POINTER_ATTRIBUTES, HEAD_PRIOR_ATTRIBUTE].map((name) => e.n(name)).join(', '),
        ...e.params(),
      }),
    ),
  );
  return pointersOf(parseLeaseItem(output.Item, tables.leases));
}

/**
 * Moves the pointers of `run`'s signature to it where it is newer, as a write of its own (the
 * sweeper's runs, which are not written with a release): conditioned on the pointers it read
 * (`seen`), so it never moves one back; a pointer moved meanwhile is left as it is.
 */
export async function advanceAfterWrite(calls: TableCalls, run: RunRecord, seen: RunPointers, inserted: boolean): Promise<void> {
  const { next } = advance(seen, [run], inserted ? new Set() : new Set([run.id]));
  const e = new Expr();
  const sets = pointerSets(e, seen, next);
  if (sets.length === 0) return;
  const conditions = (['lastRunId', 'lastSuccessId', 'headRunId'] as const).map((name) => {
    const value = seen[name];
    return value === undefined ? `attribute_not_exists(${e.n(name)})` : `${e.n(name)} = ${e.v(value)}`;
  });
  await calls.conditional('leases', 'UpdateItem (point a lease at its signature’s newest run)', () =>
    calls.doc.send(
      new UpdateCommand({
        TableName: calls.tables.leases,
        Key: { signature: run.signature },
        UpdateExpression: updateExpression(sets, []),
        ConditionExpression: conditions.join(' AND '),
        ...e.params(),
      }),
    ),
  );
}
