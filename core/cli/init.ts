/**
 * `ujr init [dir]`: scaffolds a ready project (an example job with its test, its instances file, a
 * CDK app) from the package's `templates/init/`, and a package.json whose versions are ujr's own.
 * It works offline and never overwrites a file: when any file it would write exists, it lists them
 * and changes nothing.
 */
import { existsSync, lstatSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { UjrError } from '../errors.js';
import { ROOT } from '../package-root.js';
import { CliError, EXIT } from './errors.js';
import type { Io } from './io.js';

/** The templates' folder in the package. */
export const TEMPLATE_DIR = join(ROOT, 'templates', 'init');

/**
 * Templates stored under another name than the file they make: git and `npm pack` would read a
 * `.gitignore` as ignore rules, and editors and typescript-eslint would take a `tsconfig.json` for
 * the templates' own TypeScript files (which this repository type-checks against its sources).
 */
const RENAMED: Readonly<Record<string, string>> = { gitignore: '.gitignore', 'tsconfig.template.json': 'tsconfig.json' };

/** The development tools of a project, in the versions ujr itself is built and tested with. */
export const PROJECT_DEV_DEPENDENCIES = ['@types/node', 'aws-cdk', 'aws-cdk-lib', 'constructs', 'tsx', 'typescript', 'vitest'] as const;

const versions = z.record(z.string(), z.string());

/** The fields of ujr's own package.json that a project's package.json is made from. */
const ujrManifestSchema = z.object({
  version: z.string().min(1),
  engines: versions.optional(),
  allowScripts: z.record(z.string(), z.unknown()).optional(),
  dependencies: versions.optional(),
  devDependencies: versions.optional(),
  peerDependencies: versions.optional(),
});
export type UjrManifest = z.infer<typeof ujrManifestSchema>;

/** What `initProject` made. */
export interface InitResult {
  /** The project's folder (absolute). */
  dir: string;
  /** The package name it got. */
  name: string;
  /** The files written, relative to `dir`, sorted. */
  files: string[];
}

/**
 * Writes a new project into `dir` (created when missing; an existing folder may hold other files).
 *
 * @throws {CliError} exit 2 when a file it would write exists (all are listed, nothing is written),
 * or `dir` is a file.
 *
 * @example
 * ```ts
 * const { files } = await initProject('my-lab'); // ['.gitignore', 'README.md', 'cdk.json', …]
 * ```
 */
export async function initProject(target: string, cwd = process.cwd()): Promise<InitResult> {
  const dir = resolve(cwd, target);
  if (existsSync(dir) && !lstatSync(dir).isDirectory()) {
    throw new CliError(`${dir} is a file, not a folder: give "ujr init" a new or empty folder`, EXIT.usage);
  }
  const name = npmPackageName(basename(dir));
  const contents = new Map<string, string>();
  for (const [file, template] of await templateFiles()) contents.set(file, await readFile(template, 'utf8'));
  contents.set('package.json', `${JSON.stringify(projectManifest(name, await readUjrManifest()), null, 2)}\n`);
  const files = [...contents.keys()].sort();

  const conflicts = files.flatMap((file) => conflictsOf(dir, file));
  if (conflicts.length > 0) {
    const unique = [...new Set(conflicts)].sort();
    throw new CliError(
      `${dir} already holds ${unique.length === 1 ? 'a file' : 'files'} that "ujr init" would write: ${unique.join(', ')}. ` +
        'Nothing was changed: move them away, or give another folder ("npx ujr init <dir>").',
      EXIT.usage,
    );
  }
  for (const file of files) {
    const path = join(dir, file);
    await mkdir(dirname(path), { recursive: true });
    // 'wx': a file that appeared since the check is not overwritten either.
    await writeFile(path, contents.get(file) ?? '', { flag: 'wx' });
  }
  return { dir, name, files };
}

/**
 * The project's package.json: ujr as its dependency, ujr's own versions of the development tools,
 * and ujr's `engines` and `allowScripts` (npm 11 runs install scripts only of the packages it
 * allows: better-sqlite3 and esbuild need theirs).
 *
 * @throws {UjrError} when ujr's package.json lacks a version of one of {@link PROJECT_DEV_DEPENDENCIES} (a broken install).
 */
export function projectManifest(name: string, ujr: UjrManifest): Record<string, unknown> {
  const devDependencies: Record<string, string> = {};
  for (const dependency of PROJECT_DEV_DEPENDENCIES) {
    // The tested pair first: the aws-cdk CLI must understand the assemblies of the aws-cdk-lib it runs.
    const range = ujr.devDependencies?.[dependency] ?? ujr.peerDependencies?.[dependency] ?? ujr.dependencies?.[dependency];
    if (range === undefined) {
      throw new UjrError(`ujr's package.json (${join(ROOT, 'package.json')}) names no version of ${dependency}; reinstall ujr`);
    }
    devDependencies[dependency] = range;
  }
  return {
    name,
    version: '0.1.0',
    private: true,
    type: 'module',
    scripts: { start: 'ujr run', test: 'vitest run', synth: 'cdk synth', deploy: 'cdk deploy' },
    dependencies: { ujr: `^${ujr.version}` },
    devDependencies,
    ...(ujr.engines === undefined ? {} : { engines: ujr.engines }),
    ...(ujr.allowScripts === undefined ? {} : { allowScripts: ujr.allowScripts }),
  };
}

/**
 * A valid npm package name made of a folder's name: lower case, only `a-z 0-9 - . _ ~`, not
 * starting with `.` or `_`, at most 214 characters, not a Node.js built-in module's name.
 *
 * @example
 * ```ts
 * npmPackageName('My Lab (2026)'); // 'my-lab-2026'
 * ```
 */
export function npmPackageName(folder: string): string {
  const name = folder
    .toLowerCase()
    .replace(/[^a-z0-9._~-]+/g, '-')
    .replace(/^[-._~]+|[-._~]+$/g, '')
    .slice(0, 214)
    .replace(/[-._~]+$/, '');
  if (name === '' || name === 'node_modules' || name === 'favicon.ico') return 'ujr-project';
  return builtinModules.includes(name) ? `${name}-jobs` : name;
}

/** Adds `ujr init` to the program. */
export function registerInitCommand(program: Command, io: Io, json: () => boolean = () => false): Command {
  return program
    .command('init')
    .description('create a project: an example job and its test, its instances file, a CDK app and a package.json (never overwrites a file)')
    .argument('[dir]', 'the folder to create it in (created when missing)', '.')
    .addHelpText(
      'after',
      '\nIt works offline, and changes nothing when any file it would write exists. Then:\n' +
        '  cd <dir> && npm install && npm start    # the example job runs; npm test tests it',
    )
    .action(async (dir: string) => {
      const result = await initProject(dir);
      if (json()) {
        io.out(JSON.stringify({ name: result.name, dir: result.dir, files: result.files }));
        return;
      }
      const where = relative(process.cwd(), result.dir);
      io.out(`created ${result.name} in ${result.dir}:`);
      for (const file of result.files) io.out(`  ${file}`);
      io.out('\nnext steps:');
      if (where !== '') io.out(`  cd ${/\s/.test(where) ? JSON.stringify(where) : where}`);
      io.out('  npm install');
      io.out('  npm start          # runs the example job: its first reports within seconds (Ctrl-C stops)');
      io.out('  npm test           # its tests');
      io.out('  npx ujr ui         # the status page, while npm start runs');
      io.out('  npx cdk deploy     # the same jobs on AWS (needs AWS credentials; "npx cdk bootstrap" once per account and region)');
    });
}

/** The templates, by the path of the file each makes (relative, with "/"). */
async function templateFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path, `${prefix}${entry.name}/`);
      else if (entry.isFile()) files.set(`${prefix}${RENAMED[entry.name] ?? entry.name}`, path);
    }
  };
  try {
    await walk(TEMPLATE_DIR, '');
  } catch (error) {
    throw new UjrError(`ujr is incomplete: cannot read its templates in ${TEMPLATE_DIR} (${(error as Error).message}); reinstall ujr`, { cause: error });
  }
  return files;
}

async function readUjrManifest(): Promise<UjrManifest> {
  const file = join(ROOT, 'package.json');
  const parsed = ujrManifestSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
  if (!parsed.success) throw new UjrError(`ujr's package.json (${file}) is not usable (${parsed.error.message}); reinstall ujr`);
  return parsed.data;
}

/** What stands in the way of writing `file` (relative, with "/") under `dir`: the file itself, or a parent that is not a folder. */
function conflictsOf(dir: string, file: string): string[] {
  const parts = file.split('/');
  for (let i = 1; i < parts.length; i++) {
    const parent = parts.slice(0, i).join('/');
    const stats = lstatSync(join(dir, parent), { throwIfNoEntry: false });
    if (stats === undefined) return [];
    if (!stats.isDirectory()) return [parent];
  }
  return lstatSync(join(dir, file), { throwIfNoEntry: false }) === undefined ? [] : [file];
}
