/**
 * Job type `archiver`: compresses the finished files of a collector instance once they have been
 * processed, to `archive/<source>/<name>.jsonl.gz`, and deletes the originals after checking that
 * the stored archive decompresses to the same bytes.
 */
import { posix } from 'node:path';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { defineJob, defineTask, NonRetryableError, SkipError, z } from 'ujr';
import type { PlanContext, TaskContext, TaskSpec } from 'ujr';
import { assertCollectedFile, listFinishedFiles, processSignature, sourceId } from './processor.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** Parameters of an archiver instance. */
export const archiverParams = z.object({
  /** The id of the collector instance whose files are archived. */
  source: sourceId,
  /** Archive only files last written at least this long ago. @default 0 */
  olderThanMs: z.number().int().nonnegative().default(0),
});
export type ArchiverParams = z.infer<typeof archiverParams>;

/** The signature of archiving `file`, shared by all archiver instances. */
export function archiveSignature(file: string): string {
  return `archive:${file}`;
}

/** The key of the compressed copy of the collected `file`. */
export function archiveKey(source: string, file: string): string {
  return `archive/${source}/${posix.basename(file)}.gz`;
}

async function planArchiving(ctx: PlanContext<ArchiverParams>): Promise<TaskSpec[]> {
  const { source, olderThanMs } = ctx.params;
  const specs: TaskSpec[] = [];
  for (const { key: file, modifiedAt } of await listFinishedFiles(ctx.objects, source)) {
    if (ctx.now() - modifiedAt < olderThanMs) continue;
    // Processing runs under an explicit signature, so this finds it whichever processor ran it.
    if (!(await ctx.history.lastSuccess({ signature: processSignature(file) }))) continue;
    specs.push({ task: 'archive', input: { file }, signature: archiveSignature(file) });
  }
  return specs;
}

async function decompressesTo(objects: TaskContext['objects'], key: string, original: Uint8Array): Promise<boolean> {
  const stored = await objects.get(key);
  if (!stored) return false;
  try {
    return Buffer.from(await gunzipAsync(stored)).equals(original);
  } catch {
    return false; // not gzip, or truncated
  }
}

/** What an `archive` run returns. */
export interface ArchiveResult {
  file: string;
  archive: string;
  bytes: number;
  archivedBytes: number;
  /** The archive was already there (an earlier attempt stopped before deleting the original). */
  reused: boolean;
}

async function archiveFile(input: { file: string }, tctx: TaskContext<ArchiverParams>): Promise<ArchiveResult> {
  const { source } = tctx.params;
  const { file } = input;
  assertCollectedFile(source, file);
  const original = await tctx.objects.get(file);
  if (!original) throw new SkipError(`${file} no longer exists; nothing to archive`);
  const archive = archiveKey(source, file);
  const existing = await tctx.objects.stat(archive);
  if (existing) {
    // Never re-archive: an archive that holds these bytes only needs the original removed.
    if (!(await decompressesTo(tctx.objects, archive, original))) {
      throw new NonRetryableError(
        `${archive} exists but does not decompress to ${file}; not overwriting it: ` +
          'compare the two and delete the wrong one',
      );
    }
    await tctx.objects.delete(file);
    tctx.log.info('archive already present; removed the original', { file, archive });
    return { file, archive, bytes: original.byteLength, archivedBytes: existing.size, reused: true };
  }
  const compressed = await gzipAsync(original);
  await tctx.objects.put(archive, compressed);
  if (!(await decompressesTo(tctx.objects, archive, original))) {
    throw new Error(`${archive} does not decompress to ${file} after writing it; the original is kept`);
  }
  await tctx.objects.delete(file);
  return { file, archive, bytes: original.byteLength, archivedBytes: compressed.byteLength, reused: false };
}

/**
 * Compresses processed files of the collector instance `source` and removes the originals.
 *
 * @example
 * ```json
 * { "id": "metrics-archiver", "job": "archiver", "params": { "source": "metrics" }, "schedule": "1m" }
 * ```
 */
export const archiver = defineJob({
  name: 'archiver',
  params: archiverParams,
  schedule: 'rate(5 minutes)',
  getRunnableTasks: planArchiving,
  tasks: {
    archive: defineTask<ArchiverParams, { file: string }, ArchiveResult>({
      input: z.object({ file: z.string().min(1) }),
      run: archiveFile,
    }),
  },
});
