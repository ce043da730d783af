import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryObjectStore } from '../../core/adapters/fs/objects.js';
import { StoreError } from '../../core/errors.js';

let root: string;
let objects: DirectoryObjectStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'ujr-objects-'));
  objects = new DirectoryObjectStore(join(root, 'data'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('DirectoryObjectStore', () => {
  it('stores text and bytes under nested keys, creating the directories', async () => {
    await objects.put('collected/a/2026-01-01.jsonl', '{"at":1}\n');
    await objects.put('bin/raw', new Uint8Array([0, 1, 255]));

    expect(await objects.getText('collected/a/2026-01-01.jsonl')).toBe('{"at":1}\n');
    expect(await objects.get('bin/raw')).toEqual(new Uint8Array([0, 1, 255]));
    expect(await readdir(join(root, 'data', 'collected', 'a'))).toEqual(['2026-01-01.jsonl']);
  });

  it('replaces an object whole and leaves no temporary files behind', async () => {
    await objects.put('a/b.txt', 'first version, longer');
    await objects.put('a/b.txt', 'second');

    expect(await objects.getText('a/b.txt')).toBe('second');
    expect(await readdir(join(root, 'data', 'a'))).toEqual(['b.txt']);
  });

  it('gives undefined for missing objects, also under a missing or file-shaped directory', async () => {
    await objects.put('a/b', 'x');

    expect(await objects.get('missing')).toBeUndefined();
    expect(await objects.getText('no/such/key')).toBeUndefined();
    expect(await objects.stat('a/b/c')).toBeUndefined();
    expect(await objects.stat('a')).toBeUndefined(); // a directory is not an object
  });

  it('reports size and modification time', async () => {
    const before = Date.now();
    await objects.put('k', 'hello');

    const info = await objects.stat('k');

    expect(info).toMatchObject({ key: 'k', size: 5 });
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

    const keysOf = async (prefix: string) => (await objects.list(prefix)).map((info) => info.key);

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
    expect(await keysOf('')).toHaveLength(6);
    expect(await keysOf('nothing/here/')).toEqual([]);
    expect((await objects.list('other/'))[0]).toMatchObject({ key: 'other/1', size: 7 });
  });

  it('lists nothing when the root does not exist yet', async () => {
    expect(await new DirectoryObjectStore(join(root, 'never-created')).list('')).toEqual([]);
  });

  it('ignores temporary files of unfinished writes when listing', async () => {
    await objects.put('a/real', 'x');
    await writeFile(join(root, 'data', 'a', '.real.ujr-tmp-0000'), 'half');

    expect((await objects.list('a/')).map((info) => info.key)).toEqual(['a/real']);
  });

  it('deletes objects and treats deleting a missing one as done', async () => {
    await objects.put('a/b', 'x');

    await objects.delete('a/b');
    await objects.delete('a/b');
    await objects.delete('never/there');

    expect(await objects.stat('a/b')).toBeUndefined();
  });

  it.each([
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
  ])('rejects the key %j (%s) with a TypeError naming it and the rules', async (key, problem) => {
    const attempts = [objects.put(key, 'x'), objects.get(key), objects.stat(key), objects.delete(key)];

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
    await expect(objects.list('a/..')).resolves.toEqual([]);
  });

  it('explains that a key cannot also be a directory of other keys', async () => {
    await objects.put('a', 'x');
    await objects.put('b/c', 'y');

    await expect(objects.put('a/b', 'z')).rejects.toThrow(StoreError);
    await expect(objects.put('b', 'z')).rejects.toThrow(/other objects are stored under "b\/"/);
    expect(await objects.getText('a')).toBe('x');
  });

  it('does not see files with names no key could have', async () => {
    await mkdir(join(root, 'data', 'odd'), { recursive: true });
    await writeFile(join(root, 'data', 'odd', 'back\\slash'), 'x');
    await objects.put('odd/fine', 'y');

    expect((await objects.list('odd/')).map((info) => info.key)).toEqual(['odd/fine']);
  });

  it('keeps every object whole under concurrent writes of the same key', async () => {
    const bodies = Array.from({ length: 20 }, (_, i) => String(i).repeat(10_000));

    await Promise.all(bodies.map((body) => objects.put('hot/key', body)));

    expect(bodies).toContain(await objects.getText('hot/key'));
    expect((await objects.list('hot/')).map((info) => info.key)).toEqual(['hot/key']);
  });
});
