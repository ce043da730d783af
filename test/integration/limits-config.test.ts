/**
 * The instances file's "limits" reaching what runs: the watcher applies edits live (a real file),
 * createRunner takes them from its option and from the file, and `ujr status` shows the buckets of
 * a real SQLite store.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRunner, InvalidInstancesError, InvalidLimitError, type EmbeddedRunner, type LimitDefinition } from 'ujr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { statusCommand } from '../../core/cli/inspect.js';
import { PLAIN } from '../../core/cli/format.js';
import { localTarget } from '../../core/cli/targets.js';
import { ConfigWatcher } from '../../core/local/config-watcher.js';
import { openLocalStore } from '../../core/local/runtime.js';
import { UJR_BIN, UjrProcess } from '../fixtures/cli/sandbox.js';
import greeterJobs from '../fixtures/embedded/jobs.js';

const JOBS_MODULE = fileURLToPath(new URL('../fixtures/embedded/jobs.ts', import.meta.url));
const INSTANCES = [{ id: 'lab', job: 'greeter', params: { names: ['ada'] } }];

let dir: string;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ujr-limits-config-'));
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function writeInstances(path: string, limits: unknown): void {
  writeFileSync(path, JSON.stringify({ instances: INSTANCES, limits }, null, 2));
}

describe('the config watcher', () => {
  it('applies the file\'s limits at load and after an edit, keeping the last good version of a limit the edit broke', async () => {
    // Prepare
    const path = join(dir, 'instances.json');
    writeInstances(path, { api: { rate: 10, per: '1s' }, host: { concurrency: 3 } });
    const applied: ReadonlyMap<string, LimitDefinition>[] = [];
    const reports: string[] = [];
    const watcher = new ConfigWatcher({
      path,
      jobs: greeterJobs,
      apply: () => undefined,
      applyLimits: (limits) => applied.push(limits),
      report: (message) => reports.push(message),
    });
    cleanups.push(() => watcher.stop());
    await watcher.load();

    // Act: api broken, host changed, new added; a different size makes the fingerprint change
    writeInstances(path, { api: { rate: 10 }, host: { concurrency: 4 }, added: { rate: 2, per: '1m', burst: 2 } });
    await watcher.check();

    // Assess
    expect(applied.map((limits) => Object.fromEntries(limits))).toEqual([
      { api: { name: 'api', rate: { count: 10, perMs: 1_000, burst: 1 } }, host: { name: 'host', concurrency: 3 } },
      {
        host: { name: 'host', concurrency: 4 },
        added: { name: 'added', rate: { count: 2, perMs: 60_000, burst: 2 } },
        api: { name: 'api', rate: { count: 10, perMs: 1_000, burst: 1 } },
      },
    ]);
    expect(watcher.limits.get('host')?.concurrency).toBe(4);
    expect(watcher.instances.map((i) => i.id)).toEqual(['lab']);
    expect(reports).toEqual([
      `${path}: limits.api.per: a rate needs "per", the time it counts over (e.g. "15m") (the last good configuration keeps running)`,
    ]);
  });
});

describe('createRunner limits', () => {
  async function made(options: Parameters<typeof createRunner>[0]): Promise<EmbeddedRunner> {
    const runner = await createRunner(options);
    cleanups.push(() => runner.close(200));
    return runner;
  }

  it('takes the limits option in the file\'s format', async () => {
    // Act
    const runner = await made({ jobs: greeterJobs, instances: INSTANCES, store: 'memory', limits: { api: { rate: 300, per: '15m' }, host: { concurrency: 3 } } });

    // Assess
    expect(Object.fromEntries(runner.limits)).toEqual({
      api: { name: 'api', rate: { count: 300, perMs: 900_000, burst: 1 } },
      host: { name: 'host', concurrency: 3 },
    });
  });

  it('reads the instances file\'s limits when instances is a path, the option replacing a limit of the same name', async () => {
    // Prepare
    const path = join(dir, 'instances.json');
    writeInstances(path, { api: { rate: 10, per: '1s' }, host: { concurrency: 3 } });

    // Act
    const runner = await made({ jobs: JOBS_MODULE, instances: path, store: 'memory', limits: { host: { concurrency: 1 } } });

    // Assess
    expect(Object.fromEntries(runner.limits)).toEqual({
      api: { name: 'api', rate: { count: 10, perMs: 1_000, burst: 1 } },
      host: { name: 'host', concurrency: 1 },
    });
  });

  it('refuses a bad limit in the option or in the file, naming it and its field', async () => {
    // Prepare
    const path = join(dir, 'instances.json');
    writeInstances(path, { api: { rate: 10 } });

    // Act
    const fromOption = createRunner({ jobs: greeterJobs, store: 'memory', limits: { host: { concurrency: 0 } } });
    const fromFile = createRunner({ jobs: greeterJobs, instances: path, store: 'memory' });

    // Assess
    await expect(fromOption).rejects.toThrow(InvalidLimitError);
    await expect(fromOption).rejects.toThrow('createRunner options: limits.host.concurrency: use a whole number of at least 1');
    await expect(fromFile).rejects.toThrow(InvalidInstancesError);
    await expect(fromFile).rejects.toThrow(`${path}: limits.api.per: a rate needs "per"`);
  });
});

describe('ujr status', () => {
  it('prints a limits table, and the JSON\'s limits, from the buckets of the SQLite store', async () => {
    // Prepare
    const home = join(dir, 'home');
    const instancesFile = join(dir, 'instances.json');
    writeInstances(instancesFile, {});
    const store = openLocalStore({ home });
    const now = Date.now();
    const rate = { count: 300, perMs: 900_000, burst: 5 };
    await store.limits.acquireLimits({ holder: 'run-1', ttlMs: 60_000, limits: [{ name: 'api', key: '', rate }] }, now);
    await store.limits.acquireLimits({ holder: 'run-2', ttlMs: 60_000, limits: [{ name: 'host', key: 'example.org', concurrency: 1 }] }, now);
    await store.limits.acquireLimits({ holder: 'run-3', ttlMs: 60_000, limits: [{ name: 'host', key: 'example.org', concurrency: 1 }] }, now);
    await store.limits.backoffLimit('api', '', now + 3_600_000, now);
    await store.close();
    const paths = { home, jobsModule: JOBS_MODULE, instancesFile };
    const out: string[] = [];
    const io = { out: (text: string) => out.push(text), err: () => undefined };

    // Act
    const text = localTarget(paths);
    cleanups.push(() => text.close?.());
    const code = await statusCommand(text, { json: false, paint: PLAIN }, io);
    const json = localTarget(paths);
    cleanups.push(() => json.close?.());
    await statusCommand(json, { json: true, paint: PLAIN }, io);

    // Assess
    expect(code).toBe(0);
    const printed = out.find((o) => o.includes('limits:')) ?? '';
    const lines = printed.split('\n');
    expect(lines.slice(0, 2)).toEqual(['', 'limits:']);
    expect(lines[2]?.split(/\s{2,}/)).toEqual(['LIMIT', 'KEY', 'RATE', 'TOKENS', 'HELD', 'BLOCKED UNTIL', 'WAITING', 'GRANTED', 'REFUSED', 'THROTTLED']);
    expect(lines[3]?.split(/\s{2,}/)).toEqual(['api', '—', '300/15m burst 5', '0.0', '-', expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/), '0', '1', '0', '1h0m']);
    expect(lines[4]?.split(/\s{2,}/)).toEqual(['host', 'example.org', '-', '-', '1/1', '-', '0', '1', '1', '-']);
    const parsed = JSON.parse(out.at(-1) ?? '{}') as { limits: { name: string; key: string; held: number }[] };
    expect(parsed.limits.map((l) => [l.name, l.key, l.held])).toEqual([
      ['api', '', 0],
      ['host', 'example.org', 1],
    ]);
  });
});

describe('ujr run', () => {
  it("paces a job's tasks by the instances file's limit, end to end through the CLI, and ujr status shows the bucket", async () => {
    // A jobs module whose task takes limit "api", and an instances file allowing 2 per second.
    const jobsModule = join(dir, 'jobs.mts');
    writeFileSync(
      jobsModule,
      [
        `import { defineJob, z } from ${JSON.stringify(fileURLToPath(new URL('../../core/index.ts', import.meta.url)))};`,
        'export default [',
        '  defineJob({',
        "    name: 'paced',",
        '    params: z.object({ count: z.number() }),',
        "    getRunnableTasks: (ctx) => Array.from({ length: ctx.params.count }, (_, n) => ({ task: 'tick', input: { n } })),",
        "    tasks: { tick: { limits: ['api'], run: (input) => input.n } },",
        '  }),',
        '];',
        '',
      ].join('\n'),
    );
    const instancesFile = join(dir, 'instances.json');
    writeFileSync(instancesFile, JSON.stringify({ instances: [{ id: 'p', job: 'paced', params: { count: 3 } }], limits: { api: { rate: 2, per: '1s' } } }));
    const home = join(dir, 'home');
    const ujr = (...args: string[]) => {
      const child = spawn(process.execPath, [UJR_BIN, '--home', home, '--jobs', jobsModule, '--instances', instancesFile, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
      return new UjrProcess(child, args).exited;
    };

    const once = await ujr('run', '--once');
    const status = await ujr('status', '--json');

    expect(once.code, once.stdout + once.stderr).toBe(0);
    const store = openLocalStore({ home });
    const runs = await store.listRuns({ instanceId: 'p' }).finally(() => store.close());
    expect(runs.map((run) => run.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    // One token every 500 ms (burst 1): the three starts span a second at least (less the start jitter).
    const starts = runs.map((run) => run.startedAt as number).sort((a, b) => a - b);
    expect((starts[2] as number) - (starts[0] as number)).toBeGreaterThanOrEqual(1_000 - 50);
    expect(status.code, status.stderr).toBe(0);
    const limits = (JSON.parse(status.stdout) as { limits: { name: string; key: string; granted: number }[] }).limits;
    expect(limits.map((limit) => [limit.name, limit.key, limit.granted])).toEqual([['api', '', 3]]);
  }, 30_000);
});

