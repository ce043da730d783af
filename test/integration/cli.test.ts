/**
 * The `ujr` binary as users run it: `node bin/ujr.js …` in a child process, each test with its
 * own --home (one SQLite file), its own instances file and the fixture job types of
 * test/fixtures/cli/jobs.ts. Exit codes: 0 ok, 1 a run failed, 2 bad usage (or no store), 3 not found.
 * Only `ujr run` creates the store: a test whose other commands may come first creates it beforehand.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { RUN_STATUSES } from '../../core/types.js';
import { Sandbox, type Exit } from '../fixtures/cli/sandbox.js';
import { until } from '../helpers/runner.js';

const runSchema = z
  .object({
    id: z.string(),
    instanceId: z.string(),
    task: z.string(),
    status: z.enum(RUN_STATUSES),
    origin: z.string(),
    input: z.unknown(),
    error: z.object({ name: z.string(), message: z.string() }).optional(),
  })
  .passthrough();
const runsSchema = z.array(runSchema);

const statusSchema = z.object({
  instances: z.array(
    z.object({
      instance: z.object({ id: z.string(), job: z.string(), enabled: z.boolean() }).passthrough(),
      tasks: z.array(z.object({ task: z.string(), last: runSchema.optional() })),
    }),
  ),
  running: runsSchema,
  failures: runsSchema,
  problems: z.array(z.string()),
});

const jobsListSchema = z.object({
  instances: z.array(z.object({ id: z.string(), job: z.string(), enabled: z.boolean() }).passthrough()),
  problems: z.array(z.string()),
});

/** `expect(exit.code).toBe(code)`, showing the output when it is not. */
function expectExit(exit: Exit, code: number): void {
  expect(exit.code, `exit code ${exit.code}\n--- stdout ---\n${exit.stdout}\n--- stderr ---\n${exit.stderr}`).toBe(code);
}

let sandbox: Sandbox;

beforeEach(async () => {
  sandbox = await Sandbox.create();
});

afterEach(async () => {
  await sandbox.dispose();
});

async function runs(...filters: string[]): Promise<z.infer<typeof runsSchema>> {
  const exit = await sandbox.run(['runs', '--json', '--limit', '500', ...filters]);
  expectExit(exit, 0);
  return runsSchema.parse(JSON.parse(exit.stdout));
}

describe('ujr help', () => {
  it('prints the usage of the program and of every command, exiting 0', async () => {
    // Prepare
    const commands = [['run'], ['status'], ['runs'], ['logs'], ['trigger'], ['jobs'], ['jobs', 'disable']];

    // Act
    const [top, perCommand] = await Promise.all([
      sandbox.runRaw(['--help']),
      Promise.all(commands.map(async (command) => ({ command, exit: await sandbox.runRaw([...command, '--help']) }))),
    ]);

    // Assess
    expectExit(top, 0);
    for (const name of ['run', 'status', 'runs', 'logs', 'trigger', 'jobs']) expect(top.stdout).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
    for (const { command, exit } of perCommand) {
      expectExit(exit, 0);
      expect(exit.stdout).toContain(`Usage: ujr ${command.join(' ')}`);
    }
  });
});

describe('ujr run --once, runs and logs', () => {
  it('runs every planned task once, exits 0, and lists the runs with their logs', async () => {
    // Prepare
    await sandbox.writeInstances([{ id: 'b', job: 'batch', params: { count: 5, ms: 50 } }]);

    // Act
    const once = await sandbox.run(['run', '--once']);

    // Assess
    expectExit(once, 0);
    expect(once.stdout).toContain('done 5');
    const listed = await runs();
    expect(listed).toHaveLength(5);
    expect(listed.every((run) => run.status === 'succeeded' && run.instanceId === 'b' && run.origin === 'schedule')).toBe(true);
    expect(listed.map((run) => z.object({ i: z.number() }).parse(run.input).i).sort()).toEqual([0, 1, 2, 3, 4]);
    const { ends } = await sandbox.executions('b');
    expect(ends.map((e) => e.runId).sort()).toEqual(listed.map((run) => run.id).sort());

    const [failed, logs, missing] = await Promise.all([
      sandbox.run(['runs', '--status', 'failed']),
      sandbox.run(['logs', listed[0]?.id ?? '']),
      sandbox.run(['logs', 'nope']),
    ]);
    expectExit(failed, 0);
    expect(failed.stdout).toContain('no runs match');
    expectExit(logs, 0);
    const i = z.object({ i: z.number() }).parse(listed[0]?.input).i;
    expect(logs.stdout).toContain(`INFO  working on item ${i}`);
    expect(logs.stdout).toContain(`INFO  item ${i} done`);
    expect(logs.stdout).toMatch(/^succeeded after/m);
    expectExit(missing, 3);
    expect(missing.stderr).toContain('no run has id "nope"');
  });

  it('exits 1 when a task fails, and shows the failure in runs --status failed, logs and status', async () => {
    // Prepare
    await sandbox.writeInstances([
      { id: 'ok', job: 'batch', params: { count: 2, ms: 10 } },
      { id: 'broken', job: 'failing', params: { message: 'the disk is full' } },
      { id: 'idle', job: 'hang', params: { ms: 10 }, enabled: false },
    ]);

    // Act
    const once = await sandbox.run(['run', '--once']);
    const [failedJson, statusText, statusJson] = await Promise.all([
      sandbox.run(['runs', '--status', 'failed', '--json']),
      sandbox.run(['status']),
      sandbox.run(['status', '--json']),
    ]);

    // Assess: run --once
    expectExit(once, 1);
    expect(once.stderr).toMatch(/run \w+ of broken\/boom failed: NonRetryableError: the disk is full/);
    expect(once.stdout).toContain('done 2');
    expect(once.stdout).toContain('failed 1');
    // runs --status failed
    expectExit(failedJson, 0);
    const failed = runsSchema.parse(JSON.parse(failedJson.stdout));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ instanceId: 'broken', task: 'boom', status: 'failed', error: { name: 'NonRetryableError', message: 'the disk is full' } });
    expect((await sandbox.store().listRuns({ status: 'succeeded' })).map((run) => run.instanceId)).toEqual(['ok', 'ok']);
    // status, as a table and as JSON: each instance with the last run of each task
    expectExit(statusText, 0);
    expect(statusText.stdout).toMatch(/^ok\s+batch\s+enabled\s+work\s+succeeded /m);
    expect(statusText.stdout).toMatch(/^broken\s+failing\s+enabled\s+boom\s+failed /m);
    expect(statusText.stdout).toMatch(/^idle\s+hang\s+disabled\s+hang\s+never run/m);
    expect(statusText.stdout).toContain('nothing running');
    expect(statusText.stdout).toMatch(/failures in the last 24h:\n.*\n\w+\s+broken\s+boom\s+failed/);
    expectExit(statusJson, 0);
    const status = statusSchema.parse(JSON.parse(statusJson.stdout));
    expect(status.instances.map((i) => [i.instance.id, i.instance.enabled, i.tasks.map((t) => [t.task, t.last?.status])])).toEqual([
      ['ok', true, [['work', 'succeeded']]],
      ['broken', true, [['boom', 'failed']]],
      ['idle', false, [['hang', undefined]]],
    ]);
    expect(status.running).toEqual([]);
    expect(status.failures.map((run) => run.id)).toEqual([failed[0]?.id]);
    expect(status.problems).toEqual([]);
    // logs of the failed run: its lines, then its error
    const logs = await sandbox.run(['logs', failed[0]?.id ?? '']);
    expectExit(logs, 0);
    expect(logs.stdout).toContain('WARN  about to fail');
    expect(logs.stdout).toContain('failed: NonRetryableError: the disk is full');
  });
});

describe('ujr trigger', () => {
  it('queues a task with its input, which the next run --once takes as a manual run', async () => {
    // Prepare
    await sandbox.writeInstances([{ id: 'b', job: 'batch', params: { count: 0, ms: 10 } }]);
    sandbox.store(); // the store exists, as after a first "ujr run" (trigger never creates one)

    // Act
    const trigger = await sandbox.run(['trigger', 'b', 'work', '--input', '{"i":41}']);
    const once = await sandbox.run(['run', '--once']);

    // Assess
    expectExit(trigger, 0);
    expect(trigger.stdout).toMatch(/^queued trigger \w+ for b\/work/);
    expectExit(once, 0);
    const listed = await sandbox.store().listRuns({});
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ instanceId: 'b', task: 'work', origin: 'manual', status: 'succeeded', input: { i: 41 } });
    const { ends } = await sandbox.executions('b');
    expect(ends.map((e) => e.input)).toEqual([{ i: 41 }]);
  });

  it('trigger --wait follows a retried task to its final attempt, and says at once when a plan started nothing', async () => {
    // Prepare: a runner up, a task that fails its first attempt and succeeds on the retry.
    await sandbox.writeInstances([{ id: 'f', job: 'flaky', params: { failures: 1 } }]);
    const runner = sandbox.spawn('run', '--quiet');
    await until(() => runner.stderr.includes('running as'), 20_000, 'the runner to start');

    // Act
    const waited = await sandbox.run(['trigger', 'f', 'flaky', '--wait', '--json', '--timeout', '20000'], 30_000);
    const nothing = await sandbox.run(['trigger', 'f', '--wait', '--timeout', '20000'], 30_000);
    const status = await sandbox.run(['status', '--json']);
    runner.signal('SIGTERM');
    await sandbox.waitExit(runner, 15_000);

    // Assess: the final attempt, linked back to the failed first one, which names it.
    expectExit(waited, 0);
    const [final] = z.object({ trigger: z.object({ id: z.string() }), runs: runsSchema }).parse(JSON.parse(waited.stdout)).runs;
    expect(final).toMatchObject({ task: 'flaky', status: 'succeeded', attempt: 2, origin: 'retry' });
    const first = await sandbox.store().getRun(String(final?.previousRunId));
    expect(first).toMatchObject({ attempt: 1, status: 'failed', nextRunId: final?.id, error: { message: 'attempt 1 fails on purpose' } });
    expectExit(nothing, 0);
    expect(nothing.stdout).toMatch(/started no run: the plan returned no task/);
    expectExit(status, 0);
    expect(statusSchema.parse(JSON.parse(status.stdout)).running).toStrictEqual([]);
  });

  it('rejects bad JSON (exit 2, naming --input) and unknown instances or tasks (exit 3)', async () => {
    // Prepare
    await sandbox.writeInstances([{ id: 'b', job: 'batch', params: { count: 0 } }]);

    // Act
    const [badJson, unknownInstance, unknownTask] = await Promise.all([
      sandbox.run(['trigger', 'b', 'work', '--input', '{i:1']),
      sandbox.run(['trigger', 'nobody', 'work']),
      sandbox.run(['trigger', 'b', 'dance']),
    ]);

    // Assess
    expectExit(badJson, 2);
    expect(badJson.stderr).toContain('--input');
    expect(badJson.stderr).toContain('not valid JSON');
    expectExit(unknownInstance, 3);
    expect(unknownInstance.stderr).toContain('no job instance "nobody"');
    expect(unknownInstance.stderr).toContain('known: b');
    expectExit(unknownTask, 3);
    expect(unknownTask.stderr).toContain('job type "batch" has no task "dance"');
    const pending = await sandbox.store().takeTriggers(10);
    expect(pending).toEqual([]);
  });
});

describe('ujr jobs', () => {
  it('disables and enables an instance by editing the instances file; run --once skips it while disabled', async () => {
    // Prepare
    await sandbox.writeInstances([
      { id: 'a', job: 'batch', params: { count: 1, ms: 10 } },
      { id: 'b', job: 'batch', params: { count: 1, ms: 10 } },
    ]);
    sandbox.store(); // so that "jobs list" finds a store however it races "run --once" (it never creates one)

    // Act
    const disable = await sandbox.run(['jobs', 'disable', 'b']);
    const [list, once] = await Promise.all([sandbox.run(['jobs', 'list', '--json']), sandbox.run(['run', '--once'])]);

    // Assess
    expectExit(disable, 0);
    expect(disable.stdout).toContain('b disabled');
    expect((await sandbox.readInstances()).instances.map((i) => [i.id, i.enabled])).toEqual([
      ['a', undefined],
      ['b', false],
    ]);
    expectExit(list, 0);
    const listed = jobsListSchema.parse(JSON.parse(list.stdout));
    expect(listed.instances.map((i) => [i.id, i.enabled])).toEqual([
      ['a', true],
      ['b', false],
    ]);
    expectExit(once, 0);
    expect((await sandbox.store().listRuns({})).map((run) => run.instanceId)).toEqual(['a']);

    const [enable, missing] = await Promise.all([sandbox.run(['jobs', 'enable', 'b']), sandbox.run(['jobs', 'disable', 'x'])]);
    expectExit(enable, 0);
    expect((await sandbox.readInstances()).instances.find((i) => i.id === 'b')?.enabled).toBe(true);
    expectExit(missing, 3);
    expect(missing.stderr).toContain('no job instance "x"');
  });
});

describe('a bad instances file', () => {
  it('names each bad instance and field on stderr while the good instances still run', async () => {
    // Prepare
    await sandbox.writeInstances([
      { id: 'good', job: 'batch', params: { count: 2, ms: 10 } },
      { id: 'bad', job: 'batch', params: { count: 'many' } },
      { id: 'ghost', job: 'no-such-job' },
    ]);
    sandbox.store(); // so that "jobs list" finds a store however it races "run --once" (it never creates one)

    // Act
    const [once, list, trigger] = await Promise.all([
      sandbox.run(['run', '--once']),
      sandbox.run(['jobs', 'list']),
      sandbox.run(['trigger', 'bad']),
    ]);

    // Assess
    expectExit(once, 1);
    expect(once.stderr).toContain(`${sandbox.instancesFile}: instance "bad": params.count: `);
    expect(once.stderr).toContain(`instance "ghost": job: no job type is named "no-such-job"`);
    expect(once.stdout).toContain('done 2');
    expect((await sandbox.store().listRuns({})).map((run) => [run.instanceId, run.status])).toEqual([
      ['good', 'succeeded'],
      ['good', 'succeeded'],
    ]);
    // jobs list: a configuration error (exit 2), the invalid entries listed with their problems
    expectExit(list, 2);
    expect(list.stdout).toMatch(/^good\s+batch\s+yes/m);
    expect(list.stdout).toMatch(/^bad\s+batch\s+-\s+-\s+invalid\s+params\.count: /m);
    expect(list.stdout).toMatch(/^ghost\s+no-such-job\s+-\s+-\s+invalid\s+job: no job type is named "no-such-job"/m);
    expect(list.stderr).toContain('instance "bad": params.count');
    expectExit(trigger, 2);
    expect(trigger.stderr).toContain('instance "bad" has problems in the instances file');
    expect(trigger.stderr).toContain('params.count');
  });
});
