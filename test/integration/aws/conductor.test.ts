/**
 * Conductors on DynamoDB Local, in this process: claiming continuous tasks from the board, two
 * conductors racing for them, a stop asked by the scheduler, and a task whose instance is gone.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Conductor } from '../../../core/cloud/conductor.js';
import jobs from '../../fixtures/aws/jobs.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { pollFor } from '../../helpers/runner.js';

let stack: LocalAwsStack;
const conductors: Conductor[] = [];

beforeEach(async () => {
  stack = await new LocalAwsStack().create();
});

afterEach(async () => {
  await Promise.all(conductors.splice(0).map((conductor) => conductor.stop()));
  await stack.destroy();
});

function conductor(capacity = 4): Conductor {
  const { conductor: created } = stack.container(jobs, { UJR_CONDUCTOR_POLL_MS: '100', UJR_CONDUCTOR_LEASE_TTL_MS: '3000', UJR_TASKS_PER_CONDUCTOR: String(capacity), UJR_GRACE_MS: '1000' });
  conductors.push(created);
  return created;
}

describe('conductors', () => {
  it('share the board: each continuous task runs on exactly one of two racing conductors', async () => {
    const specs = Array.from({ length: 6 }, (_, n) => ({ task: 'forever', input: { n } }));
    await stack.seedInstances([{ id: 'many', job: 'literal', params: { specs }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();
    const a = conductor(4);
    const b = conductor(4);

    const [fromA, fromB] = await Promise.all([a.pollOnce(), b.pollOnce()]);
    await b.pollOnce();

    expect(fromA + fromB).toBe(6);
    const running = [...a.runningSignatures(), ...b.runningSignatures()];
    expect(new Set(running).size).toBe(6);
    expect(a.runningSignatures().length).toBeLessThanOrEqual(4);
    const entries = await stack.store.listRoute('conductor');
    expect(entries.every((entry) => entry.owner === a.owner || entry.owner === b.owner)).toBe(true);
  });

  it('stops a task that stops heartbeating for its heartbeatTimeoutMs, though its lease is renewed on a timer', async () => {
    await stack.seedInstances([{ id: 'hung', job: 'literal', params: { specs: [{ task: 'hangs', input: {} }] }, schedule: '1h' }]);
    await stack.scheduler(jobs).scheduler.tick();
    const c = conductor();
    c.start();

    const run = await pollFor(async () => stack.store.lastRun({ instanceId: 'hung', task: 'hangs', status: 'failed' }), 10_000, 'the hung task to be stopped');

    expect(run.error?.message).toContain('no heartbeat for 500 ms');
    // The record can be read before the response to the conductor's write reaches it: it lets the
    // task go once its finish has returned.
    expect(await pollFor(() => (c.runningSignatures().length === 0 ? true : undefined), 5_000, 'the conductor to let the stopped task go')).toBe(true);
  });

  it('stops a task when the scheduler asks, records it cancelled and takes it off the board', async () => {
    await stack.seedInstances([{ id: 'ending', job: 'literal', params: { specs: [{ task: 'forever', input: {} }] }, schedule: '1s' }]);
    const { scheduler } = stack.scheduler(jobs, { UJR_TICK_MS: '1000' });
    await scheduler.tick();
    const c = conductor();
    c.start();
    await pollFor(() => (c.runningSignatures().length === 1 ? true : undefined), 10_000, 'the conductor to start the task');

    await stack.seedInstances([{ id: 'ending', job: 'literal', params: { specs: [] }, schedule: '1s' }]);
    stack.advanceSchedulerClock(1000);
    await scheduler.tick();
    await pollFor(() => (c.runningSignatures().length === 0 ? true : undefined), 10_000, 'the conductor to stop the task');

    const [run] = await stack.store.listRuns({ instanceId: 'ending' });
    expect(run).toMatchObject({ status: 'cancelled', error: { name: 'CancelledError' } });
    expect(await stack.store.listRoute('conductor')).toEqual([]);
    await scheduler.tick();
    expect(stack.desiredConductors).toBe(0);
  });

  it('takes a task of an instance that is gone off the board with a failed record', async () => {
    await stack.seedInstances([{ id: 'orphan', job: 'literal', params: { specs: [{ task: 'forever', input: {} }] }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();
    await stack.store.putInstanceEntry({ id: 'orphan', job: 'removed-job', params: {}, schedule: '1m' });
    const c = conductor();

    await c.pollOnce();
    await pollFor(async () => ((await stack.store.listRuns({ instanceId: 'orphan' })).length === 1 ? true : undefined), 10_000, 'the failed record');

    const [run] = await stack.store.listRuns({ instanceId: 'orphan' });
    expect(run).toMatchObject({ status: 'failed', error: { name: 'ConfigError' } });
    expect(await stack.store.listRoute('conductor')).toEqual([]);
  });

  it('does not start a task asked to stop before a conductor claimed it', async () => {
    await stack.seedInstances([{ id: 'late-stop', job: 'literal', params: { specs: [{ task: 'forever', input: {} }] }, schedule: '1m' }]);
    await stack.scheduler(jobs).scheduler.tick();
    const [entry] = await stack.store.listRoute('conductor');
    await stack.store.requestStop(entry!.signature, entry!.token);

    const started = await conductor().pollOnce();

    expect(started).toBe(0);
    const [run] = await stack.store.listRuns({ instanceId: 'late-stop' });
    expect(run).toMatchObject({ status: 'cancelled' });
    expect(run?.startedAt).toBeDefined();
    expect(await stack.store.listRoute('conductor')).toEqual([]);
  });
});
