/**
 * Project discovery (core/local/project.ts): where the CLI finds the jobs module, the instances
 * file and the home folder. Flags > ujr.config.* (nearest folder up to the project root) >
 * package.json's "ujr" field > defaults; each error names the file, the field and what to do.
 * Every test builds its project in a temp folder marked as a project root (package.json or .git).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobsModuleNotFoundError, ProjectConfigError } from '../../core/local/errors.js';
import { requireJobsModule, resolveProject } from '../../core/local/project.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ujr-project-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `files` (path relative to the temp folder → content; objects as JSON) and returns the folder. */
async function tree(files: Record<string, string | object>): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

const EMPTY_INSTANCES = { instances: [] };

/** The error `promise` rejects with, failing the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('resolution order', () => {
  it('uses the defaults in the project root when nothing configures the paths, even from a subfolder', async () => {
    // Prepare
    await tree({ 'package.json': { name: 'lab' }, 'jobs/index.ts': '', 'src/deep/x.txt': '' });

    // Act
    const project = await resolveProject({}, join(dir, 'src', 'deep'));

    // Assess
    expect(project.root).toBe(dir);
    expect(project.paths).toEqual({ jobsModule: join(dir, 'jobs/index.ts'), instancesFile: join(dir, 'jobs/instances.json'), home: join(dir, '.ujr') });
    expect(project.sources).toEqual({ jobs: { kind: 'default' }, instances: { kind: 'default' }, home: { kind: 'default' } });
  });

  it("takes the package.json \"ujr\" field's paths, relative to the package.json's folder", async () => {
    // Prepare
    await tree({
      'package.json': { name: 'lab', ujr: { jobs: 'src/jobs.ts', home: 'state' } },
      'src/jobs.ts': '',
      'sub/x.txt': '',
    });

    // Act
    const project = await resolveProject({}, join(dir, 'sub'));

    // Assess
    expect(project.paths).toEqual({ jobsModule: join(dir, 'src/jobs.ts'), instancesFile: join(dir, 'jobs/instances.json'), home: join(dir, 'state') });
    expect(project.sources.jobs).toEqual({ kind: 'package.json', file: join(dir, 'package.json') });
    expect(project.sources.instances).toEqual({ kind: 'default' });
  });

  it('prefers a config file to the package.json field, field by field, with paths relative to the config file', async () => {
    // Prepare
    await tree({
      'package.json': { name: 'lab', ujr: { jobs: 'pkg-jobs.ts', instances: 'pkg-instances.json' } },
      'pkg-jobs.ts': '',
      'pkg-instances.json': EMPTY_INSTANCES,
      'config/ujr.config.json': { jobs: '../src/jobs.ts' },
      'src/jobs.ts': '',
    });

    // Act
    const project = await resolveProject({}, join(dir, 'config'));

    // Assess
    expect(project.configFile).toBe(join(dir, 'config/ujr.config.json'));
    expect(project.paths.jobsModule).toBe(join(dir, 'src/jobs.ts'));
    expect(project.sources.jobs).toEqual({ kind: 'config', file: join(dir, 'config/ujr.config.json') });
    expect(project.paths.instancesFile).toBe(join(dir, 'pkg-instances.json'));
    expect(project.sources.instances.kind).toBe('package.json');
    expect(project.paths.home).toBe(join(dir, '.ujr'));
  });

  it('prefers the flags to everything, resolving them against the current folder', async () => {
    // Prepare
    await tree({
      'package.json': { name: 'lab', ujr: { home: 'pkg-home' } },
      'ujr.config.json': { jobs: 'jobs/index.ts', instances: 'jobs/instances.json', home: 'config-home' },
      'jobs/index.ts': '',
      'jobs/instances.json': EMPTY_INSTANCES,
      'sub/x.txt': '',
    });

    // Act
    const project = await resolveProject({ jobs: 'my-jobs.ts', instances: '../other.json', home: '/var/ujr' }, join(dir, 'sub'));

    // Assess
    expect(project.paths).toEqual({ jobsModule: join(dir, 'sub/my-jobs.ts'), instancesFile: join(dir, 'other.json'), home: '/var/ujr' });
    expect(project.sources).toEqual({
      jobs: { kind: 'flag', given: 'my-jobs.ts' },
      instances: { kind: 'flag', given: '../other.json' },
      home: { kind: 'flag', given: '/var/ujr' },
    });
  });
});

describe('config files', () => {
  it('finds the config file of the nearest parent folder that has one', async () => {
    // Prepare
    await tree({
      '.git/HEAD': '',
      'ujr.config.json': { jobs: 'top.ts' },
      'top.ts': '',
      'a/ujr.config.json': { jobs: 'mid.ts' },
      'a/mid.ts': '',
      'a/b/c/x.txt': '',
    });

    // Act
    const project = await resolveProject({}, join(dir, 'a/b/c'));

    // Assess
    expect(project.root).toBe(dir);
    expect(project.configFile).toBe(join(dir, 'a/ujr.config.json'));
    expect(project.paths.jobsModule).toBe(join(dir, 'a/mid.ts'));
  });

  it('stops looking at the project root: a config file above the nearest package.json is not read', async () => {
    // Prepare
    await tree({ 'ujr.config.json': { jobs: 'outer.ts' }, 'outer.ts': '', 'app/package.json': { name: 'app' }, 'app/src/x.txt': '' });

    // Act
    const project = await resolveProject({}, join(dir, 'app/src'));

    // Assess
    expect(project.root).toBe(join(dir, 'app'));
    expect(project.configFile).toBeUndefined();
    expect(project.paths.jobsModule).toBe(join(dir, 'app/jobs/index.ts'));
  });

  it.each([
    ['ujr.config.ts', "import { defineConfig } from 'ujr';\nexport default defineConfig({ jobs: 'lab/jobs.ts' });\n"],
    ['ujr.config.mts', "export default { jobs: 'lab/jobs.ts' } satisfies import('ujr').UjrConfig;\n"],
    ['ujr.config.js', "export default { jobs: 'lab/jobs.ts' };\n"],
    ['ujr.config.mjs', "export default { jobs: 'lab/jobs.ts' };\n"],
    ['ujr.config.json', '{ "jobs": "lab/jobs.ts" }'],
  ])('reads %s', async (name, content) => {
    // Prepare
    await tree({ 'package.json': { name: 'lab', type: 'module' }, [name]: content, 'lab/jobs.ts': '' });

    // Act
    const project = await resolveProject({}, dir);

    // Assess
    expect(project.paths.jobsModule).toBe(join(dir, 'lab/jobs.ts'));
    expect(project.sources.jobs).toEqual({ kind: 'config', file: join(dir, name) });
  });
});

describe('configuration errors', () => {
  it.each([
    ['an unknown field', { job: 'jobs.ts' }, 'job', /ujr\.config\.json: unknown field "job": remove it or fix its name \(the fields are "jobs", "instances", "home"\)/],
    ['a wrong type', { jobs: 42 }, 'jobs', /ujr\.config\.json: field "jobs": expected a string: the path of the jobs module/],
    ['an empty path', { home: '' }, 'home', /ujr\.config\.json: field "home": expected the path of the home folder, not an empty string/],
    ['a jobs module that does not exist', { jobs: 'src/nope.ts' }, 'jobs', /field "jobs": .*src\/nope\.ts does not exist; create the module or fix the path \(paths there are relative to /],
    ['an instances file that does not exist', { instances: 'nope.json' }, 'instances', /field "instances": .*nope\.json does not exist; create the file/],
    ['not an object', ['jobs.ts'], undefined, /ujr\.config\.json: expected an object with any of the fields "jobs", "instances", "home"/],
  ])('refuses a config file with %s, naming the file and the field', async (_what, config, field, message) => {
    // Prepare
    await tree({ '.git/HEAD': '', 'ujr.config.json': config });

    // Act
    const error = await rejection(resolveProject({}, dir));

    // Assess
    expect(error).toBeInstanceOf(ProjectConfigError);
    expect(error).toMatchObject({ file: join(dir, 'ujr.config.json'), field });
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(join(dir, 'ujr.config.json'));
  });

  it('refuses a config file that is not JSON, saying so', async () => {
    // Prepare
    await tree({ '.git/HEAD': '', 'ujr.config.json': '{ "jobs": "a.ts", }' });

    // Act
    const error = await rejection(resolveProject({}, dir));

    // Assess
    expect(error).toBeInstanceOf(ProjectConfigError);
    expect((error as Error).message).toMatch(new RegExp(`^${join(dir, 'ujr.config.json')}: not valid JSON \\(.+\\); fix the file$`));
  });

  it('lists every problem of a config at once', async () => {
    // Prepare
    await tree({ '.git/HEAD': '', 'ujr.config.json': { jobs: 1, instance: 'x.json' } });

    // Act
    const error = await rejection(resolveProject({}, dir));

    // Assess
    expect((error as Error).message).toContain('ujr.config.json has problems:');
    expect((error as Error).message).toContain('field "jobs": expected a string');
    expect((error as Error).message).toContain('unknown field "instance"');
  });

  it('refuses a package.json "ujr" field naming a path that does not exist, naming the field as ujr.<field>', async () => {
    // Prepare
    await tree({ 'package.json': { name: 'lab', ujr: { instances: 'config/instances.json' } } });

    // Act
    const error = await rejection(resolveProject({}, dir));

    // Assess
    expect(error).toMatchObject({ file: join(dir, 'package.json'), field: 'ujr.instances' });
    expect((error as Error).message).toContain(`${join(dir, 'package.json')}: field "ujr.instances": ${join(dir, 'config/instances.json')} does not exist`);
  });

  it('refuses a package.json "ujr" field with an unknown key or one that is not an object', async () => {
    // Prepare
    await tree({ 'a/package.json': { name: 'a', ujr: { jobz: 'x.ts' } }, 'b/package.json': { name: 'b', ujr: 'jobs/index.ts' } });

    // Act
    const [unknown, notObject] = await Promise.all([rejection(resolveProject({}, join(dir, 'a'))), rejection(resolveProject({}, join(dir, 'b')))]);

    // Assess
    expect((unknown as Error).message).toContain(`${join(dir, 'a/package.json')}: unknown field "ujr.jobz"`);
    expect((notObject as Error).message).toContain(`${join(dir, 'b/package.json')}: expected "ujr" to be an object`);
  });

  it('refuses a package.json that is not JSON, as ujr reads its "ujr" field', async () => {
    // Prepare
    await tree({ 'package.json': '{ name: lab }' });

    // Act
    const error = await rejection(resolveProject({}, dir));

    // Assess
    expect((error as Error).message).toMatch(/package\.json: not valid JSON \(.+\); fix it \(ujr reads its "ujr" field\)/);
  });

  it('refuses a TypeScript config without a default export, showing what to write', async () => {
    // Prepare
    await tree({ 'package.json': { name: 'lab', type: 'module' }, 'ujr.config.ts': "export const jobs = 'jobs/index.ts';\n" });

    // Act
    const error = await rejection(resolveProject({}, dir));

    // Assess
    expect((error as Error).message).toBe(
      `${join(dir, 'ujr.config.ts')} has no default export; write: export default defineConfig({ jobs: 'jobs/index.ts' }) (defineConfig from 'ujr')`,
    );
  });

  it('refuses two config files in one folder, asking to keep one', async () => {
    // Prepare
    await tree({ '.git/HEAD': '', 'ujr.config.json': {}, 'ujr.config.mjs': 'export default {};\n' });

    // Act
    const error = await rejection(resolveProject({}, dir));

    // Assess
    expect((error as Error).message).toBe(`${dir} holds ujr.config.mjs and ujr.config.json: ujr reads one config file per folder; keep one of them`);
  });

  it('accepts a home folder that does not exist yet (ujr run creates it)', async () => {
    // Prepare
    await tree({ '.git/HEAD': '', 'ujr.config.json': { home: 'state/ujr' } });

    // Act
    const project = await resolveProject({}, dir);

    // Assess
    expect(project.paths.home).toBe(join(dir, 'state/ujr'));
  });
});

describe('a missing jobs module', () => {
  it('says where ujr looked, first to last, and how to fix it', async () => {
    // Prepare
    await tree({ 'package.json': { name: 'lab' }, 'src/x.txt': '' });
    const project = await resolveProject({}, join(dir, 'src'));

    // Act
    let error: unknown;
    try {
      requireJobsModule(project);
    } catch (thrown) {
      error = thrown;
    }

    // Assess
    expect(error).toBeInstanceOf(JobsModuleNotFoundError);
    expect((error as Error).message.split('\n')).toEqual([
      `no jobs module at ${join(dir, 'jobs/index.ts')} (the default). Where ujr looked for it, first to last:`,
      '  1. --jobs <module>: not given',
      `  2. a config file (ujr.config.ts, ujr.config.mts, ujr.config.js, ujr.config.mjs or ujr.config.json): none in ${join(dir, 'src')} or its parents up to the project root ${dir}`,
      '  3. the "ujr" field of package.json: ../package.json has none',
      `  4. the default: jobs/index.ts in ${dir}`,
      'To fix it: create a project with "npx ujr init", pass --jobs <module>, or name the module in a ujr.config.ts: ' +
        "import { defineConfig } from 'ujr'; export default defineConfig({ jobs: 'src/jobs/index.ts' }).",
    ]);
  });

  it('names the flag, the config file and the package.json field that did not set it', async () => {
    // Prepare
    await tree({ 'package.json': { name: 'lab', ujr: { home: 'state' } }, 'ujr.config.json': { home: 'elsewhere' } });
    const fromFlag = await resolveProject({ jobs: 'lab/jobs.ts' }, dir);
    const fromDefault = await resolveProject({}, dir);

    // Act
    const messages = [fromFlag, fromDefault].map((project) => {
      try {
        requireJobsModule(project);
        return '';
      } catch (error) {
        return (error as Error).message;
      }
    });

    // Assess
    expect(messages[0]).toContain(`no jobs module at ${join(dir, 'lab/jobs.ts')} (from the command line)`);
    expect(messages[0]).toContain('1. --jobs <module>: given as lab/jobs.ts');
    expect(messages[1]).toContain('2. a config file (ujr.config.ts, ujr.config.mts, ujr.config.js, ujr.config.mjs or ujr.config.json): ujr.config.json, which sets no "jobs"');
    expect(messages[1]).toContain('3. the "ujr" field of package.json: package.json sets no "ujr.jobs"');
  });

  it('returns the paths once the jobs module exists', async () => {
    // Prepare
    await tree({ '.git/HEAD': '', 'jobs/index.ts': '' });

    // Act
    const paths = requireJobsModule(await resolveProject({}, dir));

    // Assess
    expect(paths.jobsModule).toBe(join(dir, 'jobs/index.ts'));
  });
});
