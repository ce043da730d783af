/**
 * Bundles one program over a user's jobs module with build/bundle.ts; the CDK app's local bundling
 * (./bundling.ts) runs it in a child process, as CDK's bundling hook is synchronous. Kept apart
 * from ./bundling.ts so that the child process loads esbuild only, not aws-cdk-lib.
 *
 *   node --import tsx infra/bundle-function.ts <scheduler|worker|container> <outdir> <jobs module>
 *
 * A function's code goes to `<outdir>/<name>/index.mjs` (and its chunks and source maps); the
 * container's is the one file `<outdir>/index.mjs`, as an S3 asset of one file or an image's
 * build context wants it.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundle, BUNDLE_NAMES, type BundleName } from '../build/bundle.js';

function isBundleName(value: string | undefined): value is BundleName {
  return BUNDLE_NAMES.some((name) => name === value);
}

const [name, outdir, jobs] = process.argv.slice(2);
if (!isBundleName(name) || outdir === undefined || jobs === undefined) {
  console.error(`usage: node --import tsx infra/bundle-function.ts <${BUNDLE_NAMES.join('|')}> <outdir> <jobs module>`);
  process.exit(2);
}
if (name === 'container') {
  const scratch = mkdtempSync(join(tmpdir(), 'ujr-container-bundle-'));
  try {
    const result = await bundle(name, scratch, { jobs });
    copyFileSync(result.file, join(resolve(outdir), 'index.mjs'));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
} else {
  await bundle(name, resolve(outdir), { jobs });
}
