/** Errors of the SQLite store about its file: missing, or deleted or replaced while in use. */
import { StoreError } from '../../errors.js';

/** `SqliteStore.open(path, { create: false })` found no store file at `path`. */
export class StoreNotFoundError extends StoreError {
  override readonly retryable = false;

  constructor(readonly path: string) {
    super(`no SQLite store at ${path}; open it with create: true (the default) to create one`);
  }
}

/**
 * The store's path no longer names the file this process opened: it was deleted (or moved
 * away), or another file took its place. What the process wrote since went to the old file,
 * which other processes do not see; it must stop and be started again.
 */
export class StoreFileLostError extends StoreError {
  override readonly retryable = false;

  constructor(
    readonly path: string,
    readonly reason: 'deleted' | 'replaced',
  ) {
    super(
      reason === 'deleted'
        ? `the store ${path} was deleted (or moved away) while this runner used it: what it wrote since went to the deleted file, which no other process sees; restart "ujr run" to create a new store`
        : `the store ${path} was replaced by another file (its device or inode changed) while this runner used it: what it wrote since went to the old file; restart "ujr run" to use the file now at that path`,
    );
  }
}
