/**
 * Secret references in instance params. An instance keeps no secret in its configuration; it names
 * where the secret lives, and the runtime fetches the value when it loads the instance:
 *
 * ```json
 * { "db": { "password": { "$secret": "ssm:/ujr/db/password" } },
 *   "apiKey": { "$secret": "secretsmanager:ujr/collector", "field": "apiKey" } }
 * ```
 *
 * - `ssm:<name or ARN>`: an SSM parameter (SecureString decrypted).
 * - `secretsmanager:<name or ARN>`: a Secrets Manager secret's string.
 * - `field`: picks one key of a secret holding a JSON object (its JSON value, not only strings).
 *
 * This module is runtime-neutral: a {@link SecretSource} fetches (core/adapters/aws/secrets.ts on
 * AWS, a map in tests). Values are never logged and never put into error messages; what is stored
 * in run records and logs is the unresolved configuration ({@link redactSecrets}).
 */
import { ConfigError, UjrError } from '../errors.js';
import type { Json } from '../types.js';

export const SECRET_STORES = ['ssm', 'secretsmanager'] as const;
export type SecretStore = (typeof SECRET_STORES)[number];

/** A parsed `{ "$secret": "<store>:<id>", "field"?: "<key>" }`. */
export interface SecretRef {
  store: SecretStore;
  /** The SSM parameter's name or ARN, or the Secrets Manager secret's name or ARN. */
  id: string;
  /** The key to pick from a secret holding a JSON object. */
  field?: string;
}

/** A reference and where it sits in the params. */
export interface SecretRefAt {
  /** A path such as `params.db.password` or `params.hosts[0]`. */
  path: string;
  ref: SecretRef;
}

/** Fetches a secret's whole value as text; the caller picks `field` and caches. */
export interface SecretSource {
  /**
   * Throws {@link SecretNotFoundError} or {@link SecretAccessDeniedError} for what configuration
   * must fix, {@link SecretUnavailableError} for what a later attempt may not meet again.
   */
  get(ref: SecretRef): Promise<string>;
}

/** A malformed reference: unknown store, extra keys, a `field` the secret does not have. */
export class SecretReferenceError extends ConfigError {}

/** The secret does not exist (or is scheduled for deletion). */
export class SecretNotFoundError extends ConfigError {}

/** The runtime's role may not read (or decrypt) the secret. */
export class SecretAccessDeniedError extends ConfigError {}

/** The secret store failed in a way a later attempt may not meet (throttling, network). */
export class SecretUnavailableError extends UjrError {}

const SECRET_KEY = '$secret';
const FIELD_KEY = 'field';
const USAGE =
  'a secret reference is { "$secret": "ssm:/path/to/parameter" } or { "$secret": "secretsmanager:name-or-arn" }, ' +
  'optionally with "field": "<key>" to pick one key of a JSON secret';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** Parses the object at `path` if it is a secret reference (has `$secret`); throws when it is a malformed one. */
function parseRef(value: Record<string, unknown>, path: string): SecretRef | undefined {
  if (!(SECRET_KEY in value)) return undefined;
  const fail = (problem: string): never => {
    throw new SecretReferenceError(`${path}: ${problem}; ${USAGE}`);
  };
  const extra = Object.keys(value).filter((key) => key !== SECRET_KEY && key !== FIELD_KEY);
  if (extra.length > 0) fail(`a secret reference has no other keys than "$secret" and "field", found ${extra.map((key) => JSON.stringify(key)).join(', ')}`);
  const target = value[SECRET_KEY];
  if (typeof target !== 'string') return fail(`"$secret" must be a string, found ${target === null ? 'null' : typeof target}`);
  const field = value[FIELD_KEY];
  if (field !== undefined && (typeof field !== 'string' || field === '')) fail('"field" must be a non-empty string');
  const colon = target.indexOf(':');
  const store = colon === -1 ? '' : target.slice(0, colon);
  const id = colon === -1 ? '' : target.slice(colon + 1).trim();
  if (!(SECRET_STORES as readonly string[]).includes(store)) {
    fail(`unknown secret store in ${JSON.stringify(target)}: it must start with "ssm:" or "secretsmanager:"`);
  }
  if (id === '') fail(`${JSON.stringify(target)} names no parameter or secret after "${store}:"`);
  return { store: store as SecretStore, id, ...(typeof field === 'string' ? { field } : {}) };
}

/**
 * Every secret reference in `params`, in document order. Throws {@link SecretReferenceError}
 * naming the path of the first malformed one.
 *
 * @example
 * ```ts
 * findSecretRefs({ db: { password: { $secret: 'ssm:/ujr/db' } } });
 * // [{ path: 'params.db.password', ref: { store: 'ssm', id: '/ujr/db' } }]
 * ```
 */
export function findSecretRefs(params: unknown): SecretRefAt[] {
  const found: SecretRefAt[] = [];
  const walk = (value: unknown, path: string): void => {
    if (Array.isArray(value)) {
      value.forEach((item, index) => walk(item, childPath(path, index)));
    } else if (isPlainObject(value)) {
      const ref = parseRef(value, path);
      if (ref) found.push({ path, ref });
      else for (const [key, inner] of Object.entries(value)) walk(inner, childPath(path, key));
    }
  };
  walk(params, 'params');
  return found;
}

/**
 * A small time-bounded cache of fetched secrets, shared by every instance of a warm process so that
 * a Lambda does not fetch per task. Concurrent reads of one secret share one fetch; failures are
 * not kept.
 *
 * @example
 * ```ts
 * const cache = new SecretCache({ ttlMs: 5 * 60_000 });
 * const params = await resolveSecrets(raw, new AwsSecretSource({ ssm, secretsManager }), cache);
 * ```
 */
export class SecretCache {
  private readonly entries = new Map<string, { value: Promise<string>; expiresAt: number }>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    options: {
      /** @default 300000 (5 minutes) */
      ttlMs?: number;
      /** @default Date.now */
      now?: () => number;
    } = {},
  ) {
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.now = options.now ?? Date.now;
  }

  /** The cached value of `ref`'s secret (whatever its field), or what `load` fetches. */
  get(ref: SecretRef, load: () => Promise<string>): Promise<string> {
    const key = `${ref.store}:${ref.id}`;
    const now = this.now();
    const cached = this.entries.get(key);
    if (cached && cached.expiresAt > now) return cached.value;
    const value = load();
    this.entries.set(key, { value, expiresAt: now + this.ttlMs });
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    return value;
  }

  /** Forgets every value (after a rotation, say). */
  clear(): void {
    this.entries.clear();
  }
}

/** Picks `ref.field` from a secret; never puts the secret's text into the message. */
function pick(text: string, ref: SecretRef): Json {
  if (ref.field === undefined) return text;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SecretReferenceError(
      `the secret ${ref.store}:${ref.id} is not JSON, so "field": "${ref.field}" cannot be picked from it; drop "field" to use the whole value, or store a JSON object`,
    );
  }
  if (!isPlainObject(parsed)) {
    throw new SecretReferenceError(
      `the secret ${ref.store}:${ref.id} is JSON but not an object, so "field": "${ref.field}" cannot be picked from it; drop "field" or store a JSON object`,
    );
  }
  if (!(ref.field in parsed)) {
    const keys = Object.keys(parsed).map((key) => JSON.stringify(key));
    throw new SecretReferenceError(
      `the secret ${ref.store}:${ref.id} has no key "${ref.field}" (its keys: ${keys.length > 0 ? keys.join(', ') : 'none'}); fix "field" or add the key to the secret`,
    );
  }
  // JSON.parse gives JSON values only.
  return parsed[ref.field] as Json;
}

/** The same kind of error, its message prefixed with where the reference sits. */
function located(error: unknown, where: string): Error {
  if (!(error instanceof Error)) return new SecretUnavailableError(`${where}: ${String(error)}`, { cause: error });
  const message = `${where}: ${error.message}`;
  if (error instanceof SecretReferenceError) return new SecretReferenceError(message, { cause: error });
  if (error instanceof SecretNotFoundError) return new SecretNotFoundError(message, { cause: error });
  if (error instanceof SecretAccessDeniedError) return new SecretAccessDeniedError(message, { cause: error });
  return new SecretUnavailableError(message, { cause: error });
}

/** Resolved params (and their inner containers) → the raw params they came from, for {@link redactSecrets}. */
const unresolved = new WeakMap<object, unknown>();

/**
 * `params` with every secret reference replaced by the secret's value (deep, arrays too); the input
 * is not changed. Errors name the instance and the path of the reference and say what to fix:
 * {@link SecretReferenceError}, {@link SecretNotFoundError}, {@link SecretAccessDeniedError}
 * (configuration, not retried), {@link SecretUnavailableError} (retried).
 *
 * @example
 * ```ts
 * await resolveSecrets({ db: { password: { $secret: 'ssm:/ujr/db' } } }, source, cache, { instanceId: 'collector-a' });
 * // { db: { password: 's3cr3t' } }
 * ```
 */
export async function resolveSecrets(
  params: unknown,
  source: SecretSource,
  cache: SecretCache,
  context: { instanceId?: string } = {},
): Promise<unknown> {
  const instance = context.instanceId === undefined ? undefined : `instance "${context.instanceId}"`;
  let refs: SecretRefAt[];
  try {
    refs = findSecretRefs(params);
  } catch (error) {
    throw instance === undefined ? error : located(error, instance);
  }
  if (refs.length === 0) return params;
  const values = new Map<string, Json>(
    await Promise.all(
      refs.map(async ({ path, ref }): Promise<[string, Json]> => {
        try {
          const text = await cache.get(ref, () => source.get(ref));
          return [path, pick(text, ref)];
        } catch (error) {
          throw located(error, `${instance === undefined ? '' : `${instance}, `}${path} ({ "$secret": ${JSON.stringify(`${ref.store}:${ref.id}`)} })`);
        }
      }),
    ),
  );
  const replace = (value: unknown, path: string): unknown => {
    if (values.has(path)) return values.get(path);
    const holdsRef = (at: SecretRefAt) => at.path.startsWith(`${path}.`) || at.path.startsWith(`${path}[`);
    if (!refs.some(holdsRef)) return value;
    let copy: unknown;
    if (Array.isArray(value)) copy = value.map((item, index) => replace(item, childPath(path, index)));
    else if (isPlainObject(value)) copy = Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, replace(inner, childPath(path, key))]));
    else return value;
    unresolved.set(copy as object, value);
    return copy;
  };
  return replace(params, 'params');
}

/**
 * What may be stored or logged of params: references stay references. Given params resolved by
 * {@link resolveSecrets} (or any object or array holding them), it gives back the unresolved
 * configuration they came from; unresolved params come back as they are. A secret value copied
 * out of resolved params into a new string cannot be recognised; store the params, not values.
 *
 * @example
 * ```ts
 * const resolved = await resolveSecrets(raw, source, cache);
 * redactSecrets({ instanceId: 'a', params: resolved }); // { instanceId: 'a', params: raw }
 * ```
 */
export function redactSecrets(params: unknown): unknown {
  const redact = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null) return value;
    if (unresolved.has(value)) return unresolved.get(value);
    if (Array.isArray(value)) return value.map(redact);
    if (isPlainObject(value) && Object.getPrototypeOf(value) === Object.prototype) {
      return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, redact(inner)]));
    }
    return value;
  };
  return redact(params);
}

/**
 * A params resolver for the instance directory (`resolveParams` of `InstanceDirectory`): resolves
 * each instance's references through `source`, sharing `cache` across loads.
 */
export function secretsResolver(source: SecretSource, cache: SecretCache = new SecretCache()) {
  return (instanceId: string, params: unknown): Promise<unknown> => resolveSecrets(params, source, cache, { instanceId });
}
