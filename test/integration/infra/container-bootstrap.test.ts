/**
 * The container's start on a stock Node.js image (containers/bootstrap.ts), run for real with
 * `node --input-type=module --eval <program>` as the task definition runs it: the code runs when
 * its SHA-256 is the one the deployment expects, and is refused, with one JSON log line saying
 * why, when it is not, when the digest is missing or when the init container left no code.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootstrapProgram, CODE_SHA256_VARIABLE } from '../../../containers/bootstrap.js';

const dir = mkdtempSync(join(tmpdir(), 'ujr-bootstrap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What the init container would have copied: a module that says it ran, and where from. */
const CODE = "console.log('UJR_CODE_RAN ' + import.meta.url);\n";
const file = join(dir, 'index.mjs');
writeFileSync(file, CODE);
const sha256 = createHash('sha256').update(CODE).digest('hex');

/** Runs the bootstrap over `codeFile` as ECS would start the container, with only `env` (and PATH). */
function start(codeFile: string, env: Record<string, string>) {
  const result = spawnSync(process.execPath, ['--input-type=module', '--eval', bootstrapProgram(codeFile)], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The one JSON log line on stderr. */
function logLine(stderr: string): { level: string; message: string } {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0] ?? '') as { level: string; message: string };
}

describe('the container bootstrap', () => {
  it('runs the code whose SHA-256 is the expected one', () => {
    const run = start(file, { [CODE_SHA256_VARIABLE]: sha256 });

    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(`UJR_CODE_RAN file://${file}\n`);
    expect(run.stderr).toBe('');
  });

  it('refuses code whose SHA-256 differs, naming both digests, and runs none of it', () => {
    const expected = createHash('sha256').update('other code').digest('hex');

    const run = start(file, { [CODE_SHA256_VARIABLE]: expected });

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(logLine(run.stderr)).toEqual({
      level: 'ERROR',
      message: `ujr container: refusing to run ${file}: its SHA-256 is ${sha256} but the deployment expects ${expected}; the code in S3 is not the code this task definition was made with: deploy the stack again`,
    });
  });

  it('refuses to run anything without a SHA-256 to check against', () => {
    const run = start(file, { [CODE_SHA256_VARIABLE]: 'not-bundled' });

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(logLine(run.stderr).message).toMatch(/^ujr container: UJR_CODE_SHA256 is "not-bundled", not a SHA-256 \(64 hex digits\)/);
  });

  it('says where the code should have come from when the init container left none', () => {
    const missing = join(dir, 'missing.mjs');

    const run = start(missing, { [CODE_SHA256_VARIABLE]: sha256 });

    expect(run.code).toBe(1);
    expect(logLine(run.stderr).message).toMatch(new RegExp(`^ujr container: cannot read its code at ${missing} \\(ENOENT.*the fetch-code container copies it there from S3`));
  });
});
