/**
 * The status page over a deployed stack (`ujr ui --stack`), its JSON API against a deployment on
 * the emulators (test/helpers/stack-ui.ts): instances from the instances table, queued runs from the
 * board, run records from the runs table, logs from CloudWatch Logs (mocked), "Run now" through the
 * scheduler function (played in-process), Enable/Disable as run-time overrides, and the same guards
 * as the local page. The page itself is tested in Chromium in ui-stack-browser.test.ts.
 */
import { request } from 'node:http';
import { FilterLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { InvokeCommand } from '@aws-sdk/client-lambda';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AwsCliContext } from '../../../core/adapters/aws/cli-context.js';
import { main } from '../../../core/cli/main.js';
import { stackTarget, type Target } from '../../../core/cli/targets.js';
import { startUiServer, type UiServer } from '../../../core/ui/server.js';
import { stackStatusSource } from '../../../core/ui/stack-source.js';
import { JOBS_MODULE, LOG_GROUPS, powertoolsLine, STACK, StackUiFixture } from '../../helpers/stack-ui.js';
import { uiClient } from '../../helpers/ui-client.js';

const errorSchema = z.object({ error: z.string() });
const briefSchema = z.looseObject({ id: z.string(), task: z.string(), status: z.string() });
const instancesSchema = z.object({
  instances: z.array(z.looseObject({ id: z.string(), badge: z.string(), state: z.string(), enabled: z.boolean(), lastRun: briefSchema.optional(), running: z.array(briefSchema) })),
  problems: z.array(z.string()),
});
const detailSchema = z.looseObject({
  id: z.string(),
  params: z.record(z.string(), z.unknown()),
  tasks: z.array(z.object({ task: z.string(), lastRun: briefSchema.optional() })),
  recentRuns: z.array(briefSchema),
  running: z.array(briefSchema),
});
const runSchema = z.looseObject({ id: z.string(), instanceId: z.string(), task: z.string(), status: z.string(), origin: z.string(), input: z.unknown() });
const runsSchema = z.object({ runs: z.array(runSchema) });
const logsSchema = z.object({ lines: z.array(z.object({ seq: z.number(), at: z.number(), level: z.string(), message: z.string() })) });
const runNowSchema = z.object({
  trigger: z.looseObject({ instanceId: z.string(), at: z.number() }),
  report: z.looseObject({ dispatched: z.object({ queue: z.number(), conductor: z.number(), fargate: z.number() }), manualRunIds: z.array(z.string()) }),
  message: z.string(),
});

let fixture: StackUiFixture;
let aws: AwsCliContext | undefined;
let target: Target | undefined;
let server: UiServer | undefined;

beforeEach(async () => {
  fixture = await new StackUiFixture().create();
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await target?.close();
  target = undefined;
  aws = undefined;
  await fixture.destroy();
});

async function start(options: { token?: string; host?: string } = {}): Promise<UiServer> {
  ({ aws, target } = await fixture.openTarget());
  server = await startUiServer({ source: stackStatusSource(aws, target), eventIntervalMs: 100, ...options });
  return server;
}

const { api, json, csrfToken } = uiClient(() => server);

async function post(path: string, body: unknown = {}): Promise<Response> {
  return api(path, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-UJR-CSRF': await csrfToken() }, body: JSON.stringify(body) });
}

describe('status page over a stack: reads', () => {
  it('lists the instances table with badges, queued tasks from the board, then the runs the worker recorded', async () => {
    // Prepare: two instances planned by a scheduled tick (their tasks queued on the board), a third never planned
    await fixture.stack.seedInstances([
      { id: 'fan', job: 'fanout', params: { count: 2 }, schedule: '1m' },
      { id: 'broken', job: 'fanout', params: { count: 1, failFatal: [0], attempts: 1 }, schedule: '1m' },
    ]);
    await fixture.tick();
    await fixture.stack.seedInstances([{ id: 'idle', job: 'fanout', params: { count: 1 }, schedule: '1h' }]);
    await start();

    // Act: before a worker ran, and after one drained the queue
    const queued = await json(await api('/api/instances'), instancesSchema);
    const page = await (await api('/')).text();
    await fixture.drainWorker();
    const done = await json(await api('/api/instances'), instancesSchema);
    const fan = await json(await api('/api/instances/fan'), detailSchema);
    const failed = await json(await api('/api/runs?status=failed'), runsSchema);

    // Assess: queued tasks are shown running (from the board), no run record yet
    expect(queued.instances.map((i) => [i.id, i.badge, i.state, i.running.map((r) => r.status)])).toEqual([
      ['broken', 'running', 'enabled', ['queued']],
      ['fan', 'running', 'enabled', ['queued', 'queued']],
      ['idle', 'never run', 'enabled', []],
    ]);
    expect(queued.problems).toEqual([]);
    expect(page).toContain('<meta name="ujr-where" content="stack &#34;ujr-test&#34;">');
    // after the worker: last runs from the runs table, nothing left on the board
    expect(done.instances.map((i) => [i.id, i.badge, i.lastRun?.status ?? null, i.running.length])).toEqual([
      ['broken', 'failed', 'failed', 0],
      ['fan', 'ok', 'succeeded', 0],
      ['idle', 'never run', null, 0],
    ]);
    expect(fan.tasks.map((t) => [t.task, t.lastRun?.status])).toEqual([['item', 'succeeded']]);
    expect(fan.recentRuns.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    // params as validated by the job type, defaults filled in
    expect(fan.params).toMatchObject({ count: 2, attempts: 3 });
    expect(failed.runs.map((r) => [r.instanceId, r.status])).toEqual([['broken', 'failed']]);
  });

  it('gives a queued run from the board, a recorded run from the runs table, and 404 for neither', async () => {
    // Prepare
    await fixture.stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 1 }, schedule: '1m' }]);
    await fixture.tick();
    await start();
    const [queuedBrief] = (await json(await api('/api/instances/fan'), detailSchema)).running;
    if (!queuedBrief) throw new Error('nothing queued on the board');

    // Act
    const queued = await json(await api(`/api/runs/${queuedBrief.id}`), runSchema);
    await fixture.drainWorker();
    const [recorded] = await fixture.stack.store.listRuns({ instanceId: 'fan' });
    if (!recorded) throw new Error('the worker recorded no run');
    const ended = await json(await api(`/api/runs/${recorded.id}`), runSchema);
    const missing = await api('/api/runs/01NOSUCHRUN');
    const missingInstance = await api('/api/instances/nobody');

    // Assess
    expect(queued).toMatchObject({ id: queuedBrief.id, instanceId: 'fan', task: 'item', status: 'queued', origin: 'schedule', input: { i: 0 } });
    expect(ended).toMatchObject({ id: recorded.id, status: 'succeeded' });
    expect(missing.status).toBe(404);
    expect((await json(missing, errorSchema)).error).toBe('no run has id "01NOSUCHRUN"');
    expect(missingInstance.status).toBe(404);
    expect((await json(missingInstance, errorSchema)).error).toBe(`no job instance "nobody" in the instances table of stack "${STACK}"; known: fan`);
  });

  it("gives the stack's shared-limit buckets from the instances table", async () => {
    const now = Date.now();
    const spec = { name: 'archive-host', key: 'example.org', concurrency: 1 };
    const held = await fixture.stack.store.limits.acquireLimits({ holder: 'attempt-1', ttlMs: 60_000, limits: [spec] }, now);
    const refused = await fixture.stack.store.limits.acquireLimits({ holder: 'attempt-2', ttlMs: 60_000, limits: [spec] }, now);
    await start();

    const { limits } = await json(await api('/api/limits'), z.object({ limits: z.array(z.looseObject({ name: z.string(), key: z.string(), held: z.number(), refused: z.number(), waiting: z.number() })) }));

    expect([held.granted, refused.granted]).toEqual([true, false]);
    expect(limits).toEqual([expect.objectContaining({ name: 'archive-host', key: 'example.org', concurrency: 1, held: 1, refused: 1, waiting: 0 })]);
  });

  it("gives a run's log lines from CloudWatch Logs, by level and after a seq", async () => {
    // Prepare: a run the worker recorded, and the lines CloudWatch Logs holds for it
    await fixture.stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 1 }, schedule: '1m' }]);
    await fixture.tick();
    await fixture.drainWorker();
    const [run] = await fixture.stack.store.listRuns({ instanceId: 'fan' });
    if (!run) throw new Error('the worker recorded no run');
    const fields = { runId: run.id, instanceId: 'fan', task: 'item' };
    const t0 = run.startedAt ?? run.queuedAt;
    fixture.logLines.set(`${LOG_GROUPS.scheduler} ${run.id}`, [{ eventId: 's1', timestamp: t0 - 50, message: powertoolsLine('INFO', 'dispatched', t0 - 50, fields) }]);
    fixture.logLines.set(`${LOG_GROUPS.worker} ${run.id}`, [
      { eventId: 'w1', timestamp: t0, message: powertoolsLine('INFO', 'working on item 0', t0, fields) },
      { eventId: 'w2', timestamp: t0 + 20, message: powertoolsLine('WARN', 'slow disk', t0 + 20, { ...fields, error: 'EIO' }) },
      { eventId: 'w3', timestamp: t0 + 30, message: `2026-01-01T00:00:00Z\t${JSON.stringify({ runId: run.id, note: 'custom' })}\n` },
    ]);
    await start();

    // Act
    const all = await json(await api(`/api/runs/${run.id}/logs`), logsSchema);
    const warnings = await json(await api(`/api/runs/${run.id}/logs?level=warn`), logsSchema);
    const after = await json(await api(`/api/runs/${run.id}/logs?after=2`), logsSchema);

    // Assess: every log group searched for the run id, from a while before it was queued
    const calls = fixture.logsMock.commandCalls(FilterLogEventsCommand).map((call) => call.args[0].input);
    expect([...new Set(calls.map((input) => input.logGroupName))].sort()).toEqual(Object.values(LOG_GROUPS).sort());
    expect(new Set(calls.map((input) => input.filterPattern))).toEqual(new Set([`{ $.runId = "${run.id}" }`]));
    expect(calls.every((input) => input.startTime === run.queuedAt - 5 * 60_000)).toBe(true);
    // Powertools lines by their level and message (and error), other lines as written
    expect(all.lines.map((l) => [l.seq, l.at, l.level, l.message])).toEqual([
      [1, t0 - 50, 'info', 'dispatched'],
      [2, t0, 'info', 'working on item 0'],
      [3, t0 + 20, 'warn', 'slow disk: EIO'],
      [4, t0 + 30, 'info', `2026-01-01T00:00:00Z\t${JSON.stringify({ runId: run.id, note: 'custom' })}`],
    ]);
    expect(warnings.lines.map((l) => l.message)).toEqual(['slow disk: EIO']);
    expect(after.lines.map((l) => l.seq)).toEqual([3, 4]);
  });
});

describe('status page over a stack: actions', () => {
  it('runs an instance on "Run now" through the scheduler function; the task is queued on the board and a worker runs it', async () => {
    // Prepare
    await fixture.stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 1 }, schedule: '1h' }]);
    await start();

    // Act
    const res = await post('/api/instances/fan/run');
    const body = await json(res, runNowSchema);
    const whileQueued = await json(await api('/api/instances'), instancesSchema);
    await fixture.drainWorker();
    const after = await json(await api('/api/instances'), instancesSchema);

    // Assess
    expect(res.status).toBe(202);
    expect(fixture.invocations).toEqual([{ instanceId: 'fan' }]);
    expect(fixture.lambdaMock.commandCalls(InvokeCommand)[0]?.args[0].input).toMatchObject({ InvocationType: 'RequestResponse' });
    expect(body.report.dispatched).toEqual({ queue: 1, conductor: 0, fargate: 0 });
    expect(body.message).toBe(`Asked the scheduler of stack "${STACK}" for a run of fan: dispatched 1 (queue 1, conductor 0, fargate 0).`);
    expect(whileQueued.instances[0]?.running.map((r) => [r.task, r.status])).toEqual([['item', 'queued']]);
    expect(after.instances[0]).toMatchObject({ badge: 'ok', lastRun: { task: 'item', status: 'succeeded' }, running: [] });
    const runs = await fixture.stack.store.listRuns({ instanceId: 'fan' });
    expect(runs.map((r) => [r.origin, r.status])).toEqual([['manual', 'succeeded']]);
  });

  it('runs one task with an input, refuses an unknown task before invoking, and answers 422 when the scheduler function refuses', async () => {
    // Prepare: an entry only the scheduler finds broken (its secret cannot be resolved)
    await fixture.stack.seedInstances([
      { id: 'fan', job: 'fanout', params: { count: 0 }, schedule: '1h' },
      { id: 'keyed', job: 'secretive', params: { token: { $secret: 'ssm:/ujr/missing' } }, schedule: '1h' },
    ]);
    await start();

    // Act
    const task = await post('/api/instances/fan/run', { task: 'item', input: { i: 7 } });
    const unknownTask = await post('/api/instances/fan/run', { task: 'dance' });
    const inputWithoutTask = await post('/api/instances/fan/run', { input: { i: 1 } });
    const refused = await post('/api/instances/keyed/run');

    // Assess
    expect(task.status).toBe(202);
    expect((await json(task, runNowSchema)).trigger).toMatchObject({ instanceId: 'fan', task: 'item', input: { i: 7 } });
    expect(unknownTask.status).toBe(404);
    expect((await json(unknownTask, errorSchema)).error).toBe('job type "fanout" has no task "dance"; its tasks: item');
    expect(inputWithoutTask.status).toBe(400);
    expect(fixture.invocations).toEqual([{ instanceId: 'fan', task: 'item', input: { i: 7 } }, { instanceId: 'keyed' }]);
    expect(refused.status).toBe(422);
    expect((await json(refused, errorSchema)).error).toContain('refused the request: Error: instance "keyed" is broken');
    const [queued] = await fixture.stack.store.listRoute('queue');
    expect(queued).toMatchObject({ instanceId: 'fan', task: 'item', origin: 'manual' });
  });

  it('cancels a queued task by asking its board entry to stop, and answers 409 once the run has ended', async () => {
    // Prepare
    await fixture.stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 1 }, schedule: '1m' }]);
    await fixture.tick();
    await start();
    const [queuedBrief] = (await json(await api('/api/instances/fan'), detailSchema)).running;
    if (!queuedBrief) throw new Error('nothing queued on the board');

    // Act
    const cancel = await post(`/api/runs/${queuedBrief.id}/cancel`);
    const [entry] = await fixture.stack.store.listRoute('queue');
    await fixture.drainWorker();
    const [ended] = await fixture.stack.store.listRuns({ instanceId: 'fan' });
    const late = await post(`/api/runs/${ended?.id ?? 'none'}/cancel`);

    // Assess
    expect(cancel.status).toBe(202);
    expect(entry).toMatchObject({ runId: queuedBrief.id, stopRequested: true });
    expect(ended).toMatchObject({ id: queuedBrief.id, status: 'cancelled', error: { name: 'CancelledError' } });
    expect(late.status).toBe(409);
    expect((await json(late, errorSchema)).error).toContain('only a queued, running or retrying run can be cancelled');
  });

  it('disables and enables an instance as a run-time override, which the scheduler applies at its next tick', async () => {
    // Prepare
    await fixture.stack.seedInstances([
      { id: 'a', job: 'fanout', params: { count: 1 }, schedule: '1m' },
      { id: 'b', job: 'fanout', params: { count: 1 }, schedule: '1m' },
    ]);
    await start();
    const { scheduler } = fixture.stack.scheduler((await import('../../fixtures/aws/jobs.js')).default);

    // Act
    const disabled = await post('/api/instances/b/disable');
    const listed = await json(await api('/api/instances'), instancesSchema);
    const whileDisabled = await scheduler.tick();
    const enabled = await post('/api/instances/b/enable');
    const afterEnable = await scheduler.tick();
    const missing = await post('/api/instances/x/disable');

    // Assess
    expect(disabled.status).toBe(200);
    expect(await disabled.json()).toEqual({ id: 'b', enabled: false });
    expect(listed.instances.map((i) => [i.id, i.enabled, i.state])).toEqual([
      ['a', true, 'enabled'],
      ['b', false, 'disabled'],
    ]);
    expect(whileDisabled.planned).toEqual(['a']);
    expect(enabled.status).toBe(200);
    expect(afterEnable.planned).toEqual(['b']);
    // an override: the entry as deployed is kept, so a redeploy does not undo it
    expect((await fixture.stack.store.listInstanceEntries()).find((e) => e.id === 'b')).toMatchObject({ enabled: true });
    expect(missing.status).toBe(404);
    expect((await json(missing, errorSchema)).error).toBe(`no job instance "x" in the instances table of stack "${STACK}"; known: a, b`);
  });
});

describe('status page over a stack without the job types at hand', () => {
  it("shows the tasks an instance ran, and leaves judging a task to the scheduler function", async () => {
    // Prepare: the CLI's target without a jobs module (a machine that only has the stack's name)
    await fixture.stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 1 }, schedule: '1m' }]);
    await fixture.tick();
    await fixture.drainWorker();
    aws = await fixture.openContext();
    target = stackTarget(aws, {});
    server = await startUiServer({ source: stackStatusSource(aws, target), eventIntervalMs: 100 });

    // Act
    const fan = await json(await api('/api/instances/fan'), detailSchema);
    const unknownTask = await post('/api/instances/fan/run', { task: 'dance' });

    // Assess
    expect(fan.tasks.map((t) => [t.task, t.lastRun?.status])).toEqual([['item', 'succeeded']]);
    expect(fixture.invocations).toEqual([{ instanceId: 'fan', task: 'dance', input: {} }]);
    expect(unknownTask.status).toBe(422);
    expect((await json(unknownTask, errorSchema)).error).toContain('refused the request');
  });
});

describe('status page over a stack: the same guards as locally', () => {
  it('refuses actions without the CSRF header or from a foreign origin, and invokes nothing', async () => {
    // Prepare
    await fixture.stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 1 }, schedule: '1h' }]);
    await start();
    const csrf = await csrfToken();

    // Act
    const noCsrf = await api('/api/instances/fan/run', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    const foreign = await api('/api/instances/fan/disable', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-UJR-CSRF': csrf, Origin: 'http://evil.example' },
      body: '{}',
    });
    const rebinding = await new Promise<number>((resolveStatus, reject) => {
      const req = request({ host: '127.0.0.1', port: server?.port, path: '/api/instances', headers: { Host: `attacker.example:${server?.port}` } }, (res) => {
        res.resume();
        resolveStatus(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });

    // Assess
    expect(noCsrf.status).toBe(403);
    expect(foreign.status).toBe(403);
    expect(rebinding).toBe(403);
    expect(fixture.invocations).toEqual([]);
    const listed = await json(await api('/api/instances'), instancesSchema);
    expect(listed.instances.map((i) => [i.id, i.enabled])).toEqual([['fan', true]]);
  });

  it('needs a token off loopback, and then on every request', async () => {
    // Act
    const unsafe = start({ host: '0.0.0.0' });
    await expect(unsafe).rejects.toThrow('without a token');
    await target?.close();
    await start({ host: '0.0.0.0', token: 's3cret' });
    const without = await api('/api/instances');
    const withBearer = await api('/api/instances', { headers: { Authorization: 'Bearer s3cret' } });

    // Assess
    expect(without.status).toBe(401);
    expect(withBearer.status).toBe(200);
    expect(server?.url).toMatch(/\?token=s3cret$/);
  });
});

describe('ujr ui --stack', () => {
  it('serves the page over the stack named by --stack until stopped, and exits 0', async () => {
    // Prepare
    await fixture.stack.seedInstances([{ id: 'fan', job: 'fanout', params: { count: 1 }, schedule: '1h' }]);
    const out: string[] = [];
    const err: string[] = [];
    const stop = new AbortController();
    const opened: string[] = [];
    let printed: (url: string) => void = () => undefined;
    const url = new Promise<string>((resolve) => (printed = resolve));

    // Act
    const exit = main(
      ['node', 'ujr', '--stack', STACK, '--jobs', JOBS_MODULE, 'ui', '--port', '0'],
      {
        out: (text) => {
          out.push(text);
          const match = /^status page: (\S+)/.exec(text);
          if (match?.[1]) printed(match[1]);
        },
        err: (text) => err.push(text),
      },
      {
        openStack: (name) => {
          opened.push(name);
          return fixture.openContext(name);
        },
        uiSignal: stop.signal,
      },
    );
    const base = await Promise.race([url, exit.then((code) => Promise.reject(new Error(`ujr ui exited ${code}: ${err.join('\n')}`)))]);
    const listed = instancesSchema.parse(await (await fetch(new URL('/api/instances', base))).json());
    const page = await (await fetch(base)).text();
    stop.abort();
    const code = await exit;

    // Assess
    expect(opened).toEqual([STACK]);
    expect(listed.instances.map((i) => [i.id, i.badge])).toEqual([['fan', 'never run']]);
    expect(page).toContain('content="stack &#34;ujr-test&#34;"');
    expect(code).toBe(0);
    expect(out.at(-1)).toBe('status page stopped');
    expect(err).toEqual([]);
  });

  it('exits 2 naming the stack when its outputs are not found, without serving anything', async () => {
    // Prepare
    const out: string[] = [];
    const err: string[] = [];

    // Act
    const code = await main(
      ['node', 'ujr', '--stack', 'ujr-prod', '--jobs', JOBS_MODULE, 'ui', '--port', '0'],
      { out: (text) => out.push(text), err: (text) => err.push(text) },
      { openStack: (name) => fixture.openContext(name) },
    );

    // Assess
    expect(code).toBe(2);
    expect(err.join('\n')).toContain('has no outputs of stack "ujr-prod"; it has "ujr-test"');
    expect(out).toEqual([]);
  });
});
