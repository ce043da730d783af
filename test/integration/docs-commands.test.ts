/**
 * The README's "Run it" commands, run as a reader would: in a project made of the README's own
 * examples (the greeter job of docs/examples/jobs/, and the instances file the README shows), each
 * line of the block is run with the real `ujr` binary. `ujr run` runs in the background, as in
 * another terminal, while the others run; `ujr ui` is asked for any free port (`--port 0`, as the
 * CLI reference says) instead of 4680, which other tests may hold, and its page is fetched.
 * test/unit/docs.test.ts checks every other command of the docs against the CLI.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../core/adapters/sqlite/store.js';
import { REPO_ROOT, Sandbox } from '../fixtures/cli/sandbox.js';
import { pollFor, until } from '../helpers/runner.js';

/** The lines of the README's first `sh` block that runs `npx ujr run`, comments dropped. */
function readmeRunBlock(): string[][] {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1] ?? '').find((code) => /^npx ujr run\b/m.test(code));
  if (block === undefined) throw new Error('README.md has no sh block running "npx ujr run"');
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '')
    .map((line) => line.split(/\s+/));
}

/** The README's instances file (its JSON block holding "instances", the comment line dropped). */
function readmeInstances(): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/^```json\n([\s\S]*?)^```/gm)].map((m) => m[1] ?? '').find((code) => code.includes('"instances"'));
  if (block === undefined) throw new Error('README.md shows no instances file');
  return block
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('//'))
    .join('\n');
}

let sandbox: Sandbox | undefined;
let store: SqliteStore | undefined;

afterEach(async () => {
  await store?.close();
  store = undefined;
  await sandbox?.dispose();
  sandbox = undefined;
});

describe("the README's Run it commands", () => {
  it('each run in a project made of the README examples, with the runner started by the first', async () => {
    // Prepare: the README's project, `ujr` resolved to this repository's sources (bin/ujr.js).
    sandbox = await Sandbox.create();
    const dir = sandbox.dir;
    mkdirSync(join(dir, 'jobs'));
    copyFileSync(join(REPO_ROOT, 'docs/examples/jobs/greeter.ts'), join(dir, 'jobs/greeter.ts'));
    copyFileSync(join(REPO_ROOT, 'docs/examples/jobs/index.ts'), join(dir, 'jobs/index.ts'));
    writeFileSync(join(dir, 'jobs/instances.json'), readmeInstances());
    writeFileSync(join(dir, 'package.json'), '{ "name": "greetings", "private": true, "type": "module" }\n');
    const lines = readmeRunBlock();
    expect(lines[0]).toEqual(['npx', 'ujr', 'run']);

    // Act and assess: the runner first, until both greetings of lab-a succeeded.
    const runner = sandbox.spawnRaw(lines[0]?.slice(2) ?? []);
    const dbFile = join(dir, '.ujr', 'ujr.db');
    await until(() => existsSync(dbFile), 20_000, `${dbFile} to be created by ${runner.describe()}`);
    const opened = SqliteStore.open(dbFile, { create: false });
    store = opened;
    const greeted = await pollFor(
      async () => {
        const runs = await opened.listRuns({ instanceId: 'lab-a', status: 'succeeded', limit: 10 });
        return runs.length >= 2 ? runs : undefined;
      },
      20_000,
      'both greetings of lab-a',
    );
    expect(greeted.map((run) => run.input).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))).toEqual([{ name: 'ada' }, { name: 'alan' }]);

    for (const words of lines.slice(1)) {
      expect(words.slice(0, 2)).toEqual(['npx', 'ujr']);
      const args = words.slice(2).map((word) => (word === '<runId>' ? (greeted[0]?.id ?? '') : word));
      if (args[0] === 'ui') {
        const ui = sandbox.spawnRaw([...args, '--port', '0']);
        const [url] = await pollFor(() => /http:\/\/127\.0\.0\.1:\d+\/\S*/.exec(ui.stdout) ?? undefined, 20_000, `the page's address from ${ui.describe()}`);
        const page = await fetch(url);
        expect(page.status).toBe(200);
        expect(await page.text()).toContain('<html');
        ui.signal('SIGINT');
        expect((await sandbox.waitExit(ui, 20_000)).code).toBe(0);
        continue;
      }
      const exit = await sandbox.runRaw(args);
      expect({ command: words.join(' '), code: exit.code, stderr: exit.stderr }).toEqual({ command: words.join(' '), code: 0, stderr: exit.stderr });
      if (args[0] === 'runs') expect(exit.stdout).toContain(greeted[0]?.id);
      if (args[0] === 'logs') expect(exit.stdout).toMatch(/hello (ada|alan)/);
    }
    // `jobs disable lab-b` left the file's lab-b disabled (it already was) and lab-a enabled.
    const instances = JSON.parse(readFileSync(join(dir, 'jobs/instances.json'), 'utf8')) as { instances: { id: string; enabled?: boolean }[] };
    expect(instances.instances.map((entry) => [entry.id, entry.enabled ?? true])).toEqual([
      ['lab-a', true],
      ['lab-b', false],
    ]);

    runner.signal('SIGINT');
    expect((await sandbox.waitExit(runner, 30_000)).code).toBe(0);
  }, 120_000);
});
