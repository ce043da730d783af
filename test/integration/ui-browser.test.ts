/**
 * The status page in real headless Chromium (Debian's `chromium`, driven by playwright-core; no
 * browser download): it loads and lists instances, shows a failed run's stack, moves a progress
 * bar live, runs an instance on "Run now" through a real Runner, keeps an XSS payload inert, and
 * disables an instance. Without /usr/bin/chromium the suite fails, naming what to install.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, openPage } from '../helpers/browser.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { waitingMessage } from '../../core/engine/limit-messages.js';
import { Runner } from '../../core/engine/runner.js';
import { startUiServer, type UiServer } from '../../core/ui/server.js';
import jobs from '../fixtures/ui/jobs.js';
import { UiSandbox } from '../fixtures/ui/sandbox.js';

const WAIT_MS = 10_000;

let browser: Browser;
let context: BrowserContext;
let page: Page;
let sandbox: UiSandbox;
let server: UiServer;
let runner: Runner | undefined;
const pageErrors: string[] = [];

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

beforeEach(async () => {
  sandbox = new UiSandbox();
  server = await startUiServer({ store: sandbox.store, paths: sandbox.paths, eventIntervalMs: 200 });
  ({ context, page } = await openPage(browser, pageErrors));
});

afterEach(async () => {
  await context?.close();
  await runner?.stop(200);
  runner = undefined;
  await server?.close();
  await sandbox?.close();
});

async function open(hash: string): Promise<void> {
  await page.goto(`${server.url}${hash}`);
  await page.waitForSelector(`body[data-loaded="${hash}"]`, { timeout: WAIT_MS });
}

describe('status page in Chromium', () => {
  it('loads and lists the instances with their status badges', async () => {
    // Prepare
    await sandbox.commit(sandbox.run({ instanceId: 'alpha', task: 'crunch', status: 'failed', error: { name: 'Error', message: 'boom' } }));

    // Act
    await open('#/');

    // Assess
    const rows = await Promise.all((await page.locator('table.instances tbody tr').all()).map((row) => row.getAttribute('data-instance')));
    expect(rows).toEqual(['alpha', 'beta', 'gamma', 'delta', 'eps']);
    expect(await page.locator('tr[data-instance="alpha"] .badge').first().textContent()).toBe('failed');
    expect(await page.locator('tr[data-instance="gamma"] .badge').first().textContent()).toBe('never run');
    expect(await page.locator('#live').textContent()).toMatch(/live|connecting/);
    expect(pageErrors).toEqual([]);
  });

  it('shows each shared limit with its rule, level, holders, waiting tasks and throttled time', async () => {
    // Prepare: a rate bucket that granted its token and is backing off, a concurrency bucket with
    // one of two slots held, and a queued run waiting for the rate
    const now = Date.now();
    const api = { name: 'api', key: '', rate: { count: 10, perMs: 1_000, burst: 1 } };
    await sandbox.store.limits.acquireLimits({ holder: 'r1', ttlMs: 60_000, limits: [api] }, now);
    await sandbox.store.limits.backoffLimit('api', '', now + 60_000, now);
    await sandbox.store.limits.acquireLimits({ holder: 'r2', ttlMs: 60_000, limits: [{ name: 'host', key: 'a.example', concurrency: 2 }] }, now);
    const message = waitingMessage({ name: 'api', key: '', reason: 'backoff', until: now + 60_000 });
    await sandbox.commit(sandbox.run({ instanceId: 'alpha', task: 'crunch', status: 'queued', progress: { current: 0, message, updatedAt: now } }));

    // Act
    await open('#/');

    // Assess
    const cells = async (id: string) => (await page.locator(`table.limits tr[data-limit="${id}"] td`).allTextContents()).map((text) => text.trim());
    expect(await page.locator('table.limits tbody tr').count()).toBe(2);
    const [name, rule, tokens, inUse, waiting, until, granted, refused, throttled] = await cells('api#');
    expect([name, rule, tokens, inUse, waiting, granted, refused, throttled]).toEqual(['api', '10 per 1.0s, burst 1', '0.0', '–', '1', '1', '0', '1m0s']);
    expect(until).not.toBe('');
    const host = await cells('host#a.example');
    expect(host.slice(0, 5)).toEqual(['hostkey a.example', '2 at once', '–', '1/2', '0']);
    expect(pageErrors).toEqual([]);
  });

  it("shows a failed run's error with its stack, and filters its log by level", async () => {
    // Prepare
    const stack = 'Error: disk full\n    at crunchStep (jobs.ts:12:3)\n    at run (jobs.ts:40:5)';
    const [run] = await sandbox.commit(
      sandbox.run({ instanceId: 'alpha', task: 'crunch', status: 'failed', attempt: 3, maxAttempts: 3, error: { name: 'Error', message: 'disk full', stack } }),
    );
    if (!run) throw new Error('seed failed');
    await sandbox.logs(run.id, [
      ['info', 'starting crunch'],
      ['error', 'disk full'],
    ]);

    // Act
    await open(`#/runs/${run.id}`);
    const shownStack = await page.locator('pre.stack').textContent();
    const linesBefore = await page.locator('table.logs tr').count();
    await page.selectOption('select.level-filter', 'error');
    await page.locator('table.logs tr').nth(1).waitFor({ state: 'detached', timeout: WAIT_MS });

    // Assess
    expect(shownStack).toBe(stack);
    expect(await page.locator('h1 .badge').textContent()).toBe('failed');
    expect(await page.locator('dl.facts').textContent()).toContain('3 of 3');
    expect(linesBefore).toBe(2);
    expect(await page.locator('table.logs tr').textContent()).toContain('disk full');
  });

  it('moves a progress bar live as the run reports progress', async () => {
    // Prepare
    const [run] = await sandbox.commit(
      sandbox.run({ instanceId: 'beta', task: 'crunch', status: 'running', endedAt: undefined, progress: { current: 2, total: 10, updatedAt: Date.now() } }),
    );
    if (!run) throw new Error('seed failed');
    await open('#/');
    const bar = `tr[data-instance="beta"] progress[data-run-id="${run.id}"]`;
    const before = await page.locator(bar).getAttribute('value');

    // Act
    await sandbox.commit({ ...run, progress: { current: 7, total: 10, message: 'file 7', updatedAt: Date.now() } });

    // Assess
    await page.waitForSelector(`${bar}[value="7"]`, { timeout: WAIT_MS });
    expect(before).toBe('2');
    expect(await page.locator(`tr[data-instance="beta"] .progress-text`).textContent()).toContain('7/10 (70%) file 7');
  });

  it('runs an instance on "Run now": a real runner takes the trigger and the page shows the run succeeded', async () => {
    // Prepare
    runner = await sandbox.startRunner(jobs);
    await open('#/');
    expect(await page.locator('tr[data-instance="gamma"] .badge').first().textContent()).toBe('never run');

    // Act
    await page.click('tr[data-instance="gamma"] button.run-now');

    // Assess
    await page.waitForSelector('tr[data-instance="gamma"] td:nth-child(4) .badge.succeeded', { timeout: WAIT_MS });
    // The fixture job plans `hello` only when asked by hand, so this run is the click's.
    const runs = await sandbox.store.listRuns({ instanceId: 'gamma' });
    expect(runs.map((r) => [r.task, r.status])).toEqual([['hello', 'succeeded']]);
    await page.click('tr[data-instance="gamma"] td:nth-child(4) a');
    await page.waitForSelector('pre.result', { timeout: WAIT_MS });
    expect(await page.locator('pre.result').textContent()).toContain('"greeted": "gamma"');
    expect(pageErrors).toEqual([]);
  });

  it('renders an HTML payload in a task input as text, never as markup', async () => {
    // Prepare
    const payload = '<img src=x onerror="window.__xss=1">';
    const [run] = await sandbox.commit(sandbox.run({ instanceId: 'alpha', task: `crunch<script>window.__xss=2</script>`, input: { html: payload } }));
    if (!run) throw new Error('seed failed');
    await sandbox.logs(run.id, [['info', '<b onmouseover="window.__xss=3">bold</b><script>window.__xss=4</script>']]);

    // Act
    await open(`#/runs/${run.id}`);
    await open('#/');
    await open(`#/runs/${run.id}`);

    // Assess
    expect(JSON.parse((await page.locator('pre.input').textContent()) ?? '')).toEqual({ html: payload });
    expect(await page.locator('h1').textContent()).toContain('<script>window.__xss=2</script>');
    expect(await page.locator('table.logs').textContent()).toContain('<script>window.__xss=4</script>');
    expect(await page.evaluate('typeof window.__xss')).toBe('undefined');
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('main script, main b').count()).toBe(0);
  });

  it('disables an instance: the instances file says enabled false and the page shows it disabled', async () => {
    // Prepare
    await open('#/');

    // Act
    await page.click('tr[data-instance="eps"] button.disable');

    // Assess
    await page.waitForSelector('tr[data-instance="eps"] .state.disabled', { timeout: WAIT_MS });
    expect(sandbox.enabledFlags().eps).toBe(false);
    expect(await page.locator('tr[data-instance="eps"] button.enable').count()).toBe(1);
    expect(await page.locator('#notice').textContent()).toContain('eps disabled');
  });
});
