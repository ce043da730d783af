/**
 * Project discovery through the real `ujr` binary: run in a folder (or below it) whose
 * ujr.config.* or package.json "ujr" field names a jobs module elsewhere, with no flag. Exit codes:
 * 0 ok, 2 a configuration problem (a bad config, no jobs module).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FIXTURE_JOBS, Sandbox, UJR_BIN, UjrProcess, type Exit } from '../fixtures/cli/sandbox.js';

const jobsListSchema = z.object({ instances: z.array(z.object({ id: z.string(), job: z.string() }).passthrough()), problems: z.array(z.string()) });

let sandbox: Sandbox;

beforeEach(async () => {
  sandbox = await Sandbox.create();
  // A jobs module and an instances file away from where ujr is run (.mts: ESM outside a "type": "module" package).
  await write('lab/jobs.mts', `export { default } from ${JSON.stringify(FIXTURE_JOBS)};\n`);
  await write('lab/instances.json', JSON.stringify({ instances: [{ id: 'b', job: 'batch', params: { count: 2, ms: 1 } }] }));
});

afterEach(async () => {
  await sandbox.dispose();
});

async function write(path: string, content: string): Promise<void> {
  await mkdir(dirname(join(sandbox.dir, path)), { recursive: true });
  await writeFile(join(sandbox.dir, path), content);
}

/** Runs `ujr <args>` (no flags added) in `folder` of the sandbox to its end. */
function ujrIn(folder: string, args: string[]): Promise<Exit> {
  const child = spawn(process.execPath, [UJR_BIN, ...args], { cwd: join(sandbox.dir, folder), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  return sandbox.waitExit(new UjrProcess(child, args), 20_000);
}

function expectExit(exit: Exit, code: number): void {
  expect(exit.code, `exit code ${exit.code}\n--- stdout ---\n${exit.stdout}\n--- stderr ---\n${exit.stderr}`).toBe(code);
}

describe('ujr finds the project without flags', () => {
  it('runs and lists the instances of a jobs module named by a ujr.config.json in the current folder', async () => {
    // Prepare
    await write('project/ujr.config.json', JSON.stringify({ jobs: '../lab/jobs.mts', instances: '../lab/instances.json', home: '../state' }));

    // Act
    const once = await ujrIn('project', ['run', '--once']);
    const list = await ujrIn('project', ['jobs', 'list', '--json']);

    // Assess
    expectExit(once, 0);
    expect(once.stdout).toContain('done 2');
    expect(existsSync(join(sandbox.dir, 'state', 'ujr.db'))).toBe(true);
    expectExit(list, 0);
    expect(jobsListSchema.parse(JSON.parse(list.stdout)).instances.map((i) => [i.id, i.job])).toEqual([['b', 'batch']]);
  });

  it('loads a ujr.config.ts (defineConfig from ujr) from the nearest parent folder, without a build step', async () => {
    // Prepare
    await write('project/package.json', JSON.stringify({ name: 'project', type: 'module' }));
    await write(
      'project/ujr.config.ts',
      "import { defineConfig } from 'ujr';\n\nexport default defineConfig({ jobs: '../lab/jobs.mts', instances: '../lab/instances.json' });\n",
    );
    await mkdir(join(sandbox.dir, 'project', 'src', 'deep'), { recursive: true });

    // Act
    const once = await ujrIn('project/src/deep', ['run', '--once']);

    // Assess
    expectExit(once, 0);
    expect(once.stdout).toContain('done 2');
    // The default home is in the project root, not in the current folder.
    expect(existsSync(join(sandbox.dir, 'project', '.ujr', 'ujr.db'))).toBe(true);
  });

  it('reads the "ujr" field of the project\'s package.json', async () => {
    // Prepare
    await write('project/package.json', JSON.stringify({ name: 'project', ujr: { jobs: '../lab/jobs.mts', instances: '../lab/instances.json' } }));

    // Act
    const once = await ujrIn('project', ['run', '--once']);

    // Assess
    expectExit(once, 0);
    expect(once.stdout).toContain('done 2');
  });
});

describe('configuration errors exit 2', () => {
  it('names the config file and the unknown field', async () => {
    // Prepare
    await write('project/.git/HEAD', '');
    await write('project/ujr.config.json', JSON.stringify({ jobs: '../lab/jobs.mts', instance: '../lab/instances.json' }));

    // Act
    const list = await ujrIn('project', ['jobs', 'list']);

    // Assess
    expectExit(list, 2);
    expect(list.stderr).toContain(`ujr: ${join(sandbox.dir, 'project', 'ujr.config.json')}: unknown field "instance": remove it or fix its name`);
  });

  it('says where it looked for a missing jobs module and how to fix it', async () => {
    // Prepare
    await write('project/package.json', JSON.stringify({ name: 'project' }));

    // Act
    const status = await ujrIn('project', ['status']);

    // Assess
    expectExit(status, 2);
    expect(status.stderr).toContain(`ujr: no jobs module at ${join(sandbox.dir, 'project', 'jobs', 'index.ts')} (the default). Where ujr looked for it, first to last:`);
    expect(status.stderr).toContain('1. --jobs <module>: not given');
    expect(status.stderr).toContain('3. the "ujr" field of package.json: package.json has none');
    expect(status.stderr).toContain('"npx ujr init"');
  });
});
