/**
 * Bundles the Lambda entry points (functions/) and the container entry point (containers/) with
 * esbuild: minified ESM, with the user's job types and the AWS SDK inside, so the deployed code is
 * exactly what was tested. Used by the CDK app (local bundling, no Docker), by the container image
 * build and by the bundle tests (test/integration/aws/bundles.test.ts).
 *
 *   node --import tsx build/bundle.ts [outdir]
 *
 * Each bundle is a folder: `index.mjs` (the handler module) and `chunks/`, code that `index.mjs`
 * imports, statically or only when first needed: the SDK's credential providers other than the
 * environment's (SSO, profiles, STS web identity, instance metadata), event streams and the like,
 * which a Lambda function or an ECS task never loads, so they cost no cold-start time. The budget
 * of a bundle (1 MB) counts every `.mjs` file in its folder; source maps (`.map`) are not counted.
 */
import { build, type Metafile, type Plugin } from 'esbuild';
import { mkdirSync, rmSync } from 'node:fs';
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

/** The size budget of one bundle (all its `.mjs` files), from the issue. */
export const BUNDLE_BUDGET_BYTES = 1_000_000;

export interface BundleResult {
  name: BundleName;
  /** The handler module: `<outdir>/<name>/index.mjs`. */
  file: string;
  /** Bytes of every `.mjs` file of the bundle (the entry and its chunks). */
  bytes: number;
  /** Bytes of `index.mjs` alone. */
  entryBytes: number;
  /** Bytes Node reads at module init: `index.mjs` and the chunks it imports statically. */
  initBytes: number;
  /** Every `.mjs` file of the bundle. */
  files: string[];
  metafile: Metafile;
}

/** Some dependencies are CommonJS and call `require` for Node's built-ins. */
const REQUIRE_SHIM = "import { createRequire as __ujrCreateRequire } from 'node:module'; const require = __ujrCreateRequire(import.meta.url);";

/**
 * Zod 4 re-exports every one of its ~50 message locales (`z.locales`, `z.core.locales`), about
 * 260 KB of a bundle, though only English is ever configured (by zod itself). ujr never calls
 * `z.config(z.locales.xx())`, so the bundles carry English only: `z.locales.en` still works, any
 * other locale is `undefined`.
 */
const zodEnglishOnly: Plugin = {
  name: 'ujr-zod-english-only',
  setup(builder) {
    builder.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/]/.test(args.importer) ? { path: 'zod-locales', namespace: 'ujr-zod-locales', pluginData: args.resolveDir } : undefined,
    );
    builder.onLoad({ filter: /.*/, namespace: 'ujr-zod-locales' }, (args) => ({
      contents: "export { default as en } from '../locales/en.js';",
      resolveDir: String(args.pluginData),
    }));
  },
};

/**
 * The SDK's browser user-agent parser (`bowser`, 38 KB) is reachable only from the browser
 * runtime configuration; on Node it is never imported. It is replaced by a module that says so.
 */
const noBrowserUserAgent: Plugin = {
  name: 'ujr-no-browser-user-agent',
  setup(builder) {
    builder.onResolve({ filter: /^bowser$/ }, () => ({ path: 'bowser', namespace: 'ujr-no-bowser' }));
    builder.onLoad({ filter: /.*/, namespace: 'ujr-no-bowser' }, () => ({
      contents:
        "export const parse = () => { throw new Error('bowser (the browser user-agent parser) is left out of ujr bundles, which run on Node.js only'); };\n" +
        'export default { parse };',
    }));
  },
};

/**
 * Keeps the names of ujr's own functions and classes through minification. Errors name
 * themselves after their class (`this.name = new.target.name` in core/errors.ts): run records keep
 * that name, and the runtime recognises some errors by it (attempt.ts, `ShutdownError`). Minified,
 * `TaskTimeoutError` would be recorded as `xe`. esbuild's `keepNames` would do it for the
 * dependencies too (+60 KB of `__name` calls; nothing there relies on it: the SDK's and Powertools'
 * errors set their names explicitly), so the build has two steps: ujr's own code is bundled first,
 * dependencies left as imports, with `keepNames` (and unminified, tree-shaken); that module is then
 * bundled with its dependencies and minified without it: the `__name(…, "…")` calls stay.
 */
const FIRST_PARTY_FILE = 'ujr.mjs';

async function firstPartyModule(entry: string): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    packages: 'external',
    platform: 'node',
    target: 'node22',
    format: 'esm',
    keepNames: true,
    sourcemap: 'inline',
    sourcesContent: true,
    write: false,
    outfile: join(ROOT, FIRST_PARTY_FILE),
    absWorkingDir: ROOT,
    logLevel: 'warning',
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error(`esbuild produced nothing for ${entry}`);
  return output.text;
}

/** The output files Node loads when it imports `entry`: the entry and, transitively, its static imports. */
function loadedAtInit(metafile: Metafile, entry: string): string[] {
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const path = pending.pop() as string;
    if (seen.has(path)) continue;
    seen.add(path);
    for (const imported of metafile.outputs[path]?.imports ?? []) {
      if (imported.kind === 'import-statement' && !imported.external) pending.push(imported.path);
    }
  }
  return [...seen];
}

export async function bundle(name: BundleName, outdir: string): Promise<BundleResult> {
  const dir = join(outdir, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const result = await build({
    // Named as the first step's output, so that its inline source map points at ujr's sources.
    stdin: { contents: await firstPartyModule(join(ROOT, ENTRY_POINTS[name])), resolveDir: ROOT, sourcefile: FIRST_PARTY_FILE, loader: 'js' },
    entryNames: 'index',
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    // Code imported only when needed (see the header) goes into chunks that are loaded only then.
    splitting: true,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    // ESM builds first: esbuild's default for Node (`main` first) picks the SDK's CommonJS builds,
    // which cannot be tree-shaken (every command of every client would ship: +400 KB a bundle).
    mainFields: ['module', 'main'],
    minify: true,
    sourcemap: 'linked',
    metafile: true,
    legalComments: 'none',
    banner: { js: REQUIRE_SHIM },
    // Local-only modules must never reach a bundle: the native SQLite binding would fail to load.
    external: ['better-sqlite3'],
    plugins: [zodEnglishOnly, noBrowserUserAgent],
    logLevel: 'warning',
    // The first step keeps `import '<package>'` for imports of types (verbatimModuleSyntax); the
    // packages say they have no side effects, so this step drops them, as it should.
    logOverride: { 'ignored-bare-import': 'silent' },
    absWorkingDir: ROOT,
  });
  const outputs = Object.entries(result.metafile.outputs).filter(([path]) => path.endsWith('.mjs'));
  // Chunks loaded by `import()` count as entry points in the metafile too: the entry is `index.mjs`.
  const entry = outputs.find(([path]) => resolve(ROOT, path) === join(dir, 'index.mjs'));
  if (!entry) throw new Error(`esbuild wrote no entry module for the ${name} bundle into ${dir}`);
  const bytesOf = (paths: string[]) => paths.reduce((sum, path) => sum + (result.metafile.outputs[path]?.bytes ?? 0), 0);
  return {
    name,
    file: resolve(ROOT, entry[0]),
    bytes: bytesOf(outputs.map(([path]) => path)),
    entryBytes: entry[1].bytes,
    initBytes: bytesOf(loadedAtInit(result.metafile, entry[0])),
    files: outputs.map(([path]) => resolve(ROOT, path)),
    metafile: result.metafile,
  };
}

export async function bundleAll(outdir: string): Promise<BundleResult[]> {
  return Promise.all((Object.keys(ENTRY_POINTS) as BundleName[]).map((name) => bundle(name, outdir)));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outdir = resolve(process.argv[2] ?? join(ROOT, 'dist'));
  for (const result of await bundleAll(outdir)) {
    const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;
    console.log(`${result.name}: ${result.file} (${kib(result.bytes)} in ${result.files.length} files, ${kib(result.initBytes)} loaded at init)`);
  }
}
