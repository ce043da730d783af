/**
 * Edits of the instances file made on a user's behalf (`ujr jobs enable|disable`, the status
 * page's Enable/Disable buttons). Only the edited field changes (comments and formatting are kept);
 * the file is rewritten atomically (temp file, then rename), so a
 * running `ujr run` watching it never reads half a file; it applies the edit live.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { applyEdits, findNodeAtLocation, parseTree, printParseErrorCode, type Edit, type Node as JsonNode, type ParseError } from 'jsonc-parser';
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
 * Sets `enabled` of one instance in the instances file and changes nothing else: the file is
 * parsed with jsonc-parser and the one edit applied to its text, so other entries, formatting and
 * comments stay as written. An entry that says nothing about `enabled` gets the field added after
 * its last one.
 *
 * @throws {InstancesFileError} when the file cannot be read, is not valid JSON (comments and
 * trailing commas allowed) or has no "instances" array.
 * @throws {InstanceNotFoundError} when no entry has the id.
 * @example
 * ```ts
 * await setInstanceEnabled('jobs/instances.json', 'metrics', false);
 * ```
 */
export async function setInstanceEnabled(file: string, instanceId: string, enabled: boolean): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new InstancesFileError(`cannot read ${file}: ${(error as Error).message}`, file, { cause: error });
  }
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  const [syntax] = errors;
  if (!root || syntax) {
    const where = syntax ? ` (${printParseErrorCode(syntax.error)} at offset ${syntax.offset})` : '';
    throw new InstancesFileError(`${file} is not valid JSON${where}; fix the syntax first`, file);
  }
  const entries = findNodeAtLocation(root, ['instances']);
  if (entries?.type !== 'array') throw new InstancesFileError(`${file} has no "instances" array`, file);
  const entry = (entries.children ?? []).find((e) => e.type === 'object' && findNodeAtLocation(e, ['id'])?.value === instanceId);
  if (!entry) throw new InstanceNotFoundError(instanceId, file);
  const next = applyEdits(text, [enabledEdit(text, entry, enabled)]);
  if (next === text) return;
  // Unique per call: two edits from one process (the status page) must not share a temp file.
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temp, next);
  await rename(temp, file);
}

/**
 * The one edit that sets `"enabled"` of `entry`: its value replaced where it is written, else the
 * field added after the entry's last one, on its own line in an entry written over several lines
 * (indented as that line) and on the same line in a one-line entry. Nothing else is reformatted.
 */
function enabledEdit(text: string, entry: JsonNode, enabled: boolean): Edit {
  const value = JSON.stringify(enabled);
  const current = findNodeAtLocation(entry, ['enabled']);
  if (current) return { offset: current.offset, length: current.length, content: value };
  const last = entry.children?.at(-1);
  if (!last) return { offset: entry.offset + 1, length: 0, content: ` "enabled": ${value} ` };
  const end = last.offset + last.length;
  const lineStart = text.lastIndexOf('\n', last.offset) + 1;
  const sameLine = !text.slice(entry.offset, end).includes('\n');
  if (sameLine) return { offset: end, length: 0, content: `, "enabled": ${value}` };
  const indent = /^[ \t]*/.exec(text.slice(lineStart))?.[0] ?? '';
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  return { offset: end, length: 0, content: `,${eol}${indent}"enabled": ${value}` };
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
