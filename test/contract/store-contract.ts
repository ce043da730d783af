/**
 * The store contract: one suite every `Store` adapter must pass (memory, SQLite, DynamoDB).
 * The memory store is the reference; an adapter that behaves differently has a bug.
 *
 * Times are passed explicitly (`now`), so nothing here sleeps.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LeaseRequest, Store, Trigger } from '../../core/ports/store.js';
import type { LogLine, RunRecord } from '../../core/types.js';
import { makeRun, release, seed, T0 } from '../helpers/records.js';

export interface StoreFixture {
  store: Store;
  /** Closes the store and removes whatever it left behind. */
  cleanup(): Promise<void>;
}


function leaseRequest(signature: string, owner: string, overrides: Partial<LeaseRequest> = {}): LeaseRequest {
  return {
    signature,
    owner,
    ttlMs: 1000,
    runId: `run-${owner}-${signature}`,
    instanceId: 'collector-a',
    task: 'fetch',
    ...overrides,
  };
}


/** A run that ended with `status` at `endedAt` (queued and started shortly before). */
function endedRun(id: string, status: RunRecord['status'], endedAt: number, overrides: Partial<RunRecord> = {}): RunRecord {
  return makeRun(id, { status, queuedAt: endedAt - 20, startedAt: endedAt - 10, endedAt, ...overrides });
}

function logLine(runId: string, seq: number, message = `line ${seq}`): LogLine {
  return { runId, seq, at: T0 + seq, level: 'info', message };
}

function ids(runs: readonly { id: string }[]): string[] {
  return runs.map((r) => r.id);
}

/**
 * Registers the store contract for one adapter. `makeStore` gives a fresh, empty store per test.
 *
 * @example
 * ```ts
 * describeStoreContract('memory', () => Promise.resolve({ store: new MemoryStore(), cleanup: () => Promise.resolve() }));
 * ```
 */
export function describeStoreContract(name: string, makeStore: () => Promise<StoreFixture>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let fixture: StoreFixture;

    beforeEach(async () => {
      fixture = await makeStore();
      store = fixture.store;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    describe('leases', () => {
      it('grants a free signature with token 1 and an expiry of now + ttl', async () => {
        const [grant] = await store.acquireLeases([leaseRequest('s1', 'runner-1', { ttlMs: 500 })], T0);

        expect(grant).toStrictEqual({
          granted: true,
          lease: {
            signature: 's1',
            owner: 'runner-1',
            expiresAt: T0 + 500,
            token: 1,
            runId: 'run-runner-1-s1',
            instanceId: 'collector-a',
            task: 'fetch',
          },
        });
        expect(await store.getLease('s1')).toStrictEqual(grant?.granted ? grant.lease : undefined);
      });

      it('refuses a live lease to another runner and reports the holder', async () => {
        const [first] = await store.acquireLeases([leaseRequest('s1', 'runner-1')], T0);

        const [second] = await store.acquireLeases([leaseRequest('s1', 'runner-2')], T0 + 999);

        expect(second).toStrictEqual({ granted: false, holder: first?.granted ? first.lease : undefined });
        expect((await store.getLease('s1'))?.owner).toBe('runner-1');
      });

      it('refuses a second acquisition by the same owner while its lease is live', async () => {
        await store.acquireLeases([leaseRequest('s1', 'runner-1')], T0);

        const [again] = await store.acquireLeases([leaseRequest('s1', 'runner-1')], T0 + 1);

        expect(again?.granted).toBe(false);
        expect((await store.getLease('s1'))?.token).toBe(1);
      });

      it('takes over an expired lease, reports the lease it replaced and increments the token', async () => {
        const [first] = await store.acquireLeases([leaseRequest('s1', 'runner-1', { ttlMs: 100 })], T0);

        const [takeover] = await store.acquireLeases([leaseRequest('s1', 'runner-2', { ttlMs: 100 })], T0 + 150);

        expect(takeover).toStrictEqual({
          granted: true,
          lease: {
            signature: 's1',
            owner: 'runner-2',
            expiresAt: T0 + 250,
            token: 2,
            runId: 'run-runner-2-s1',
            instanceId: 'collector-a',
            task: 'fetch',
          },
          takenOver: first?.granted ? first.lease : undefined,
        });
      });

      it('treats a lease whose expiry equals now as expired', async () => {
        await store.acquireLeases([leaseRequest('s1', 'runner-1', { ttlMs: 100 })], T0);

        const [grant] = await store.acquireLeases([leaseRequest('s1', 'runner-2')], T0 + 100);

        expect(grant?.granted).toBe(true);
      });

      it('grants a released lease at once, without a takeover, with the next token', async () => {
        const [first] = await store.acquireLeases([leaseRequest('s1', 'runner-1', { ttlMs: 60_000 })], T0);
        await release(store, { signature: 's1', owner: 'runner-1', token: 1 });

        const [second] = await store.acquireLeases([leaseRequest('s1', 'runner-2')], T0 + 1);

        expect(first?.granted).toBe(true);
        expect(second).toStrictEqual({
          granted: true,
          lease: expect.objectContaining({ owner: 'runner-2', token: 2 }) as unknown,
        });
        expect(second).not.toHaveProperty('takenOver');
      });

      it('keeps the token of a released lease and never reuses a token', async () => {
        const tokens: number[] = [];
        for (let i = 0; i < 4; i += 1) {
          const [grant] = await store.acquireLeases([leaseRequest('s1', `runner-${i}`)], T0 + i);
          if (!grant?.granted) throw new Error('expected a grant');
          tokens.push(grant.lease.token);
          await release(store, { signature: 's1', owner: `runner-${i}`, token: grant.lease.token });
        }

        expect(tokens).toStrictEqual([1, 2, 3, 4]);
        expect(await store.getLease('s1')).toStrictEqual({
          signature: 's1',
          owner: null,
          expiresAt: 0,
          token: 4,
          runId: 'run-runner-3-s1',
          instanceId: 'collector-a',
          task: 'fetch',
        });
      });

      it('answers each request of one call on its own, in order', async () => {
        await store.acquireLeases([leaseRequest('held', 'runner-1')], T0);

        const grants = await store.acquireLeases(
          [leaseRequest('free', 'runner-2'), leaseRequest('held', 'runner-2'), leaseRequest('free', 'runner-3')],
          T0 + 1,
        );

        expect(grants.map((g) => g.granted)).toStrictEqual([true, false, false]);
        expect(grants[2]).toStrictEqual({
          granted: false,
          holder: expect.objectContaining({ signature: 'free', owner: 'runner-2', token: 1 }) as unknown,
        });
      });

      it('returns undefined for a signature never leased', async () => {
        expect(await store.getLease('nothing')).toBeUndefined();
      });

      it('renews a lease only while owner and token both match', async () => {
        await store.acquireLeases([leaseRequest('s1', 'runner-1', { ttlMs: 100 })], T0);

        const renewed = await store.renewLeases(
          [
            { signature: 's1', owner: 'runner-1', token: 1 },
            { signature: 's1', owner: 'runner-2', token: 1 },
            { signature: 's1', owner: 'runner-1', token: 2 },
            { signature: 'unknown', owner: 'runner-1', token: 1 },
          ],
          1000,
          T0 + 50,
        );

        expect(renewed).toStrictEqual([true, false, false, false]);
        expect((await store.getLease('s1'))?.expiresAt).toBe(T0 + 1050);
      });

      it('keeps a renewed lease from being taken over at its old expiry', async () => {
        await store.acquireLeases([leaseRequest('s1', 'runner-1', { ttlMs: 100 })], T0);
        await store.renewLeases([{ signature: 's1', owner: 'runner-1', token: 1 }], 100, T0 + 90);

        const [grant] = await store.acquireLeases([leaseRequest('s1', 'runner-2')], T0 + 150);

        expect(grant?.granted).toBe(false);
      });

      it('refuses to renew a lease that was taken over or released', async () => {
        await store.acquireLeases([leaseRequest('taken', 'runner-1', { ttlMs: 100 })], T0);
        await store.acquireLeases([leaseRequest('taken', 'runner-2', { ttlMs: 100 })], T0 + 200);
        await store.acquireLeases([leaseRequest('released', 'runner-1', { ttlMs: 100 })], T0);
        await release(store, { signature: 'released', owner: 'runner-1', token: 1 });

        const renewed = await store.renewLeases(
          [
            { signature: 'taken', owner: 'runner-1', token: 1 },
            { signature: 'released', owner: 'runner-1', token: 1 },
          ],
          100,
          T0 + 210,
        );

        expect(renewed).toStrictEqual([false, false]);
        expect((await store.getLease('taken'))?.owner).toBe('runner-2');
      });

      it('ignores a release whose token moved on after a takeover', async () => {
        await store.acquireLeases([leaseRequest('s1', 'runner-1', { ttlMs: 100 })], T0);
        await store.acquireLeases([leaseRequest('s1', 'runner-2', { ttlMs: 1000 })], T0 + 200);

        await release(store, { signature: 's1', owner: 'runner-1', token: 1 });

        expect(await store.getLease('s1')).toMatchObject({ owner: 'runner-2', token: 2, expiresAt: T0 + 1200 });
      });

      it('ignores a release by a runner that does not own the lease', async () => {
        await store.acquireLeases([leaseRequest('s1', 'runner-1')], T0);

        await release(store, { signature: 's1', owner: 'runner-2', token: 1 });
        await release(store, { signature: 'unknown', owner: 'runner-1', token: 1 });

        expect(await store.getLease('s1')).toMatchObject({ owner: 'runner-1', token: 1, expiresAt: T0 + 1000 });
        expect(await store.getLease('unknown')).toBeUndefined();
      });

      it('lists only leases with an owner that have not expired', async () => {
        await store.acquireLeases(
          [
            leaseRequest('live-1', 'runner-1', { ttlMs: 1000 }),
            leaseRequest('live-2', 'runner-2', { ttlMs: 1000 }),
            leaseRequest('expired', 'runner-1', { ttlMs: 100 }),
            leaseRequest('released', 'runner-1', { ttlMs: 1000 }),
            leaseRequest('expires-now', 'runner-1', { ttlMs: 500 }),
          ],
          T0,
        );
        await release(store, { signature: 'released', owner: 'runner-1', token: 1 });

        const active = await store.listActiveLeases(T0 + 500);

        expect(active.map((l) => l.signature).sort()).toStrictEqual(['live-1', 'live-2']);
        expect(active.find((l) => l.signature === 'live-2')).toStrictEqual({
          signature: 'live-2',
          owner: 'runner-2',
          expiresAt: T0 + 1000,
          token: 1,
          runId: 'run-runner-2-live-2',
          instanceId: 'collector-a',
          task: 'fetch',
        });
      });
    });

    describe('runs', () => {
      it('returns a committed run exactly as written, every optional field included', async () => {
        const run = makeRun('r1', {
          status: 'failed',
          startedAt: T0 + 5,
          endedAt: T0 + 9,
          input: { query: 'q', pages: [1, 2, { deep: null }], flag: true },
          result: { rows: 3, items: ['a', 'b'] },
          error: { name: 'TypeError', message: 'boom', stack: 'TypeError: boom\n    at x' },
          progress: { current: 2, total: 5, message: 'page 2', updatedAt: T0 + 8 },
        });

        await seed(store, { runs: [run] });

        expect(await store.getRun('r1')).toStrictEqual(run);
      });

      it('returns a run without optional fields without adding keys for them', async () => {
        const run = makeRun('r1');

        await seed(store, { runs: [run] });

        expect(await store.getRun('r1')).toStrictEqual(run);
      });

      it('keeps a null result apart from no result', async () => {
        await seed(store, { runs: [makeRun('null-result', { result: null, input: null })] });

        const stored = await store.getRun('null-result');

        expect(stored).toHaveProperty('result', null);
        expect(stored).toHaveProperty('input', null);
      });

      it('replaces a run committed again under the same id, dropping fields the new version lacks', async () => {
        await seed(store, {
          runs: [makeRun('r1', { status: 'running', startedAt: T0 + 1, progress: { current: 1, updatedAt: T0 + 2 } })],
        });
        const final = makeRun('r1', { status: 'succeeded', startedAt: T0 + 1, endedAt: T0 + 3, result: 'done' });

        await seed(store, { runs: [final] });

        expect(await store.getRun('r1')).toStrictEqual(final);
        expect(await store.listRuns({})).toHaveLength(1);
      });

      it('replaces every field of a live run committed again, not only those that usually move on', async () => {
        await seed(store, { runs: [makeRun('r1', { status: 'queued', input: { n: 1 }, origin: 'schedule' })] });
        const rewritten = makeRun('r1', { status: 'running', startedAt: T0 + 1, input: { n: 2 }, origin: 'manual', triggerId: 't1' });

        await seed(store, { runs: [rewritten] });

        expect(await store.getRun('r1')).toStrictEqual(rewritten);
      });

      it('keeps the last version when one batch carries a run twice', async () => {
        const running = makeRun('r1', { status: 'running', startedAt: T0 + 1 });
        const done = makeRun('r1', { status: 'succeeded', startedAt: T0 + 1, endedAt: T0 + 2 });

        await seed(store, { runs: [running, done] });

        expect(await store.getRun('r1')).toStrictEqual(done);
      });

      it('keeps its own copy: changing a record after commit or after reading changes nothing stored', async () => {
        const run = makeRun('r1', { input: { list: [1] } });
        await seed(store, { runs: [run] });

        run.status = 'failed';
        const read = await store.getRun('r1');
        if (read && typeof read.input === 'object' && read.input !== null && !Array.isArray(read.input)) {
          read.input.list = [];
        }

        expect(await store.getRun('r1')).toStrictEqual(makeRun('r1', { input: { list: [1] } }));
      });

      it('returns undefined for an unknown run id', async () => {
        expect(await store.getRun('missing')).toBeUndefined();
      });

      it('accepts an empty batch', async () => {
        await store.commit({});

        expect(await store.listRuns({})).toStrictEqual([]);
      });

      it('applies runs, logs, checkpoints, releases and triggers of one batch together', async () => {
        await store.acquireLeases([leaseRequest('s1', 'runner-1')], T0);

        const result = await store.commit({
          fenced: [
            {
              fence: { signature: 's1', owner: 'runner-1', token: 1 },
              runs: [makeRun('r1', { signature: 's1' })],
              logs: [logLine('r1', 1)],
              checkpoint: { signature: 's1', value: { cursor: 7 }, runId: 'r1', at: T0 },
              release: true,
            },
          ],
          triggers: [{ id: 't1', instanceId: 'collector-a', at: T0 }],
        });

        expect(result).toStrictEqual({ refused: [] });
        expect(await store.getRun('r1')).toBeDefined();
        expect(await store.getLogs('r1')).toHaveLength(1);
        expect((await store.getCheckpoint('s1'))?.value).toStrictEqual({ cursor: 7 });
        expect((await store.getLease('s1'))?.owner).toBeNull();
        expect(ids(await store.takeTriggers(10))).toStrictEqual(['t1']);
      });
    });

    describe('fenced writes', () => {
      const stale = { signature: 's1', owner: 'runner-1', token: 1 };

      /** runner-1 held s1 with token 1 until it expired; runner-2 took it over with token 2. */
      async function takeOver(): Promise<void> {
        await store.acquireLeases([leaseRequest('s1', 'runner-1', { ttlMs: 100 })], T0);
        await store.acquireLeases([leaseRequest('s1', 'runner-2', { ttlMs: 10_000 })], T0 + 200);
      }

      it('refuses every write of a stale holder whole and says whose: run, logs, checkpoint and release', async () => {
        await takeOver();

        const result = await store.commit({
          fenced: [
            {
              fence: stale,
              runs: [makeRun('stale-run', { signature: 's1', status: 'succeeded', endedAt: T0 + 300, result: { by: 'first' } })],
              logs: [logLine('stale-run', 1)],
              checkpoint: { signature: 's1', value: { by: 'first' }, runId: 'stale-run', at: T0 + 300 },
              release: true,
            },
          ],
        });

        expect(result.refused).toStrictEqual([stale]);
        expect(await store.getRun('stale-run')).toBeUndefined();
        expect(await store.getLogs('stale-run')).toStrictEqual([]);
        expect(await store.getCheckpoint('s1')).toBeUndefined();
        expect(await store.getLease('s1')).toMatchObject({ owner: 'runner-2', token: 2 });
      });

      it('applies the current holder’s group and refuses the stale one in the same batch', async () => {
        await takeOver();
        const current = { signature: 's1', owner: 'runner-2', token: 2 };

        const result = await store.commit({
          fenced: [
            { fence: stale, checkpoint: { signature: 's1', value: { by: 'first' }, runId: 'a', at: T0 + 300 } },
            { fence: current, checkpoint: { signature: 's1', value: { by: 'takeover' }, runId: 'b', at: T0 + 301 } },
          ],
        });

        expect(result.refused).toStrictEqual([stale]);
        expect((await store.getCheckpoint('s1'))?.value).toStrictEqual({ by: 'takeover' });
        const [next] = await store.acquireLeases([leaseRequest('s1', 'runner-3')], T0 + 20_000);
        expect(next).toMatchObject({ granted: true, checkpoint: { value: { by: 'takeover' } } });
      });

      it('refuses writes under a lease its holder released', async () => {
        await store.acquireLeases([leaseRequest('s1', 'runner-1')], T0);
        await release(store, stale);

        const result = await store.commit({ fenced: [{ fence: stale, runs: [makeRun('late', { signature: 's1' })] }] });

        expect(result.refused).toStrictEqual([stale]);
        expect(await store.getRun('late')).toBeUndefined();
      });

      it('never replaces a run that reached a final state', async () => {
        await store.acquireLeases([leaseRequest('s1', 'runner-1', { ttlMs: 60_000 })], T0);
        const interrupted = makeRun('r1', { signature: 's1', status: 'interrupted', endedAt: T0 + 5, error: { name: 'LeaseExpiredError', message: 'gone' } });
        await store.commit({ fenced: [{ fence: stale, runs: [interrupted] }] });

        const result = await store.commit({ fenced: [{ fence: stale, runs: [makeRun('r1', { signature: 's1', status: 'succeeded', endedAt: T0 + 6 })] }] });

        expect(result.refused).toStrictEqual([]);
        expect(await store.getRun('r1')).toStrictEqual(interrupted);
      });

      it('refuses a grant to a plan that read the history before the lease was last released', async () => {
        await store.acquireLeases([leaseRequest('s1', 'runner-1')], T0);
        await release(store, stale, T0 + 50);

        const [planBefore] = await store.acquireLeases([leaseRequest('s1', 'runner-2', { notReleasedSince: T0 + 50 })], T0 + 60);
        const [planAfter] = await store.acquireLeases([leaseRequest('s1', 'runner-2', { notReleasedSince: T0 + 51 })], T0 + 60);

        expect(planBefore).toMatchObject({ granted: false, holder: { owner: null, token: 1 } });
        expect(planAfter).toMatchObject({ granted: true, lease: { owner: 'runner-2', token: 2 } });
      });

      it('records trigger results and hands them back by id', async () => {
        await store.commit({ triggerResults: [{ id: 'trg-1', instanceId: 'collector-a', at: T0, runIds: [] , note: 'the plan returned no task' }] });
        await store.commit({ triggerResults: [{ id: 'trg-2', instanceId: 'collector-a', at: T0, runIds: ['r1', 'r2'] }] });

        expect(await store.getTriggerResult('trg-1')).toStrictEqual({ id: 'trg-1', instanceId: 'collector-a', at: T0, runIds: [], note: 'the plan returned no task' });
        expect(await store.getTriggerResult('trg-2')).toStrictEqual({ id: 'trg-2', instanceId: 'collector-a', at: T0, runIds: ['r1', 'r2'] });
        expect(await store.getTriggerResult('missing')).toBeUndefined();
      });
    });

    describe('sweep', () => {
      /** A run of `signature` written under runner-1's lease (token 1, ttl 100 ms from T0). */
      async function liveRun(id: string, signature: string, status: RunRecord['status'] = 'running'): Promise<RunRecord> {
        await store.acquireLeases([leaseRequest(signature, 'runner-1', { ttlMs: 100 })], T0);
        const run = makeRun(id, { signature, status, runner: 'runner-1', fencingToken: 1, startedAt: T0 + 1 });
        await store.commit({ fenced: [{ fence: { signature, owner: 'runner-1', token: 1 }, runs: [run] }] });
        return run;
      }

      it('leaves runs alone while their lease is live', async () => {
        await liveRun('r1', 's1');

        expect(await store.sweep(T0 + 99)).toStrictEqual([]);
        expect((await store.getRun('r1'))?.status).toBe('running');
      });

      it('ends queued, running and retrying runs whose lease expired, and releases the expired lease', async () => {
        await liveRun('running', 's1');
        await liveRun('queued', 's2', 'queued');
        await liveRun('retrying', 's3', 'retrying');

        const swept = await store.sweep(T0 + 100);

        expect(swept.map((s) => s.run.id).sort()).toStrictEqual(['queued', 'retrying', 'running']);
        for (const id of ['running', 'queued', 'retrying']) {
          expect(await store.getRun(id)).toMatchObject({ status: 'interrupted', endedAt: T0 + 100, error: { name: 'LeaseExpiredError' } });
        }
        expect(await store.getLease('s1')).toMatchObject({ owner: null, token: 1 });
        expect(await store.sweep(T0 + 200)).toStrictEqual([]);
      });

      it('fences off the swept holder: its later writes are refused', async () => {
        await liveRun('r1', 's1');
        await store.sweep(T0 + 500);

        const late = await store.commit({
          fenced: [{ fence: { signature: 's1', owner: 'runner-1', token: 1 }, runs: [makeRun('r1', { signature: 's1', status: 'succeeded', endedAt: T0 + 600 })], release: true }],
        });

        expect(late.refused).toHaveLength(1);
        expect((await store.getRun('r1'))?.status).toBe('interrupted');
      });

      it('ends a run whose lease was taken over by a newer token, and leaves the new holder’s lease alone', async () => {
        await liveRun('old', 's1');
        await store.acquireLeases([leaseRequest('s1', 'runner-2', { ttlMs: 10_000 })], T0 + 200);

        const swept = await store.sweep(T0 + 300);

        expect(swept.map((s) => s.run.id)).toStrictEqual(['old']);
        expect((await store.getRun('old'))?.status).toBe('interrupted');
        expect(await store.getLease('s1')).toMatchObject({ owner: 'runner-2', token: 2 });
      });

      it('ends a live run whose lease was released without its final record', async () => {
        await seed(store, { runs: [makeRun('orphan', { signature: 'never-leased-by-its-runner', runner: 'runner-9', fencingToken: 7 })] });

        const swept = await store.sweep(T0 + 1);

        expect(swept.map((s) => s.run.id)).toStrictEqual(['orphan']);
        expect(await store.getRun('orphan')).toMatchObject({ status: 'interrupted', error: { name: 'LeaseExpiredError' } });
      });

      it('leaves final runs alone', async () => {
        await seed(store, { runs: [endedRun('done', 'succeeded', T0 + 5), endedRun('failed', 'failed', T0 + 6, { signature: 'other' })] });

        expect(await store.sweep(T0 + 100_000)).toStrictEqual([]);
      });
    });

    describe('logs', () => {
      it('returns a run’s lines ordered by seq whatever the order they were committed in', async () => {
        await seed(store, { logs: [logLine('r1', 3), logLine('r1', 1)] });
        await seed(store, { logs: [logLine('r2', 2), logLine('r1', 2)] });

        const lines = await store.getLogs('r1');

        expect(lines).toStrictEqual([logLine('r1', 1), logLine('r1', 2), logLine('r1', 3)]);
      });

      it('returns only lines after afterSeq', async () => {
        await seed(store, { logs: [1, 2, 3, 4].map((seq) => logLine('r1', seq)) });

        const lines = await store.getLogs('r1', 2);

        expect(lines.map((l) => l.seq)).toStrictEqual([3, 4]);
      });

      it('keeps every field of a line', async () => {
        const line: LogLine = { runId: 'r1', seq: 1, at: T0 + 1, level: 'warn', message: 'slow page ✓ "quoted"\nnext' };

        await seed(store, { logs: [line] });

        expect(await store.getLogs('r1')).toStrictEqual([line]);
      });

      it('returns no lines for a run without logs', async () => {
        await seed(store, { logs: [logLine('r1', 1)] });

        expect(await store.getLogs('r2')).toStrictEqual([]);
        expect(await store.getLogs('r1', 1)).toStrictEqual([]);
      });
    });

    describe('checkpoints', () => {
      it('keeps the latest checkpoint of a signature', async () => {
        await seed(store, { checkpoints: [{ signature: 's1', value: { cursor: 1 }, runId: 'r1', at: T0 }] });
        await seed(store, { checkpoints: [{ signature: 's1', value: { cursor: 2 }, runId: 'r2', at: T0 + 1 }] });

        expect(await store.getCheckpoint('s1')).toStrictEqual({
          signature: 's1',
          value: { cursor: 2 },
          runId: 'r2',
          at: T0 + 1,
        });
      });

      it('hands the last checkpoint out with a granted lease, and none with a signature never checkpointed', async () => {
        await seed(store, { checkpoints: [{ signature: 's1', value: { cursor: 9 }, runId: 'r1', at: T0 }] });

        const [withCheckpoint, without] = await store.acquireLeases([leaseRequest('s1', 'a'), leaseRequest('s2', 'a')], T0);

        expect(withCheckpoint).toMatchObject({ granted: true, checkpoint: { signature: 's1', value: { cursor: 9 }, runId: 'r1', at: T0 } });
        expect(without).not.toHaveProperty('checkpoint');
      });

      it('keeps checkpoints of signatures apart and returns undefined for one never written', async () => {
        await seed(store, {
          checkpoints: [
            { signature: 's1', value: [1, 'a'], runId: 'r1', at: T0 },
            { signature: 's2', value: null, runId: 'r2', at: T0 },
          ],
        });

        expect((await store.getCheckpoint('s1'))?.value).toStrictEqual([1, 'a']);
        expect(await store.getCheckpoint('s2')).toHaveProperty('value', null);
        expect(await store.getCheckpoint('s3')).toBeUndefined();
      });
    });

    describe('instance state', () => {
      it('returns what was set, and the latest value after an overwrite', async () => {
        await store.setState('collector-a', 'cursor', { page: 1 });
        await store.setState('collector-a', 'cursor', { page: 2, seen: ['x'] });

        expect(await store.getState('collector-a', 'cursor')).toStrictEqual({ page: 2, seen: ['x'] });
      });

      it('deletes a key set to undefined', async () => {
        await store.setState('collector-a', 'cursor', 1);

        await store.setState('collector-a', 'cursor', undefined);

        expect(await store.getState('collector-a', 'cursor')).toBeUndefined();
      });

      it('keeps keys of different instances apart', async () => {
        await store.setState('collector-a', 'k', 'a');
        await store.setState('collector-b', 'k', 'b');

        expect(await store.getState('collector-a', 'k')).toBe('a');
        expect(await store.getState('collector-b', 'k')).toBe('b');
        expect(await store.getState('collector-c', 'k')).toBeUndefined();
      });

      it('stores null, false and 0 as values, not as absence', async () => {
        await store.setState('i', 'null', null);
        await store.setState('i', 'false', false);
        await store.setState('i', 'zero', 0);

        expect(await store.getState('i', 'null')).toBeNull();
        expect(await store.getState('i', 'false')).toBe(false);
        expect(await store.getState('i', 'zero')).toBe(0);
      });

      it('ignores the deletion of a key never set', async () => {
        await store.setState('i', 'never', undefined);

        expect(await store.getState('i', 'never')).toBeUndefined();
      });
    });

    describe('instance status', () => {
      it('returns the status set, and replaces it whole on the next set', async () => {
        await store.setInstanceStatus('a', {
          instanceId: 'a',
          planError: { name: 'Error', message: 'bad plan', stack: 'Error: bad plan', at: T0 },
        });
        const retired = { instanceId: 'a', retiredAt: T0 + 1, retiredReason: 'done' };

        await store.setInstanceStatus('a', retired);

        expect(await store.getInstanceStatus('a')).toStrictEqual(retired);
      });

      it('keeps the time of the last scheduled plan beside the other fields', async () => {
        const status = { instanceId: 'a', lastPlannedAt: T0 + 5, retiredAt: T0 + 6, retiredReason: 'finished' };

        await store.setInstanceStatus('a', status);

        expect(await store.getInstanceStatus('a')).toStrictEqual(status);
      });

      it('keeps a plan error with all its fields', async () => {
        const status = { instanceId: 'a', planError: { name: 'ZodError', message: 'bad input', at: T0 } };

        await store.setInstanceStatus('a', status);

        expect(await store.getInstanceStatus('a')).toStrictEqual(status);
      });

      it('clears the status set to undefined', async () => {
        await store.setInstanceStatus('a', { instanceId: 'a', retiredAt: T0 });

        await store.setInstanceStatus('a', undefined);

        expect(await store.getInstanceStatus('a')).toBeUndefined();
        expect(await store.listInstanceStatus()).toStrictEqual([]);
      });

      it('lists the status of every instance that has one', async () => {
        await store.setInstanceStatus('b', { instanceId: 'b', retiredAt: T0, retiredReason: 'finished' });
        await store.setInstanceStatus('a', { instanceId: 'a' });
        await store.setInstanceStatus('c', { instanceId: 'c', retiredAt: T0 });
        await store.setInstanceStatus('c', undefined);

        const statuses = await store.listInstanceStatus();

        expect([...statuses].sort((x, y) => (x.instanceId < y.instanceId ? -1 : 1))).toStrictEqual([
          { instanceId: 'a' },
          { instanceId: 'b', retiredAt: T0, retiredReason: 'finished' },
        ]);
      });
    });

    describe('triggers', () => {
      it('hands out triggers oldest first, ties in the order they were added', async () => {
        await store.addTrigger({ id: 'late', instanceId: 'a', at: T0 + 10 });
        await store.addTrigger({ id: 'tie-1', instanceId: 'a', at: T0 + 5 });
        await store.commit({ triggers: [{ id: 'tie-2', instanceId: 'a', at: T0 + 5 }] });
        await store.addTrigger({ id: 'early', instanceId: 'a', at: T0 });

        const taken = await store.takeTriggers(10);

        expect(ids(taken)).toStrictEqual(['early', 'tie-1', 'tie-2', 'late']);
      });

      it('hands out each trigger once, at most limit per call', async () => {
        for (let i = 0; i < 5; i += 1) await store.addTrigger({ id: `t${i}`, instanceId: 'a', at: T0 + i });

        const first = await store.takeTriggers(2);
        const second = await store.takeTriggers(2);
        const third = await store.takeTriggers(2);
        const fourth = await store.takeTriggers(2);

        expect([ids(first), ids(second), ids(third), ids(fourth)]).toStrictEqual([
          ['t0', 't1'],
          ['t2', 't3'],
          ['t4'],
          [],
        ]);
      });

      it('takes nothing with a limit of 0', async () => {
        await store.addTrigger({ id: 't1', instanceId: 'a', at: T0 });

        expect(await store.takeTriggers(0)).toStrictEqual([]);
        expect(ids(await store.takeTriggers(1))).toStrictEqual(['t1']);
      });

      it('returns a trigger exactly as added, with or without task and input', async () => {
        const full: Trigger = { id: 't1', instanceId: 'a', task: 'fetch', input: { page: 2, tags: ['x'] }, at: T0 };
        const planOnly: Trigger = { id: 't2', instanceId: 'b', at: T0 + 1 };
        const nullInput: Trigger = { id: 't3', instanceId: 'c', task: 'fetch', input: null, at: T0 + 2 };
        await store.addTrigger(full);
        await store.addTrigger(planOnly);
        await store.addTrigger(nullInput);

        expect(await store.takeTriggers(10)).toStrictEqual([full, planOnly, nullInput]);
      });
    });

    describe('listRuns', () => {
      // queuedAt T0+1..T0+6; r3 and r4 share a queuedAt.
      const runs: RunRecord[] = [
        makeRun('r1', { queuedAt: T0 + 1, status: 'succeeded', endedAt: T0 + 50 }),
        makeRun('r2', { queuedAt: T0 + 2, status: 'failed', task: 'parse', signature: 'collector-a/parse/x', endedAt: T0 + 51 }),
        makeRun('r3', { queuedAt: T0 + 3, status: 'running', instanceId: 'collector-b', signature: 'shared' }),
        makeRun('r4', { queuedAt: T0 + 3, status: 'succeeded', signature: 'shared', endedAt: T0 + 52 }),
        makeRun('r5', { queuedAt: T0 + 5, status: 'queued', instanceId: 'collector-b', task: 'parse', signature: 'collector-b/parse/y' }),
        makeRun('r6', { queuedAt: T0 + 6, status: 'retrying', endedAt: T0 + 53 }),
      ];

      beforeEach(async () => {
        await seed(store, { runs });
      });

      it('lists all runs newest queued first, ties by id descending', async () => {
        expect(ids(await store.listRuns({}))).toStrictEqual(['r6', 'r5', 'r4', 'r3', 'r2', 'r1']);
      });

      it('returns whole records', async () => {
        const listed = await store.listRuns({ signature: 'collector-b/parse/y' });

        expect(listed).toStrictEqual([runs[4]]);
      });

      it('filters by instance', async () => {
        expect(ids(await store.listRuns({ instanceId: 'collector-b' }))).toStrictEqual(['r5', 'r3']);
      });

      it('filters by task', async () => {
        expect(ids(await store.listRuns({ task: 'parse' }))).toStrictEqual(['r5', 'r2']);
      });

      it('filters by instance and task together', async () => {
        expect(ids(await store.listRuns({ instanceId: 'collector-a', task: 'fetch' }))).toStrictEqual(['r6', 'r4', 'r1']);
      });

      it('filters by signature across instances', async () => {
        expect(ids(await store.listRuns({ signature: 'shared' }))).toStrictEqual(['r4', 'r3']);
      });

      it('filters by one status', async () => {
        expect(ids(await store.listRuns({ status: 'succeeded' }))).toStrictEqual(['r4', 'r1']);
      });

      it('filters by a list of statuses', async () => {
        expect(ids(await store.listRuns({ status: ['queued', 'running', 'retrying'] }))).toStrictEqual(['r6', 'r5', 'r3']);
      });

      it('matches nothing with an empty list of statuses', async () => {
        expect(await store.listRuns({ status: [] })).toStrictEqual([]);
      });

      it('keeps runs queued at or after since and before until', async () => {
        expect(ids(await store.listRuns({ since: T0 + 3, until: T0 + 6 }))).toStrictEqual(['r5', 'r4', 'r3']);
      });

      it('combines every filter', async () => {
        const listed = await store.listRuns({
          instanceId: 'collector-a',
          task: 'fetch',
          signature: 'collector-a/fetch/x',
          status: ['succeeded', 'retrying'],
          since: T0 + 1,
          until: T0 + 6,
        });

        expect(ids(listed)).toStrictEqual(['r1']);
      });

      it('returns at most limit runs, the newest', async () => {
        expect(ids(await store.listRuns({ limit: 2 }))).toStrictEqual(['r6', 'r5']);
        expect(ids(await store.listRuns({ status: 'succeeded', limit: 1 }))).toStrictEqual(['r4']);
      });

      it('returns nothing when nothing matches', async () => {
        expect(await store.listRuns({ instanceId: 'nobody' })).toStrictEqual([]);
      });

      it('returns 100 runs when no limit is given', async () => {
        const many = Array.from({ length: 105 }, (_, i) => makeRun(`m${String(i).padStart(3, '0')}`, { queuedAt: T0 + 100 + i }));
        await seed(store, { runs: many });

        const listed = await store.listRuns({});

        expect(listed).toHaveLength(100);
        expect(listed[0]?.id).toBe('m104');
        expect(listed[99]?.id).toBe('m005');
      });
    });

    describe('lastRun', () => {
      it('picks the run queued last, whether it ended and whenever it did', async () => {
        await seed(store, {
          runs: [
            // Ended last of all, long after the others were queued (a stale run the sweeper ends, say).
            makeRun('queued-first', { queuedAt: T0, status: 'succeeded', startedAt: T0 + 1, endedAt: T0 + 100 }),
            makeRun('queued-second', { queuedAt: T0 + 50, status: 'running', startedAt: T0 + 55 }),
            makeRun('queued-third', { queuedAt: T0 + 60, status: 'failed', startedAt: T0 + 61, endedAt: T0 + 70 }),
          ],
        });

        expect((await store.lastRun({}))?.id).toBe('queued-third');
        expect((await store.lastRun({ status: ['succeeded', 'running'] }))?.id).toBe('queued-second');
        expect((await store.lastRun({ status: 'succeeded' }))?.id).toBe('queued-first');

        await seed(store, { runs: [makeRun('queued-last', { queuedAt: T0 + 101 })] });

        expect((await store.lastRun({}))?.id).toBe('queued-last');
      });

      it('breaks ties of queue time by the greater id, whichever ended and whenever', async () => {
        const signature = 'collector-a/fetch/x';
        // Written out of their order: ties first, the greater id in the middle, the oldest last.
        await seed(store, {
          runs: [
            makeRun('a', { queuedAt: T0 + 10, status: 'failed', endedAt: T0 + 300 }),
            makeRun('c', { queuedAt: T0 + 10 }),
            makeRun('b', { queuedAt: T0 + 10, status: 'succeeded', endedAt: T0 + 200 }),
            makeRun('d', { queuedAt: T0 + 5, status: 'succeeded', endedAt: T0 + 400 }),
          ],
        });

        expect((await store.lastRun({}))?.id).toBe('c');
        expect((await store.lastRun({ signature }))?.id).toBe('c');
        expect((await store.lastRun({ instanceId: 'collector-a', task: 'fetch' }))?.id).toBe('c');
        expect((await store.lastRun({ status: 'succeeded' }))?.id).toBe('b');
        expect((await store.lastRun({ signature, status: 'succeeded' }))?.id).toBe('b');
        expect((await store.lastRun({ instanceId: 'collector-a', task: 'fetch', status: 'succeeded' }))?.id).toBe('b');
        expect((await store.lastRun({ signature, status: ['failed', 'succeeded'] }))?.id).toBe('b');
        expect((await store.lastRun({ signature, status: 'failed' }))?.id).toBe('a');
        expect(ids(await store.listRuns({ signature }))).toStrictEqual(['c', 'b', 'a', 'd']);
      });

      it("follows a signature's runs as each moves on: newest by queue time, then id, however they end", async () => {
        const signature = 'collector-a/fetch/x';
        const newest = async () => (await store.lastRun({ signature }))?.id;
        const newestSuccess = async () => (await store.lastRun({ signature, status: 'succeeded' }))?.id;
        await seed(store, { runs: [makeRun('first', { queuedAt: T0 })] });
        await seed(store, { runs: [makeRun('second', { queuedAt: T0 + 50 })] });
        expect([await newest(), await newestSuccess()]).toStrictEqual(['second', undefined]);

        // The older run ends after the newer one was queued (a stale run the sweeper ends, say):
        // the newer stays the newest.
        await seed(store, { runs: [makeRun('first', { queuedAt: T0, status: 'succeeded', endedAt: T0 + 100 })] });
        expect([await newest(), await newestSuccess()]).toStrictEqual(['second', 'first']);

        // The newer ends earlier than the older did.
        await seed(store, { runs: [makeRun('second', { queuedAt: T0 + 50, status: 'succeeded', endedAt: T0 + 80 })] });
        expect([await newest(), await newestSuccess()]).toStrictEqual(['second', 'second']);

        await seed(store, { runs: [makeRun('third', { queuedAt: T0 + 200, status: 'failed', endedAt: T0 + 210 })] });
        expect([await newest(), await newestSuccess()]).toStrictEqual(['third', 'second']);
        expect((await store.lastRun({ signature, status: 'failed' }))?.id).toBe('third');

        // Written last and ended last, queued between second and third: the newest success, not the newest run.
        await seed(store, { runs: [makeRun('between', { queuedAt: T0 + 60, status: 'succeeded', endedAt: T0 + 1000 })] });
        expect([await newest(), await newestSuccess()]).toStrictEqual(['third', 'between']);
        expect(ids(await store.listRuns({ signature }))).toStrictEqual(['third', 'between', 'second', 'first']);
        expect(ids(await store.listRuns({ signature, status: 'succeeded', limit: 1 }))).toStrictEqual(['between']);
      });

      it("follows an instance's task across its inputs as its runs move on: newest by queue time, then id, however they end", async () => {
        const task = { instanceId: 'collector-a', task: 'fetch' } as const;
        const page = (n: number) => ({ signature: `collector-a/fetch/page-${n}`, input: { page: n } });
        const newest = async () => (await store.lastRun(task))?.id;
        const newestSuccess = async () => (await store.lastRun({ ...task, status: 'succeeded' }))?.id;
        await seed(store, { runs: [makeRun('p1', { ...page(1), queuedAt: T0 })] });
        await seed(store, { runs: [makeRun('p2', { ...page(2), queuedAt: T0 + 50 })] });
        // Another task of the instance, and the same task of another instance, newer still.
        await seed(store, {
          runs: [
            makeRun('parse', { task: 'parse', signature: 'collector-a/parse/x', queuedAt: T0 + 60, status: 'succeeded', endedAt: T0 + 500 }),
            makeRun('elsewhere', { instanceId: 'collector-b', signature: 'collector-b/fetch/x', queuedAt: T0 + 60, status: 'succeeded', endedAt: T0 + 500 }),
          ],
        });
        expect([await newest(), await newestSuccess()]).toStrictEqual(['p2', undefined]);

        // The older input's run ends after the newer one was queued: the newer stays the newest.
        await seed(store, { runs: [makeRun('p1', { ...page(1), queuedAt: T0, status: 'succeeded', endedAt: T0 + 100 })] });
        expect([await newest(), await newestSuccess()]).toStrictEqual(['p2', 'p1']);

        await seed(store, { runs: [makeRun('p2', { ...page(2), queuedAt: T0 + 50, status: 'succeeded', endedAt: T0 + 80 })] });
        expect([await newest(), await newestSuccess()]).toStrictEqual(['p2', 'p2']);

        await seed(store, { runs: [makeRun('p3', { ...page(3), queuedAt: T0 + 200, status: 'failed', endedAt: T0 + 210 })] });
        expect([await newest(), await newestSuccess()]).toStrictEqual(['p3', 'p2']);
        expect((await store.lastRun({ ...task, status: 'failed' }))?.id).toBe('p3');

        // Page 1 again, queued between p2 and p3, ending last of all.
        await seed(store, { runs: [makeRun('p1-again', { ...page(1), queuedAt: T0 + 100, status: 'succeeded', endedAt: T0 + 1000 })] });
        expect([await newest(), await newestSuccess()]).toStrictEqual(['p3', 'p1-again']);
        expect((await store.lastRun({ ...task, status: ['queued', 'running'] }))?.id).toBeUndefined();
      });

      it('reports the first run listRuns lists, for every query it takes', async () => {
        const sigA = 'collector-a/fetch/a';
        const sigB = 'collector-a/fetch/b';
        const sigC = 'collector-b/fetch/a';
        await seed(store, {
          runs: [
            // Queued first, ended last of its signature.
            makeRun('a1', { signature: sigA, queuedAt: T0, status: 'succeeded', endedAt: T0 + 500 }),
            makeRun('a2', { signature: sigA, queuedAt: T0 + 100, status: 'failed', endedAt: T0 + 110 }),
            makeRun('a3', { signature: sigA, queuedAt: T0 + 100, status: 'interrupted', endedAt: T0 + 400 }),
            makeRun('b1', { signature: sigB, input: { page: 'b' }, queuedAt: T0 + 150, status: 'succeeded', endedAt: T0 + 160 }),
            makeRun('b2', { signature: sigB, input: { page: 'b' }, queuedAt: T0 + 300, status: 'running', startedAt: T0 + 301 }),
            makeRun('p1', { task: 'parse', signature: 'collector-a/parse/x', queuedAt: T0 + 200, status: 'succeeded', endedAt: T0 + 450 }),
            makeRun('c1', { instanceId: 'collector-b', signature: sigC, queuedAt: T0 + 250 }),
            // Written after c1, queued before it, ended last of all.
            makeRun('c0', { instanceId: 'collector-b', signature: sigC, queuedAt: T0 + 50, status: 'succeeded', endedAt: T0 + 600 }),
          ],
        });
        const cases: [query: Parameters<Store['lastRun']>[0], expected: string | undefined][] = [
          [{}, 'b2'],
          [{ signature: sigA }, 'a3'],
          [{ signature: sigA, status: 'succeeded' }, 'a1'],
          [{ signature: sigA, status: 'failed' }, 'a2'],
          [{ signature: sigA, status: ['failed', 'succeeded'] }, 'a2'],
          [{ signature: sigC }, 'c1'],
          [{ signature: sigC, status: 'succeeded' }, 'c0'],
          [{ signature: sigA, instanceId: 'collector-b' }, undefined],
          [{ instanceId: 'collector-a', task: 'fetch' }, 'b2'],
          [{ instanceId: 'collector-a', task: 'fetch', status: 'succeeded' }, 'b1'],
          [{ instanceId: 'collector-a', task: 'fetch', status: ['interrupted', 'succeeded'] }, 'b1'],
          [{ instanceId: 'collector-a' }, 'b2'],
          [{ instanceId: 'collector-a', status: 'succeeded' }, 'p1'],
          [{ instanceId: 'collector-b' }, 'c1'],
          [{ task: 'parse' }, 'p1'],
          [{ status: 'succeeded' }, 'p1'],
          [{ status: ['failed', 'interrupted'] }, 'a3'],
          [{ status: ['queued', 'running'] }, 'b2'],
        ];

        for (const [query, expected] of cases) {
          const last = await store.lastRun(query);
          const [listed] = await store.listRuns({ ...query, limit: 1 });
          expect({ query, last: last?.id }).toStrictEqual({ query, last: expected });
          expect(last).toStrictEqual(listed);
        }
      });

      it('applies the instance, task, signature and status filters', async () => {
        await seed(store, {
          runs: [
            endedRun('ok-old', 'succeeded', T0 + 10),
            endedRun('ok-new', 'succeeded', T0 + 20),
            endedRun('failed-newest', 'failed', T0 + 30),
            endedRun('other-task', 'succeeded', T0 + 40, { task: 'parse', signature: 'collector-a/parse/x' }),
            endedRun('other-instance', 'succeeded', T0 + 50, { instanceId: 'collector-b' }),
          ],
        });

        expect((await store.lastRun({ instanceId: 'collector-a', task: 'fetch' }))?.id).toBe('failed-newest');
        expect((await store.lastRun({ instanceId: 'collector-a', task: 'fetch', status: 'succeeded' }))?.id).toBe('ok-new');
        expect((await store.lastRun({ signature: 'collector-a/fetch/x', status: ['succeeded'] }))?.id).toBe('other-instance');
        expect((await store.lastRun({ task: 'parse' }))?.id).toBe('other-task');
      });

      it('returns the whole record', async () => {
        const run = endedRun('r1', 'succeeded', T0 + 10, { result: { n: 1 } });
        await seed(store, { runs: [run] });

        expect(await store.lastRun({ signature: run.signature })).toStrictEqual(run);
      });

      it('returns undefined when no run matches', async () => {
        await seed(store, { runs: [makeRun('r1')] });

        expect(await store.lastRun({ status: 'succeeded' })).toBeUndefined();
      });
    });

    describe('pruneRuns', () => {
      const CUTOFF = T0 + 1000;

      it('deletes runs that ended before the cutoff, with their logs, and says how many', async () => {
        await seed(store, {
          runs: [
            endedRun('keep-success', 'succeeded', T0 + 500),
            endedRun('failed', 'failed', T0 + 100),
            endedRun('cancelled', 'cancelled', T0 + 200, { signature: 'other' }),
          ],
          logs: [logLine('failed', 1), logLine('failed', 2), logLine('cancelled', 1), logLine('keep-success', 1)],
        });

        const removed = await store.pruneRuns(CUTOFF);

        expect(removed).toBe(2);
        expect(await store.getRun('failed')).toBeUndefined();
        expect(await store.getRun('cancelled')).toBeUndefined();
        expect(await store.getLogs('failed')).toStrictEqual([]);
        expect(await store.getLogs('cancelled')).toStrictEqual([]);
        expect(await store.getLogs('keep-success')).toHaveLength(1);
      });

      it('deletes every terminal status', async () => {
        const statuses = ['failed', 'skipped', 'interrupted', 'cancelled'] as const;
        await seed(store, { runs: statuses.map((status) => endedRun(status, status, T0 + 100)) });

        const removed = await store.pruneRuns(CUTOFF);

        expect(removed).toBe(statuses.length);
        expect(await store.listRuns({})).toStrictEqual([]);
      });

      it('keeps the latest success of each signature however old, and deletes older successes', async () => {
        await seed(store, {
          runs: [
            endedRun('s1-old', 'succeeded', T0 + 100),
            // Queued before s1-latest, ended after it: older in lastRun's order (queue time).
            endedRun('s1-old-ended-late', 'succeeded', T0 + 250, { queuedAt: T0 + 150 }),
            endedRun('s1-latest', 'succeeded', T0 + 200, { queuedAt: T0 + 180 }),
            endedRun('s1-failed-after', 'failed', T0 + 300),
            endedRun('s2-only', 'succeeded', T0 + 50, { signature: 's2' }),
          ],
        });

        const removed = await store.pruneRuns(CUTOFF);

        expect(removed).toBe(3);
        expect(ids(await store.listRuns({})).sort()).toStrictEqual(['s1-latest', 's2-only']);
        expect((await store.lastRun({ signature: 'collector-a/fetch/x' }))?.id).toBe('s1-latest');
      });

      it('keeps the success that lastRun reports when two were queued at the same time, though the other ended later', async () => {
        await seed(store, {
          runs: [
            endedRun('succ-a', 'succeeded', T0 + 300, { queuedAt: T0 + 50 }),
            endedRun('succ-b', 'succeeded', T0 + 100, { queuedAt: T0 + 50 }),
          ],
        });
        const latest = await store.lastRun({ signature: 'collector-a/fetch/x', status: 'succeeded' });

        await store.pruneRuns(CUTOFF);

        expect(latest?.id).toBe('succ-b');
        expect(ids(await store.listRuns({}))).toStrictEqual(['succ-b']);
      });

      it('keeps a newer success that ended after the cutoff and prunes the old one', async () => {
        await seed(store, {
          runs: [endedRun('old', 'succeeded', T0 + 100), endedRun('new', 'succeeded', CUTOFF + 100)],
        });

        const removed = await store.pruneRuns(CUTOFF);

        expect(removed).toBe(1);
        expect(ids(await store.listRuns({}))).toStrictEqual(['new']);
      });

      it('keeps runs that ended at or after the cutoff', async () => {
        await seed(store, {
          runs: [endedRun('at-cutoff', 'failed', CUTOFF), endedRun('after', 'failed', CUTOFF + 1)],
        });

        expect(await store.pruneRuns(CUTOFF)).toBe(0);
        expect(await store.listRuns({})).toHaveLength(2);
      });

      it('keeps runs that have not ended, whatever their times', async () => {
        await seed(store, {
          runs: [
            makeRun('queued', { queuedAt: T0 }),
            makeRun('running', { queuedAt: T0, status: 'running', startedAt: T0 + 1 }),
            makeRun('running-with-end', { queuedAt: T0, status: 'running', endedAt: T0 + 2 }),
            makeRun('failed-no-end', { queuedAt: T0, status: 'failed' }),
          ],
          logs: [logLine('running', 1)],
        });

        expect(await store.pruneRuns(CUTOFF)).toBe(0);
        expect(await store.listRuns({})).toHaveLength(4);
        expect(await store.getLogs('running')).toHaveLength(1);
      });
    });

    describe('close', () => {
      it('can be called more than once', async () => {
        await store.close();

        await expect(store.close()).resolves.toBeUndefined();
      });
    });
  });
}
