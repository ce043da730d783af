/**
 * The object store on S3: what jobs read and write through `ctx.objects` when ujr runs on AWS.
 * Same keys, same answers as the local directory store (test/contract/object-store-contract.ts):
 * missing objects read as `undefined`, `list` is recursive by plain string prefix and sorted by key.
 *
 * Differences a job may notice: S3 can hold an object `a` and an object `a/b` at once (a directory
 * cannot), and `modifiedAt` has whole-second precision.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { StoreError } from '../../errors.js';
import type { ObjectInfo, ObjectStore } from '../../types.js';
import { assertValidKey, assertValidPrefix, byKey, objectKeyProblem } from '../object-keys.js';

export type S3Operation = 'put' | 'get' | 'stat' | 'list' | 'delete';

/** The S3 call and IAM action behind each operation, for error messages. */
const CALLS: Record<S3Operation, { verb: string; command: string; action: string; onBucket?: true }> = {
  put: { verb: 'store', command: 'PutObject', action: 's3:PutObject' },
  get: { verb: 'read', command: 'GetObject', action: 's3:GetObject' },
  stat: { verb: 'stat', command: 'HeadObject', action: 's3:GetObject' },
  list: { verb: 'list', command: 'ListObjectsV2', action: 's3:ListBucket', onBucket: true },
  delete: { verb: 'delete', command: 'DeleteObject', action: 's3:DeleteObject' },
};

/** S3 failed; says which bucket, key (or list prefix) and operation, and keeps the SDK error as `cause`. */
export class S3StoreError extends StoreError {
  constructor(
    message: string,
    readonly bucket: string,
    /** The object key, or the prefix for `list`, as the job gave it (without the store's folder). */
    readonly key: string,
    readonly operation: S3Operation,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

export interface S3ObjectStoreOptions {
  client: S3Client;
  bucket: string;
  /**
   * A folder of the bucket holding this store's objects, such as `"ujr/data"`: key `k` is stored
   * as `ujr/data/k`. It follows the key rules; a trailing `/` is optional.
   * @default "" (the bucket's root)
   */
  prefix?: string;
  /**
   * Keys asked for per `ListObjectsV2` page (S3 returns at most 1000).
   * @default 1000
   */
  pageSize?: number;
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'Error';
}

function httpStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('$metadata' in error)) return undefined;
  const metadata = error.$metadata;
  if (typeof metadata !== 'object' || metadata === null || !('httpStatusCode' in metadata)) return undefined;
  return typeof metadata.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

/**
 * An {@link ObjectStore} on an S3 bucket (or a folder of one). The client is injected, so tests
 * point it at an emulator and Lambda builds one per cold start.
 *
 * @example
 * ```ts
 * const objects = new S3ObjectStore({ client: new S3Client({}), bucket: 'my-ujr-data', prefix: 'prod' });
 * await objects.put('collected/a/2026-01-01.jsonl', '{"at":1}\n'); // s3://my-ujr-data/prod/collected/a/2026-01-01.jsonl
 * await objects.list('collected/a/'); // [{ key: 'collected/a/2026-01-01.jsonl', size: 9, modifiedAt: … }]
 * ```
 */
export class S3ObjectStore implements ObjectStore {
  readonly bucket: string;
  /** `""` or the store's folder followed by `/`. */
  private readonly folder: string;
  private readonly client: S3Client;
  private readonly pageSize: number;

  constructor(options: S3ObjectStoreOptions) {
    if (options.bucket === '') throw new TypeError('S3ObjectStore needs a bucket name; got ""');
    const folder = (options.prefix ?? '').replace(/\/$/, '');
    if (folder !== '') {
      const problem = objectKeyProblem(folder);
      if (problem !== undefined) {
        throw new TypeError(
          `invalid S3ObjectStore prefix ${JSON.stringify(options.prefix)}: ${problem}; ` +
            'it names a folder of the bucket such as "ujr/data" and follows the object key rules',
        );
      }
    }
    const pageSize = options.pageSize ?? 1000;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
      throw new TypeError(`invalid S3ObjectStore pageSize ${pageSize}: S3 lists 1 to 1000 keys per page`);
    }
    this.client = options.client;
    this.bucket = options.bucket;
    this.folder = folder === '' ? '' : `${folder}/`;
    this.pageSize = pageSize;
  }

  async put(key: string, body: string | Uint8Array): Promise<void> {
    assertValidKey(key);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.folder + key, Body: body }));
    } catch (error) {
      throw this.failure('put', key, error);
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    assertValidKey(key);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.folder + key }));
      return response.Body ? await response.Body.transformToByteArray() : new Uint8Array();
    } catch (error) {
      if (errorName(error) === 'NoSuchKey') return undefined;
      throw this.failure('get', key, error);
    }
  }

  async getText(key: string): Promise<string | undefined> {
    const bytes = await this.get(key);
    return bytes && new TextDecoder().decode(bytes);
  }

  /**
   * HeadObject answers a bare 404 both for a missing object and for a missing bucket, so a wrong
   * bucket name reads as "no such object" here; `put`, `get` and `list` say it plainly.
   */
  async stat(key: string): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.folder + key }));
      return { key, size: head.ContentLength ?? 0, modifiedAt: head.LastModified?.getTime() ?? 0 };
    } catch (error) {
      if (errorName(error) === 'NotFound' || errorName(error) === 'NoSuchKey') return undefined;
      throw this.failure('stat', key, error);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertValidPrefix(prefix);
    const found: ObjectInfo[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.folder + prefix,
            MaxKeys: this.pageSize,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
        for (const object of page.Contents ?? []) {
          const key = object.Key?.slice(this.folder.length);
          // Objects put by something else under names no key could have ("folder/" markers, "a//b").
          if (key === undefined || objectKeyProblem(key) !== undefined) continue;
          found.push({ key, size: object.Size ?? 0, modifiedAt: object.LastModified?.getTime() ?? 0 });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (error) {
      throw this.failure('list', prefix, error);
    }
    // S3 orders by UTF-8 bytes; the store contract orders as JavaScript compares strings.
    return found.sort(byKey);
  }

  /** Deleting a missing object is done (S3 itself answers 204). */
  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.folder + key }));
    } catch (error) {
      if (errorName(error) === 'NoSuchKey') return;
      throw this.failure('delete', key, error);
    }
  }

  private failure(operation: S3Operation, key: string, error: unknown): S3StoreError {
    const call = CALLS[operation];
    const where = `s3://${this.bucket}/${this.folder}${key}`;
    const what = operation === 'list' ? `objects under ${JSON.stringify(key)}` : `object ${JSON.stringify(key)}`;
    const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return new S3StoreError(
      `cannot ${call.verb} ${what} at ${where} (${call.command}): ${detail}${this.hint(operation, error)}`,
      this.bucket,
      key,
      operation,
      { cause: error },
    );
  }

  private hint(operation: S3Operation, error: unknown): string {
    const name = errorName(error);
    const call = CALLS[operation];
    if (name === 'NoSuchBucket') return `; the bucket "${this.bucket}" does not exist: create it or check the configured bucket name`;
    if (name === 'AccessDenied' || name === 'Forbidden' || httpStatus(error) === 403) {
      const resource = call.onBucket ? `arn:aws:s3:::${this.bucket}` : `arn:aws:s3:::${this.bucket}/${this.folder}*`;
      const missingKeys =
        operation === 'get' || operation === 'stat'
          ? ' (without s3:ListBucket on the bucket, S3 also answers 403 for a missing object)'
          : '';
      return `; the caller's role needs ${call.action} on ${resource}${missingKeys}`;
    }
    return '';
  }
}
