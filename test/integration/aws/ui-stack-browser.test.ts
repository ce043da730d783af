/**
 * The status page over a deployed stack (`ujr ui --stack`) in real headless Chromium (Debian's
 * `chromium`, driven by playwright-core), against a deployment on the emulators
 * (test/helpers/stack-ui.ts): it lists the instances table and a run, shows a run's CloudWatch Logs
 * lines, runs an instance on "Run now" through the scheduler function (queued on the board, then run
 * by a worker), and disables an instance as a run-time override. Without /usr/bin/chromium the suite
 * fails, naming what to install.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium, openPage } from '../../helpers/browser.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Target } from '../../../core/cli/targets.js';
import { startUiServer, type UiServer } from '../../../core/ui/server.js';
import { stackStatusSource } from '../../../core/ui/stack-source.js';
import jobs from '../../fixtures/aws/jobs.js';
import { LOG_GROUPS, powertoolsLine, STACK, StackUiFixture } from '../../helpers/stack-ui.js';

const WAIT_MS = 10_000;

let browser: Browser;
let context: BrowserContext;
let page: Page;
let fixture: StackUiFixture;
let target: Target | undefined;
let server: UiServer | undefined;
const pageErrors: string[] = [];

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

beforeEach(async () => {
  fixture = await new StackUiFixture().create();
  // One instance that ran (a scheduled tick, then a worker), one deployed after that tick.
  await fixture.stack.seedInstances([{ id: 'done', job: 'fanout', params: { count: 1 }, schedule: '1h' }]);
  await fixture.tick();
  await fixture.drainWorker();
  await fixture.stack.seedInstances([{ id: 'fresh', job: 'fanout', params: { count: 1 }, schedule: '1h' }]);
  const opened = await fixture.openTarget();
  target = opened.target;
  server = await startUiServer({ source: stackStatusSource(opened.aws, opened.target), eventIntervalMs: 200 });
  ({ context, page } = await openPage(browser, pageErrors));
});

afterEach(async () => {
  await context?.close();
  await server?.close();
  server = undefined;
  await target?.close();
  target = undefined;
  await fixture?.destroy();
});

async function open(hash: string): Promise<void> {
  if (!server) throw new Error('no server');
  await page.goto(`${server.url}${hash}`);
  await page.waitForSelector(`body[data-loaded="${hash}"]`, { timeout: WAIT_MS });
}

describe('status page over a stack in Chromium', () => {
  it('lists the instances table and the run a worker recorded, names the stack, and shows the run with its CloudWatch Logs lines', async () => {
    // Prepare
    const [run] = await fixture.stack.store.listRuns({ instanceId: 'done' });
    if (!run) throw new Error('the worker recorded no run');
    const t0 = run.startedAt ?? run.queuedAt;
    fixture.logLines.set(`${LOG_GROUPS.worker} ${run.id}`, [
      { eventId: 'w1', timestamp: t0, message: powertoolsLine('INFO', 'working on item 0', t0, { runId: run.id }) },
      { eventId: 'w2', timestamp: t0 + 5, message: powertoolsLine('ERROR', 'disk <b>full</b>', t0 + 5, { runId: run.id }) },
    ]);

    // Act
    await open('#/');
    const rows = await Promise.all((await page.locator('table.instances tbody tr').all()).map((row) => row.getAttribute('data-instance')));
    const where = await page.locator('#where').textContent();
    const doneBadge = await page.locator('tr[data-instance="done"] td:nth-child(4) .badge').textContent();
    const freshBadge = await page.locator('tr[data-instance="fresh"] .badge').first().textContent();
    const recent = await page.locator(`table.runs tr[data-run-id="${run.id}"]`).count();
    await page.click('tr[data-instance="done"] td:nth-child(4) a');
    await page.waitForSelector(`body[data-loaded="#/runs/${run.id}"]`, { timeout: WAIT_MS });
    const logs = await page.locator('table.logs tr').allTextContents();

    // Assess
    expect(rows).toEqual(['done', 'fresh']);
    expect(where).toBe(`stack "${STACK}"`);
    expect(await page.title()).toBe(`ujr · stack "${STACK}"`);
    expect(doneBadge).toBe('succeeded');
    expect(freshBadge).toBe('never run');
    expect(recent).toBe(1);
    expect(await page.locator('h1 .badge').textContent()).toBe('succeeded');
    expect(logs).toHaveLength(2);
    expect(logs[0]).toContain('working on item 0');
    expect(logs[1]).toContain('disk <b>full</b>');
    expect(await page.locator('table.logs b').count()).toBe(0);
    expect(pageErrors).toEqual([]);
  });

  it('runs an instance on "Run now" through the scheduler function: the queued task shows, then the run a worker recorded', async () => {
    // Prepare
    await open('#/');
    expect(await page.locator('tr[data-instance="fresh"] .badge').first().textContent()).toBe('never run');

    // Act
    await page.click('tr[data-instance="fresh"] button.run-now');
    await page.waitForSelector('tr[data-instance="fresh"] td:nth-child(5) progress', { timeout: WAIT_MS });
    const queuedText = await page.locator('tr[data-instance="fresh"] td:nth-child(5)').textContent();
    const notice = await page.locator('#notice').textContent();
    await fixture.drainWorker();

    // Assess: the worker's run shows as the last run once the page refreshed
    await page.waitForSelector('tr[data-instance="fresh"] td:nth-child(4) .badge.succeeded', { timeout: WAIT_MS });
    expect(fixture.invocations).toEqual([{ instanceId: 'fresh' }]);
    expect(queuedText).toContain('item');
    expect(queuedText).toContain('queued');
    expect(notice).toBe(`Asked the scheduler of stack "${STACK}" for a run of fresh: dispatched 1 (queue 1, conductor 0, fargate 0).`);
    const runs = await fixture.stack.store.listRuns({ instanceId: 'fresh' });
    expect(runs.map((r) => [r.task, r.origin, r.status])).toEqual([['item', 'manual', 'succeeded']]);
    expect(await page.locator('tr[data-instance="fresh"] td:nth-child(5) progress').count()).toBe(0);
    expect(pageErrors).toEqual([]);
  });

  it('disables an instance as a run-time override: the page shows it disabled and the scheduler skips it', async () => {
    // Prepare
    await open('#/');

    // Act
    await page.click('tr[data-instance="fresh"] button.disable');
    await page.waitForSelector('tr[data-instance="fresh"] .state.disabled', { timeout: WAIT_MS });
    const tick = await fixture.stack.scheduler(jobs).scheduler.tick();

    // Assess
    expect(await page.locator('tr[data-instance="fresh"] button.enable').count()).toBe(1);
    expect(await page.locator('#notice').textContent()).toContain('fresh disabled');
    expect((await fixture.stack.store.listInstanceEntries()).find((e) => e.id === 'fresh')).toMatchObject({ enabled: false });
    expect(tick.planned).not.toContain('fresh');
    expect(pageErrors).toEqual([]);
  });
});
