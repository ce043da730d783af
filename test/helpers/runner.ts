/** Builds runners over a memory store for engine tests, and waits on their events. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { MemoryStore } from '../../core/adapters/memory/store.js';
import { DirectoryObjectStore } from '../../core/adapters/fs/objects.js';
import { Runner, type RunnerOptions } from '../../core/engine/runner.js';
import type { InstanceConfig, RunRecord } from '../../core/types.js';

export function instance(id: string, job: string, extra: Partial<InstanceConfig> = {}): InstanceConfig {
  return { id, job, params: {}, enabled: true, schedule: 'rate(1 hour)', concurrency: Number.POSITIVE_INFINITY, ...extra };
}

export const noParams = z.object({}).passthrough();

export interface Harness {
  runner: Runner;
  store: MemoryStore;
  runs: RunRecord[];
  dataDir: string;
  cleanup(): Promise<void>;
}

/** A runner on a memory store and a temp data directory; `runs` collects every run event. */
export function harness(options: Partial<RunnerOptions> & Pick<RunnerOptions, 'jobs'>): Harness {
  const store = new MemoryStore();
  const dataDir = mkdtempSync(join(tmpdir(), 'ujr-test-'));
  const runner = new Runner({ store, objects: new DirectoryObjectStore(dataDir), leaseTtlMs: 5_000, graceMs: 200, ...options });
  const runs: RunRecord[] = [];
  runner.on('run', (run) => runs.push({ ...run }));
  return {
    runner,
    store,
    runs,
    dataDir,
    async cleanup() {
      await runner.stop(100);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the first event matching `predicate`, or rejects after `ms`. */
export function waitFor<T extends unknown[]>(
  emitter: { on(event: string, listener: (...args: T) => void): unknown; off(event: string, listener: (...args: T) => void): unknown },
  event: string,
  predicate: (...args: T) => boolean = () => true,
  ms = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no matching "${event}" event within ${ms} ms`));
    }, ms);
    const listener = (...args: T) => {
      if (!predicate(...args)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    };
    emitter.on(event, listener);
  });
}

/** Polls `check` until it returns true, failing after `ms` (for outcomes with no event). */
export async function until(check: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
