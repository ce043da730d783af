/** Chromium for the browser tests: Debian's package, driven by playwright-core (see ../shared/TOOLING.md). */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { z } from 'zod';

const CHROMIUM = '/usr/bin/chromium';

/** Launches headless Chromium; fails saying how to install it when the machine has none. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium: apt-get install -y chromium`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A fresh context and page at the tests' window size (or `options`: another viewport, time zone,
 * locale, colour scheme), with the page's errors (uncaught and console) collected into `errors`.
 */
export async function openPage(browser: Browser, errors: string[], options: BrowserContextOptions = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  errors.length = 0;
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  return { context, page };
}

/** One accessibility violation axe-core found, with the elements it found it on. */
const violationSchema = z.object({ id: z.string(), impact: z.string().nullable(), help: z.string(), targets: z.array(z.string()) });
export type AxeViolation = z.infer<typeof violationSchema>;

const AXE_SCRIPT = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/**
 * Loads axe-core into every document `page` opens from now on. An init script (not a script tag)
 * because the status page's Content-Security-Policy refuses inline scripts, and the check should
 * run on the page as served, CSP included.
 */
export async function withAxe(page: Page): Promise<void> {
  await page.addInitScript({ path: AXE_SCRIPT });
}

/**
 * Runs axe-core (WCAG 2.x A and AA rules, and its best practices) on the page as it is now and
 * returns the violations of serious or critical impact: missing roles and labels, contrast.
 * Call {@link withAxe} before opening the page.
 */
export async function seriousAxeViolations(page: Page): Promise<AxeViolation[]> {
  if ((await page.evaluate('typeof window.axe')) !== 'object') throw new Error('axe-core is not loaded in this page: call withAxe(page) before page.goto');
  const found: unknown = await page.evaluate(`
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })
      .then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) })))
  `);
  return z.array(violationSchema).parse(found).filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
