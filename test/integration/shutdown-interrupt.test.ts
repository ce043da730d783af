/**
 * Stopping `ujr run` the way people do: Ctrl-C in a terminal sends SIGINT to the whole foreground
 * process group (the runner and its task processes alike), and `timeout` or a service manager send
 * SIGTERM to the group. The runner, not the signal, must end its tasks: the run records one error,
 * the runner's ShutdownError (name, message and a stack that starts with them), `ujr logs` names
 * the same error, and a task that cleans up when aborted (the example collector's last flush) gets
 * to do it. The runner is spawned as the leader of a process group of its own, as a shell starts a
 * foreground job, and the test signals the group.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../core/adapters/sqlite/store.js';
import type { RunRecord } from '../../core/types.js';
import { periodKey } from '../../jobs/collector.js';
import { REPO_ROOT, UJR_BIN } from '../fixtures/cli/sandbox.js';
import { runKey } from '../fixtures/continuous/jobs.js';
import { isAlive } from '../helpers/processes.js';
import { pollFor } from '../helpers/runner.js';

const EXAMPLE_JOBS = join(REPO_ROOT, 'jobs', 'index.ts');
const CONTINUOUS_FIXTURE_JOBS = join(REPO_ROOT, 'test', 'fixtures', 'continuous', 'jobs.ts');
/** A runner and its first task process start through tsx: a few seconds on a busy machine. */
const START_MS = 30_000;

interface Group {
  child: ChildProcess;
  pid: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let dir: string;
let store: SqliteStore | undefined;
const groups: Group[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ujr-shutdown-'));
});

afterEach(async () => {
  for (const group of groups.splice(0)) {
    if (groupAlive(group.pid)) process.kill(-group.pid, 'SIGKILL');
    await group.exited;
  }
  await store?.close();
  store = undefined;
  await rm(dir, { recursive: true, force: true });
});

const home = () => join(dir, 'home');
const instancesFile = () => join(dir, 'instances.json');

function cliArgs(jobs: string, ...rest: string[]): string[] {
  return ['--home', home(), '--jobs', jobs, '--instances', instancesFile(), ...rest];
}

/** Starts `ujr run` as the leader of a new process group, as a shell starts a foreground job. */
function startRunner(jobs: string, ...rest: string[]): Group {
  const child = spawn(process.execPath, [UJR_BIN, ...cliArgs(jobs, 'run', '--quiet', ...rest)], {
    cwd: dir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  if (child.pid === undefined) throw new Error('ujr run did not start');
  const group = { child, pid: child.pid, output: () => output, exited };
  groups.push(group);
  return group;
}

/** Whether any process of the group led by `pid` is left. */
function groupAlive(pid: number): boolean {
  return isAlive(-pid);
}

/** Runs `ujr <args>` to its end and returns what it printed on stdout. */
async function ujr(jobs: string, ...rest: string[]): Promise<string> {
  const child = spawn(process.execPath, [UJR_BIN, ...cliArgs(jobs, ...rest)], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) throw new Error(`ujr ${rest.join(' ')} exited ${code}:\n${stdout}\n${stderr}`);
  return stdout;
}

async function runsOf(instanceId: string): Promise<RunRecord[]> {
  store ??= SqliteStore.open(join(home(), 'ujr.db'));
  return store.listRuns({ instanceId, limit: 100 });
}

/** Signals the whole group, waits for the runner to exit and for every process of the group to end. */
async function interrupt(group: Group, signal: NodeJS.Signals): Promise<{ code: number | null }> {
  process.kill(-group.pid, signal);
  const exit = await pollFor(() => (group.child.exitCode !== null || group.child.signalCode !== null ? group.exited : undefined), 20_000, 'the runner to exit', 50);
  await pollFor(() => (groupAlive(group.pid) ? undefined : true), 10_000, 'every process of the group to end', 50);
  return exit;
}

/** The error as the record holds it, checked to be one error: the stack's first line is its name and message. */
function expectOneError(run: RunRecord | undefined): { name: string; message: string; stack: string } {
  const error = run?.error;
  expect(error?.stack?.split('\n')[0]).toBe(`${error?.name}: ${error?.message}`);
  return { name: error?.name ?? '', message: error?.message ?? '', stack: error?.stack ?? '' };
}

describe.each(['SIGINT', 'SIGTERM'] as const)('%s to the process group of `ujr run` while the example collector runs', (signal) => {
  it('records the run interrupted by one ShutdownError, which `ujr logs` names too, after the collector flushed its open period', async () => {
    // Prepare: only the collector, flushing often, in its task process.
    await writeFile(
      instancesFile(),
      JSON.stringify({ instances: [{ id: 'metrics', job: 'collector', params: { intervalMs: 100, rolloverMs: 3_600_000, flushMs: 300 } }] }),
    );
    const runner = startRunner(EXAMPLE_JOBS);
    // Its progress is set by a flush: the handler runs in the task process.
    const running = await pollFor(
      async () => (await runsOf('metrics')).find((run) => run.status === 'running' && (run.progress?.current ?? 0) >= 2),
      START_MS,
      'the collector to flush twice',
      100,
    );

    // Act
    const exit = await interrupt(runner, signal);

    // Assess
    expect(exit.code, runner.output()).toBe(0);
    const [run] = (await runsOf('metrics')).filter((r) => r.id === running.id);
    expect(run?.status).toBe('interrupted');
    const error = expectOneError(run);
    expect(error.name).toBe('ShutdownError');
    expect(error.message).toBe(`interrupted by ${signal}: the runner is shutting down; the task will be planned again on the next start`);
    expect(error.stack).not.toMatch(/TaskProcessError|killed by/);
    const logs = await ujr(EXAMPLE_JOBS, 'logs', running.id);
    expect(logs).toContain(`${error.name}: ${error.message}`);
    expect(logs).not.toMatch(/TaskProcessError|killed by/);
    // The collector was aborted, not killed: it wrote its open period and returned where it stopped.
    const result = run?.result as { period: number; count: number } | undefined;
    expect(result?.count).toBeGreaterThan(0);
    const part = await readFile(join(home(), 'data', `${periodKey('metrics', result?.period ?? 0)}.part`), 'utf8');
    expect(part.split('\n').filter((line) => line !== '')).toHaveLength(result?.count ?? -1);
  }, 60_000);
});

describe('SIGINT to the process group while an isolated task ignores its abort', () => {
  it('kills the task after the grace period and records the ShutdownError with how its process ended as the cause', async () => {
    // Prepare: `stall` waits forever in its own process, deaf to its abort signal.
    await writeFile(instancesFile(), JSON.stringify({ instances: [{ id: 'stuck', job: 'isolated', params: { tasks: ['stall'] } }] }));
    const runner = startRunner(CONTINUOUS_FIXTURE_JOBS, '--grace', '500');
    const running = await pollFor(
      async () => {
        const run = (await runsOf('stuck')).find((r) => r.status === 'running');
        return run && (await fileExists(join(home(), 'data', runKey(run.id)))) ? run : undefined;
      },
      START_MS,
      'the stalled task to start',
      50,
    );

    // Act
    const exit = await interrupt(runner, 'SIGINT');

    // Assess
    expect(exit.code, runner.output()).toBe(0);
    const [run] = (await runsOf('stuck')).filter((r) => r.id === running.id);
    expect(run?.status).toBe('interrupted');
    const error = expectOneError(run);
    expect(error.name).toBe('ShutdownError');
    expect(error.stack).toMatch(/\nCaused by: TaskProcessError: the task process was killed by SIGKILL before the task finished/);
    const logs = await ujr(CONTINUOUS_FIXTURE_JOBS, 'logs', running.id);
    expect(logs).toContain(`${error.name}: ${error.message}`);
  }, 60_000);
});

describe('SIGTERM to a task process alone', () => {
  it('stops the task after its runner did not: the run fails naming the signal (a returned collector did not succeed) and the task is restarted', async () => {
    // Prepare
    await writeFile(
      instancesFile(),
      JSON.stringify({ instances: [{ id: 'metrics', job: 'collector', params: { intervalMs: 100, rolloverMs: 3_600_000, flushMs: 300 } }] }),
    );
    const runner = startRunner(EXAMPLE_JOBS);
    const running = await pollFor(
      async () => (await runsOf('metrics')).find((run) => run.status === 'running' && (run.progress?.current ?? 0) >= 1),
      START_MS,
      'the collector to flush',
      100,
    );
    const [taskPid] = await childrenOf(runner.pid, 'task-host');
    expect(taskPid).toBeDefined();

    // Act
    const signalledAt = Date.now();
    process.kill(taskPid ?? 0, 'SIGTERM');

    // Assess: nothing happens for the grace period, then the task stops, is recorded failed and restarts.
    const ended = await pollFor(
      async () => (await runsOf('metrics')).find((run) => run.id === running.id && run.status !== 'running'),
      20_000,
      'the signalled run to end',
      100,
    );
    expect(ended.status).toBe('failed');
    const error = expectOneError(ended);
    expect(error).toMatchObject({ name: 'TaskProcessError', message: expect.stringContaining('received SIGTERM') as unknown });
    // The task process waited 5 s for its runner's abort first (a group signal would have brought one).
    expect(ended.endedAt ?? 0).toBeGreaterThanOrEqual(signalledAt + 4_500);
    await pollFor(
      async () => (await runsOf('metrics')).find((run) => run.id !== running.id && run.status === 'running'),
      30_000,
      'the collector to be restarted',
      100,
    );
    expect(isAlive(taskPid ?? 0)).toBe(false);
    expect((await interrupt(runner, 'SIGINT')).code, runner.output()).toBe(0);
  }, 60_000);
});

/** Pids of the child processes of `pid` whose command line contains `needle` (Linux /proc). */
async function childrenOf(pid: number, needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const [stat, cmdline] = await Promise.all([readFile(`/proc/${entry}/stat`, 'utf8'), readFile(`/proc/${entry}/cmdline`, 'utf8')]).catch(() => ['', '']);
    // The fields after the command name (which may hold spaces) are: state, ppid, ...
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid && cmdline.includes(needle)) found.push(Number(entry));
  }
  return found;
}

async function fileExists(path: string): Promise<boolean> {
  return readFile(path).then(
    () => true,
    () => false,
  );
}
