/**
 * createRunner (`ujr`): the embedded runner on real SQLite files in a temp home, on the in-memory
 * store, and with isolated tasks in child processes when the job types come as a module path.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRunner, InvalidInstancesError, RunnerStateError, UnknownInstanceError, type EmbeddedRunner, type RunRecord } from 'ujr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import greeterJobs, { greeter, isolated } from '../fixtures/embedded/jobs.js';
import { waitFor } from '../helpers/runner.js';

const JOBS_MODULE = fileURLToPath(new URL('../fixtures/embedded/jobs.ts', import.meta.url));

let dir: string;
const open: EmbeddedRunner[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ujr-create-runner-'));
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((runner) => runner.close(200)));
  rmSync(dir, { recursive: true, force: true });
});

async function made(options: Parameters<typeof createRunner>[0]): Promise<EmbeddedRunner> {
  const runner = await createRunner(options);
  open.push(runner);
  return runner;
}

const GREET_AB = [{ id: 'lab', job: 'greeter', params: { names: ['ada', 'alan'] } }];

describe('createRunner', () => {
  it('keeps run records in the SQLite store under home: a second runner on the same home sees them and redoes nothing', async () => {
    const home = join(dir, 'home');
    const first = await createRunner({ jobs: greeterJobs, instances: GREET_AB, home });
    const stats = await first.runUntilIdle();
    await first.close();

    const second = await made({ jobs: greeterJobs, instances: GREET_AB, home });
    const runs = await second.runs({ instanceId: 'lab' });
    const again = await second.runUntilIdle();

    expect(stats).toMatchObject({ succeeded: 2, failed: 0, planErrors: 0 });
    expect(existsSync(join(home, 'ujr.db'))).toBe(true);
    expect(runs.map((r) => [r.task, r.status, r.input]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))).toEqual([
      ['greet', 'succeeded', { name: 'ada' }],
      ['greet', 'succeeded', { name: 'alan' }],
    ]);
    const ada = runs.find((r) => JSON.stringify(r.input) === '{"name":"ada"}');
    expect(ada?.result).toEqual({ greeted: 'ada' });
    expect((await second.logs(ada?.id ?? '')).map((l) => l.message)).toEqual(['hello ada']);
    expect(await second.objects.getText('greetings/ada.txt')).toBe('hello ada');
    expect(again.succeeded).toBe(0);
  });

  it('runs on an in-memory store and a temporary data directory with store: "memory", writing nothing under home', async () => {
    const home = join(dir, 'unused');
    const runner = await made({ jobs: [greeter], instances: GREET_AB, store: 'memory', home });

    const stats = await runner.runUntilIdle();

    expect(stats.succeeded).toBe(2);
    expect((await runner.runs()).map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    expect(await runner.objects.getText('greetings/alan.txt')).toBe('hello alan');
    expect(existsSync(home)).toBe(false);
  });

  it('refuses invalid instance entries, naming the instance and the field', async () => {
    const failed = createRunner({ jobs: [greeter], instances: [{ id: 'lab', job: 'greeter', params: { names: [1] } }], store: 'memory' });

    await expect(failed).rejects.toThrow(InvalidInstancesError);
    await expect(failed).rejects.toThrow(/^instances: instance "lab": params\.names\.0: /);
  });

  it('reads an instances file given by path, naming the file in its problems', async () => {
    const file = join(dir, 'instances.json');
    writeFileSync(file, JSON.stringify({ instances: [{ id: 'lab', job: 'greeter', params: { names: ['ada'] } }, { id: 'x', job: 'nope' }] }));

    const error: unknown = await createRunner({ jobs: [greeter], instances: file, store: 'memory' }).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(InvalidInstancesError);
    expect((error as InvalidInstancesError).message).toBe(`${file}: instance "x": job: no job type is named "nope"; known job types: greeter`);
  });

  it('runs an isolated task in a child process when the job types come as a module path', async () => {
    const runner = await made({ jobs: JOBS_MODULE, instances: [{ id: 'iso', job: 'isolated' }], store: 'memory' });

    const stats = await runner.runUntilIdle();
    const [run] = await runner.runs({ instanceId: 'iso' });

    expect(stats.succeeded).toBe(1);
    expect(run?.status).toBe('succeeded');
    expect((run?.result as { pid: number }).pid).not.toBe(process.pid);
  });

  it('refuses an isolated task when the job types come as objects, at once and saying to pass the module path', async () => {
    const runner = await made({ jobs: [isolated], instances: [{ id: 'iso', job: 'isolated' }], store: 'memory' });

    const stats = await runner.runUntilIdle();
    const runs = await runner.runs({ instanceId: 'iso' });

    expect(stats).toMatchObject({ failed: 1, retried: 0 });
    expect(runs).toHaveLength(1);
    expect(runs[0]?.error?.name).toBe('NonRetryableError');
    expect(runs[0]?.error?.message).toContain('pass createRunner({ jobs: "<path of the module>" })');
  });

  it('runs until stopped once started: takes a trigger at once and passes the engine\'s events on', async () => {
    const runner = await made({ jobs: [greeter], instances: [{ id: 'lab', job: 'greeter', params: { names: [] }, schedule: '1d' }], store: 'memory' });
    const planned: string[] = [];
    runner.on('planned', (instanceId) => planned.push(instanceId));

    await runner.start();
    const ended = waitFor<[RunRecord]>(runner, 'run', (run) => run.status === 'succeeded');
    const trigger = await runner.trigger('lab', 'greet', { name: 'grace' });
    const [run] = await ended;

    expect(run).toMatchObject({ instanceId: 'lab', origin: 'manual', triggerId: trigger.id, result: { greeted: 'grace' } });
    expect(planned).toContain('lab');
    expect(runner.stats()).toMatchObject({ succeeded: 1 });
    await expect(runner.runUntilIdle()).rejects.toThrow(RunnerStateError);
    await runner.stop();
    expect(runner.stats()).toBeUndefined();
  });

  it('keeps a trigger made while not running for the next run, and refuses one for an unknown instance', async () => {
    const runner = await made({ jobs: [greeter], instances: [{ id: 'lab', job: 'greeter', params: { names: [] } }], store: 'memory' });

    await runner.trigger('lab', 'greet', { name: 'edsger' });
    await runner.runUntilIdle();

    expect((await runner.runs()).map((r) => [r.origin, r.result])).toEqual([['manual', { greeted: 'edsger' }]]);
    await expect(runner.trigger('nobody')).rejects.toThrow(UnknownInstanceError);
  });

  it('cannot be used after close', async () => {
    const runner = await createRunner({ jobs: [greeter], store: 'memory' });
    await runner.close();

    await expect(runner.runUntilIdle()).rejects.toThrow(RunnerStateError);
  });
});
