/**
 * Takes docs/status-page.png, the README's picture of the status page: runs the example pipeline
 * (`ujr run` on jobs/) in a temporary home for `--seconds` (default 45), serves the page over that
 * home (`ujr ui`), and photographs its instances view in Chromium at 1400 px.
 *
 *   node --import tsx docs/screenshot.ts [--seconds 45] [--hash '#/instances/metrics']
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { ROOT } from '../core/package-root.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '45' }, hash: { type: 'string', default: '#/' }, out: { type: 'string', default: join(ROOT, 'docs', 'status-page.png') } } });
const home = mkdtempSync(join(tmpdir(), 'ujr-screenshot-'));
const port = 4690 + Math.floor(Math.random() * 100);
const children: ChildProcess[] = [];

function ujr(...args: string[]): ChildProcess {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'ujr.js'), '--home', home, ...args], { cwd: ROOT, stdio: 'ignore' });
  children.push(child);
  return child;
}

try {
  ujr('run');
  await new Promise((resolve) => setTimeout(resolve, Number(values.seconds) * 1000));
  ujr('ui', '--port', String(port));
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 820 } });
    await page.goto(`http://127.0.0.1:${port}/${values.hash}`);
    await page.waitForSelector(`body[data-loaded="${values.hash}"]`, { timeout: 15_000 });
    await page.screenshot({ path: values.out });
    console.log(`wrote ${values.out}`);
  } finally {
    await browser.close();
  }
} finally {
  for (const child of children) child.kill('SIGINT');
  await new Promise((resolve) => setTimeout(resolve, 2000));
  rmSync(home, { recursive: true, force: true });
}
