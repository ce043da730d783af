/**
 * The status page of issue 14 in real headless Chromium: the whole width at 1400 px, a colour per
 * status, dark mode, times in the viewer's time zone, runs per hour counting every outcome,
 * continuous attempts, the runs explorer (filters, search, cursor pages), the instance timeline,
 * Retry, Cancel and "Run a task" (the input checked against the task's schema before it is sent), and an
 * accessibility check of every view with axe-core, in light and in dark mode.
 */
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Runner } from '../../core/engine/runner.js';
import type { Trigger } from '../../core/ports/store.js';
import type { JobType, RunRecord, RunStatus } from '../../core/types.js';
import { startUiServer, type UiServer } from '../../core/ui/server.js';
import { demo } from '../fixtures/ui/jobs.js';
import { UiSandbox } from '../fixtures/ui/sandbox.js';
import { launchChromium, openPage, seriousAxeViolations, withAxe } from '../helpers/browser.js';
import { uiClient } from '../helpers/ui-client.js';

const WAIT_MS = 10_000;
const HOUR = 3_600_000;
const MINUTE = 60_000;

/** The fixture job type with one more task whose input has a schema. */
const resizeInput = z.object({ width: z.number().int().positive(), format: z.enum(['png', 'jpg']) }).strict();
const jobs: JobType[] = [
  {
    ...demo,
    tasks: {
      ...demo.tasks,
      resize: {
        input: resizeInput,
        run: (input: z.infer<typeof resizeInput>) => ({ resized: input.width }),
      },
    },
  },
];

let browser: Browser;
let context: BrowserContext | undefined;
let page: Page;
let sandbox: UiSandbox | undefined;
let server: UiServer | undefined;
let runner: Runner | undefined;
const pageErrors: string[] = [];
const { api, json, csrfToken } = uiClient(() => server);

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

afterEach(async () => {
  await context?.close();
  context = undefined;
  await runner?.stop(200);
  runner = undefined;
  await server?.close();
  server = undefined;
  await sandbox?.close();
  sandbox = undefined;
});

/** A sandbox, the server over it with the job types above, and a page (`options`: viewport, zone, locale, scheme). */
async function start(options: BrowserContextOptions = {}): Promise<UiSandbox> {
  const box = new UiSandbox();
  sandbox = box;
  server = await startUiServer({ store: box.store, paths: box.paths, jobs, eventIntervalMs: 200 });
  ({ context, page } = await openPage(browser, pageErrors, options));
  return box;
}

async function open(hash: string): Promise<void> {
  if (!server) throw new Error('start first');
  await page.goto(`${server.url}${hash}`);
  await page.waitForSelector(`body[data-loaded="${hash}"]`, { timeout: WAIT_MS });
}

async function startRunner(box: UiSandbox): Promise<void> {
  runner = await box.startRunner(jobs);
}

/** Polls `read` until it returns something, or fails after the deadline. */
async function eventually<T>(read: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const rowIds = async (selector = 'table.runs tbody tr'): Promise<string[]> =>
  Promise.all((await page.locator(selector).all()).map(async (row) => (await row.getAttribute('data-run-id')) ?? ''));

describe('status page layout and formats in Chromium', () => {
  it('uses the whole width at 1400 px: run ids and queue times stay on one line, nothing scrolls sideways', async () => {
    // Prepare
    const box = await start({ viewport: { width: 1400, height: 900 } });
    await box.commit(
      ...Array.from({ length: 8 }, (_, i) =>
        box.run({ id: `01JB7Q3K5Z8W2M4N6P8R0T2V${String(i).padStart(2, '0')}`, instanceId: 'alpha', task: 'crunch', status: 'failed', error: { name: 'Error', message: 'x'.repeat(200) } }),
      ),
    );

    // Act
    await open('#/runs');

    // Assess
    const layout = z
      .object({ main: z.number(), scroll: z.number(), idLines: z.array(z.number()), timeLines: z.array(z.number()) })
      .parse(
        await page.evaluate(`({
          main: document.querySelector('main').getBoundingClientRect().width,
          scroll: document.documentElement.scrollWidth,
          idLines: [...document.querySelectorAll('td.id a')].map((a) => a.getClientRects().length),
          timeLines: [...document.querySelectorAll('td.when time')].map((t) => t.getClientRects().length),
        })`),
      );
    expect(layout.main).toBeGreaterThan(1350);
    expect(layout.scroll).toBeLessThanOrEqual(1400);
    expect(layout.idLines).toEqual(Array(8).fill(1));
    expect(layout.timeLines).toEqual(Array(8).fill(1));
  });

  it('gives every status a colour of its own, and turns dark under prefers-color-scheme: dark', async () => {
    // Prepare
    const box = await start();
    const statuses: RunStatus[] = ['succeeded', 'failed', 'running', 'queued', 'retrying', 'interrupted', 'cancelled', 'skipped'];
    await box.commit(...statuses.map((status) => box.run({ instanceId: 'beta', task: 'crunch', status })));
    await open('#/runs');
    const colours = async () =>
      z.object({ badges: z.record(z.string(), z.string()), body: z.string() }).parse(
        await page.evaluate(`(() => {
          const probe = document.createElement('span');
          document.body.appendChild(probe);
          const out = {};
          for (const name of ['succeeded', 'failed', 'running', 'queued', 'retrying', 'interrupted', 'cancelled', 'skipped', 'outdated']) {
            probe.className = 'badge ' + name;
            out[name] = getComputedStyle(probe).backgroundColor;
          }
          probe.remove();
          return { badges: out, body: getComputedStyle(document.body).backgroundColor };
        })()`),
      );

    // Act
    const light = await colours();
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await colours();

    // Assess
    expect(new Set(Object.values(light.badges)).size).toBe(9);
    expect(light.badges.outdated).not.toBe(light.badges.interrupted);
    expect(await page.locator('table.runs .badge.interrupted').count()).toBe(1);
    expect(light.body).toBe('rgb(246, 247, 249)');
    expect(dark.body).toBe('rgb(15, 20, 27)');
  });

  it("shows times in the viewer's time zone, in progress messages too, and no raw ISO instant", async () => {
    // Prepare
    const box = await start({ timezoneId: 'Asia/Kolkata', locale: 'en-GB' });
    const queuedAt = Date.UTC(2026, 2, 1, 9, 15, 30);
    const now = Date.now();
    const [run] = await box.commit(
      box.run({
        instanceId: 'beta',
        task: 'crunch',
        status: 'running',
        queuedAt,
        startedAt: queuedAt + 1_000,
        endedAt: undefined,
        progress: { current: 3, total: 10, message: 'collected up to 2026-03-01T10:00:00.000Z', updatedAt: now },
      }),
    );
    if (!run) throw new Error('seed failed');

    // Act
    await open('#/');
    const progress = await page.locator('tr[data-instance="beta"] .progress-text').textContent();
    await open(`#/runs/${run.id}`);
    const facts = await page.locator('dl.facts').textContent();
    const main = (await page.locator('main').textContent()) ?? '';

    // Assess
    expect(progress).toContain('collected up to 1 Mar, 15:30:00'); // 10:00 UTC is 15:30 in Kolkata
    expect(facts).toContain('14:45:30'); // queued 09:15:30 UTC
    expect(await page.locator('dl.facts time').first().getAttribute('datetime')).toBe('2026-03-01T09:15:30.000Z');
    expect(main).not.toMatch(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/);
  });

  it("counts every outcome in runs per hour: a collector's interrupted and cancelled runs fill the chart", async () => {
    // Prepare
    const box = await start();
    const now = Date.now();
    await box.commit(
      ...Array.from({ length: 5 }, (_, i) => box.run({ instanceId: 'delta', task: 'crunch', kind: 'continuous', status: 'interrupted', queuedAt: now - (i + 1) * HOUR, startedAt: now - (i + 1) * HOUR, endedAt: now - (i + 1) * HOUR + 30 * MINUTE })),
      box.run({ instanceId: 'delta', task: 'crunch', status: 'cancelled', queuedAt: now - 2 * HOUR, endedAt: now - 2 * HOUR + MINUTE }),
    );

    // Act
    await open('#/instances/delta');
    const counts = async (cls: string) =>
      (await Promise.all((await page.locator(`svg.hourly rect.bar.${cls}`).all()).map(async (rect) => Number(await rect.getAttribute('data-count'))))).reduce((a, b) => a + b, 0);

    // Assess
    expect(await counts('interrupted')).toBe(5);
    expect(await counts('cancelled')).toBe(1);
    expect(await page.locator('svg.hourly').getAttribute('aria-label')).toContain('6 ended');
  });

  it('shows a continuous attempt as its number, never as 1/0', async () => {
    // Prepare
    const box = await start();
    const [run] = await box.commit(box.run({ instanceId: 'delta', task: 'crunch', kind: 'continuous', status: 'interrupted', attempt: 1, maxAttempts: 0 }));
    if (!run) throw new Error('seed failed');

    // Act
    await open('#/runs');
    const cell = await page.locator(`tr[data-run-id="${run.id}"] td.attempt`).textContent();
    await open(`#/runs/${run.id}`);
    const facts = (await page.locator('dl.facts').textContent()) ?? '';

    // Assess
    expect(cell).toBe('#1');
    expect(facts).toContain('Attempt#1');
    expect(facts).not.toContain('of 0');
  });
});

describe('runs explorer in Chromium', () => {
  /** 45 runs of alpha and beta, three to a millisecond, a few failed, inputs naming their number. */
  async function seedMany(box: UiSandbox): Promise<RunRecord[]> {
    const base = Date.now() - 10 * HOUR;
    const runs = Array.from({ length: 45 }, (_, i) =>
      box.run({
        instanceId: i % 3 === 0 ? 'beta' : 'alpha',
        task: i % 2 === 0 ? 'crunch' : 'hello',
        status: i % 5 === 0 ? 'failed' : 'succeeded',
        queuedAt: base + Math.floor(i / 3) * MINUTE,
        startedAt: base + Math.floor(i / 3) * MINUTE + 100,
        endedAt: base + Math.floor(i / 3) * MINUTE + 900,
        input: { item: `item-${i}` },
      }),
    );
    return box.commit(...runs);
  }

  const newestFirst = (runs: RunRecord[]) => [...runs].sort((a, b) => b.queuedAt - a.queuedAt || (b.id < a.id ? -1 : 1)).map((r) => r.id);

  it('filters by instance, task and status from the form, and the address keeps the filters', async () => {
    // Prepare
    const box = await start();
    const runs = await seedMany(box);
    await open('#/runs');

    // Act
    await page.selectOption('form.filters select[name="instance"]', 'alpha');
    await page.fill('form.filters input[name="task"]', 'crunch');
    await page.selectOption('form.filters select[name="status"]', 'failed');
    await page.click('form.filters button[type="submit"]');
    await page.waitForSelector('body[data-loaded="#/runs?instance=alpha&task=crunch&status=failed"]', { timeout: WAIT_MS });

    // Assess
    const expected = newestFirst(runs.filter((r) => r.instanceId === 'alpha' && r.task === 'crunch' && r.status === 'failed'));
    expect(expected.length).toBeGreaterThan(1);
    expect(await rowIds()).toEqual(expected);
  });

  it('filters by a time range entered in local time', async () => {
    // Prepare
    const box = await start({ timezoneId: 'America/New_York' });
    const runs = await seedMany(box);
    const from = runs[9]?.queuedAt ?? 0;
    const to = runs[18]?.queuedAt ?? 0;
    await open('#/runs');
    const local = (ms: number) => page.evaluate((t) => {
      const d = new Date(t);
      const p = (n: number) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
    }, ms);

    // Act
    await page.fill('form.filters input[name="from"]', await local(from));
    await page.fill('form.filters input[name="to"]', await local(to));
    await page.click('form.filters button[type="submit"]');
    await page.waitForSelector('body[data-loaded*="from="]', { timeout: WAIT_MS });

    // Assess: minutes are whole, so the range is [from, to) to the minute
    const fromMinute = Math.floor(from / MINUTE) * MINUTE;
    const toMinute = Math.floor(to / MINUTE) * MINUTE;
    expect(await rowIds()).toEqual(newestFirst(runs.filter((r) => r.queuedAt >= fromMinute && r.queuedAt < toMinute)));
    expect((await rowIds()).length).toBe(9);
  });

  it('searches by run id, by signature and by a text of the input, saying which matched', async () => {
    // Prepare
    const box = await start();
    const runs = await seedMany(box);
    const target = runs[7];
    if (!target) throw new Error('seed failed');
    const search = async (q: string) => {
      await open('#/runs');
      await page.fill('form.filters input[name="q"]', q);
      await page.click('form.filters button[type="submit"]');
      await page.waitForSelector(`body[data-loaded="#/runs?q=${encodeURIComponent(q)}"]`, { timeout: WAIT_MS });
      return { ids: await rowIds(), said: await page.locator('nav.pager .muted').textContent() };
    };

    // Act
    const byId = await search(target.id);
    const bySignature = await search(target.signature);
    const byInput = await search('"item-3');

    // Assess
    expect(byId).toEqual({ ids: [target.id], said: '1 run, matched by run id' });
    expect(bySignature).toEqual({ ids: [target.id], said: '1 run, matched by signature' });
    expect(byInput.ids).toEqual(newestFirst(runs.filter((r) => JSON.stringify(r.input).includes('"item-3'))));
    expect(byInput.ids.length).toBe(11); // item-3 and item-30 … item-39
    expect(byInput.said).toContain('matched by input');
  });

  it('pages through every run with Older: none lost or repeated where runs share a queue time', async () => {
    // Prepare
    const box = await start();
    const runs = await seedMany(box);
    await box.commit(...Array.from({ length: 80 }, (_, i) => box.run({ instanceId: 'gamma', task: 'hello', queuedAt: (runs[0]?.queuedAt ?? 0) - HOUR - Math.floor(i / 4) })));
    const all = newestFirst(await box.store.listRuns({ limit: 1_000 }));
    await open('#/runs');

    // Act
    const seen: string[] = [...(await rowIds())];
    let pages = 1;
    while (await page.locator('nav.pager button.older').isEnabled()) {
      const before = z.string().parse(await page.getAttribute('body', 'data-loaded'));
      await page.click('nav.pager button.older');
      // data-loaded names the hash once its view has rendered
      await page.waitForSelector(`body[data-loaded^="#/runs?before="]:not([data-loaded=${JSON.stringify(before)}])`, { timeout: WAIT_MS });
      seen.push(...(await rowIds()));
      pages += 1;
    }

    // Assess
    expect(all.length).toBe(125);
    expect(pages).toBe(3);
    expect(seen).toEqual(all);
    expect(await page.locator('nav.pager button.newest').isEnabled()).toBe(true);
  });
});

describe('instance timeline and actions in Chromium', () => {
  it('draws the last 24 h as a Gantt strip with retries linked, and zooms to the last hour', async () => {
    // Prepare
    const box = await start();
    const now = Date.now();
    const first = box.run({ id: 'tl-1', instanceId: 'alpha', task: 'crunch', status: 'failed', attempt: 1, queuedAt: now - 3 * HOUR, startedAt: now - 3 * HOUR, endedAt: now - 3 * HOUR + 10 * MINUTE, nextRunId: 'tl-2' });
    const retry = box.run({ id: 'tl-2', instanceId: 'alpha', task: 'crunch', status: 'succeeded', attempt: 2, queuedAt: now - 2.5 * HOUR, startedAt: now - 2.5 * HOUR, endedAt: now - 2.4 * HOUR, previousRunId: 'tl-1' });
    const old = box.run({ id: 'tl-3', instanceId: 'alpha', task: 'hello', status: 'succeeded', queuedAt: now - 5 * HOUR, startedAt: now - 5 * HOUR, endedAt: now - 4.9 * HOUR });
    const live = box.run({ id: 'tl-4', instanceId: 'alpha', task: 'hello', status: 'running', queuedAt: now - 20 * MINUTE, startedAt: now - 20 * MINUTE, endedAt: undefined });
    const outside = box.run({ id: 'tl-5', instanceId: 'alpha', task: 'hello', status: 'succeeded', queuedAt: now - 30 * HOUR, startedAt: now - 30 * HOUR, endedAt: now - 29 * HOUR });
    await box.commit(first, retry, old, live, outside);

    // Act
    await open('#/instances/alpha');
    const day = await rowIds('.timeline a.tl-bar');
    const link = await page.locator('.timeline svg.links path').getAttribute('data-to');
    const lanes = await page.locator('.timeline .lane').count();
    const failedClass = await page.locator('.timeline a.tl-bar[data-run-id="tl-1"]').getAttribute('class');
    const liveWidthDay = (await page.locator('.timeline a.tl-bar[data-run-id="tl-4"]').boundingBox())?.width ?? 0;
    await page.click('.zoom button[data-hours="1"]');
    await page.waitForSelector('.zoom button[data-hours="1"][aria-pressed="true"]', { timeout: WAIT_MS });
    const hour = await rowIds('.timeline a.tl-bar');
    const liveWidthHour = (await page.locator('.timeline a.tl-bar[data-run-id="tl-4"]').boundingBox())?.width ?? 0;

    // Assess
    expect(day.sort()).toEqual(['tl-1', 'tl-2', 'tl-3', 'tl-4']);
    expect(lanes).toBe(2);
    expect(link).toBe('tl-2');
    expect(failedClass).toContain('failed');
    expect(hour).toEqual(['tl-4']);
    expect(liveWidthHour).toBeGreaterThan(liveWidthDay * 10);
  });

  it('retries a failed run with the same input: a real runner runs the task again', async () => {
    // Prepare
    const box = await start();
    const [failed] = await box.commit(box.run({ instanceId: 'alpha', task: 'crunch', status: 'failed', input: { n: 7 }, error: { name: 'Error', message: 'flaky' } }));
    if (!failed) throw new Error('seed failed');
    await startRunner(box);
    await open(`#/runs/${failed.id}`);

    // Act
    await page.click('button.retry');

    // Assess
    const again = await eventually(async () => (await box.store.listRuns({ instanceId: 'alpha', task: 'crunch', status: 'succeeded' }))[0], 'the retried run');
    expect(again.input).toEqual({ n: 7 });
    expect(again.result).toEqual({ n: 7 });
    expect(again.id).not.toBe(failed.id);
    expect(await page.locator('#notice').textContent()).toContain('again with the same input');
    expect(pageErrors).toEqual([]);
  });

  it('cancels a running run from its page after a confirmation: the request goes to the store for its runner', async () => {
    // Prepare
    const box = await start();
    const [running] = await box.commit(box.run({ instanceId: 'alpha', task: 'crunch', status: 'running', input: { n: 3 } }));
    if (!running) throw new Error('seed failed');
    await open(`#/runs/${running.id}`);
    page.once('dialog', (dialog) => void dialog.accept());

    // Act
    await page.click('button.cancel');

    // Assess
    await eventually(async () => (/Asked to cancel/.test((await page.locator('#notice').textContent()) ?? '') ? true : undefined), 'the notice');
    const triggers = await box.store.takeTriggers(10);
    expect(triggers).toMatchObject([{ instanceId: 'alpha', cancelRunId: running.id }]);
    expect(triggers[0]?.task).toBeUndefined();
    expect(pageErrors).toEqual([]);
  });

  it("offers no Retry on a succeeded run, and the API refuses one (409)", async () => {
    // Prepare
    const box = await start();
    const [done] = await box.commit(box.run({ instanceId: 'alpha', task: 'crunch', status: 'succeeded' }));
    if (!done) throw new Error('seed failed');

    // Act
    await open(`#/runs/${done.id}`);
    const res = await api(`/api/runs/${done.id}/retry`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-UJR-CSRF': await csrfToken() }, body: '{}' });
    const forged = await api(`/api/runs/${done.id}/retry`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });

    // Assess
    expect(await page.locator('button.retry').count()).toBe(0);
    expect(await page.locator('button.cancel').count()).toBe(0);
    expect(res.status).toBe(409);
    expect((await json(res, z.object({ error: z.string() }))).error).toContain('only a failed, interrupted, cancelled run can be retried');
    expect(forged.status).toBe(403);
  });

  it('checks a Run-a-task input against the task schema before sending it, then sends a valid one', async () => {
    // Prepare
    const box = await start();
    await open('#/instances/gamma');
    await page.click('button.run-task');
    await page.waitForSelector('dialog.run-dialog[open]', { timeout: WAIT_MS });

    // Act
    await page.selectOption('#run-task', 'resize');
    await page.fill('#run-input', '{"width": -3, "format": "gif", "extra": 1}');
    const problems = await page.locator('#run-problems li').allTextContents();
    const disabledWhenBad = await page.locator('dialog button[type="submit"]').isDisabled();
    await page.fill('#run-input', '{"width": 640, "format": "png"');
    const syntax = await page.locator('#run-problems li').allTextContents();
    const sentWhileBad = await box.store.takeTriggers(10);
    await page.fill('#run-input', '{"width": 640, "format": "png"}');
    await page.click('dialog button[type="submit"]');
    await page.waitForSelector('dialog.run-dialog', { state: 'detached', timeout: WAIT_MS });
    const sent = await eventually<Trigger>(async () => (await box.store.takeTriggers(10))[0], 'the trigger');

    // Assess
    expect(problems).toEqual(['input.width: must be more than 0', 'input.format: must be one of "png", "jpg"', 'input: unknown key "extra"']);
    expect(disabledWhenBad).toBe(true);
    expect(syntax[0]).toMatch(/^not valid JSON/);
    expect(sentWhileBad).toEqual([]);
    expect(sent).toMatchObject({ instanceId: 'gamma', task: 'resize', input: { width: 640, format: 'png' } });
    expect(await page.locator('#notice').textContent()).toContain('Asked for resize of gamma');
  });

  it('refuses a Run now input that does not match the task schema on the server too (400)', async () => {
    // Prepare
    await start();
    const headers = { 'Content-Type': 'application/json', 'X-UJR-CSRF': await csrfToken() };

    // Act
    const res = await api('/api/instances/gamma/run', { method: 'POST', headers, body: JSON.stringify({ task: 'resize', input: { width: 'wide' } }) });
    const detail = await json(await api('/api/instances/gamma'), z.object({ inputSchemas: z.record(z.string(), z.unknown()) }));

    // Assess
    expect(res.status).toBe(400);
    expect((await json(res, z.object({ error: z.string() }))).error).toMatch(/input of task "resize" does not match its schema: width: .*format: /);
    expect(detail.inputSchemas.hello).toBeNull();
    expect(detail.inputSchemas.resize).toMatchObject({ type: 'object', required: ['width', 'format'], additionalProperties: false });
  });
});

describe('accessibility (axe-core) in Chromium', () => {
  for (const colorScheme of ['light', 'dark'] as const) {
    it(`has no serious or critical violation on any view in ${colorScheme} mode`, async () => {
      // Prepare
      const box = await start({ colorScheme });
      await withAxe(page);
      const now = Date.now();
      const [failed] = await box.commit(
        box.run({ instanceId: 'alpha', task: 'crunch', status: 'failed', error: { name: 'Error', message: 'boom', stack: 'Error: boom\n    at x' }, nextRunId: 'a11y-2' }),
        box.run({ id: 'a11y-2', instanceId: 'alpha', task: 'crunch', status: 'retrying', attempt: 2, previousRunId: 'x', endedAt: undefined }),
        box.run({ instanceId: 'beta', task: 'hello', status: 'running', endedAt: undefined, progress: { current: 1, total: 4, message: 'step', updatedAt: now } }),
        ...(['succeeded', 'interrupted', 'cancelled', 'skipped', 'queued'] as const).map((status) => box.run({ instanceId: 'alpha', task: 'hello', status })),
      );
      if (!failed) throw new Error('seed failed');
      await box.logs(failed.id, [
        ['info', 'starting'],
        ['warn', 'slow'],
        ['error', 'boom'],
      ]);
      const found: Record<string, unknown[]> = {};

      // Act
      for (const hash of ['#/', '#/instances/alpha', `#/runs/${failed.id}`, '#/runs']) {
        await open(hash);
        found[hash] = await seriousAxeViolations(page);
      }
      await open('#/instances/alpha');
      await page.click('button.run-task');
      await page.fill('#run-input', '{"oops"');
      found.dialog = await seriousAxeViolations(page);

      // Assess
      expect(found).toEqual({ '#/': [], '#/instances/alpha': [], [`#/runs/${failed.id}`]: [], '#/runs': [], dialog: [] });
      expect(pageErrors).toEqual([]);
    });
  }
});
