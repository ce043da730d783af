/**
 * The container bundle's conductor runs its continuous tasks in child processes started from the
 * bundle itself: built as the CDK construct builds it (build/bundle.ts) over the isolation test
 * job types, and started as the stock Node.js image starts it, `node --input-type=module --eval
 * <bootstrap>` checking its SHA-256 (containers/bootstrap.ts), with nothing but the bundle file,
 * no tsx and no node_modules. A task that busy-loops past its lease lifetime does not cost the
 * other its lease; on SIGTERM every task process ends with the conductor.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bundle, type BundleResult } from '../../../build/bundle.js';
import { bootstrapProgram, CODE_SHA256_VARIABLE } from '../../../containers/bootstrap.js';
import { ROOT } from '../../../core/package-root.js';
import jobs from '../../fixtures/aws/isolation-jobs.js';
import { UjrProcess } from '../../fixtures/cli/sandbox.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { isAlive } from '../../helpers/processes.js';
import { pollFor } from '../../helpers/runner.js';

const LEASE_TTL_MS = 1_500;

let dir: string;
let container: BundleResult;
const stacks: LocalAwsStack[] = [];
const processes = new Set<UjrProcess>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ujr-container-tasks-'));
  container = await bundle('container', dir, { jobs: join(ROOT, 'test', 'fixtures', 'aws', 'isolation-jobs.ts') });
}, 120_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  const running = [...processes];
  for (const proc of running) proc.signal('SIGKILL');
  await Promise.allSettled(running.map((proc) => proc.exited));
  processes.clear();
  await Promise.all(stacks.splice(0).map((stack) => stack.destroy()));
});

/** Starts the bundle as ECS starts the stock image's container: the bootstrap over the file, with its digest. */
function startContainer(env: Record<string, string>): UjrProcess {
  const sha256 = createHash('sha256').update(readFileSync(container.file)).digest('hex');
  const child = spawn(process.execPath, ['--input-type=module', '--eval', bootstrapProgram(container.file)], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', ...env, [CODE_SHA256_VARIABLE]: sha256 },
  });
  const proc = new UjrProcess(child, ['node', '--eval', '<bootstrap>', container.file]);
  processes.add(proc);
  return proc;
}

describe('the container bundle as a conductor', () => {
  it('runs each continuous task in a process of its own, started from the bundle, and leaves none behind', async () => {
    // Prepare
    const stack = await new LocalAwsStack().create();
    stacks.push(stack);
    const spinMs = 3 * LEASE_TTL_MS;
    await stack.seedInstances([{ id: 'bundled', job: 'isolation', params: { tasks: ['spin', 'steady'], spinMs }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();
    const { objects } = stack.container(jobs);

    // Act
    const proc = startContainer(
      stack.processEnv({ UJR_CONDUCTOR_LEASE_TTL_MS: String(LEASE_TTL_MS), UJR_CONDUCTOR_POLL_MS: '100', UJR_TASKS_PER_CONDUCTOR: '2', UJR_GRACE_MS: '1000' }),
    );
    const owner = (
      await pollFor(() => {
        if (!proc.running) throw new Error(`the container exited before it started:\n${proc.describe()}`);
        return /conductor (\S+) started/.exec(proc.stdout) ?? undefined;
      }, 20_000, 'the conductor to log that it started')
    )[1];
    // Read until whole: the S3 emulator can answer an object being written with its empty body.
    const ended = await pollFor(async () => {
      const text = await objects.getText('spin/bundled/ended');
      return text ? text : undefined;
    }, 30_000, `the spin to end:\n${proc.describe()}`);
    const entries = await stack.store.listRoute('conductor');
    const pids = await Promise.all(['spin', 'steady'].map(async (task) => Number(await objects.getText(`pids/bundled/${task}`))));
    proc.signal('SIGTERM');
    const exit = await proc.exited;

    // Assess: both ran under the conductor's first claims, in two processes that are not the conductor's.
    expect(Number(ended)).toBeGreaterThan(0);
    expect(entries.map((entry) => [entry.task, entry.owner, entry.token]).sort()).toEqual([
      ['spin', owner, 2],
      ['steady', owner, 2],
    ]);
    expect(entries.find((entry) => entry.task === 'steady')?.progress?.current).toBeGreaterThan(10);
    expect(new Set([proc.pid, ...pids]).size).toBe(3);
    expect(exit.code, proc.describe()).toBe(0);
    expect(pids.filter(isAlive)).toEqual([]);
    const runs = await stack.store.listRuns({ instanceId: 'bundled' });
    expect(runs.map((run) => run.status)).toEqual(['interrupted', 'interrupted']);
  }, 90_000);
});
