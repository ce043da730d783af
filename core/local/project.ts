/**
 * Where the CLI finds a project's jobs module, instances file and home folder, each resolved on its
 * own, first to last:
 *
 * 1. the command-line flags `--jobs`, `--instances`, `--home` (relative to the current folder);
 * 2. a config file, `ujr.config.ts` (or `.mts`, `.js`, `.mjs`, `.json`), in the current folder or
 *    the nearest parent holding one, up to the project root: the first folder, going up, that holds
 *    a package.json or `.git`;
 * 3. the `"ujr"` field of the project root's package.json;
 * 4. the defaults `jobs/index.ts`, `jobs/instances.json` and `.ujr`, in the project root (the
 *    current folder when there is none).
 *
 * Paths in a config file or package.json are relative to that file's folder. A config is validated
 * when it is found, whether or not a flag overrides its fields: an unknown field, a wrong type or a
 * jobs module or instances file that does not exist is a {@link ProjectConfigError} naming the file
 * and the field. (`home` may be missing: `ujr run` creates it.)
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { z } from 'zod';
import { JobsModuleNotFoundError, ProjectConfigError } from './errors.js';
import { CONFIG_FIELDS, CONFIG_FILE_NAMES, projectConfigSchema, type UjrConfig } from './project-config.js';
import { DEFAULT_PATHS, type LocalPaths } from './runtime.js';

/** The paths given on the command line (relative to the current folder), as the CLI's flags name them. */
export type PathFlags = Partial<Record<keyof UjrConfig, string>>;

/** Where one resolved path came from. */
export type PathSource =
  | { kind: 'flag'; given: string }
  | { kind: 'config'; file: string }
  | { kind: 'package.json'; file: string }
  | { kind: 'default' };

/** What the search found, and the paths it resolved. */
export interface Project {
  /** The folder the search started from. */
  cwd: string;
  /** The nearest folder at or above `cwd` holding a package.json or `.git`; none when no folder up to `/` does. */
  root?: string;
  /** The config file in use, if one was found. */
  configFile?: string;
  /** The project root's package.json, if it has one. */
  packageJson?: string;
  /** Whether that package.json has a `"ujr"` field. */
  packageField: boolean;
  paths: LocalPaths;
  sources: Record<keyof UjrConfig, PathSource>;
}

const DEFAULTS: Record<keyof UjrConfig, string> = { jobs: DEFAULT_PATHS.jobsModule, instances: DEFAULT_PATHS.instancesFile, home: DEFAULT_PATHS.home };

/** Fields whose path must exist when a config names it (`ujr run` creates the home folder). */
const MUST_EXIST: Partial<Record<keyof UjrConfig, string>> = {
  jobs: 'create the module or fix the path',
  instances: 'create the file (e.g. { "instances": [] }) or fix the path',
};

/**
 * Finds the project around `cwd` and resolves its paths (flags > config file > package.json's
 * `"ujr"` field > defaults). The jobs module may still be missing: see {@link requireJobsModule}.
 *
 * @throws {ProjectConfigError} when a config file or the `"ujr"` field cannot be read or is invalid.
 *
 * @example
 * ```ts
 * const project = await resolveProject({ jobs: process.argv[2] });
 * const paths = requireJobsModule(project); // LocalPaths, or a JobsModuleNotFoundError saying where it looked
 * ```
 */
export async function resolveProject(flags: PathFlags, cwd = process.cwd()): Promise<Project> {
  const start = resolve(cwd);
  const { root, configFile } = search(start);
  const packageJson = root !== undefined && existsSync(join(root, 'package.json')) ? join(root, 'package.json') : undefined;
  const fromConfig = configFile === undefined ? {} : await readConfigFile(configFile);
  const fromPackage = packageJson === undefined ? undefined : await readPackageField(packageJson);
  const base = root ?? start;

  const pick = (field: keyof UjrConfig): { path: string; source: PathSource } => {
    const flag = flags[field];
    const configured = fromConfig[field];
    const inPackage = fromPackage?.[field];
    if (flag !== undefined) return { path: resolve(start, flag), source: { kind: 'flag', given: flag } };
    if (configFile !== undefined && configured !== undefined) return { path: resolve(dirname(configFile), configured), source: { kind: 'config', file: configFile } };
    if (packageJson !== undefined && inPackage !== undefined) return { path: resolve(dirname(packageJson), inPackage), source: { kind: 'package.json', file: packageJson } };
    return { path: resolve(base, DEFAULTS[field]), source: { kind: 'default' } };
  };
  const jobs = pick('jobs');
  const instances = pick('instances');
  const home = pick('home');
  const paths: LocalPaths = { jobsModule: jobs.path, instancesFile: instances.path, home: home.path };
  const sources = { jobs: jobs.source, instances: instances.source, home: home.source };
  return { cwd: start, root, configFile, packageJson, packageField: fromPackage !== undefined, paths, sources };
}

/**
 * The project's paths, once its jobs module is known to exist.
 *
 * @throws {JobsModuleNotFoundError} saying where ujr looked (flag, config file, package.json field,
 * default) and how to fix it.
 */
export function requireJobsModule(project: Project): LocalPaths {
  const path = project.paths.jobsModule;
  if (existsSync(path)) return project.paths;
  const source = project.sources.jobs;
  const lines = [
    `no jobs module at ${path} (${describeSource(source)}). Where ujr looked for it, first to last:`,
    `  1. --jobs <module>: ${source.kind === 'flag' ? `given as ${source.given}` : 'not given'}`,
    `  2. a config file (${CONFIG_FILE_NAMES.slice(0, -1).join(', ')} or ${CONFIG_FILE_NAMES.at(-1) ?? ''}): ${configFileFinding(project)}`,
    `  3. the "ujr" field of package.json: ${packageFieldFinding(project)}`,
    `  4. the default: ${DEFAULTS.jobs} in ${project.root ?? project.cwd}`,
    'To fix it: create a project with "npx ujr init", pass --jobs <module>, or name the module in a ujr.config.ts: ' +
      `import { defineConfig } from 'ujr'; export default defineConfig({ jobs: 'src/jobs/index.ts' }).`,
  ];
  throw new JobsModuleNotFoundError(lines.join('\n'), path);
}

/** A file's path as the user sees it: relative to the current folder. */
function shown(project: Project, file: string): string {
  return relative(project.cwd, file) || file;
}

/** What the search found of a config file, for a jobs module it does not name. */
function configFileFinding(project: Project): string {
  if (project.configFile !== undefined) return `${shown(project, project.configFile)}, which sets no "jobs"`;
  if (project.root === undefined) return `none in ${project.cwd} or any folder above it`;
  if (project.root === project.cwd) return `none in ${project.cwd}`;
  return `none in ${project.cwd} or its parents up to the project root ${project.root}`;
}

/** What the search found of package.json's "ujr" field, for a jobs module it does not name. */
function packageFieldFinding(project: Project): string {
  if (project.packageJson === undefined) {
    return project.root === undefined
      ? `no package.json in ${project.cwd} or above (no project root: no folder holds a package.json or .git)`
      : `no package.json in the project root ${project.root}`;
  }
  return project.packageField ? `${shown(project, project.packageJson)} sets no "ujr.jobs"` : `${shown(project, project.packageJson)} has none`;
}

/** Where a path came from, in words: "from the command line", "set by …/ujr.config.ts", "the default". */
export function describeSource(source: PathSource): string {
  switch (source.kind) {
    case 'flag':
      return 'from the command line';
    case 'config':
      return `set by ${source.file}`;
    case 'package.json':
      return `set by the "ujr" field of ${source.file}`;
    case 'default':
      return 'the default';
  }
}

/** Walks up from `start` to the project root, noting the first config file on the way. */
function search(start: string): { root?: string; configFile?: string } {
  let configFile: string | undefined;
  for (let dir = start; ; dir = dirname(dir)) {
    if (configFile === undefined) {
      const found = CONFIG_FILE_NAMES.filter((name) => existsSync(join(dir, name)));
      if (found.length > 1) {
        throw new ProjectConfigError(`${dir} holds ${found.join(' and ')}: ujr reads one config file per folder; keep one of them`, join(dir, found[0] ?? ''));
      }
      if (found[0] !== undefined) configFile = join(dir, found[0]);
    }
    if (existsSync(join(dir, 'package.json')) || existsSync(join(dir, '.git'))) return { root: dir, configFile };
    if (dirname(dir) === dir) return { configFile };
  }
}

/** Reads and validates a `ujr.config.*` file: its default export, or its JSON. */
async function readConfigFile(file: string): Promise<UjrConfig> {
  let value: unknown;
  if (file.endsWith('.json')) {
    value = parseJson(await readText(file), file, 'fix the file');
  } else {
    let module: unknown;
    try {
      module = await import(pathToFileURL(file).href);
    } catch (error) {
      // Node loads a .ts file as CommonJS in a package without "type": "module"; an .mts file is always ESM.
      const hint = file.endsWith('.ts') ? ', or name it ujr.config.mts if its package.json has no "type": "module"' : '';
      throw new ProjectConfigError(`${file}: cannot load it (${messageOf(error)}); fix the file${hint}`, file, undefined, { cause: error });
    }
    if (typeof module !== 'object' || module === null || !('default' in module) || module.default === undefined) {
      throw new ProjectConfigError(`${file} has no default export; write: export default defineConfig({ jobs: 'jobs/index.ts' }) (defineConfig from 'ujr')`, file);
    }
    value = module.default;
  }
  return validateConfig(value, file, '');
}

/** The `"ujr"` field of a package.json, validated; undefined when it has none. */
async function readPackageField(file: string): Promise<UjrConfig | undefined> {
  const manifest = parseJson(await readText(file), file, 'fix it (ujr reads its "ujr" field)');
  if (typeof manifest !== 'object' || manifest === null || !('ujr' in manifest)) return undefined;
  return validateConfig(manifest.ujr, file, 'ujr.');
}

/** Checks a config's shape and that the paths it names exist; `prefix` names where the config sits in the file. */
function validateConfig(value: unknown, file: string, prefix: string): UjrConfig {
  const parsed = projectConfigSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap((issue) => describeIssue(issue, prefix));
    const first = problems[0];
    throw new ProjectConfigError(
      problems.length === 1 && first ? `${file}: ${first.message}` : `${file} has problems:\n${problems.map((p) => `  ${p.message}`).join('\n')}`,
      file,
      first?.field,
    );
  }
  const dir = dirname(file);
  for (const field of CONFIG_FIELDS) {
    const given = parsed.data[field];
    const fix = MUST_EXIST[field];
    if (given === undefined || fix === undefined) continue;
    const path = resolve(dir, given);
    if (!existsSync(path)) {
      throw new ProjectConfigError(
        `${file}: field "${prefix}${field}": ${path} does not exist; ${fix} (paths there are relative to ${dir})`,
        file,
        `${prefix}${field}`,
      );
    }
  }
  return parsed.data;
}

function describeIssue(issue: z.core.$ZodIssue, prefix: string): { field?: string; message: string }[] {
  const fields = CONFIG_FIELDS.map((f) => `"${f}"`).join(', ');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({
      field: `${prefix}${key}`,
      message: `unknown field "${prefix}${key}": remove it or fix its name (the fields are ${fields})`,
    }));
  }
  if (issue.path.length === 0) {
    const shape = prefix === '' ? 'an object' : `"${prefix.slice(0, -1)}" to be an object`;
    return [{ field: prefix.slice(0, -1) || undefined, message: `expected ${shape} with any of the fields ${fields}, e.g. { "jobs": "jobs/index.ts" }` }];
  }
  const field = `${prefix}${issue.path.join('.')}`;
  return [{ field, message: `field "${field}": ${issue.message}` }];
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new ProjectConfigError(`${file}: cannot read it (${messageOf(error)})`, file, undefined, { cause: error });
  }
}

function parseJson(text: string, file: string, fix: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ProjectConfigError(`${file}: not valid JSON (${messageOf(error)}); ${fix}`, file, undefined, { cause: error });
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
