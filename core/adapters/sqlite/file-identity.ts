/**
 * A file's identity (device and inode), to notice that a path no longer names the file a
 * process opened. SQLite keeps writing into an open file after it is unlinked or renamed over,
 * so a runner whose store file was deleted or replaced would otherwise go on unseen by everyone.
 */
import { statSync } from 'node:fs';
import { StoreFileLostError } from './errors.js';

/** Device and inode, as bigints (inodes may exceed 2^53 on some file systems). */
export interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
}

/** The identity of the file at `path`, or `undefined` when there is none. */
export function fileIdentity(path: string): FileIdentity | undefined {
  try {
    const stats = statSync(path, { bigint: true, throwIfNoEntry: false });
    return stats && { dev: stats.dev, ino: stats.ino };
  } catch (error) {
    // A folder on the way was replaced by a file: nothing is at `path` either.
    if (error instanceof Error && 'code' in error && error.code === 'ENOTDIR') return undefined;
    throw error;
  }
}

/**
 * Checks that `path` still names the file whose identity is `expected`.
 *
 * @throws {StoreFileLostError} `deleted` when nothing is at `path`, `replaced` when another file is.
 */
export function checkFileIdentity(path: string, expected: FileIdentity): void {
  const current = fileIdentity(path);
  if (!current) throw new StoreFileLostError(path, 'deleted');
  if (current.dev !== expected.dev || current.ino !== expected.ino) throw new StoreFileLostError(path, 'replaced');
}
