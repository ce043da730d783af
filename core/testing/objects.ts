/** An object store in memory, for tests: the same key rules and answers as the directory and S3 stores. */
import { assertValidKey, assertValidPrefix, byKey } from '../adapters/object-keys.js';
import type { ObjectInfo, ObjectStore } from '../types.js';

/**
 * Objects to start with: key → text (stored as UTF-8) or bytes.
 *
 * @example
 * ```ts
 * const seed: ObjectSeed = { 'collected/a/1.jsonl': '{"at":1}\n', 'raw/blob': new Uint8Array([1, 2]) };
 * ```
 */
export type ObjectSeed = Readonly<Record<string, string | Uint8Array>>;

interface StoredObject {
  body: Uint8Array;
  modifiedAt: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * An {@link ObjectStore} in memory. Objects are copied in and out, so a test cannot change them
 * behind a task's back; `modifiedAt` is read from the clock given (the test runner's virtual
 * clock, or a fixed time).
 *
 * @example
 * ```ts
 * const objects = new MemoryObjectStore({ 'collected/a/1.jsonl': '{"at":1}\n' });
 * await objects.put('processed/a/1.json', '{}');
 * (await objects.list('processed/')).map((o) => o.key); // ['processed/a/1.json']
 * ```
 */
export class MemoryObjectStore implements ObjectStore {
  private readonly objects = new Map<string, StoredObject>();

  /**
   * @param seed objects to start with, written at the clock's time.
   * @param now the clock `modifiedAt` is read from. @default Date.now
   */
  constructor(
    seed: ObjectSeed = {},
    private readonly now: () => number = Date.now,
  ) {
    for (const [key, body] of Object.entries(seed)) {
      assertValidKey(key);
      this.objects.set(key, { body: toBytes(body), modifiedAt: now() });
    }
  }

  put(key: string, body: string | Uint8Array): Promise<void> {
    return settled(() => {
      assertValidKey(key);
      this.objects.set(key, { body: toBytes(body), modifiedAt: this.now() });
    });
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return settled(() => this.find(key)?.body.slice());
  }

  getText(key: string): Promise<string | undefined> {
    return settled(() => {
      const stored = this.find(key);
      return stored && decoder.decode(stored.body);
    });
  }

  stat(key: string): Promise<ObjectInfo | undefined> {
    return settled(() => {
      const stored = this.find(key);
      return stored && { key, size: stored.body.byteLength, modifiedAt: stored.modifiedAt };
    });
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    return settled(() => {
      assertValidPrefix(prefix);
      const found: ObjectInfo[] = [];
      for (const [key, stored] of this.objects) {
        if (key.startsWith(prefix)) found.push({ key, size: stored.body.byteLength, modifiedAt: stored.modifiedAt });
      }
      return found.sort(byKey);
    });
  }

  delete(key: string): Promise<void> {
    return settled(() => {
      assertValidKey(key);
      this.objects.delete(key);
    });
  }

  private find(key: string): StoredObject | undefined {
    assertValidKey(key);
    return this.objects.get(key);
  }
}

/** The value of `body` as a promise; what it throws (a bad key) becomes the rejection, as with the other stores. */
function settled<T>(body: () => T): Promise<T> {
  return new Promise((resolve) => resolve(body()));
}

/** The store given, or a memory store holding the seed. */
export function objectStoreOf(objects: ObjectStore | ObjectSeed | undefined, now: () => number): ObjectStore {
  if (objects !== undefined && isObjectStore(objects)) return objects;
  return new MemoryObjectStore(objects, now);
}

function isObjectStore(value: ObjectStore | ObjectSeed): value is ObjectStore {
  return typeof value.put === 'function' && typeof value.get === 'function' && typeof value.list === 'function';
}

function toBytes(body: string | Uint8Array): Uint8Array {
  return typeof body === 'string' ? encoder.encode(body) : body.slice();
}
