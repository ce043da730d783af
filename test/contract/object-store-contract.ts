/**
 * The object store contract: one suite every `ObjectStore` adapter must pass (local directory, S3).
 * A job moved from a laptop to AWS must see the same answers: missing objects as `undefined`, lists
 * by plain string prefix sorted by key, and the same keys refused with the same words.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ObjectStore } from '../../core/types.js';

export interface ObjectStoreFixture {
  objects: ObjectStore;
  /** Removes whatever the store left behind. */
  cleanup(): Promise<void>;
}

/** Keys no adapter accepts, and a word of the reason each error must give. */
export const INVALID_KEYS: readonly (readonly [string, string])[] = [
  ['', 'empty'],
  ['/etc/passwd', 'absolute'],
  ['a/../../b', '".." segment'],
  ['..', '".." segment'],
  ['a\\b', 'backslash'],
  ['a\0b', 'NUL'],
  ['a//b', 'empty segment'],
  ['a/', 'empty segment'],
  ['./a', '"." segment'],
  ['a/b.ujr-tmp-1', 'reserved'],
];

/**
 * Registers the object store contract for one adapter. `makeStore` gives a fresh, empty store per test.
 *
 * @example
 * ```ts
 * describeObjectStoreContract('directory', async () => {
 *   const root = await mkdtemp(join(tmpdir(), 'ujr-objects-'));
 *   return { objects: new DirectoryObjectStore(root), cleanup: () => rm(root, { recursive: true, force: true }) };
 * });
 * ```
 */
export function describeObjectStoreContract(name: string, makeStore: () => Promise<ObjectStoreFixture>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let objects: ObjectStore;
    let fixture: ObjectStoreFixture;

    beforeEach(async () => {
      fixture = await makeStore();
      objects = fixture.objects;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    const keysOf = async (prefix: string) => (await objects.list(prefix)).map((info) => info.key);

    it('stores text and bytes under nested keys and reads them back', async () => {
      await objects.put('collected/a/2026-01-01.jsonl', '{"at":1}\n');
      await objects.put('bin/raw', new Uint8Array([0, 1, 255]));

      expect(await objects.getText('collected/a/2026-01-01.jsonl')).toBe('{"at":1}\n');
      expect(await objects.get('bin/raw')).toEqual(new Uint8Array([0, 1, 255]));
    });

    it('stores text as UTF-8 and decodes it back', async () => {
      await objects.put('texts/ünïcode', 'naïve café — 日本 🎉');

      expect(await objects.getText('texts/ünïcode')).toBe('naïve café — 日本 🎉');
      expect(await objects.get('texts/ünïcode')).toEqual(new TextEncoder().encode('naïve café — 日本 🎉'));
      expect(await objects.stat('texts/ünïcode')).toMatchObject({ size: new TextEncoder().encode('naïve café — 日本 🎉').length });
    });

    it('stores an empty object', async () => {
      await objects.put('empty', '');

      expect(await objects.getText('empty')).toBe('');
      expect(await objects.stat('empty')).toMatchObject({ key: 'empty', size: 0 });
    });

    it('replaces an object whole', async () => {
      await objects.put('a/b.txt', 'first version, longer');
      await objects.put('a/b.txt', 'second');

      expect(await objects.getText('a/b.txt')).toBe('second');
      expect(await keysOf('a/')).toEqual(['a/b.txt']);
    });

    it('gives undefined for missing objects, also below or above an existing key', async () => {
      await objects.put('a/b', 'x');

      expect(await objects.get('missing')).toBeUndefined();
      expect(await objects.getText('no/such/key')).toBeUndefined();
      expect(await objects.stat('a/b/c')).toBeUndefined();
      expect(await objects.stat('a')).toBeUndefined(); // a folder of keys is not an object
      expect(await objects.get('a')).toBeUndefined();
    });

    it('reports size and modification time', async () => {
      const before = Date.now();
      await objects.put('k', 'hello');

      const info = await objects.stat('k');

      expect(info).toMatchObject({ key: 'k', size: 5 });
      // S3 keeps whole seconds.
      expect(info?.modifiedAt).toBeGreaterThanOrEqual(before - 1_000);
      expect(info?.modifiedAt).toBeLessThanOrEqual(Date.now() + 1_000);
    });

    it('lists recursively by plain string prefix, sorted by key', async () => {
      const keys = [
        'collected/b/1.jsonl',
        'collected/a/2026-02.jsonl',
        'collected/a/2026-01.jsonl',
        'collected/a/x/deep',
        'collected/ab/1',
        'other/1',
      ];
      for (const key of keys) await objects.put(key, key);

      expect(await keysOf('collected/a/')).toEqual([
        'collected/a/2026-01.jsonl',
        'collected/a/2026-02.jsonl',
        'collected/a/x/deep',
      ]);
      expect(await keysOf('collected/a/2026-0')).toEqual(['collected/a/2026-01.jsonl', 'collected/a/2026-02.jsonl']);
      expect(await keysOf('collected/a')).toEqual([
        'collected/a/2026-01.jsonl',
        'collected/a/2026-02.jsonl',
        'collected/a/x/deep',
        'collected/ab/1',
      ]);
      expect(await keysOf('')).toEqual([...keys].sort());
      expect(await keysOf('nothing/here/')).toEqual([]);
      expect((await objects.list('other/'))[0]).toMatchObject({ key: 'other/1', size: 7 });
    });

    it('sorts listed keys as JavaScript compares strings, whatever order the backend keeps', async () => {
      const keys = ['s/b', 's/B', 's/a-1', 's/a.1', 's/a/1', 's/é', 's/z', 's/\u{1F600}', 's/\uFF21'];
      await Promise.all(keys.map((key) => objects.put(key, 'x')));

      expect(await keysOf('s/')).toEqual([...keys].sort());
    });

    it('lists nothing in an empty store', async () => {
      expect(await objects.list('')).toEqual([]);
      expect(await objects.list('a/')).toEqual([]);
    });

    it('deletes objects and treats deleting a missing one as done', async () => {
      await objects.put('a/b', 'x');
      await objects.put('a/c', 'y');

      await objects.delete('a/b');
      await objects.delete('a/b');
      await objects.delete('never/there');

      expect(await objects.stat('a/b')).toBeUndefined();
      expect(await objects.get('a/b')).toBeUndefined();
      expect(await keysOf('a/')).toEqual(['a/c']);
    });

    it.each(INVALID_KEYS)('rejects the key %j (%s) with a TypeError naming it and the rules', async (key, problem) => {
      const attempts = [objects.put(key, 'x'), objects.get(key), objects.getText(key), objects.stat(key), objects.delete(key)];

      for (const attempt of attempts) {
        const error: unknown = await attempt.catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(TypeError);
        expect(String(error)).toContain(JSON.stringify(key));
        expect(String(error)).toContain(problem);
        expect(String(error)).toContain('keys are relative "/"-separated paths');
      }
    });

    it('rejects list prefixes that could leave the root, and accepts partial names', async () => {
      await expect(objects.list('../')).rejects.toThrow(TypeError);
      await expect(objects.list('/abs')).rejects.toThrow(/absolute/);
      await expect(objects.list('a//')).rejects.toThrow(/empty segment/);
      await expect(objects.list('a/..')).resolves.toEqual([]);
    });
  });
}
