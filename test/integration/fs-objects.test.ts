import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryObjectStore } from '../../core/adapters/fs/objects.js';
import { StoreError } from '../../core/errors.js';
import { describeObjectStoreContract } from '../contract/object-store-contract.js';

describeObjectStoreContract('directory', async () => {
  const root = await mkdtemp(join(tmpdir(), 'ujr-objects-'));
  return {
    objects: new DirectoryObjectStore(join(root, 'data')),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

describe('DirectoryObjectStore on disk', () => {
  let root: string;
  let objects: DirectoryObjectStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'ujr-objects-'));
    objects = new DirectoryObjectStore(join(root, 'data'));
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('maps key segments to directories, creating them', async () => {
    await objects.put('collected/a/2026-01-01.jsonl', '{"at":1}\n');

    expect(await readdir(join(root, 'data', 'collected', 'a'))).toEqual(['2026-01-01.jsonl']);
  });

  it('leaves no temporary files behind when replacing an object', async () => {
    await objects.put('a/b.txt', 'first version, longer');
    await objects.put('a/b.txt', 'second');

    expect(await readdir(join(root, 'data', 'a'))).toEqual(['b.txt']);
  });

  it('lists nothing when the root does not exist yet', async () => {
    expect(await new DirectoryObjectStore(join(root, 'never-created')).list('')).toEqual([]);
  });

  it('ignores temporary files of unfinished writes when listing', async () => {
    await objects.put('a/real', 'x');
    await writeFile(join(root, 'data', 'a', '.real.ujr-tmp-0000'), 'half');

    expect((await objects.list('a/')).map((info) => info.key)).toEqual(['a/real']);
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

  // A directory store must make puts atomic itself (temporary file, then rename). On S3 that is the
  // service's guarantee, which s3rver does not give: it writes concurrent puts into one file.
  it('keeps every object whole under concurrent writes of the same key', async () => {
    const bodies = Array.from({ length: 20 }, (_, i) => String(i).repeat(10_000));

    await Promise.all(bodies.map((body) => objects.put('hot/key', body)));

    expect(bodies).toContain(await objects.getText('hot/key'));
    expect((await objects.list('hot/')).map((info) => info.key)).toEqual(['hot/key']);
  });
});
