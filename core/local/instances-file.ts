/**
 * Edits of the instances file made on a user's behalf (`ujr jobs enable|disable`, the status
 * page's Enable/Disable buttons). The file is rewritten atomically (temp file, then rename), so a
 * running `ujr run` watching it never reads half a file; it applies the edit live.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { ConfigError } from '../errors.js';
import type { Store } from '../ports/store.js';

/** The instances file cannot be read or is not shaped `{ "instances": [...] }`. */
export class InstancesFileError extends ConfigError {
  constructor(
    message: string,
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** No entry of the instances file has the id. */
export class InstanceNotFoundError extends ConfigError {
  constructor(
    readonly instanceId: string,
    readonly file: string,
  ) {
    super(`no job instance "${instanceId}" in ${file}`);
  }
}

/**
 * Sets `enabled` of one instance in the instances file, keeping every other field and entry as
 * written (the file is re-serialised with two-space indentation).
 *
 * @throws {InstancesFileError} when the file cannot be read or has no "instances" array.
 * @throws {InstanceNotFoundError} when no entry has the id.
 * @example
 * ```ts
 * await setInstanceEnabled('jobs/instances.json', 'metrics', false);
 * ```
 */
export async function setInstanceEnabled(file: string, instanceId: string, enabled: boolean): Promise<void> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new InstancesFileError(`cannot read ${file}: ${(error as Error).message}`, file, { cause: error });
  }
  const entries: unknown = data && typeof data === 'object' && 'instances' in data ? data.instances : undefined;
  if (!Array.isArray(entries)) throw new InstancesFileError(`${file} has no "instances" array`, file);
  const entry: unknown = entries.find((e: unknown) => e && typeof e === 'object' && 'id' in e && e.id === instanceId);
  if (!entry || typeof entry !== 'object') throw new InstanceNotFoundError(instanceId, file);
  (entry as { enabled?: boolean }).enabled = enabled;
  // Unique per call: two edits from one process (the status page) must not share a temp file.
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temp, `${JSON.stringify(data, null, 2)}\n`);
  await rename(temp, file);
}

/**
 * Clears the retirement of an instance (its job said `done()`), so that enabling it plans it again.
 * A plan error on record is kept.
 */
export async function unretireInstance(store: Store, instanceId: string): Promise<void> {
  const status = await store.getInstanceStatus(instanceId);
  if (status?.retiredAt === undefined) return;
  const { retiredAt: _retiredAt, retiredReason: _reason, ...rest } = status;
  await store.setInstanceStatus(instanceId, rest.planError !== undefined ? rest : undefined);
}
