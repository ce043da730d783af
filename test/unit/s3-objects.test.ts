/** S3 answers the emulator cannot give (access denied, transport failures), at the SDK edge. */
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { S3ObjectStore, S3StoreError } from '../../core/adapters/aws/s3-objects.js';
import { StoreError } from '../../core/errors.js';

const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const s3 = mockClient(client);

function accessDenied(): S3ServiceException {
  return new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Access Denied' });
}

afterEach(() => {
  s3.reset();
});

describe('S3ObjectStore errors', () => {
  it('names the IAM action and object ARN a denied read needs, and that missing keys look denied without ListBucket', async () => {
    s3.on(GetObjectCommand).rejects(accessDenied());
    const objects = new S3ObjectStore({ client, bucket: 'data', prefix: 'prod' });

    const error: unknown = await objects.get('collected/1').catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(S3StoreError);
    expect(error).toMatchObject({ bucket: 'data', key: 'collected/1', operation: 'get' });
    expect(String(error)).toContain('cannot read object "collected/1" at s3://data/prod/collected/1 (GetObject): AccessDenied');
    expect(String(error)).toContain('needs s3:GetObject on arn:aws:s3:::data/prod/*');
    expect(String(error)).toContain('without s3:ListBucket');
    expect((error as Error).cause).toBeInstanceOf(S3ServiceException);
  });

  it('names s3:ListBucket on the bucket ARN for a denied list', async () => {
    s3.on(ListObjectsV2Command).rejects(accessDenied());
    const objects = new S3ObjectStore({ client, bucket: 'data' });

    await expect(objects.list('collected/')).rejects.toThrow(
      /cannot list objects under "collected\/" .*ListObjectsV2.*needs s3:ListBucket on arn:aws:s3:::data$/,
    );
  });

  it('treats a bare 403 on HeadObject as denied, not as a missing object', async () => {
    s3.on(HeadObjectCommand).rejects(
      new S3ServiceException({ name: 'Forbidden', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Forbidden' }),
    );
    const objects = new S3ObjectStore({ client, bucket: 'data' });

    await expect(objects.stat('k')).rejects.toThrow(/HeadObject.*needs s3:GetObject/);
  });

  it('wraps transport failures in a StoreError that keeps the cause', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    s3.on(PutObjectCommand).rejects(refused);
    const objects = new S3ObjectStore({ client, bucket: 'data' });

    const error: unknown = await objects.put('k', 'x').catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(StoreError);
    expect(String(error)).toContain('cannot store object "k" at s3://data/k (PutObject): Error: connect ECONNREFUSED');
    expect((error as Error).cause).toBe(refused);
  });

  it('reads a missing object as undefined and a missing key on HeadObject as undefined', async () => {
    s3.on(GetObjectCommand).rejects(new S3ServiceException({ name: 'NoSuchKey', $fault: 'client', $metadata: { httpStatusCode: 404 } }));
    s3.on(HeadObjectCommand).rejects(new S3ServiceException({ name: 'NotFound', $fault: 'client', $metadata: { httpStatusCode: 404 } }));
    const objects = new S3ObjectStore({ client, bucket: 'data' });

    expect(await objects.get('k')).toBeUndefined();
    expect(await objects.stat('k')).toBeUndefined();
  });

  it('merges pages S3 returns in UTF-8 byte order into JavaScript string order', async () => {
    const at = new Date(1_700_000_000_000);
    s3.on(ListObjectsV2Command)
      .resolvesOnce({ Contents: [{ Key: 'a', Size: 1, LastModified: at }, { Key: '\uFF21', Size: 1, LastModified: at }], IsTruncated: true, NextContinuationToken: 't1' })
      .resolvesOnce({ Contents: [{ Key: '\u{1F600}', Size: 2, LastModified: at }], IsTruncated: false });
    const objects = new S3ObjectStore({ client, bucket: 'data', pageSize: 2 });

    const listed = await objects.list('');

    expect(listed).toEqual([
      { key: 'a', size: 1, modifiedAt: at.getTime() },
      { key: '\u{1F600}', size: 2, modifiedAt: at.getTime() },
      { key: '\uFF21', size: 1, modifiedAt: at.getTime() },
    ]);
    expect(s3.commandCalls(ListObjectsV2Command).map((call) => call.args[0].input)).toEqual([
      { Bucket: 'data', Prefix: '', MaxKeys: 2 },
      { Bucket: 'data', Prefix: '', MaxKeys: 2, ContinuationToken: 't1' },
    ]);
  });
});
