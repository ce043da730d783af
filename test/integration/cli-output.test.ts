/**
 * What the CLI prints and how it exits, with `main` called in-process (no child process per
 * command) over a sandbox's SQLite home, instances file and the fixture job types of
 * test/fixtures/cli/jobs.ts: colour, --version, the --json shapes, exit 2 for every configuration
 * error, the invalid instances shown with their problems, strict params, one name per error,
 * `runs --wide` and `runs <id>`, and `jobs enable|disable` changing one line of the file.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { main, packageVersion } from '../../core/cli/main.js';
import { RUN_STATUSES } from '../../core/types.js';
import { REPO_ROOT, Sandbox } from '../fixtures/cli/sandbox.js';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let sandbox: Sandbox;

beforeEach(async () => {
  sandbox = await Sandbox.create();
  // Colour depends on NO_COLOR; each test says whether it is set.
  vi.stubEnv('NO_COLOR', undefined);
});

afterEach(async () => {
  vi.unstubAllEnvs();
  await sandbox.dispose();
});

/** `ujr <sandbox options> <args>` in this process; `tty` says whether its stdout is a terminal. */
async function ujr(args: string[], options: { tty?: boolean } = {}): Promise<Result> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['node', 'ujr', ...sandbox.args(...args)], { out: (text) => out.push(text), err: (text) => err.push(text), isTTY: options.tty ?? false });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

function expectExit(result: Result, code: number): void {
  expect(result.code, `exit code ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`).toBe(code);
}

// eslint-disable-next-line no-control-regex -- colour codes
const ANSI = /\x1b\[[0-9;]*m/g;

const errorSchema = z.object({ name: z.string(), message: z.string(), stack: z.string().optional() });
const runSchema = z.looseObject({ id: z.string(), status: z.enum(RUN_STATUSES), attempt: z.number(), error: errorSchema.optional() });
const logsJsonSchema = z.union([
  z.object({ type: z.literal('log'), runId: z.string(), seq: z.number(), at: z.number(), level: z.string(), message: z.string() }),
  z.object({ type: z.literal('run'), run: runSchema }),
]);
const invalidSchema = z.object({ id: z.string(), job: z.string().nullable(), problems: z.array(z.string()) });
const jobsListSchema = z.object({ instances: z.array(z.looseObject({ id: z.string(), enabled: z.boolean() })), invalid: z.array(invalidSchema), problems: z.array(z.string()) });

/** One failed run (NonRetryableError "the disk is full") and one succeeded, by `run --once`. */
async function oneFailureOneSuccess(message = 'the disk is full'): Promise<{ failedId: string; once: Result }> {
  await sandbox.writeInstances([
    { id: 'ok', job: 'batch', params: { count: 1, ms: 1 } },
    { id: 'broken', job: 'failing', params: { message } },
  ]);
  const once = await ujr(['run', '--once']);
  expectExit(once, 1);
  const [failed] = await sandbox.store().listRuns({ status: 'failed' });
  if (!failed) throw new Error(`no failed run:\n${once.stderr}`);
  return { failedId: failed.id, once };
}

describe('--version', () => {
  it("prints ujr's version from its package.json and exits 0", async () => {
    // Prepare
    const manifest = z.object({ version: z.string() }).parse(JSON.parse(await readFile(`${REPO_ROOT}package.json`, 'utf8')));

    // Act
    const result = await ujr(['--version']);

    // Assess
    expectExit(result, 0);
    expect(result.stdout).toBe(manifest.version);
    expect(packageVersion()).toBe(manifest.version);
  });
});

describe('colour', () => {
  it('colours statuses on a terminal (green succeeded, red failed), and not with NO_COLOR, --no-color or when piped', async () => {
    // Prepare
    await oneFailureOneSuccess();

    // Act
    const tty = await ujr(['runs'], { tty: true });
    const piped = await ujr(['runs']);
    const flag = await ujr(['--no-color', 'runs'], { tty: true });
    vi.stubEnv('NO_COLOR', '1');
    const env = await ujr(['runs'], { tty: true });

    // Assess
    expectExit(tty, 0);
    expect(tty.stdout).toContain('\x1b[32msucceeded\x1b[39m');
    expect(tty.stdout).toContain('\x1b[31mfailed\x1b[39m');
    // the columns line up as without colour: only the codes differ
    expect(tty.stdout.replace(ANSI, '')).toBe(piped.stdout);
    for (const plain of [piped, flag, env]) {
      expectExit(plain, 0);
      expect(plain.stdout).not.toMatch(ANSI);
      expect(plain.stdout).toMatch(/\ssucceeded\s/);
    }
  });
});

describe('one error per run, named alike everywhere', () => {
  it('run, runs, logs, runs <id> and status all say "NonRetryableError: the disk is full"; logs --json ends with the run, its status and error', async () => {
    // Prepare
    const { failedId, once } = await oneFailureOneSuccess();
    const named = 'NonRetryableError: the disk is full';

    // Act
    const [runs, logs, logsJson, detail, status] = [
      await ujr(['runs', '--status', 'failed']),
      await ujr(['logs', failedId]),
      await ujr(['logs', failedId, '--json']),
      await ujr(['runs', failedId]),
      await ujr(['status']),
    ];

    // Assess
    expect(once.stderr).toMatch(new RegExp(`run ${failedId} of broken/boom failed: ${named}$`, 'm'));
    expectExit(runs, 0);
    expect(runs.stdout).toMatch(new RegExp(`^${failedId}\\s+broken\\s+boom\\s+failed\\s+1/3\\s.*\\s${named}$`, 'm'));
    expectExit(logs, 0);
    expect(logs.stdout).toMatch(new RegExp(`^failed: ${named}\\n\\s+at `, 'm'));
    expectExit(detail, 0);
    expect(detail.stdout).toMatch(new RegExp(`^error\\s+${named}$`, 'm'));
    expectExit(status, 0);
    expect(status.stdout).toMatch(new RegExp(`failures in the last 24h:\\n.*\\n${failedId}\\s.*\\s${named}$`));
    // logs --json: one object a line, the log lines, then the run
    expectExit(logsJson, 0);
    const lines = logsJson.stdout.split('\n').map((line) => logsJsonSchema.parse(JSON.parse(line)));
    expect(lines.slice(0, -1).map((line) => line.type)).toEqual(lines.slice(0, -1).map(() => 'log'));
    expect(lines.some((line) => line.type === 'log' && line.message === 'about to fail')).toBe(true);
    expect(lines.at(-1)).toMatchObject({ type: 'run', run: { id: failedId, status: 'failed', error: { name: 'NonRetryableError', message: 'the disk is full' } } });
  });
});

describe('ujr runs --wide and ujr runs <id>', () => {
  it('cuts DETAIL at 80 characters unless --wide', async () => {
    // Prepare
    const message = `the disk is full: ${'x'.repeat(120)} end`;
    await oneFailureOneSuccess(message);

    // Act
    const [cut, wide] = [await ujr(['runs', '--status', 'failed']), await ujr(['runs', '--status', 'failed', '--wide'])];

    // Assess
    expectExit(cut, 0);
    expect(cut.stdout).not.toContain(message);
    expect(cut.stdout).toMatch(/NonRetryableError: the disk is full: x+…$/m);
    expectExit(wide, 0);
    expect(wide.stdout).toMatch(new RegExp(`NonRetryableError: ${message}$`, 'm'));
  });

  it('shows one run whole with the attempts of its task, as text and as { run, attempts }, and exits 3 for an unknown id', async () => {
    // Prepare: a task that fails its first attempt and succeeds on the second.
    await sandbox.writeInstances([{ id: 'f', job: 'flaky', params: { failures: 1 } }]);
    sandbox.store();
    expectExit(await ujr(['trigger', 'f', 'flaky']), 0);
    expectExit(await ujr(['run', '--once']), 0);
    const [second, first] = await sandbox.store().listRuns({ instanceId: 'f' });
    if (!first || !second) throw new Error('expected two attempts');

    // Act
    const [text, json, missing] = [await ujr(['runs', first.id]), await ujr(['runs', first.id, '--json']), await ujr(['runs', 'nope'])];

    // Assess
    expectExit(text, 0);
    for (const [field, value] of [
      ['run', first.id],
      ['instance', 'f'],
      ['job type', 'flaky'],
      ['task', 'flaky'],
      ['status', 'failed'],
      ['attempt', '1/3 (batch, origin manual)'],
      ['signature', first.signature],
      ['input', '{}'],
      ['error', 'Error: attempt 1 fails on purpose'],
    ] as const) {
      expect(text.stdout).toMatch(new RegExp(`^${field}\\s+${value.replace(/[()[\]{}]/g, '\\$&')}$`, 'm'));
    }
    expect(text.stdout).toMatch(/^\s+at /m);
    expect(text.stdout).toContain(`attempts\n→ 1/3   ${first.id}  failed Error: attempt 1 fails on purpose\n  2/3   ${second.id}  succeeded`);
    expectExit(json, 0);
    const shown = z.object({ run: runSchema, attempts: z.array(runSchema) }).parse(JSON.parse(json.stdout));
    expect(shown.run.id).toBe(first.id);
    expect(shown.attempts.map((run) => [run.id, run.attempt, run.status])).toEqual([
      [first.id, 1, 'failed'],
      [second.id, 2, 'succeeded'],
    ]);
    expectExit(missing, 3);
    expect(missing.stderr).toContain('no run has id "nope"');
  });
});

describe('configuration errors exit 2', () => {
  const cases: { name: string; file: string | undefined; instance: string; problem: RegExp }[] = [
    { name: 'a syntax error', file: '{ "instances": [ { "id": "a", "job": "batch" ', instance: 'a', problem: /: not valid JSON \(.+ at line 1, column \d+\); fix the syntax/ },
    { name: 'a missing file', file: undefined, instance: 'a', problem: /: cannot read the file \(.*ENOENT.*\); create it or pass --instances/ },
    { name: 'an unknown job type', file: JSON.stringify({ instances: [{ id: 'g', job: 'no-such-job' }] }), instance: 'g', problem: /: instance "g": job: no job type is named "no-such-job"/ },
    {
      name: 'an unknown param',
      file: JSON.stringify({ instances: [{ id: 'b', job: 'batch', params: { count: 1, extra: 1 } }] }),
      instance: 'b',
      problem: /: instance "b": params: unknown param "extra" for job type "batch" \(it takes: count, ms, jitterMs, rounds, perPlan\)/,
    },
  ];

  for (const { name, file, instance, problem } of cases) {
    it(`jobs list, status and trigger exit 2 on ${name}, naming the file and the problem`, async () => {
      // Prepare
      if (file !== undefined) await writeFile(sandbox.instancesFile, file);
      sandbox.store(); // a store exists, as after a first "ujr run"

      // Act
      const [list, listJson, status, statusJson] = [await ujr(['jobs', 'list']), await ujr(['jobs', 'list', '--json']), await ujr(['status']), await ujr(['status', '--json'])];
      const trigger = await ujr(['trigger', instance]);

      // Assess
      expectExit(trigger, 2);
      expect(trigger.stderr).toMatch(new RegExp(`^${sandbox.instancesFile}${problem.source}`, 'm'));
      for (const result of [list, status]) {
        expectExit(result, 2);
        expect(result.stderr).toMatch(new RegExp(`^config: ${sandbox.instancesFile}${problem.source}`, 'm'));
      }
      expectExit(listJson, 2);
      expect(jobsListSchema.parse(JSON.parse(listJson.stdout)).problems).toEqual([expect.stringMatching(problem)]);
      expectExit(statusJson, 2);
      expect(z.looseObject({ problems: z.array(z.string()) }).parse(JSON.parse(statusJson.stdout)).problems).toEqual([expect.stringMatching(problem)]);
    });
  }

  it('ujr run and run --once exit 2 on a file they cannot use at all, without claiming a last good configuration', async () => {
    // Prepare: no instances file

    // Act
    const [run, once] = [await ujr(['run']), await ujr(['run', '--once'])];

    // Assess
    for (const result of [run, once]) {
      expectExit(result, 2);
      expect(result.stderr).toMatch(new RegExp(`^ujr: ${sandbox.instancesFile}: cannot read the file`));
      expect(result.stderr).not.toContain('last good configuration');
    }
  });

  it('lists invalid instances with their problems beside the valid ones, in jobs list and status', async () => {
    // Prepare
    await sandbox.writeInstances([
      { id: 'good', job: 'batch', params: { count: 1 } },
      { id: 'bad', job: 'batch', params: { count: 'many' } },
    ]);
    sandbox.store();

    // Act
    const [list, listJson, status, statusJson] = [await ujr(['jobs', 'list']), await ujr(['jobs', 'list', '--json']), await ujr(['status']), await ujr(['status', '--json'])];

    // Assess
    expectExit(list, 2);
    expect(list.stdout).toMatch(/^good\s+batch\s+yes\s+rate\(1 minute\)\s+ok\s/m);
    expect(list.stdout).toMatch(/^bad\s+batch\s+-\s+-\s+invalid\s+params\.count: /m);
    expectExit(listJson, 2);
    const listed = jobsListSchema.parse(JSON.parse(listJson.stdout));
    expect(listed.instances.map((i) => i.id)).toEqual(['good']);
    expect(listed.invalid).toEqual([{ id: 'bad', job: 'batch', problems: [expect.stringMatching(/^params\.count: /)] }]);
    expectExit(status, 2);
    expect(status.stdout).toMatch(/^good\s+batch\s+enabled\s+work\s+never run$/m);
    expect(status.stdout).toMatch(/^bad\s+batch\s+invalid\s+-\s+params\.count: /m);
    expectExit(statusJson, 2);
    expect(z.looseObject({ invalid: z.array(invalidSchema) }).parse(JSON.parse(statusJson.stdout)).invalid).toEqual(listed.invalid);
  });
});

describe('ujr jobs enable|disable', () => {
  const file = `// lab instances: keep this comment
{
  "instances": [
    { "id": "a", "job": "batch", "params": { "count": 1 } }, // a stays as it is
    {
      "id": "b",
      "job": "batch",
      "params": {"count": 2,   "ms": 5},
      "enabled": true /* b is switched from the CLI */
    },
  ]
}
`;

  it('changes only the enabled line, keeping comments and formatting, and prints { instanceId, enabled, where } with --json', async () => {
    // Prepare
    await writeFile(sandbox.instancesFile, file);

    // Act
    const disable = await ujr(['jobs', 'disable', 'b', '--json']);
    const after = await readFile(sandbox.instancesFile, 'utf8');
    const enable = await ujr(['jobs', 'enable', 'b']);
    const again = await readFile(sandbox.instancesFile, 'utf8');

    // Assess: one line differs, the one holding b's "enabled"
    expectExit(disable, 0);
    expect(JSON.parse(disable.stdout)).toEqual({ instanceId: 'b', enabled: false, where: sandbox.instancesFile });
    const before = file.split('\n');
    const lines = after.split('\n');
    expect(lines).toHaveLength(before.length);
    const changed = lines.flatMap((line, i) => (line === before[i] ? [] : [[before[i], line]]));
    expect(changed).toEqual([['      "enabled": true /* b is switched from the CLI */', '      "enabled": false /* b is switched from the CLI */']]);
    expectExit(enable, 0);
    expect(enable.stdout).toBe(`b enabled in ${sandbox.instancesFile}`);
    expect(again).toBe(file);
  });

  it('adds the field to an entry that has none, on the line the entry is written on', async () => {
    // Prepare
    await writeFile(sandbox.instancesFile, file);

    // Act
    const disable = await ujr(['jobs', 'disable', 'a']);
    const after = await readFile(sandbox.instancesFile, 'utf8');

    // Assess
    expectExit(disable, 0);
    const before = file.split('\n');
    const changed = after.split('\n').flatMap((line, i) => (line === before[i] ? [] : [[before[i], line]]));
    expect(changed).toEqual([
      [
        '    { "id": "a", "job": "batch", "params": { "count": 1 } }, // a stays as it is',
        '    { "id": "a", "job": "batch", "params": { "count": 1 }, "enabled": false }, // a stays as it is',
      ],
    ]);
  });

  it('reads the commented file like any other: jobs list shows both instances and exits 0', async () => {
    // Prepare
    await writeFile(sandbox.instancesFile, file);
    sandbox.store();

    // Act
    const list = await ujr(['jobs', 'list', '--json']);

    // Assess
    expectExit(list, 0);
    const listed = jobsListSchema.parse(JSON.parse(list.stdout));
    expect(listed.instances.map((i) => [i.id, i.enabled])).toEqual([
      ['a', true],
      ['b', true],
    ]);
    expect(listed.invalid).toEqual([]);
  });
});
