/**
 * Bundles the deployed code with esbuild: the scheduler and worker Lambdas and the Fargate
 * container, each made of a user's job types (their jobs module, whatever it imports) and ujr's
 * runtime, as minified ESM with the AWS SDK inside. Used by the CDK construct at synth
 * (infra/bundling.ts, no Docker) and by the bundle tests (test/integration/aws/bundles.test.ts).
 *
 *   node --import tsx build/bundle.ts <jobs module> [outdir]
 *
 * **The entry.** Each bundle's entry is generated: it imports the user's module (its default
 * export: an array or a record of job types, checked by core/local/jobs-module.ts) and a factory
 * of ujr (functions/scheduler.ts, functions/worker.ts, containers/main.ts), and calls one with the
 * other. ujr's files are its sources in a checkout and its compiled dist/ files in an installed
 * package (core/package-root.ts tells which).
 *
 * **One ujr.** Every `ujr` import of the user's code is mapped to the very file the entry's
 * factory uses (`core/index`), so a bundle holds one copy of ujr's modules and `instanceof
 * NonRetryableError` means what it says, whatever `ujr` would resolve to from the user's project.
 * `ujr/cdk` and `ujr/testing` have no place in deployed code and stop the build, saying so.
 *
 * **Whose dependencies.** A package import is resolved from the file that imports it, as Node.js
 * would: the user's dependencies from the user's project, ujr's (AWS SDK, Powertools, zod) from
 * ujr's, wherever npm put them (hoisted, or nested under node_modules/ujr/node_modules), so
 * neither side gets the other's version of a package.
 *
 * **Names.** Errors name themselves after their class (`this.name = new.target.name` in
 * core/errors.ts): run records keep that name, and the runtime recognises some errors by it
 * (`ShutdownError`, `SkipError`). Minified, `NonRetryableError` would be recorded as `xe`. esbuild's
 * `keepNames` would do it for the dependencies too (+60 KB of `__name` calls; nothing there relies
 * on it: the SDK's and Powertools' errors set their names explicitly), so the build has two steps:
 * first-party code (ujr's and the user's: every file outside a node_modules folder) is bundled
 * first with `keepNames`, unminified, each package import left as an import of the file it
 * resolved to; that module is then bundled with the packages and minified without `keepNames`:
 * the `__name(…, "…")` calls stay.
 *
 * **Layout.** A Lambda bundle is a folder: `index.mjs` (the handler module) and `chunks/`, code
 * that `index.mjs` imports, statically or only when first needed: the SDK's credential providers
 * other than the environment's (SSO, profiles, STS web identity, instance metadata), event streams
 * and the like, which a Lambda function never loads, so they cost no cold-start time. The
 * container bundle is the one file `index.mjs` (no chunks, no source map): the container fetches
 * it as it is from S3 and checks its SHA-256 before running it (infra/job-runner.ts). The budget
 * of a bundle (1 MB) counts every `.mjs` file in its folder; source maps (`.map`) are not counted.
 */
import { build, type Metafile, type OnResolveArgs, type OnResolveResult, type Plugin } from 'esbuild';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FROM_SOURCE, ROOT } from '../core/package-root.js';
import { JobsModuleError } from './errors.js';

/** Where ujr's own modules are: its sources in a checkout, its compiled dist/ when installed. */
const UJR_CODE = FROM_SOURCE ? ROOT : join(ROOT, 'dist');
const UJR_EXTENSION = FROM_SOURCE ? '.ts' : '.js';

/** The file of ujr's module `name` (relative to its code root, no extension). */
function ujrModule(name: string): string {
  const file = join(UJR_CODE, `${name}${UJR_EXTENSION}`);
  if (!existsSync(file)) throw new Error(`ujr is incomplete: ${file} is missing; reinstall the package`);
  return file;
}

/** The bundles: the two Lambda functions and the container. */
export const BUNDLE_NAMES = ['scheduler', 'worker', 'container'] as const;

export type BundleName = (typeof BUNDLE_NAMES)[number];

/**
 * Each bundle's program: ujr's module holding its factory, the entry's statement calling it, and
 * what the call passes after the job types (the container's conductor starts its own bundle file
 * again for each continuous task, so it is given the entry's URL).
 */
const PROGRAMS: Record<BundleName, { module: string; factory: string; statement: (call: string) => string; extraArgs?: string }> = {
  scheduler: { module: 'functions/scheduler', factory: 'createSchedulerHandler', statement: (call) => `export const handler = ${call};` },
  worker: { module: 'functions/worker', factory: 'createWorkerHandler', statement: (call) => `export const handler = ${call};` },
  container: { module: 'containers/main', factory: 'runContainer', statement: (call) => `${call};`, extraArgs: 'import.meta.url' },
};

/** The size budget of one bundle (all its `.mjs` files), from the issue. */
export const BUNDLE_BUDGET_BYTES = 1_000_000;

export interface BundleOptions {
  /**
   * The module whose default export lists the job types (an array or a record of them): an
   * absolute path, or one relative to the working directory.
   */
  readonly jobs: string;
}

export interface BundleResult {
  name: BundleName;
  /** The entry module: `<outdir>/<name>/index.mjs`. */
  file: string;
  /** Bytes of every `.mjs` file of the bundle (the entry and its chunks). */
  bytes: number;
  /** Bytes of `index.mjs` alone. */
  entryBytes: number;
  /** Bytes Node reads at module init: `index.mjs` and the chunks it imports statically. */
  initBytes: number;
  /** Every `.mjs` file of the bundle. */
  files: string[];
  /** The first-party source files in the bundle (ujr's and the user's), absolute. */
  sources: string[];
  /** The second step's metafile: its inputs are the first step's module and the packages' files. */
  metafile: Metafile;
}

/**
 * The absolute path of the jobs module `given` (absolute, or relative to the working directory);
 * throws a {@link JobsModuleError} naming it when there is no such file.
 *
 * @example
 * ```ts
 * resolveJobsModule('jobs/index.ts'); // '/home/me/research/jobs/index.ts'
 * ```
 */
export function resolveJobsModule(given: string): string {
  const path = resolve(process.cwd(), given);
  const what = path === given ? given : `${given} (${path})`;
  if (!existsSync(path)) {
    throw new JobsModuleError(`the jobs module ${what} does not exist: pass the path of the module whose default export lists your job types, absolute or relative to ${process.cwd()}`);
  }
  if (!statSync(path).isFile()) throw new JobsModuleError(`the jobs module ${what} is not a file: pass the path of the module itself (e.g. jobs/index.ts), not its folder`);
  return path;
}

/** Some dependencies are CommonJS and call `require` for Node's built-ins. */
const REQUIRE_SHIM = "import { createRequire as __ujrCreateRequire } from 'node:module'; const require = __ujrCreateRequire(import.meta.url);";

/** Packages that must never reach a bundle (the native SQLite binding is for the local runner). */
const LEFT_OUT = new Set(['better-sqlite3']);

/** `lodash/fp` → `lodash`, `@aws-sdk/client-s3/x` → `@aws-sdk/client-s3`. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
}

/** ujr's own modules: what the entry and `ujr` import (its front door re-exports the local runner too). */
const UJR_DIRS = ['core', 'functions', 'containers'].map((dir) => join(UJR_CODE, dir));

/** A module of ujr's own code (not a package's, not the user's). */
function isUjrFile(path: string): boolean {
  return UJR_DIRS.some((dir) => !relative(dir, path).startsWith('..') && !isAbsolute(relative(dir, path))) && !path.split(/[\\/]/).includes('node_modules');
}

/** A file of a package (inside a node_modules folder), not of ujr and not of the user's project. */
function isPackageFile(path: string): boolean {
  const inUjr = relative(UJR_CODE, path);
  const within = inUjr.startsWith('..') || isAbsolute(inUjr) ? path : inUjr;
  return within.split(/[\\/]/).includes('node_modules');
}

/**
 * What an import of `ujr` (or of one of its subpaths) in first-party code resolves to: ujr's own
 * front door, the file the entry's factory imports too; `ujr/cdk` and `ujr/testing` stop the build.
 */
function resolveUjr(args: OnResolveArgs): OnResolveResult | undefined {
  if (args.path === 'ujr') return { path: ujrModule('core/index'), sideEffects: false };
  if (!args.path.startsWith('ujr/')) return undefined;
  const why: Record<string, string> = {
    'ujr/cdk': 'ujr/cdk is the CDK construct, for your CDK app where you synthesize, not for job code that runs on AWS',
    'ujr/testing': 'ujr/testing holds test helpers, for your tests, not for job code that runs on AWS',
  };
  const reason = why[args.path] ?? `ujr exports no "${args.path}"`;
  return { errors: [{ text: `${args.importer} imports "${args.path}": ${reason}; job code imports from "ujr" only` }] };
}

/** pluginData of the plugin's own resolve calls, so that it does not handle them again. */
const RESOLVING = { ujrFirstParty: true };

/**
 * The first step's resolution: relative imports and `ujr` stay in (first-party code, bundled with
 * `keepNames`); a package import becomes an external import of the file it resolves to from its
 * importer, which the second step bundles. A package of the user's outside node_modules (a
 * workspace package, a tsconfig path) counts as first-party.
 *
 * ujr's own modules are marked free of side effects (they are: no module of ujr runs anything
 * when loaded that another relies on), so that what the deployed code does not use is left out:
 * `ujr` also exports the local runner (`createRunner`), whose SQLite store and task processes a
 * bundle must never carry.
 */
const firstPartyOnly: Plugin = {
  name: 'ujr-first-party-only',
  setup(builder) {
    builder.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData === RESOLVING || args.kind === 'entry-point') return undefined;
      const { path } = args;
      if (path.startsWith('.') || isAbsolute(path)) {
        if (!isUjrFile(args.importer) && !(isAbsolute(path) && isUjrFile(path))) return undefined;
        const resolved = await builder.resolve(path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: RESOLVING });
        if (resolved.errors.length > 0) return { errors: resolved.errors, warnings: resolved.warnings };
        return { path: resolved.path, namespace: resolved.namespace, sideEffects: isUjrFile(resolved.path) ? false : resolved.sideEffects, external: resolved.external };
      }
      const ujr = resolveUjr(args);
      if (ujr) return ujr;
      if (isBuiltin(path) || LEFT_OUT.has(packageName(path))) return { path, external: true };
      const resolved = await builder.resolve(path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: RESOLVING });
      if (resolved.errors.length > 0) return { errors: resolved.errors, warnings: resolved.warnings };
      if (resolved.external || isPackageFile(resolved.path)) return { path: resolved.path, external: true };
      return { path: resolved.path, namespace: resolved.namespace, sideEffects: resolved.sideEffects, pluginData: resolved.pluginData as unknown };
    });
  },
};

/**
 * The second step bundles packages. One importing `ujr` would bring a second copy of ujr's modules
 * next to the one the first step inlined (and `instanceof` across them fails): refused, saying why.
 */
const noUjrInPackages: Plugin = {
  name: 'ujr-no-ujr-in-packages',
  setup(builder) {
    builder.onResolve({ filter: /^ujr(\/|$)/ }, (args) => ({
      errors: [
        {
          text: `${args.importer}, a file of a package, imports "${args.path}": a bundle holds one copy of ujr, the one your jobs module's imports resolve to, and a package's would be a second; import ujr from your project's own files (or a workspace package outside node_modules) only`,
        },
      ],
    }));
  },
};

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
 * The SDK clients' default credentials, as each program is given them, instead of the SDK's whole
 * chain (shared config files, SSO, web identity, the instance metadata service, with the STS and
 * SSO clients they bring: about 80 KB of every bundle):
 * - Lambda gives a function its role's credentials in the environment (`AWS_ACCESS_KEY_ID`,
 *   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`): the environment provider;
 * - ECS gives a container its task role's credentials over the container credentials endpoint
 *   (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, or `..._FULL_URI`): the HTTP provider, or the
 *   environment provider when the environment holds credentials (a container run by hand or by
 *   the tests).
 */
function credentialsFor(program: 'lambda' | 'container'): Plugin {
  const provider =
    program === 'lambda'
      ? "import { fromEnv } from '@aws-sdk/credential-provider-env';\n" +
        "// Lambda sets the role's credentials in the environment (see build/bundle.ts).\n" +
        'export const defaultProvider = (init = {}) => fromEnv(init);\n'
      : "import { fromEnv } from '@aws-sdk/credential-provider-env';\n" +
        "import { fromHttp } from '@aws-sdk/credential-provider-http';\n" +
        "// ECS serves the task role's credentials over HTTP; credentials in the environment come first (see build/bundle.ts).\n" +
        'export const defaultProvider = (init = {}) => (process.env.AWS_ACCESS_KEY_ID ? fromEnv(init) : fromHttp(init));\n';
  return {
    name: `ujr-${program}-credentials`,
    setup(builder) {
      builder.onResolve({ filter: /^@aws-sdk\/credential-provider-node$/ }, async (args) => {
        if (args.pluginData === RESOLVING) return undefined;
        // Resolved where the chain would have been, so that its own providers are the ones used.
        const chain = await builder.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: RESOLVING });
        if (chain.errors.length > 0) return { errors: chain.errors };
        return { path: 'credential-provider-node', namespace: 'ujr-credentials', pluginData: dirname(chain.path) };
      });
      builder.onLoad({ filter: /.*/, namespace: 'ujr-credentials' }, (args) => ({ contents: provider, resolveDir: String(args.pluginData) }));
    },
  };
}

/** The name of the first step's output, as the second step's source map shows it. */
const FIRST_PARTY_FILE = 'ujr.mjs';

/** The generated entry of bundle `name` over the jobs module at `jobsModule`. */
function entrySource(name: BundleName, jobsModule: string): string {
  const program = PROGRAMS[name];
  // A path as the deployed code names it in errors: where the module is in the project, not on this machine.
  const label = relative(process.cwd(), jobsModule) || jobsModule;
  return [
    `import * as jobsModule from ${JSON.stringify(jobsModule)};`,
    `import { jobTypesOf } from ${JSON.stringify(ujrModule('core/local/jobs-module'))};`,
    `import { ${program.factory} } from ${JSON.stringify(ujrModule(program.module))};`,
    program.statement(`${program.factory}(jobTypesOf(jobsModule.default, ${JSON.stringify(label)})${program.extraArgs ? `, ${program.extraArgs}` : ''})`),
  ].join('\n');
}

/** Step 1: the first-party code of bundle `name` as one module, with `keepNames`, its package imports left as imports of files. */
async function firstPartyModule(name: BundleName, jobsModule: string, sourcemap: boolean): Promise<{ text: string; sources: string[] }> {
  const entry = join(dirname(jobsModule), `ujr-${name}-entry.mjs`);
  const result = await build({
    stdin: { contents: entrySource(name, jobsModule), resolveDir: dirname(jobsModule), sourcefile: basename(entry), loader: 'js' },
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    // As in step 2 (see there), so that a package import resolves here to the file step 2 would pick.
    mainFields: ['module', 'main'],
    keepNames: true,
    ...(sourcemap ? { sourcemap: 'inline', sourcesContent: true } : {}),
    write: false,
    outfile: join(ROOT, FIRST_PARTY_FILE),
    absWorkingDir: ROOT,
    plugins: [firstPartyOnly],
    metafile: true,
    logLevel: 'silent',
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error(`esbuild produced nothing for the ${name} bundle of ${jobsModule}`);
  // The generated entry is no source file.
  const sources = Object.keys(result.metafile.inputs)
    .map((input) => resolve(ROOT, input))
    .filter((input) => input !== entry);
  return { text: output.text, sources };
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

/**
 * Bundles `name` over the job types of `options.jobs` into `<outdir>/<name>/`.
 *
 * @example
 * ```ts
 * const { file, bytes } = await bundle('worker', 'dist-aws', { jobs: 'jobs/index.ts' }); // dist-aws/worker/index.mjs
 * ```
 */
export async function bundle(name: BundleName, outdir: string, options: BundleOptions): Promise<BundleResult> {
  const jobsModule = resolveJobsModule(options.jobs);
  const single = name === 'container';
  const dir = join(outdir, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const firstParty = await firstPartyModule(name, jobsModule, !single);
  const result = await build({
    // Named as the first step's output, so that its inline source map points at the sources.
    stdin: { contents: firstParty.text, resolveDir: ROOT, sourcefile: FIRST_PARTY_FILE, loader: 'js' },
    entryNames: 'index',
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    // Code imported only when needed (see the header) goes into chunks that are loaded only then;
    // the container's code is one file.
    splitting: !single,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    // ESM builds first: esbuild's default for Node (`main` first) picks the SDK's CommonJS builds,
    // which cannot be tree-shaken (every command of every client would ship: +400 KB a bundle).
    mainFields: ['module', 'main'],
    minify: true,
    sourcemap: single ? false : 'linked',
    metafile: true,
    legalComments: 'none',
    banner: { js: REQUIRE_SHIM },
    external: [...LEFT_OUT],
    plugins: [noUjrInPackages, zodEnglishOnly, noBrowserUserAgent, credentialsFor(name === 'container' ? 'container' : 'lambda')],
    logLevel: 'warning',
    // The first step keeps `import '<file>'` for imports of types (verbatimModuleSyntax); the
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
    sources: firstParty.sources,
    metafile: result.metafile,
  };
}

/** Every bundle over the job types of `options.jobs`, each into `<outdir>/<name>/`. */
export async function bundleAll(outdir: string, options: BundleOptions): Promise<BundleResult[]> {
  return Promise.all(BUNDLE_NAMES.map((name) => bundle(name, outdir, options)));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [jobs, outdir] = process.argv.slice(2);
  if (jobs === undefined) {
    console.error('usage: node --import tsx build/bundle.ts <jobs module> [outdir]');
    process.exit(2);
  }
  for (const result of await bundleAll(resolve(outdir ?? 'dist-aws'), { jobs })) {
    const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;
    console.log(`${result.name}: ${result.file} (${kib(result.bytes)} in ${result.files.length} files, ${kib(result.initBytes)} loaded at init)`);
  }
}
