/**
 * The status page's server (`ujr ui`) over a real SQLite file: its JSON API, server-sent events,
 * actions (Run now, enable/disable), and its guards (token, Host, CSRF, content type, headers).
 * The page itself is tested in Chromium in ui-browser.test.ts.
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startUiServer, type UiServer } from '../../core/ui/server.js';
import { MASK } from '../../core/ui/status.js';
import { UiSandbox } from '../fixtures/ui/sandbox.js';
import { uiClient } from '../helpers/ui-client.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const HOUR = 3_600_000;

const errorSchema = z.object({ error: z.string() });
const briefSchema = z.object({ id: z.string(), task: z.string(), status: z.string(), progress: z.object({ current: z.number() }).passthrough().optional() }).passthrough();
const instancesSchema = z.object({
  instances: z.array(
    z.object({
      id: z.string(),
      badge: z.string(),
      state: z.string(),
      schedule: z.string(),
      enabled: z.boolean(),
      lastRun: briefSchema.optional(),
      running: z.array(briefSchema),
      planError: z.object({ message: z.string() }).optional(),
    }),
  ),
  problems: z.array(z.string()),
});
const detailSchema = z.object({
  id: z.string(),
  params: z.record(z.string(), z.unknown()),
  tasks: z.array(z.object({ task: z.string(), lastRun: briefSchema.optional() })),
  hourly: z.array(z.object({ hour: z.number(), succeeded: z.number(), failed: z.number() })),
  durations: z.array(z.object({ id: z.string(), durationMs: z.number() })),
});
const runsSchema = z.object({ runs: z.array(briefSchema.extend({ instanceId: z.string() })) });
const logsSchema = z.object({ lines: z.array(z.object({ seq: z.number(), level: z.string(), message: z.string() })) });
const snapshotSchema = z.object({ running: z.array(z.object({ id: z.string(), progress: z.object({ current: z.number() }).nullable() })) });

let sandbox: UiSandbox;
let server: UiServer | undefined;

beforeEach(() => {
  sandbox = new UiSandbox();
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await sandbox.close();
});

async function start(options: { token?: string; host?: string; eventIntervalMs?: number } = {}): Promise<UiServer> {
  server = await startUiServer({ store: sandbox.store, paths: sandbox.paths, ...options });
  return server;
}

const { api, json, csrfToken } = uiClient(() => server);

async function postAction(path: string, headers: Record<string, string>, body = '{}'): Promise<Response> {
  return api(path, { method: 'POST', headers, body });
}

describe('status page API', () => {
  it('lists instances with badges: failed, running, never run, outdated, ok', async () => {
    // Prepare
    const now = Date.now();
    await sandbox.commit(
      sandbox.run({ instanceId: 'alpha', task: 'hello', status: 'succeeded', queuedAt: now - 9_000, endedAt: now - 8_000 }),
      sandbox.run({ instanceId: 'alpha', task: 'crunch', status: 'failed', error: { name: 'Error', message: 'boom' } }),
      sandbox.run({ instanceId: 'beta', task: 'crunch', status: 'running', endedAt: undefined, progress: { current: 3, total: 10, updatedAt: now } }),
      sandbox.run({ instanceId: 'delta', task: 'hello', queuedAt: now - 10 * 60_000, startedAt: now - 10 * 60_000, endedAt: now - 10 * 60_000 + 50 }),
      sandbox.run({ instanceId: 'eps', task: 'hello' }),
    );
    await start();

    // Act
    const body = await json(await api('/api/instances'), instancesSchema);

    // Assess
    const byId = new Map(body.instances.map((i) => [i.id, i]));
    expect(Object.fromEntries([...byId].map(([id, i]) => [id, i.badge]))).toEqual({
      alpha: 'failed',
      beta: 'running',
      gamma: 'never run',
      delta: 'outdated',
      eps: 'ok',
    });
    expect(byId.get('alpha')?.lastRun?.task).toBe('crunch');
    expect(byId.get('beta')?.running[0]?.progress?.current).toBe(3);
    expect(byId.get('eps')).toMatchObject({ schedule: '0 * * * *', enabled: true, state: 'enabled' });
    expect(body.problems).toEqual([]);
  });

  it("shows an instance with secret-looking params masked, its tasks' last runs and hourly counts", async () => {
    // Prepare
    const now = Date.now();
    await sandbox.commit(
      sandbox.run({ instanceId: 'alpha', task: 'hello', queuedAt: now - 3 * HOUR, startedAt: now - 3 * HOUR, endedAt: now - 3 * HOUR + 1_500 }),
      sandbox.run({ instanceId: 'alpha', task: 'hello', status: 'failed', queuedAt: now - 2_000, endedAt: now - 1_000 }),
      sandbox.run({ instanceId: 'alpha', task: 'crunch', queuedAt: now - 50 * HOUR, startedAt: now - 50 * HOUR, endedAt: now - 50 * HOUR + 10 }),
    );
    await start();

    // Act
    const detail = await json(await api('/api/instances/alpha'), detailSchema);

    // Assess
    expect(detail.params).toEqual({
      region: 'eu-west-1',
      apiKey: MASK,
      password: MASK,
      database: MASK,
      nested: { clientSecret: MASK, label: 'shown' },
    });
    expect(detail.tasks.map((t) => [t.task, t.lastRun?.status])).toEqual([
      ['hello', 'failed'],
      ['crunch', 'succeeded'],
    ]);
    expect(detail.hourly).toHaveLength(48);
    expect(detail.hourly.reduce((n, b) => n + b.succeeded, 0)).toBe(1);
    expect(detail.hourly.reduce((n, b) => n + b.failed, 0)).toBe(1);
    expect(detail.hourly.at(-1)?.failed).toBe(1);
    expect(detail.durations.map((d) => d.durationMs)).toContain(1_500);
  });

  it('lists runs by instance, task and status, and gives one run and its logs by level and seq', async () => {
    // Prepare
    const [failed] = await sandbox.commit(
      sandbox.run({ instanceId: 'alpha', task: 'crunch', status: 'failed', error: { name: 'Error', message: 'boom', stack: 'Error: boom\n    at crunch' } }),
      sandbox.run({ instanceId: 'alpha', task: 'hello' }),
      sandbox.run({ instanceId: 'beta', task: 'crunch' }),
    );
    if (!failed) throw new Error('seed failed');
    await sandbox.logs(failed.id, [
      ['debug', 'looking'],
      ['info', 'starting'],
      ['warn', 'slow disk'],
      ['error', 'boom'],
    ]);
    await start();

    // Act
    const alpha = await json(await api('/api/runs?instance=alpha'), runsSchema);
    const crunchFailed = await json(await api('/api/runs?task=crunch&status=failed&limit=5'), runsSchema);
    const run = await (await api(`/api/runs/${failed.id}`)).json();
    const warnUp = await json(await api(`/api/runs/${failed.id}/logs?level=warn`), logsSchema);
    const afterTwo = await json(await api(`/api/runs/${failed.id}/logs?after=2`), logsSchema);
    const badStatus = await api('/api/runs?status=exploded');

    // Assess
    expect(alpha.runs.map((r) => r.task).sort()).toEqual(['crunch', 'hello']);
    expect(crunchFailed.runs.map((r) => r.id)).toEqual([failed.id]);
    expect(run).toMatchObject({ id: failed.id, error: { stack: 'Error: boom\n    at crunch' } });
    expect(warnUp.lines.map((l) => l.message)).toEqual(['slow disk', 'boom']);
    expect(afterTwo.lines.map((l) => l.seq)).toEqual([3, 4]);
    expect(badStatus.status).toBe(400);
  });

  it('pages the runs explorer by its next cursor and refuses a bad status list, cursor, time, match or zoom', async () => {
    // Prepare
    await start();
    const base = Date.now() - HOUR;
    const runs = await sandbox.commit(...Array.from({ length: 5 }, (_, i) => sandbox.run({ instanceId: 'alpha', task: 'crunch', status: i % 2 ? 'failed' : 'interrupted', queuedAt: base })));
    const pageSchema = runsSchema.extend({ next: z.string().nullable() });

    // Act
    const first = await json(await api('/api/runs?status=failed,interrupted&limit=3'), pageSchema);
    const second = await json(await api(`/api/runs?status=failed,interrupted&limit=3&before=${encodeURIComponent(first.next ?? '')}`), pageSchema);
    const refused = await Promise.all(
      ['/api/runs?status=failed,exploded', '/api/runs?before=yesterday', '/api/runs?from=soon', '/api/runs?q=x&match=everything', '/api/instances/alpha/timeline?hours=0'].map(async (path) => (await api(path)).status),
    );
    const retryMissing = await api('/api/runs/no-such-run/retry', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-UJR-CSRF': await csrfToken() }, body: '{}' });

    // Assess
    expect(first.runs.length).toBe(3);
    expect(first.next).toBe(`${base}.${first.runs[2]?.id ?? ''}`);
    expect(second.next).toBeNull();
    expect([...first.runs, ...second.runs].map((r) => r.id)).toEqual(runs.map((r) => r.id).sort().reverse());
    expect(refused).toEqual([400, 400, 400, 400, 400]);
    expect(retryMissing.status).toBe(404);
  });

  it('answers unknown instance and run ids with 404 errors naming the id', async () => {
    // Prepare
    await start();
    const csrf = await csrfToken();

    // Act
    const responses = await Promise.all([
      api('/api/instances/no-such-instance'),
      api('/api/runs/no-such-run'),
      api('/api/runs/no-such-run/logs'),
      postAction('/api/instances/no-such-instance/run', { 'Content-Type': 'application/json', 'X-UJR-CSRF': csrf }),
      postAction('/api/instances/no-such-instance/disable', { 'Content-Type': 'application/json', 'X-UJR-CSRF': csrf }),
    ]);

    // Assess
    for (const res of responses) {
      expect(res.status).toBe(404);
      const body = await json(res, errorSchema);
      expect(body.error).toMatch(/"no-such-(instance|run)"/);
    }
  });

  it('sets the security headers on every response, pages, scripts, API and errors alike', async () => {
    // Prepare
    await start();

    // Act
    const responses = await Promise.all(['/', '/app.js', '/app.css', '/api/instances', '/api/nothing', '/nothing'].map((p) => api(p)));

    // Assess
    for (const res of responses) {
      expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    }
    const html = await responses[0]?.text();
    expect(html).not.toMatch(/<script>|<script [^>]*>[^<]/);
    expect(html).toContain('<script src="/app.js"');
  });

  it('queues a trigger on "Run now", for the instance or one task with an input', async () => {
    // Prepare
    await start();
    const headers = { 'Content-Type': 'application/json', 'X-UJR-CSRF': await csrfToken() };

    // Act
    const plan = await postAction('/api/instances/gamma/run', headers);
    const task = await postAction('/api/instances/gamma/run', headers, JSON.stringify({ task: 'crunch', input: { n: 7 } }));
    const badTask = await postAction('/api/instances/gamma/run', headers, JSON.stringify({ task: 'nope' }));
    const badBody = await postAction('/api/instances/gamma/run', headers, JSON.stringify({ task: 3 }));

    // Assess
    expect([plan.status, task.status, badTask.status, badBody.status]).toEqual([202, 202, 404, 400]);
    const triggers = await sandbox.store.takeTriggers(10);
    expect(triggers.map((t) => ({ instanceId: t.instanceId, task: t.task, input: t.input }))).toEqual([
      { instanceId: 'gamma', task: undefined, input: undefined },
      { instanceId: 'gamma', task: 'crunch', input: { n: 7 } },
    ]);
  });

  it('disables and enables an instance in the instances file, and un-retires it on enable', async () => {
    // Prepare
    await sandbox.store.setInstanceStatus('beta', { instanceId: 'beta', retiredAt: Date.now(), retiredReason: 'finished' });
    await start();
    const headers = { 'Content-Type': 'application/json', 'X-UJR-CSRF': await csrfToken() };

    // Act
    const disabled = await postAction('/api/instances/beta/disable', headers);
    const afterDisable = sandbox.enabledFlags();
    const listed = await json(await api('/api/instances'), instancesSchema);
    const enabled = await postAction('/api/instances/beta/enable', headers);

    // Assess
    expect([disabled.status, enabled.status]).toEqual([200, 200]);
    expect(afterDisable.beta).toBe(false);
    expect(listed.instances.find((i) => i.id === 'beta')?.enabled).toBe(false);
    expect(sandbox.enabledFlags()).toMatchObject({ beta: true, alpha: undefined });
    expect(await sandbox.store.getInstanceStatus('beta')).toBeUndefined();
  });

  it('refuses actions without the CSRF header, from a foreign origin, or without a JSON content type', async () => {
    // Prepare
    await start();
    const csrf = await csrfToken();
    const origin = `http://127.0.0.1:${server?.port}`;

    // Act
    const noHeader = await postAction('/api/instances/beta/disable', { 'Content-Type': 'application/json' });
    const wrongHeader = await postAction('/api/instances/beta/disable', { 'Content-Type': 'application/json', 'X-UJR-CSRF': 'guess' });
    const foreign = await postAction('/api/instances/beta/disable', { 'Content-Type': 'application/json', 'X-UJR-CSRF': csrf, Origin: 'http://evil.example' });
    const form = await postAction('/api/instances/beta/disable', { 'Content-Type': 'text/plain', 'X-UJR-CSRF': csrf });
    const getAction = await api('/api/instances/beta/disable');
    const sameOrigin = await postAction('/api/instances/beta/run', { 'Content-Type': 'application/json', 'X-UJR-CSRF': csrf, Origin: origin });

    // Assess
    expect([noHeader.status, wrongHeader.status, foreign.status, form.status]).toEqual([403, 403, 403, 415]);
    expect(getAction.status).toBe(404);
    expect(sameOrigin.status).toBe(202);
    expect(sandbox.enabledFlags().beta).toBeUndefined();
  });

  it('refuses a Host header that is not the loopback address (DNS rebinding)', async () => {
    // Prepare
    const { port } = await start();

    // Act
    const status = await new Promise<number>((resolveStatus, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/api/instances', headers: { Host: `attacker.example:${port}` } }, (res) => {
        res.resume();
        resolveStatus(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });

    // Assess
    expect(status).toBe(403);
  });

  it('requires the token on every request when one is set: Bearer, or the cookie set from ?token=', async () => {
    // Prepare
    const { url } = await start({ token: 's3cret-token' });

    // Act
    const without = await api('/api/instances');
    const page = await api('/');
    const bearer = await api('/api/instances', { headers: { Authorization: 'Bearer s3cret-token' } });
    const wrong = await api('/api/instances', { headers: { Authorization: 'Bearer nope' } });
    const first = await fetch(url, { redirect: 'manual' });
    const cookie = first.headers.get('set-cookie')?.split(';')[0] ?? '';
    const withCookie = await api('/api/instances', { headers: { Cookie: cookie } });

    // Assess
    expect(url).toContain('?token=s3cret-token');
    expect([without.status, page.status, bearer.status, wrong.status]).toEqual([401, 401, 200, 401]);
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/');
    expect(first.headers.get('set-cookie')).toMatch(/HttpOnly; SameSite=Strict/);
    expect(withCookie.status).toBe(200);
  });

  it('refuses to bind a non-loopback address without a token', async () => {
    // Act
    const starting = startUiServer({ store: sandbox.store, paths: sandbox.paths, host: '0.0.0.0' });

    // Assess
    await expect(starting).rejects.toThrow(/--token.*127\.0\.0\.1/);
  });

  it('pushes snapshots over server-sent events when progress changes', async () => {
    // Prepare
    const [running] = await sandbox.commit(
      sandbox.run({ instanceId: 'beta', task: 'crunch', status: 'running', endedAt: undefined, progress: { current: 1, total: 10, updatedAt: Date.now() } }),
    );
    if (!running) throw new Error('seed failed');
    await start({ eventIntervalMs: 50 });
    const controller = new AbortController();
    const res = await api('/api/events', { signal: controller.signal });
    if (!res.body) throw new Error('no event stream');
    const reader: ReadableStreamDefaultReader<Uint8Array> = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const nextProgress = async (): Promise<number | undefined> => {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = /^event: snapshot\ndata: (.*)$/m.exec(event)?.[1];
          if (data) return snapshotSchema.parse(JSON.parse(data)).running.find((r) => r.id === running.id)?.progress?.current;
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('event stream ended');
        buffer += decoder.decode(value, { stream: true });
      }
    };

    // Act
    const before = await nextProgress();
    await sandbox.commit({ ...running, progress: { current: 6, total: 10, updatedAt: Date.now() } });
    const after = await nextProgress();
    controller.abort();

    // Assess
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(before).toBe(1);
    expect(after).toBe(6);
  });
});

describe('ujr ui', () => {
  it('prints the URL, serves the page and exits 0 on SIGTERM', async () => {
    // Prepare
    const child = spawn(
      process.execPath,
      [join(root, 'bin/ujr.js'), '--home', sandbox.paths.home, '--jobs', sandbox.paths.jobsModule, '--instances', sandbox.paths.instancesFile, 'ui', '--port', '0'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
    try {
      const url = await new Promise<string>((resolveUrl, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          const found = /http:\/\/127\.0\.0\.1:\d+\/\S*/.exec(stdout)?.[0];
          if (found) resolveUrl(found);
        });
        void exited.then((code) => reject(new Error(`ujr ui exited ${code}: ${stderr}`)));
      });

      // Act
      const res = await fetch(new URL('/api/instances', url));
      const body = await json(res, instancesSchema);
      child.kill('SIGTERM');
      const code = await exited;

      // Assess
      expect(body.instances.map((i) => i.id)).toContain('alpha');
      expect(code).toBe(0);
      expect(stdout).toContain('status page stopped');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('prints only { url } as JSON with --json, and nothing when it stops', async () => {
    // Prepare
    const child = spawn(
      process.execPath,
      [join(root, 'bin/ujr.js'), '--json', '--home', sandbox.paths.home, '--jobs', sandbox.paths.jobsModule, '--instances', sandbox.paths.instancesFile, 'ui', '--port', '0'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
    try {
      await new Promise<void>((resolveLine, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          if (stdout.includes('\n')) resolveLine();
        });
        void exited.then((code) => reject(new Error(`ujr ui exited ${code}`)));
      });

      // Act
      const { url } = z.object({ url: z.string() }).strict().parse(JSON.parse(stdout));
      const res = await fetch(new URL('/api/instances', url));
      child.kill('SIGTERM');
      const code = await exited;

      // Assess
      expect(res.status).toBe(200);
      expect(code).toBe(0);
      expect(stdout.trim().split('\n')).toHaveLength(1);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('exits 2 naming --token when asked to bind a public address without one', async () => {
    // Act
    const child = spawn(
      process.execPath,
      [join(root, 'bin/ujr.js'), '--home', sandbox.paths.home, '--jobs', sandbox.paths.jobsModule, '--instances', sandbox.paths.instancesFile, 'ui', '--host', '0.0.0.0', '--port', '0'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UJR_UI_TOKEN: '' } },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolveExit) => child.on('exit', (c) => resolveExit(c)));

    // Assess
    expect(code).toBe(2);
    expect(stderr).toMatch(/--token/);
  });
});
