import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { S3ObjectStore, S3StoreError } from '../../../core/adapters/aws/s3-objects.js';
import { StoreError } from '../../../core/errors.js';
import { describeObjectStoreContract } from '../../contract/object-store-contract.js';
import { emulatorClientConfig, uniqueName } from '../../servers/endpoints.js';

const client = new S3Client(emulatorClientConfig('s3'));

afterAll(() => {
  client.destroy();
});

async function createBucket(): Promise<string> {
  const bucket = uniqueName('ujr-objects');
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

/** Empties the bucket (every page) and removes it. */
async function removeBucket(bucket: string): Promise<void> {
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    const keys = (page.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [{ Key: object.Key }]));
    if (keys.length === 0) break;
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
  }
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

async function rawKeys(bucket: string): Promise<string[]> {
  const page = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (page.Contents ?? []).map((object) => object.Key ?? '');
}

describeObjectStoreContract('s3 (s3rver)', async () => {
  const bucket = await createBucket();
  return { objects: new S3ObjectStore({ client, bucket }), cleanup: () => removeBucket(bucket) };
});

describeObjectStoreContract('s3 folder (s3rver)', async () => {
  const bucket = await createBucket();
  return { objects: new S3ObjectStore({ client, bucket, prefix: 'tenant/data' }), cleanup: () => removeBucket(bucket) };
});

describe('S3ObjectStore on s3rver', () => {
  let bucket: string;

  beforeEach(async () => {
    bucket = await createBucket();
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    await removeBucket(bucket);
  });

  it('keeps each store inside its folder of the bucket', async () => {
    const prod = new S3ObjectStore({ client, bucket, prefix: 'prod/' });
    const staging = new S3ObjectStore({ client, bucket, prefix: 'staging' });

    await prod.put('collected/1', 'p');
    await staging.put('collected/1', 's');

    expect(await rawKeys(bucket)).toEqual(['prod/collected/1', 'staging/collected/1']);
    expect(await prod.getText('collected/1')).toBe('p');
    expect((await staging.list('')).map((info) => info.key)).toEqual(['collected/1']);
  });

  // Only keys whose order s3rver keeps: it walks its directory tree, so across pages it loses keys
  // such as "a-1" next to "a/1" ("-" sorts before "/"). Real S3 pages in key order.
  it('follows continuation tokens until the last page', async () => {
    const objects = new S3ObjectStore({ client, bucket, prefix: 'tenant', pageSize: 2 });
    const keys = ['k/1', 'k/2', 'k/3', 'k/4', 'k/5/deep'];
    await Promise.all(keys.map((key) => objects.put(key, key)));
    const send = vi.spyOn(client, 'send');

    const listed = await objects.list('k/');

    expect(listed.map((info) => info.key)).toEqual(keys);
    expect(send.mock.calls.filter(([command]) => command instanceof ListObjectsV2Command)).toHaveLength(3);
  });

  it('does not list objects put by something else under names no key could have', async () => {
    const objects = new S3ObjectStore({ client, bucket });
    // s3rver cannot store "a//b" (404) and the URL drops "./", so those are not among them.
    for (const key of ['odd/', 'odd/back\\slash', 'odd/x.ujr-tmp-1', 'odd/../up']) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x' }));
    }
    await objects.put('odd/fine', 'y');

    expect((await objects.list('odd/')).map((info) => info.key)).toEqual(['odd/fine']);
  });

  it('holds an object "a" and objects under "a/" at once, unlike a directory', async () => {
    const objects = new S3ObjectStore({ client, bucket });

    await objects.put('a', 'x');
    await objects.put('a/b', 'y');

    expect((await objects.list('a')).map((info) => info.key)).toEqual(['a', 'a/b']);
  });

  it('fails with a StoreError naming the bucket, key and call when the bucket is missing, keeping the SDK error', async () => {
    const objects = new S3ObjectStore({ client, bucket: 'ujr-no-such-bucket', prefix: 'data' });

    const error: unknown = await objects.put('collected/1', 'x').catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(StoreError);
    expect(error).toBeInstanceOf(S3StoreError);
    expect(error).toMatchObject({ bucket: 'ujr-no-such-bucket', key: 'collected/1', operation: 'put' });
    expect(String(error)).toContain('s3://ujr-no-such-bucket/data/collected/1');
    expect(String(error)).toContain('PutObject');
    expect(String(error)).toContain('does not exist: create it');
    expect((error as Error).cause).toMatchObject({ name: 'NoSuchBucket' });
    await expect(objects.get('collected/1')).rejects.toThrow(/GetObject.*NoSuchBucket/);
    await expect(objects.list('collected/')).rejects.toThrow(/ListObjectsV2.*NoSuchBucket/);
  });

  it('refuses a folder prefix that breaks the key rules', () => {
    expect(() => new S3ObjectStore({ client, bucket, prefix: '../up' })).toThrow(/invalid S3ObjectStore prefix "..\/up": it has a ".." segment/);
    expect(() => new S3ObjectStore({ client, bucket, prefix: '/abs' })).toThrow(/absolute/);
    expect(() => new S3ObjectStore({ client, bucket, pageSize: 0 })).toThrow(/1 to 1000/);
  });
});
