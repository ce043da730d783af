/**
 * Builds the package's `dist/`: the compiled JavaScript and declarations of everything the
 * package exports or runs (tsconfig.build.json), plus the files the code reads at run time that
 * are not TypeScript (the status page's static files). `npm pack` runs it (prepack).
 *
 *   npm run build
 */
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT } from '../core/package-root.js';

const DIST = join(ROOT, 'dist');

/** Files copied as they are, relative to the repository root (and to dist/). */
const ASSETS = ['core/ui/static'];

rmSync(DIST, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
if (result.status !== 0) {
  console.error(`tsc -p tsconfig.build.json failed (exit ${String(result.status)}): the package was not built`);
  process.exit(1);
}
for (const asset of ASSETS) cpSync(join(ROOT, asset), join(DIST, asset), { recursive: true });
console.log(`built ${DIST}`);
