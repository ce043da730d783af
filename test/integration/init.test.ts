/**
 * `ujr init [dir]` through the real binary (node bin/ujr.js): the files it writes, the package.json
 * it makes from ujr's own, its refusal to overwrite anything, and the scaffolded project running
 * with `ujr run --once` (its `ujr` imports resolve to this repository's sources, as vitest sets
 * TSX_TSCONFIG_PATH for the processes it starts). Installing the project from a packed ujr is
 * test/integration/package.test.ts's.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { npmPackageName, projectManifest } from '../../core/cli/init.js';
import { ROOT } from '../../core/package-root.js';
import { Sandbox, UJR_BIN, UjrProcess, type Exit } from '../fixtures/cli/sandbox.js';

/** Every file the scaffold holds, relative to its folder. */
const EXPECTED_FILES = [
  '.gitignore',
  'README.md',
  'cdk.json',
  'infra/app.ts',
  'jobs/index.ts',
  'jobs/instances.json',
  'jobs/period-report.test.ts',
  'jobs/period-report.ts',
  'package.json',
  'tsconfig.json',
];

const versions = z.record(z.string(), z.string());
const ujrManifest = z.object({
  version: z.string(),
  engines: versions,
  allowScripts: z.record(z.string(), z.boolean()),
  dependencies: versions,
  devDependencies: versions,
  peerDependencies: versions,
});
const projectManifestSchema = z.strictObject({
  name: z.string(),
  version: z.string(),
  private: z.literal(true),
  type: z.literal('module'),
  scripts: z.strictObject({ start: z.literal('ujr run'), test: z.literal('vitest run'), synth: z.literal('cdk synth'), deploy: z.literal('cdk deploy') }),
  dependencies: z.strictObject({ ujr: z.string() }),
  devDependencies: versions,
  engines: versions,
  allowScripts: z.record(z.string(), z.boolean()),
});
const runsSchema = z.array(z.object({ status: z.string(), task: z.string(), result: z.object({ key: z.string(), mean: z.number() }) }).passthrough());

let sandbox: Sandbox;

beforeEach(async () => {
  sandbox = await Sandbox.create();
});

afterEach(async () => {
  await sandbox.dispose();
});

/** Runs `ujr <args>` in `folder` (relative to the sandbox) to its end. */
function ujrIn(folder: string, args: string[]): Promise<Exit> {
  const child = spawn(process.execPath, [UJR_BIN, ...args], { cwd: join(sandbox.dir, folder), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  return sandbox.waitExit(new UjrProcess(child, args), 30_000);
}

function expectExit(exit: Exit, code: number): void {
  expect(exit.code, `exit code ${exit.code}\n--- stdout ---\n${exit.stdout}\n--- stderr ---\n${exit.stderr}`).toBe(code);
}

/** Every file under `dir`, relative to it, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

describe('ujr init', () => {
  it('creates exactly the project files in a new folder, and prints them and the next steps', async () => {
    // Act
    const init = await ujrIn('.', ['init', 'My Lab']);

    // Assess
    expectExit(init, 0);
    const dir = join(sandbox.dir, 'My Lab');
    expect(await filesUnder(dir)).toEqual(EXPECTED_FILES);
    for (const file of EXPECTED_FILES) expect(init.stdout).toContain(`  ${file}\n`);
    expect(init.stdout).toMatch(/next steps:\n {2}cd "My Lab"\n {2}npm install\n {2}npm start .*\n {2}npm test .*\n(.*\n)* {2}npx cdk deploy /);
    const instances = z.object({ instances: z.array(z.object({ id: z.string(), job: z.string(), enabled: z.boolean() }).passthrough()) });
    expect(instances.parse(JSON.parse(await readFile(join(dir, 'jobs/instances.json'), 'utf8'))).instances).toMatchObject([
      { id: 'example', job: 'period-report', enabled: true },
    ]);
    expect(await readFile(join(dir, '.gitignore'), 'utf8')).toMatch(/^node_modules\/$/m);
  });

  it("writes a package.json with ujr's own version, engines, allowScripts and versions of the tools", async () => {
    // Prepare
    const ujr = ujrManifest.parse(JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')));

    // Act
    const init = await ujrIn('.', ['init', 'lab']);

    // Assess
    expectExit(init, 0);
    const manifest = projectManifestSchema.parse(JSON.parse(await readFile(join(sandbox.dir, 'lab', 'package.json'), 'utf8')));
    expect(manifest.name).toBe('lab');
    expect(manifest.dependencies).toEqual({ ujr: `^${ujr.version}` });
    const tools = {
      '@types/node': ujr.devDependencies['@types/node'],
      'aws-cdk': ujr.devDependencies['aws-cdk'],
      'aws-cdk-lib': ujr.devDependencies['aws-cdk-lib'],
      constructs: ujr.devDependencies.constructs,
      tsx: ujr.dependencies.tsx,
      typescript: ujr.devDependencies.typescript,
      vitest: ujr.devDependencies.vitest,
    };
    expect(Object.values(tools).every((range) => typeof range === 'string' && range !== '')).toBe(true);
    expect(manifest.devDependencies).toEqual(tools);
    expect(manifest.engines).toEqual(ujr.engines);
    expect(manifest.allowScripts).toEqual(ujr.allowScripts);
  });

  it("gives the project's CDK app the feature flags ujr's own app is synthesized and tested with", async () => {
    // Prepare
    const cdkJson = z.looseObject({ app: z.string(), context: z.record(z.string(), z.unknown()) });
    const ours = cdkJson.parse(JSON.parse(await readFile(join(ROOT, 'cdk.json'), 'utf8')));

    // Act
    const init = await ujrIn('.', ['init', 'lab']);

    // Assess
    expectExit(init, 0);
    const theirs = cdkJson.parse(JSON.parse(await readFile(join(sandbox.dir, 'lab', 'cdk.json'), 'utf8')));
    expect(theirs.app).toBe('node --import tsx infra/app.ts');
    expect(theirs.context).toEqual(ours.context);
  });

  it('scaffolds into the current folder when it is empty', async () => {
    // Prepare
    await mkdir(join(sandbox.dir, 'empty'));

    // Act
    const init = await ujrIn('empty', ['init']);

    // Assess
    expectExit(init, 0);
    expect(await filesUnder(join(sandbox.dir, 'empty'))).toEqual(EXPECTED_FILES);
    expect(init.stdout).not.toContain('  cd ');
  });

  it('prints what it made as one JSON object with --json', async () => {
    // Act
    const init = await ujrIn('.', ['--json', 'init', 'lab']);

    // Assess
    expectExit(init, 0);
    expect(JSON.parse(init.stdout)).toEqual({ name: 'lab', dir: join(sandbox.dir, 'lab'), files: EXPECTED_FILES });
  });

  it('refuses a folder holding any file it would write: it names them, exits 2 and writes nothing', async () => {
    // Prepare
    const dir = join(sandbox.dir, 'taken');
    await mkdir(join(dir, 'jobs'), { recursive: true });
    await writeFile(join(dir, 'jobs', 'index.ts'), 'mine\n');
    await writeFile(join(dir, 'README.md'), 'mine too\n');
    await writeFile(join(dir, 'notes.txt'), 'not in the way\n');

    // Act
    const init = await ujrIn('.', ['init', 'taken']);

    // Assess
    expectExit(init, 2);
    expect(init.stderr).toContain(`ujr: ${dir} already holds files that "ujr init" would write: README.md, jobs/index.ts. Nothing was changed`);
    expect(await filesUnder(dir)).toEqual(['README.md', 'jobs/index.ts', 'notes.txt']);
    expect(await readFile(join(dir, 'jobs', 'index.ts'), 'utf8')).toBe('mine\n');
  });

  it('refuses a folder where a file stands in place of one of its folders', async () => {
    // Prepare
    const dir = join(sandbox.dir, 'blocked');
    await mkdir(dir);
    await writeFile(join(dir, 'infra'), 'a file\n');

    // Act
    const init = await ujrIn('blocked', ['init']);

    // Assess
    expectExit(init, 2);
    expect(init.stderr).toContain(`ujr: ${dir} already holds a file that "ujr init" would write: infra.`);
    expect(await filesUnder(dir)).toEqual(['infra']);
  });

  it('makes a project whose example job runs to success with "ujr run --once", and whose reports land in the object store', async () => {
    // Prepare
    expectExit(await ujrIn('.', ['init', 'lab']), 0);
    const home = join(sandbox.dir, 'home');

    // Act
    const once = await ujrIn('lab', ['run', '--once', '--home', home]);
    const runs = await ujrIn('lab', ['runs', '--json', '--home', home]);

    // Assess
    expectExit(once, 0);
    expect(once.stdout).toContain('done 3');
    expectExit(runs, 0);
    const recorded = runsSchema.parse(JSON.parse(runs.stdout));
    expect(recorded.map((run) => [run.task, run.status])).toEqual([
      ['report', 'succeeded'],
      ['report', 'succeeded'],
      ['report', 'succeeded'],
    ]);
    for (const run of recorded) expect(existsSync(join(home, 'data', run.result.key))).toBe(true);
  });
});

describe('the package.json init makes', () => {
  it('gets a valid npm name from any folder name', () => {
    expect(npmPackageName('My Lab (2026)')).toBe('my-lab-2026');
    expect(npmPackageName('.hidden_lab')).toBe('hidden_lab');
    expect(npmPackageName('Überwachung')).toBe('berwachung');
    expect(npmPackageName('___')).toBe('ujr-project');
    expect(npmPackageName('node_modules')).toBe('ujr-project');
    expect(npmPackageName('http')).toBe('http-jobs');
    expect(npmPackageName('x'.repeat(300))).toHaveLength(214);
  });

  it("refuses to guess a tool's version that ujr's package.json does not name", () => {
    expect(() => projectManifest('lab', { version: '1.0.0', devDependencies: { vitest: '^4.0.0' } })).toThrow(/names no version of @types\/node; reinstall ujr/);
  });
});
