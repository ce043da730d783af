/**
 * How a container on a stock Node.js image starts ujr's code (infra/job-runner.ts, the default
 * `containerImage: 'stock'`): the image holds nothing of ujr, so the task definition's command is
 * this small program, `node --input-type=module --eval <program>`. An init container has copied
 * the container bundle (build/bundle.ts) from its CDK S3 asset into a volume the two containers
 * share; the program checks that file's SHA-256 against the one the construct computed at synth
 * ({@link CODE_SHA256_VARIABLE}), refuses to run anything else with one JSON log line saying why,
 * and otherwise imports it (containers/main.ts then runs the conductor or the long task).
 */

/** The variable holding the SHA-256 (hex) of the code the deployment expects. */
export const CODE_SHA256_VARIABLE = 'UJR_CODE_SHA256';

/**
 * The bootstrap program for the code at `file` (an absolute path in the container): plain
 * JavaScript for `node --input-type=module --eval`, Node.js 20 or later.
 *
 * @example
 * ```ts
 * container.command = ['--input-type=module', '--eval', bootstrapProgram('/ujr/code/index.mjs')];
 * ```
 */
export function bootstrapProgram(file: string): string {
  return [
    "import { createHash } from 'node:crypto';",
    "import { readFileSync } from 'node:fs';",
    "import { pathToFileURL } from 'node:url';",
    `const file = ${JSON.stringify(file)};`,
    "const refuse = (message) => { console.error(JSON.stringify({ level: 'ERROR', message: 'ujr container: ' + message })); process.exit(1); };",
    `const expected = process.env.${CODE_SHA256_VARIABLE} ?? '';`,
    'if (!/^[0-9a-f]{64}$/.test(expected)) {',
    `  refuse('${CODE_SHA256_VARIABLE} is ' + JSON.stringify(expected) + ', not a SHA-256 (64 hex digits); the JobRunner construct sets it to the digest of the code it bundled: synthesize with bundling and deploy the stack again');`,
    '}',
    'let code;',
    'try {',
    '  code = readFileSync(file);',
    '} catch (error) {',
    "  refuse('cannot read its code at ' + file + ' (' + error.message + '); the fetch-code container copies it there from S3 before this one starts: see its log');",
    '}',
    "const actual = createHash('sha256').update(code).digest('hex');",
    'if (actual !== expected) {',
    "  refuse('refusing to run ' + file + ': its SHA-256 is ' + actual + ' but the deployment expects ' + expected + '; the code in S3 is not the code this task definition was made with: deploy the stack again');",
    '}',
    'await import(pathToFileURL(file).href);',
  ].join('\n');
}
