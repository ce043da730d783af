/**
 * Which signatures were posted to the queue route: how the board lists the queue's entries (for
 * `ujr status`, the page, cancelling a queued task, and the sweeper's search for claims whose
 * worker died) without an index. An index entry costs a write unit when an entry is posted and
 * another when it is released, two of the seven a batch task took; a manifest costs the bytes of
 * its signatures, written once per `post` call, whatever the number of tasks it posts (0.03–0.07
 * write unit a task for signatures of 30–60 characters, one write unit for a post of one task).
 *
 * A manifest is an item of the runs table in the partition `queued`, sorted by when it was
 * written: `queued` / `<postedAt, 15 digits>#<ulid>`, with the string set `signatures`. The
 * lease items stay the truth: a listed signature is on the queue route only while its lease item
 * says so. The sweeper, which reads those lease items on every tick anyway, prunes: it deletes a
 * manifest none of whose signatures is leased on the queue route any more, and rewrites one that
 * has lost at least half of them with the rest, so that what a listing reads stays within twice
 * what is queued or running. It leaves a manifest younger than {@link SETTLE_MS} alone: it reads
 * lease items eventually consistent, and a grant just made may not read back yet.
 *
 * A `post` writes its manifest after its grants; a process that dies between the two leaves its
 * tasks unlisted (they run, and show once recorded) and the sweeper blind to their claims, whose
 * run the next post of the signature then records as taken over.
 */
import { DeleteCommand, PutCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { monotonicFactory } from 'ulid';
import { z } from 'zod';
import { mapLimit } from '../../../concurrency.js';
import { StoreError } from '../../../errors.js';
import { numberKey } from '../dynamo-items.js';
import { Expr } from './expressions.js';
import type { TableCalls } from './table-calls.js';

/** The runs-table partition of the manifests. */
export const MANIFEST_PK = 'queued';
/** Bytes of signatures in one manifest: DynamoDB items stop at 400 KB. */
const MANIFEST_BYTES = 300_000;
/** A manifest is pruned only this long after it was written (see above). */
export const SETTLE_MS = 10_000;

const manifestSchema = z.object({ sk: z.string(), postedAt: z.number(), signatures: z.set(z.string()) });

export interface QueueManifest {
  sk: string;
  postedAt: number;
  signatures: string[];
}

/** Signatures in groups of at most `maxBytes` (counted as UTF-8), in the order given. */
export function byteChunks(signatures: readonly string[], maxBytes: number): string[][] {
  const out: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const signature of signatures) {
    const size = Buffer.byteLength(signature, 'utf8') + 1;
    if (current.length > 0 && bytes + size > maxBytes) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(signature);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** The manifests of the queue route, in the runs table. */
export class QueueManifests {
  private readonly nextId = monotonicFactory();

  constructor(private readonly calls: TableCalls) {}

  /** Records that `signatures` were just posted to the queue route. */
  async record(signatures: readonly string[], now: number): Promise<void> {
    const unique = [...new Set(signatures)];
    if (unique.length === 0) return;
    const { doc, tables } = this.calls;
    await mapLimit(byteChunks(unique, MANIFEST_BYTES), this.calls.concurrency, (chunk) =>
      this.calls.call('runs', 'PutItem (list signatures posted to the queue)', () =>
        doc.send(
          new PutCommand({
            TableName: tables.runs,
            Item: { pk: MANIFEST_PK, sk: `${numberKey(now, 'a post time')}#${this.nextId(now)}`, postedAt: now, signatures: new Set(chunk) },
          }),
        ),
      ),
    );
  }

  /** Every manifest, oldest first (strongly consistent). */
  async list(): Promise<QueueManifest[]> {
    const { tables } = this.calls;
    const e = new Expr();
    const input: QueryCommandInput = {
      TableName: tables.runs,
      KeyConditionExpression: `${e.n('pk')} = ${e.v(MANIFEST_PK)}`,
      ProjectionExpression: [e.n('sk'), e.n('postedAt'), e.n('signatures')].join(', '),
      ConsistentRead: true,
      ...e.params(),
    };
    const manifests: QueueManifest[] = [];
    for await (const item of this.calls.queryItems('runs', 'Query (list the signatures posted to the queue)', input)) {
      const parsed = manifestSchema.safeParse(item);
      if (!parsed.success) throw new StoreError(`a queue manifest in table ${tables.runs} (partition "${MANIFEST_PK}") does not have the shape this adapter writes; was it written by another program?`);
      manifests.push({ sk: parsed.data.sk, postedAt: parsed.data.postedAt, signatures: [...parsed.data.signatures] });
    }
    return manifests;
  }

  /** The signatures of `manifests`, each once. */
  static signatures(manifests: readonly QueueManifest[]): string[] {
    return [...new Set(manifests.flatMap((manifest) => manifest.signatures))];
  }

  /**
   * Deletes the manifests older than {@link SETTLE_MS} with no signature in `queued` (those
   * leased on the queue route as the caller read them), and rewrites those that lost at least half
   * of theirs with the rest. Returns how many it deleted and rewrote.
   */
  async prune(manifests: readonly QueueManifest[], queued: ReadonlySet<string>, now: number): Promise<{ deleted: number; rewritten: number }> {
    const { doc, tables } = this.calls;
    let deleted = 0;
    let rewritten = 0;
    const settled = manifests.filter((manifest) => manifest.postedAt <= now - SETTLE_MS);
    await mapLimit(settled, this.calls.concurrency, async (manifest) => {
      const left = manifest.signatures.filter((signature) => queued.has(signature));
      const key = { pk: MANIFEST_PK, sk: manifest.sk };
      if (left.length === 0) {
        await this.calls.call('runs', 'DeleteItem (a queue manifest whose tasks all ended)', () => doc.send(new DeleteCommand({ TableName: tables.runs, Key: key })));
        deleted += 1;
      } else if (left.length * 2 <= manifest.signatures.length) {
        const e = new Expr();
        // Only over the manifest as it is: a concurrent prune that deleted it wins.
        const outcome = await this.calls.conditional('runs', 'PutItem (shrink a queue manifest)', () =>
          doc.send(
            new PutCommand({
              TableName: tables.runs,
              Item: { ...key, postedAt: manifest.postedAt, signatures: new Set(left) },
              ConditionExpression: `attribute_exists(${e.n('pk')})`,
              ...e.params(),
            }),
          ),
        );
        if (outcome.ok) rewritten += 1;
      }
    });
    return { deleted, rewritten };
  }
}
