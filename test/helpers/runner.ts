/** Builds runners over a memory store for engine tests, and waits on their events. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { z } from 'zod';
import { MemoryStore } from '../../core/adapters/memory/store.js';
import { DirectoryObjectStore } from '../../core/adapters/fs/objects.js';
import { Runner, type RunnerOptions } from '../../core/engine/runner.js';
import type { Store } from '../../core/ports/store.js';
import type { InstanceConfig, RunRecord, RunStatus } from '../../core/types.js';

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

export type HarnessOptions = Partial<RunnerOptions> &
  Pick<RunnerOptions, 'jobs'> & {
    /** Another harness's memory store, to put a second runner on the same store. */
    shared?: MemoryStore;
  };

/**
 * A runner on a memory store and a temp data directory; `runs` collects every run event.
 * `store` in the options (say, a wrapper over `shared`) replaces what the runner talks to, while
 * `harness.store` stays the memory store, for assertions.
 */
export function harness(options: HarnessOptions): Harness {
  const { shared, ...runnerOptions } = options;
  const store = shared ?? new MemoryStore();
  const dataDir = mkdtempSync(join(tmpdir(), 'ujr-test-'));
  const runner = new Runner({
    store,
    objects: new DirectoryObjectStore(dataDir),
    leaseTtlMs: 5_000,
    graceMs: 200,
    ...runnerOptions,
  });
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

/**
 * Polls `probe` until it gives a value, failing after `ms` of real time (a monotonic clock, so
 * tests that fake `Date` still time out): for outcomes that raise no event.
 */
export async function pollFor<T>(probe: () => T | undefined | Promise<T | undefined>, ms = 10_000, what = 'condition', everyMs = 10): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Polls `check` every `everyMs` until it returns true, failing after `ms` (for outcomes with no event). */
export async function until(check: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition', everyMs = 10): Promise<void> {
  await pollFor(async () => ((await check()) ? true : undefined), ms, what, everyMs);
}

/** Resolves with the first run event of `runner` matching `predicate` (typed `waitFor`). */
export async function waitForRun(
  runner: Runner,
  predicate: (run: RunRecord) => boolean,
  ms = 10_000,
): Promise<RunRecord> {
  const [run] = await waitFor<[RunRecord]>(runner, 'run', predicate, ms);
  return { ...run };
}

/** Waits for the `planned` event of one instance. */
export async function waitForPlan(runner: Runner, instanceId: string, ms = 10_000): Promise<number> {
  const [, count] = await waitFor<[string, number]>(runner, 'planned', (id) => id === instanceId, ms);
  return count;
}

/** The runs a harness saw reach `status`. */
export function withStatus(runs: RunRecord[], status: RunStatus): RunRecord[] {
  return runs.filter((run) => run.status === status);
}

/** A promise a test opens when it wants: holds task handlers at a known point. */
export interface Gate {
  readonly opened: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** Resolves after `ms` (simulated work inside a task handler, never to wait for work). */
export function work(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with the signal's reason when it fires: a handler that honours its AbortSignal. */
export function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    else signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
}

/**
 * Counts executions as task handlers report them: how many run at once (overall and per group),
 * and every time one key started while another execution of it was still on.
 */
export class Executions {
  readonly started: string[] = [];
  readonly ended: string[] = [];
  /** Keys that started while an execution of the same key was running. */
  readonly overlaps: string[] = [];
  running = 0;
  maxRunning = 0;
  private readonly byKey = new Map<string, number>();
  private readonly byGroup = new Map<string, number>();
  private readonly maxByGroup = new Map<string, number>();

  /** Marks the start of one execution; call the returned function once it ends. */
  begin(key: string, group = ''): () => void {
    const onKey = this.byKey.get(key) ?? 0;
    if (onKey > 0) this.overlaps.push(key);
    this.byKey.set(key, onKey + 1);
    const inGroup = (this.byGroup.get(group) ?? 0) + 1;
    this.byGroup.set(group, inGroup);
    this.maxByGroup.set(group, Math.max(this.maxByGroup.get(group) ?? 0, inGroup));
    this.running += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.started.push(key);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.byKey.set(key, (this.byKey.get(key) ?? 1) - 1);
      this.byGroup.set(group, (this.byGroup.get(group) ?? 1) - 1);
      this.running -= 1;
      this.ended.push(key);
    };
  }

  /** Runs `body` as one execution of `key`. */
  async around<T>(key: string, body: () => Promise<T> | T, group = ''): Promise<T> {
    const end = this.begin(key, group);
    try {
      return await body();
    } finally {
      end();
    }
  }

  count(key: string): number {
    return this.started.filter((k) => k === key).length;
  }

  runningIn(group: string): number {
    return this.byGroup.get(group) ?? 0;
  }

  maxIn(group: string): number {
    return this.maxByGroup.get(group) ?? 0;
  }
}

/**
 * Harnesses and gates for one test file: every harness made through it is stopped after each
 * test, pass or fail (gates are opened first, so held handlers let go).
 */
export function useHarnesses(): { harness: (options: HarnessOptions) => Harness; gate: () => Gate } {
  const open: Harness[] = [];
  const gates: Gate[] = [];
  afterEach(async () => {
    for (const g of gates.splice(0)) g.open();
    await Promise.all(open.splice(0).map((h) => h.cleanup()));
  });
  return {
    harness: (options) => {
      const made = harness(options);
      open.push(made);
      return made;
    },
    gate: () => {
      const made = gate();
      gates.push(made);
      return made;
    },
  };
}

/**
 * A store that is `base` except for the methods in `overrides`: a runner whose heartbeats hang or
 * fail, or a store that takes leases one at a time, over a memory store other runners share.
 */
export function storeWith(base: MemoryStore, overrides: Partial<Store>): Store {
  return new Proxy(base, {
    get(target, property, receiver) {
      if (typeof property === 'string' && Object.hasOwn(overrides, property)) return overrides[property as keyof Store];
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
