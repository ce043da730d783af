/**
 * The object store on a local directory: what jobs read and write through `ctx.objects` when ujr
 * runs on a laptop (the runner roots it at `.ujr/data`). Keys map to files below the root, one
 * `/`-separated segment per directory level.
 *
 * Unlike S3, a directory cannot hold an object `a` and an object `a/b` at once; a `put` that would
 * need both fails with a `StoreError` saying so.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { StoreError } from '../../errors.js';
import type { ObjectInfo, ObjectStore } from '../../types.js';
import { assertValidKey, assertValidPrefix, byKey, objectKeyProblem, TEMP_MARKER } from '../object-keys.js';

function errorCode(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}

/** Errors that mean "there is no such object": the file or one of its directories is missing. */
function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/**
 * An {@link ObjectStore} on a local directory. `put` is atomic (a temporary file in the same
 * directory, then a rename), so readers see the old object or the new one, never a torn write.
 *
 * @example
 * ```ts
 * const objects = new DirectoryObjectStore('.ujr/data');
 * await objects.put('collected/a/2026-01-01.jsonl', '{"at":1}\n');
 * await objects.list('collected/a/'); // [{ key: 'collected/a/2026-01-01.jsonl', size: 9, modifiedAt: … }]
 * ```
 */
export class DirectoryObjectStore implements ObjectStore {
  /** @param root The directory holding the objects; created on the first `put`. */
  constructor(readonly root: string) {}

  async put(key: string, body: string | Uint8Array): Promise<void> {
    assertValidKey(key);
    const path = this.pathOf(key);
    const temp = join(dirname(path), `.${basename(path)}${TEMP_MARKER}${randomUUID()}`);
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeDurably(temp, body);
      await rename(temp, path);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw this.putError(key, error);
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    assertValidKey(key);
    try {
      return new Uint8Array(await readFile(this.pathOf(key)));
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw new StoreError(`cannot read object ${JSON.stringify(key)} under ${this.root}`, { cause: error });
    }
  }

  async getText(key: string): Promise<string | undefined> {
    const bytes = await this.get(key);
    return bytes && new TextDecoder().decode(bytes);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    try {
      const stats = await stat(this.pathOf(key));
      return stats.isFile() ? { key, size: stats.size, modifiedAt: stats.mtimeMs } : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw new StoreError(`cannot stat object ${JSON.stringify(key)} under ${this.root}`, { cause: error });
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertValidPrefix(prefix);
    // Walk only the deepest directory the prefix names in full; filter the rest by string prefix.
    const slash = prefix.lastIndexOf('/');
    const baseKey = slash === -1 ? '' : prefix.slice(0, slash);
    const found: ObjectInfo[] = [];
    await this.walk(baseKey, (info) => {
      if (info.key.startsWith(prefix)) found.push(info);
    });
    return found.sort(byKey);
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await unlink(this.pathOf(key));
    } catch (error) {
      if (isMissing(error)) return;
      throw new StoreError(`cannot delete object ${JSON.stringify(key)} under ${this.root}`, { cause: error });
    }
  }

  private pathOf(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  /**
   * Visits every object below `dirKey` ("" for the root), skipping temporary files and files whose
   * names no key could have (put there by something other than this store).
   */
  private async walk(dirKey: string, visit: (info: ObjectInfo) => void): Promise<void> {
    const dir = dirKey === '' ? this.root : this.pathOf(dirKey);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return; // nothing stored there (yet), or removed while walking
      throw new StoreError(`cannot list objects under ${dir}`, { cause: error });
    }
    await Promise.all(
      entries.map(async (entry) => {
        const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
        if (objectKeyProblem(key) !== undefined) return undefined;
        if (entry.isDirectory()) return this.walk(key, visit);
        if (!entry.isFile()) return undefined;
        const info = await this.stat(key);
        if (info) visit(info);
        return undefined;
      }),
    );
  }

  private putError(key: string, error: unknown): StoreError {
    const code = errorCode(error);
    if (code === 'ENOTDIR' || code === 'EEXIST') {
      return new StoreError(
        `cannot store object ${JSON.stringify(key)} under ${this.root}: a part of its path is an object already; ` +
          'a directory store cannot hold both "a" and "a/b" — rename one of the keys',
        { cause: error },
      );
    }
    if (code === 'EISDIR') {
      return new StoreError(
        `cannot store object ${JSON.stringify(key)} under ${this.root}: other objects are stored under "${key}/"; ` +
          'a directory store cannot hold both "a" and "a/b" — rename one of the keys',
        { cause: error },
      );
    }
    return new StoreError(`cannot store object ${JSON.stringify(key)} under ${this.root}`, { cause: error });
  }
}

/** Writes and flushes `body` to a new file, so the rename that follows publishes complete bytes. */
async function writeDurably(path: string, body: string | Uint8Array): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(body);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
