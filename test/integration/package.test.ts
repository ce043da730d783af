/**
 * ujr as a user gets it, end to end and offline: `npm pack` → the tarball installed into a fresh
 * folder outside the repository → `ujr init` → in the scaffolded project, with ujr installed from
 * the tarball: its own `npm test`, `ujr run --once` on SQLite, and `cdk synth`, whose bundles hold
 * the project's job and none of this repository's example jobs.
 *
 * Everything installs from npm's cache that this repository's `npm ci` filled (see
 * test/helpers/offline-install.ts). Installing compiles better-sqlite3 (about a minute here).
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STACK_OUTPUTS } from '../../core/adapters/aws/stack-outputs.js';
import { ROOT } from '../../core/package-root.js';
import { writeOfflineLockfile } from '../helpers/offline-install.js';

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const SETUP_MS = 600_000;
const STEP_MS = 240_000;

/** What the package build reads, copied so that packing never touches this checkout's dist/. */
const PACKED_SOURCES = ['core', 'infra', 'build', 'functions', 'containers', 'bin', 'templates', 'docs', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE'];

/**
 * The environment of a user's shell: none of this test run's variables (vitest's, the tsconfig
 * paths that make `ujr` this repository's sources) and no network for npm.
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(VITEST|TSX_|NODE_OPTIONS$|NODE_ENV$|npm_|INIT_CWD$|UJR_)/i.test(key)) continue;
    env[key] = value;
  }
  return { ...env, npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false', NO_COLOR: '1' };
}

function run(command: string, args: string[], cwd: string, timeout = STEP_MS): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, env: userEnv(), encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
}

/** Runs a step that must succeed; its output is in the failure message when it does not. */
function step(command: string, args: string[], cwd: string, timeout = STEP_MS): string {
  const result = run(command, args, cwd, timeout);
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} (in ${cwd}) exited ${String(result.status ?? result.signal)}${result.error ? ` (${result.error.message})` : ''}:\n${result.stdout}\n${result.stderr}`);
  }
  return `${result.stdout}${result.stderr}`;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [path];
  });
}

/** This repository's example job types, by the names their code declares (jobs/*.ts), are not in `code`. */
function expectNoExampleJobs(code: string): void {
  for (const name of ['"collector"', '"processor"', '"archiver"', '"summary"']) expect(code, name).not.toContain(name);
}

describe('the ujr package, installed from its tarball into a project of its own', () => {
  let work: string;
  let tarball: string;
  let project: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ujr-package-'));
    // Pack a copy of the package's sources: prepack builds dist/ there, not in this checkout.
    const source = join(work, 'source');
    mkdirSync(source);
    for (const entry of PACKED_SOURCES) {
      if (existsSync(join(ROOT, entry))) cpSync(join(ROOT, entry), join(source, entry), { recursive: true });
    }
    symlinkSync(join(ROOT, 'node_modules'), join(source, 'node_modules'), 'dir');
    const packOutput = step(NPM, ['pack', '--pack-destination', work], source);
    const filename = readdirSync(work).find((file) => /^ujr-.*\.tgz$/.test(file));
    if (!filename) throw new Error(`npm pack wrote no tarball into ${work}: ${packOutput}`);
    tarball = join(work, filename);

    // `npx ujr init` from an install of the tarball alone (no install scripts: init copies files).
    const tool = join(work, 'tool');
    mkdirSync(tool);
    writeFileSync(join(tool, 'package.json'), JSON.stringify({ name: 'ujr-tool', version: '1.0.0', private: true }));
    cpSync(tarball, join(tool, filename));
    writeOfflineLockfile(tool, join(tool, filename));
    step(NPM, ['ci', '--ignore-scripts'], tool);
    step(join(tool, 'node_modules', '.bin', 'ujr'), ['init', 'field-notes'], work);
    project = join(work, 'field-notes');

    // The project as its README says: npm install (here: from the tarball, offline).
    cpSync(tarball, join(project, filename));
    writeOfflineLockfile(project, join(project, filename));
    step(NPM, ['ci'], project, SETUP_MS);
  }, SETUP_MS);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('packs compiled JavaScript, declarations, the CLI and the templates, and nothing of the repository', () => {
    const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(listing).toContain('package/dist/core/index.js');
    expect(listing).toContain('package/dist/core/index.d.ts');
    expect(listing).toContain('package/dist/core/testing/index.d.ts');
    expect(listing).toContain('package/dist/infra/index.d.ts');
    expect(listing).toContain('package/bin/ujr.js');
    expect(listing.some((file) => file.startsWith('package/templates/init/'))).toBe(true);
    // The reference pages the README links, and nothing else of docs/ (examples, screenshot tool, picture).
    expect(listing).toContain('package/docs/cli.md');
    expect(listing.filter((file) => file.startsWith('package/docs/') && !/^package\/docs\/[^/]+\.md$/.test(file))).toEqual([]);
    expect(listing.filter((file) => /^package\/(test|bench|jobs|core|infra)\//.test(file) || file.endsWith('.ts') && !file.endsWith('.d.ts') && !file.startsWith('package/templates/'))).toEqual([]);
  });

  it('scaffolds a project whose own npm test passes against the installed package', () => {
    expect(existsSync(join(project, 'node_modules', 'ujr', 'dist', 'core', 'index.js'))).toBe(true);
    const output = step(NPM, ['test'], project);
    expect(output).toMatch(/Tests\s+\d+ passed/);
    expect(output).not.toMatch(/failed/);
  });

  it('runs the project\'s job with `ujr run --once` on SQLite and records it', () => {
    step(join(project, 'node_modules', '.bin', 'ujr'), ['run', '--once', '-q'], project);
    expect(statSync(join(project, '.ujr', 'ujr.db')).size).toBeGreaterThan(0);
    const runs = JSON.parse(step(join(project, 'node_modules', '.bin', 'ujr'), ['runs', '--json'], project)) as { status: string; job?: string; instanceId?: string }[];
    expect(runs.length).toBeGreaterThan(0);
    expect(runs.every((r) => r.status === 'succeeded')).toBe(true);
  });

  it('synthesizes with cdk synth, bundling the project\'s jobs (not the repository\'s) into the functions and the container', () => {
    step(join(project, 'node_modules', '.bin', 'cdk'), ['synth', '-q'], project);
    const out = join(project, 'cdk.out');
    const files = filesUnder(out);
    const jobNames = readdirSync(join(project, 'jobs')).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && f !== 'index.ts');
    const userJobName = /name:\s*'([^']+)'/.exec(readFileSync(join(project, 'jobs', jobNames[0] as string), 'utf8'))?.[1];
    expect(userJobName).toBeTruthy();
    const text = (file: string) => readFileSync(file, 'utf8');
    // Both Lambdas (the scheduler plans the job, the worker runs its tasks): the entry and its chunks.
    for (const name of ['worker', 'scheduler']) {
      const entries = files.filter((file) => file.endsWith(join(name, 'index.mjs')));
      expect(entries.length, name).toBeGreaterThan(0);
      for (const file of entries) {
        const code = filesUnder(join(file, '..')).filter((f) => f.endsWith('.mjs')).map(text).join('\n');
        expect(code, name).toContain(userJobName);
        expectNoExampleJobs(code);
      }
    }
    const template = JSON.parse(readFileSync(files.find((file) => file.endsWith('.template.json')) as string, 'utf8')) as {
      Resources: Record<string, { Type: string; Properties?: { ContainerDefinitions?: { Environment?: { Name: string; Value: unknown }[] }[] } }>;
      Outputs?: Record<string, unknown>;
    };
    // The outputs `ujr … --stack <name>` reads are there.
    expect(Object.keys(template.Outputs ?? {})).toEqual(expect.arrayContaining(Object.values(STACK_OUTPUTS)));
    // No container image to build: deploying needs no Docker.
    expect(Object.values(template.Resources).some((resource) => resource.Type === 'AWS::ECR::Repository')).toBe(false);
    const assets = JSON.parse(readFileSync(files.find((file) => file.endsWith('.assets.json')) as string, 'utf8')) as { dockerImages?: Record<string, unknown> };
    expect(Object.keys(assets.dockerImages ?? {})).toEqual([]);
    // The containers run the code whose SHA-256 their task definitions expect: that asset is the project's code.
    const definitions = Object.values(template.Resources).filter((resource) => resource.Type === 'AWS::ECS::TaskDefinition');
    expect(definitions.length).toBeGreaterThan(0);
    const digests = new Set(definitions.flatMap((definition) => (definition.Properties?.ContainerDefinitions ?? []).flatMap((container) => (container.Environment ?? []).filter((variable) => variable.Name === 'UJR_CODE_SHA256').map((variable) => variable.Value))));
    expect(digests.size).toBe(1);
    const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
    const containerCode = files.filter((file) => file.endsWith('.mjs') && digests.has(sha256(file)));
    expect(containerCode.length).toBeGreaterThan(0);
    for (const file of containerCode) {
      expect(text(file)).toContain(userJobName);
      expectNoExampleJobs(text(file));
    }
  });
});
