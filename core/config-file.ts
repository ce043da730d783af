/**
 * The instances file's text (`jobs/instances.json` by default): JSON with comments and trailing
 * commas (JSONC), as editors and `ujr jobs enable|disable` keep it, then validated by
 * ./config.ts. Apart from it so that code that never reads the file (the Lambda functions and the
 * container, which read the instances table) does not bundle the JSONC parser.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { parseInstances, type ParsedConfig } from './config.js';
import type { JobType } from './types.js';

/**
 * Validates the file's text. Instances with problems are left out of `instances` (the caller keeps
 * their last good version, see `mergeWithLastGood`).
 */
export function parseInstancesText(text: string, jobs: readonly JobType[]): ParsedConfig {
  const parsed = parseInstancesJson(text);
  if (!parsed.ok) return { instances: [], limits: new Map(), problems: [{ message: `${parsed.message}; fix the syntax` }] };
  return parseInstances(parsed.raw, jobs);
}

/**
 * The text of an instances file as JSON with comments and trailing commas (JSONC), as editors and
 * `ujr jobs enable|disable` keep it; read the same way locally and when a deployment seeds it.
 */
export function parseInstancesJson(text: string): { ok: true; raw: unknown } | { ok: false; message: string } {
  const errors: ParseError[] = [];
  const raw: unknown = parseJsonc(text, errors, { allowTrailingComma: true, disallowComments: false });
  const [syntax] = errors;
  if (!syntax) return { ok: true, raw };
  const { line, column } = lineAndColumn(text, syntax.offset);
  return { ok: false, message: `not valid JSON (${printParseErrorCode(syntax.error)} at line ${line}, column ${column})` };
}

export async function readInstancesFile(path: string, jobs: readonly JobType[]): Promise<ParsedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return { instances: [], limits: new Map(), problems: [{ message: `cannot read the file (${(error as Error).message}); create it or pass --instances` }] };
  }
  return parseInstancesText(text, jobs);
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}
