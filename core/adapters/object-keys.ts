/**
 * The rules for object keys, shared by every `ObjectStore` adapter (local directory, S3). Keys obey
 * the same rules everywhere so that data written on a laptop can be copied to a bucket and back:
 * a key S3 would accept but a directory could not hold (`a//b`, `../x`) is refused by both.
 */

/** Marks the temporary files of an unfinished directory `put`; no store's keys may use it. */
export const TEMP_MARKER = '.ujr-tmp-';

export const KEY_RULES =
  'keys are relative "/"-separated paths such as "collected/a/2026-01-01.jsonl": not empty, not starting with "/", ' +
  `without empty, "." or ".." segments, backslashes or NUL characters, and without "${TEMP_MARKER}" (reserved)`;

/**
 * Says what is wrong with `key` as an object key, or `undefined` when it is valid.
 * A prefix (for `list`) follows the same rules except that it may be empty or end with `/`.
 *
 * @example
 * ```ts
 * objectKeyProblem('collected/a/1.jsonl'); // undefined
 * objectKeyProblem('a//b'); // 'it has an empty segment ("//" or a trailing "/")'
 * objectKeyProblem('collected/a/', { asPrefix: true }); // undefined
 * ```
 */
export function objectKeyProblem(key: string, { asPrefix = false } = {}): string | undefined {
  if (key === '') return asPrefix ? undefined : 'it is empty';
  if (key.includes('\0')) return 'it contains a NUL character';
  if (key.includes('\\')) return 'it contains a backslash';
  if (key.startsWith('/')) return 'it is absolute (starts with "/")';
  if (/^[A-Za-z]:/.test(key)) return 'it starts with a drive letter';
  const segments = key.split('/');
  if (asPrefix) segments.pop(); // the last part of a prefix is a partial name: "collected/a/2026" or ""
  for (const segment of segments) {
    if (segment === '') return 'it has an empty segment ("//" or a trailing "/")';
    if (segment === '.' || segment === '..') return `it has a "${segment}" segment`;
    if (segment.includes(TEMP_MARKER)) return `it uses the reserved "${TEMP_MARKER}" marker`;
  }
  return undefined;
}

/** Throws a `TypeError` naming the key, what is wrong with it and the rules, unless it is valid. */
export function assertValidKey(key: string): void {
  const problem = objectKeyProblem(key);
  if (problem !== undefined) throw new TypeError(`invalid object key ${JSON.stringify(key)}: ${problem}; ${KEY_RULES}`);
}

/** Like {@link assertValidKey}, for a `list` prefix (which may be empty or end with `/`). */
export function assertValidPrefix(prefix: string): void {
  const problem = objectKeyProblem(prefix, { asPrefix: true });
  if (problem !== undefined) {
    throw new TypeError(`invalid object key prefix ${JSON.stringify(prefix)}: ${problem}; ${KEY_RULES}`);
  }
}

/** Orders objects by key, as `ObjectStore.list` returns them (UTF-16 code unit order, as `<`). */
export function byKey(a: { key: string }, b: { key: string }): number {
  if (a.key < b.key) return -1;
  return a.key > b.key ? 1 : 0;
}
