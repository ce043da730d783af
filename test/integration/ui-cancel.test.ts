/**
 * Cancel from the status page (issue 14): the page's server and a runner are two programs on one
 * SQLite file, as `ujr ui` and `ujr run` are. Cancel asks through the store; the runner holding
 * the run aborts its handler and records it `cancelled`. A run that ended cannot be cancelled.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monotonicFactory } from 'ulid';
import { createRunner, defineJob, z, type EmbeddedRunner } from 'ujr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../core/adapters/sqlite/store.js';
import { startUiServer, type UiServer } from '../../core/ui/server.js';
import { localStatusSource } from '../../core/ui/source.js';
import { pollFor } from '../helpers/runner.js';
import { uiClient } from '../helpers/ui-client.js';

/** Why each handler's signal was aborted, by input. */
const aborted = new Map<number, string>();

const waiter = defineJob({
  name: 'waiter',
  params: z.object({}),
  getRunnableTasks: () => [{ task: 'wait', input: { n: 1 } }],
  tasks: {
    wait: {
      timeoutMs: 60_000,
      retry: { attempts: 1 },
      async run(input: { n: number }, tctx) {
        await new Promise<void>((resolve) => tctx.signal.addEventListener('abort', () => resolve(), { once: true }));
        aborted.set(input.n, String((tctx.signal.reason as Error).message));
        throw tctx.signal.reason;
      },
    },
  },
});

let dir: string;
let runner: EmbeddedRunner | undefined;
let server: UiServer | undefined;
let store: SqliteStore | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ujr-ui-cancel-'));
  aborted.clear();
});

afterEach(async () => {
  await server?.close();
  await runner?.close();
  await store?.close();
  server = runner = store = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const { api } = uiClient(() => server);

async function post(path: string): Promise<Response> {
  const html = await (await api('/')).text();
  const csrf = /name="ujr-csrf" content="([^"]+)"/.exec(html)?.[1] ?? '';
  return api(path, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-UJR-CSRF': csrf }, body: '{}' });
}

describe('Cancel on the status page', () => {
  it('aborts a running task in the runner that holds it and records the run cancelled; an ended run answers 409', async () => {
    const home = join(dir, 'home');
    const instances = join(dir, 'instances.json');
    writeFileSync(instances, JSON.stringify({ instances: [{ id: 'w', job: 'waiter', params: {} }] }));
    runner = await createRunner({ jobs: [waiter], instances: [{ id: 'w', job: 'waiter', params: {} }], home });
    await runner.start();
    store = SqliteStore.open(join(home, 'ujr.db'));
    const uiStore = store;
    const source = await localStatusSource({ store: uiStore, paths: { home, instancesFile: instances, jobsModule: join(dir, 'jobs-given-in-code.ts') }, jobs: [waiter], now: Date.now, nextId: monotonicFactory() });
    server = await startUiServer({ source });
    const running = await pollFor(async () => (await uiStore.listRuns({ instanceId: 'w', status: 'running' }))[0], 10_000, 'the task to run');

    const cancel = await post(`/api/runs/${running.id}/cancel`);
    const ended = await pollFor(async () => {
      const run = await uiStore.getRun(running.id);
      return run?.status === 'cancelled' ? run : undefined;
    }, 10_000, 'the run to be recorded cancelled');
    const again = await post(`/api/runs/${running.id}/cancel`);
    const missing = await post('/api/runs/no-such-run/cancel');

    expect(cancel.status).toBe(202);
    expect(aborted.get(1)).toBe('cancelled from the status page');
    expect(ended.error).toMatchObject({ name: 'CancelledError', message: 'cancelled from the status page' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toBe(`run ${running.id} is cancelled: only a queued, running or retrying run can be cancelled`);
    expect(missing.status).toBe(404);
  });
});
