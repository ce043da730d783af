import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InstanceDirectory } from '../../core/cloud/instances.js';
import {
  findSecretRefs,
  redactSecrets,
  resolveSecrets,
  SecretCache,
  secretsResolver,
  SecretNotFoundError,
  SecretReferenceError,
  SecretUnavailableError,
  type SecretRef,
  type SecretSource,
} from '../../core/cloud/secrets.js';
import { defineJob } from '../../core/define.js';
import { ConfigError, isRetryable } from '../../core/errors.js';

/** Secrets in a map, keyed "store:id"; counts fetches and can be told to fail. */
class MapSecretSource implements SecretSource {
  readonly fetched: string[] = [];
  failure: Error | undefined;

  constructor(private readonly secrets: Record<string, string>) {}

  get(ref: SecretRef): Promise<string> {
    const key = `${ref.store}:${ref.id}`;
    this.fetched.push(key);
    if (this.failure) return Promise.reject(this.failure);
    const value = this.secrets[key];
    if (value === undefined) return Promise.reject(new SecretNotFoundError(`${key} does not exist: create it`));
    return Promise.resolve(value);
  }
}

const SECRETS = {
  'ssm:/ujr/db/password': 'hunter2',
  'secretsmanager:ujr/collector': JSON.stringify({ apiKey: 'k-123', port: 5432, user: 'collector' }),
  'secretsmanager:plain': 'not json at all',
};

function fakeClock(start = 0) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const caught: unknown = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(caught instanceof Error)) throw new Error('expected the promise to reject with an Error');
  return caught;
}

describe('findSecretRefs', () => {
  it('finds references deep in objects and arrays, with their paths, in document order', () => {
    const params = {
      query: 'q',
      db: { password: { $secret: 'ssm:/ujr/db/password' } },
      hosts: [{ name: 'a' }, { token: { $secret: 'secretsmanager:ujr/collector', field: 'apiKey' } }],
      'odd key': { $secret: 'secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf' },
    };

    expect(findSecretRefs(params)).toEqual([
      { path: 'params.db.password', ref: { store: 'ssm', id: '/ujr/db/password' } },
      { path: 'params.hosts[1].token', ref: { store: 'secretsmanager', id: 'ujr/collector', field: 'apiKey' } },
      {
        path: 'params["odd key"]',
        ref: { store: 'secretsmanager', id: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf' },
      },
    ]);
  });

  it('finds nothing in params without references, whatever their strings say', () => {
    expect(findSecretRefs({ note: 'ssm:/looks/like/one', secret: 'x', list: [1, null, true] })).toEqual([]);
    expect(findSecretRefs(null)).toEqual([]);
  });

  it.each([
    [{ $secret: 'vault:/x' }, /params\.token: unknown secret store in "vault:\/x": it must start with "ssm:" or "secretsmanager:"/],
    [{ $secret: 'ssm:' }, /params\.token: "ssm:" names no parameter or secret after "ssm:"/],
    [{ $secret: 42 }, /params\.token: "\$secret" must be a string, found number/],
    [{ $secret: 'ssm:/x', field: '' }, /params\.token: "field" must be a non-empty string/],
    [{ $secret: 'ssm:/x', default: 'y' }, /params\.token: a secret reference has no other keys than "\$secret" and "field", found "default"/],
  ])('refuses the malformed reference %j, naming its path and the right form', (token, message) => {
    const error = (() => {
      try {
        findSecretRefs({ token });
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();

    expect(error).toBeInstanceOf(SecretReferenceError);
    expect(error).toBeInstanceOf(ConfigError);
    expect(String(error)).toMatch(message);
    expect(String(error)).toContain('a secret reference is { "$secret": "ssm:/path/to/parameter" }');
  });
});

describe('resolveSecrets', () => {
  it('replaces every reference by its value, deep and in arrays, without changing the input', async () => {
    const params = {
      query: 'q',
      db: { host: 'db.internal', password: { $secret: 'ssm:/ujr/db/password' } },
      keys: [{ $secret: 'secretsmanager:ujr/collector', field: 'apiKey' }, 'literal'],
    };
    const before = structuredClone(params);

    const resolved = await resolveSecrets(params, new MapSecretSource(SECRETS), new SecretCache());

    expect(resolved).toEqual({ query: 'q', db: { host: 'db.internal', password: 'hunter2' }, keys: ['k-123', 'literal'] });
    expect(params).toEqual(before);
  });

  it('hands back params without references as they are, fetching nothing', async () => {
    const source = new MapSecretSource(SECRETS);
    const params = { query: 'q' };

    expect(await resolveSecrets(params, source, new SecretCache())).toBe(params);
    expect(source.fetched).toEqual([]);
  });

  it('gives a JSON field its JSON value, not only strings', async () => {
    const resolved = await resolveSecrets(
      { port: { $secret: 'secretsmanager:ujr/collector', field: 'port' } },
      new MapSecretSource(SECRETS),
      new SecretCache(),
    );

    expect(resolved).toEqual({ port: 5432 });
  });

  it('names the instance, path and keys of a secret without the field, and never its values', async () => {
    const params = { token: { $secret: 'secretsmanager:ujr/collector', field: 'apikey' } };

    const error = await failure(resolveSecrets(params, new MapSecretSource(SECRETS), new SecretCache(), { instanceId: 'collector-a' }));

    expect(error).toBeInstanceOf(SecretReferenceError);
    expect(error.message).toBe(
      'instance "collector-a", params.token ({ "$secret": "secretsmanager:ujr/collector" }): the secret secretsmanager:ujr/collector ' +
        'has no key "apikey" (its keys: "apiKey", "port", "user"); fix "field" or add the key to the secret',
    );
    expect(error.message).not.toContain('k-123');
    expect(isRetryable(error)).toBe(false);
  });

  it('says a field cannot be picked from a secret that is not a JSON object, without quoting it', async () => {
    const error = await failure(
      resolveSecrets({ t: { $secret: 'secretsmanager:plain', field: 'x' } }, new MapSecretSource(SECRETS), new SecretCache()),
    );

    expect(error.message).toMatch(/params\.t .*is not JSON, so "field": "x" cannot be picked from it; drop "field"/);
    expect(error.message).not.toContain('not json at all');
  });

  it('reports a missing secret as configuration to fix (not retried), naming instance and path', async () => {
    const error = await failure(
      resolveSecrets({ db: [{ $secret: 'ssm:/ujr/missing' }] }, new MapSecretSource(SECRETS), new SecretCache(), { instanceId: 'b' }),
    );

    expect(error).toBeInstanceOf(SecretNotFoundError);
    expect(error.message).toBe('instance "b", params.db[0] ({ "$secret": "ssm:/ujr/missing" }): ssm:/ujr/missing does not exist: create it');
    expect(isRetryable(error)).toBe(false);
    expect(error.cause).toBeInstanceOf(SecretNotFoundError);
  });

  it('reports an unexpected store failure as retryable, keeping the cause', async () => {
    const source = new MapSecretSource(SECRETS);
    source.failure = new Error('socket hang up');

    const error = await failure(resolveSecrets({ p: { $secret: 'ssm:/ujr/db/password' } }, source, new SecretCache()));

    expect(error).toBeInstanceOf(SecretUnavailableError);
    expect(error.message).toBe('params.p ({ "$secret": "ssm:/ujr/db/password" }): socket hang up');
    expect(isRetryable(error)).toBe(true);
    expect(error.cause).toBe(source.failure);
  });

  it('names the instance of a malformed reference', async () => {
    const error = await failure(resolveSecrets({ p: { $secret: 'env:HOME' } }, new MapSecretSource(SECRETS), new SecretCache(), { instanceId: 'c' }));

    expect(error).toBeInstanceOf(SecretReferenceError);
    expect(error.message).toMatch(/^instance "c": params\.p: unknown secret store/);
  });
});

describe('SecretCache', () => {
  it('fetches a secret once for all its references and fields until the TTL passes', async () => {
    const clock = fakeClock();
    const cache = new SecretCache({ ttlMs: 60_000, now: clock.now });
    const source = new MapSecretSource(SECRETS);
    const params = {
      a: { $secret: 'secretsmanager:ujr/collector', field: 'apiKey' },
      b: { $secret: 'secretsmanager:ujr/collector', field: 'user' },
    };

    await resolveSecrets(params, source, cache);
    clock.advance(59_999);
    await resolveSecrets(params, source, cache, { instanceId: 'other' });
    expect(source.fetched).toEqual(['secretsmanager:ujr/collector']);

    clock.advance(1);
    await resolveSecrets(params, source, cache);
    expect(source.fetched).toEqual(['secretsmanager:ujr/collector', 'secretsmanager:ujr/collector']);
  });

  it('does not keep failures: the next load asks again', async () => {
    const cache = new SecretCache({ now: fakeClock().now });
    const source = new MapSecretSource(SECRETS);
    source.failure = new Error('throttled');
    const params = { p: { $secret: 'ssm:/ujr/db/password' } };

    await expect(resolveSecrets(params, source, cache)).rejects.toThrow(SecretUnavailableError);
    source.failure = undefined;

    expect(await resolveSecrets(params, source, cache)).toEqual({ p: 'hunter2' });
    expect(source.fetched).toHaveLength(2);
  });

  it('forgets everything on clear (after a rotation)', async () => {
    const cache = new SecretCache({ now: fakeClock().now });
    const source = new MapSecretSource(SECRETS);
    const params = { p: { $secret: 'ssm:/ujr/db/password' } };

    await resolveSecrets(params, source, cache);
    cache.clear();
    await resolveSecrets(params, source, cache);

    expect(source.fetched).toHaveLength(2);
  });
});

describe('redactSecrets', () => {
  const raw = {
    query: 'q',
    db: { host: 'h', password: { $secret: 'ssm:/ujr/db/password' } },
    keys: [{ $secret: 'secretsmanager:ujr/collector', field: 'apiKey' }],
    plain: { n: 1 },
  };

  it('gives back the references of resolved params, also inside a record holding them', async () => {
    const resolved = await resolveSecrets(raw, new MapSecretSource(SECRETS), new SecretCache());

    const record = redactSecrets({ instanceId: 'a', params: resolved, db: (resolved as typeof raw).db });

    expect(record).toEqual({ instanceId: 'a', params: raw, db: raw.db });
    expect(JSON.stringify(record)).not.toMatch(/hunter2|k-123/);
  });

  it('leaves unresolved params and params without references as they are', () => {
    expect(redactSecrets(raw)).toEqual(raw);
    expect(redactSecrets({ a: [1, 'x'], b: null })).toEqual({ a: [1, 'x'], b: null });
    expect(redactSecrets('text')).toBe('text');
  });
});

describe('secretsResolver with the instance directory', () => {
  const collector = defineJob({
    name: 'collector',
    params: z.object({ token: z.string() }),
    getRunnableTasks: () => [],
    tasks: { fetch: { run: () => undefined } },
  });

  it('runs instances whose secrets resolve and reports the one whose secret is missing', async () => {
    const entries = [
      { id: 'good', job: 'collector', params: { token: { $secret: 'ssm:/ujr/db/password' } } },
      { id: 'broken', job: 'collector', params: { token: { $secret: 'ssm:/ujr/missing' } } },
    ];
    const directory = new InstanceDirectory({
      catalog: { loadInstancesAndStatus: () => Promise.resolve({ entries, statuses: [] }) },
      jobs: [collector],
      resolveParams: secretsResolver(new MapSecretSource(SECRETS), new SecretCache({ now: () => 0 })),
      maxAgeMs: 0,
      now: () => 0,
    });

    const snapshot = await directory.get();

    expect([...snapshot.instances.keys()]).toEqual(['good']);
    expect(snapshot.instances.get('good')?.config.params).toEqual({ token: 'hunter2' });
    expect(snapshot.problems).toEqual([
      {
        instanceId: 'broken',
        field: 'params',
        message: 'instance "broken", params.token ({ "$secret": "ssm:/ujr/missing" }): ssm:/ujr/missing does not exist: create it',
      },
    ]);
  });
});
