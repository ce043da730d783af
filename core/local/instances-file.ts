/**
 * Edits of the instances file made on a user's behalf (`ujr jobs enable|disable`, the status
 * page's Enable/Disable buttons). Only the edited field changes (comments and formatting are kept);
 * the file is rewritten atomically (temp file, then rename), so a
 * running `ujr run` watching it never reads half a file; it applies the edit live.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { applyEdits, findNodeAtLocation, modify, parseTree, printParseErrorCode, type FormattingOptions, type ParseError } from 'jsonc-parser';
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
 * Sets `enabled` of one instance in the instances file and changes nothing else: the edit is made
 * in the text (jsonc-parser's `modify`), so other entries, formatting and comments stay as written.
 * An entry that says nothing about `enabled` gets the field added after its last one.
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
  const index = (entries.children ?? []).findIndex((entry) => entry.type === 'object' && findNodeAtLocation(entry, ['id'])?.value === instanceId);
  if (index < 0) throw new InstanceNotFoundError(instanceId, file);
  const edits = modify(text, ['instances', index, 'enabled'], enabled, { formattingOptions: detectFormatting(text) });
  const next = applyEdits(text, edits);
  if (next === text) return;
  // Unique per call: two edits from one process (the status page) must not share a temp file.
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temp, next);
  await rename(temp, file);
}

/** The file's indentation (its first indented line) and line ending, for a field that has to be added. */
function detectFormatting(text: string): FormattingOptions {
  const indent = /^([ \t]+)\S/m.exec(text)?.[1] ?? '  ';
  const tabs = indent.startsWith('\t');
  return { insertSpaces: !tabs, tabSize: tabs ? 1 : indent.length, eol: text.includes('\r\n') ? '\r\n' : '\n' };
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
