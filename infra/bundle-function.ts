/**
 * Bundles one entry point into `<outdir>/<name>/index.mjs` with build/bundle.ts; the CDK app's
 * local bundling (./bundling.ts) runs it in a child process, as CDK's bundling hook is synchronous.
 * Kept apart from ./bundling.ts so that the child process loads esbuild only, not aws-cdk-lib.
 *
 *   node --import tsx infra/bundle-function.ts <scheduler|worker|container> <outdir>
 */
import { resolve } from 'node:path';
import { bundle, ENTRY_POINTS, type BundleName } from '../build/bundle.js';

function isBundleName(value: string | undefined): value is BundleName {
  return value !== undefined && Object.hasOwn(ENTRY_POINTS, value);
}

const [name, outdir] = process.argv.slice(2);
if (!isBundleName(name) || outdir === undefined) {
  console.error(`usage: node --import tsx infra/bundle-function.ts <${Object.keys(ENTRY_POINTS).join('|')}> <outdir>`);
  process.exit(2);
}
await bundle(name, resolve(outdir));
