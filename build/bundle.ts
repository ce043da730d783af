/**
 * Bundles the Lambda entry points (functions/) and the container entry point (containers/) with
 * esbuild: one minified ESM file each, with the user's job types and the AWS SDK inside, so the
 * deployed code is exactly what was tested. Used by the CDK app (local bundling, no Docker), by the
 * container image build and by the bundle tests.
 *
 *   node --import tsx build/bundle.ts [outdir]
 */
import { build, type Metafile } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** What gets bundled: name → entry point (relative to the repository root). */
export const ENTRY_POINTS = {
  scheduler: 'functions/scheduler.ts',
  worker: 'functions/worker.ts',
  container: 'containers/main.ts',
} as const;

export type BundleName = keyof typeof ENTRY_POINTS;

export interface BundleResult {
  name: BundleName;
  /** The bundle: `<outdir>/<name>/index.mjs`. */
  file: string;
  bytes: number;
  metafile: Metafile;
}

/** Some dependencies are CommonJS and call `require` for Node's built-ins. */
const REQUIRE_SHIM = "import { createRequire as __ujrCreateRequire } from 'node:module'; const require = __ujrCreateRequire(import.meta.url);";

export async function bundle(name: BundleName, outdir: string): Promise<BundleResult> {
  const dir = join(outdir, name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'index.mjs');
  const result = await build({
    entryPoints: [join(ROOT, ENTRY_POINTS[name])],
    outfile: file,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    minify: true,
    sourcemap: 'linked',
    metafile: true,
    legalComments: 'none',
    banner: { js: REQUIRE_SHIM },
    // Local-only modules must never reach a bundle: the native SQLite binding would fail to load.
    external: ['better-sqlite3'],
    logLevel: 'warning',
  });
  const output = Object.entries(result.metafile.outputs).find(([path]) => path.endsWith('index.mjs'));
  return { name, file, bytes: output?.[1].bytes ?? 0, metafile: result.metafile };
}

export async function bundleAll(outdir: string): Promise<BundleResult[]> {
  return Promise.all((Object.keys(ENTRY_POINTS) as BundleName[]).map((name) => bundle(name, outdir)));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outdir = resolve(process.argv[2] ?? join(ROOT, 'dist'));
  for (const result of await bundleAll(outdir)) {
    console.log(`${result.name}: ${result.file} (${(result.bytes / 1024).toFixed(0)} KiB)`);
  }
}
