/**
 * The lease keeper over a memory store with real leases and a clock the test moves: renewals,
 * heartbeats, fence checks and the sweep of runs whose holder died.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../core/adapters/memory/store.js';
import { refOf, type Attempt } from '../../../core/engine/attempt.js';
import { LeaseKeeper } from '../../../core/engine/lease-keeper.js';
import type { PlannedTask } from '../../../core/engine/planner.js';
import { makeRun, T0 } from '../../helpers/records.js';

const TTL = 1_000;
const OWNER = 'runner-1';

/** One turn of the event loop: the store's answers have been handled. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

let now = T0;

function setup() {
  const store = new MemoryStore();
  const held: Attempt[] = [];
  const lost: string[] = [];
  const storeErrors: unknown[] = [];
  const keeper = new LeaseKeeper(store, TTL, () => now, {
    held: () => held,
    lost: (attempt) => lost.push(attempt.planned.signature),
    storeError: (error) => storeErrors.push(error),
  });
  /** The number of store.renewLeases calls so far. */
  const renewals = { calls: 0 };
  const renewLeases = store.renewLeases.bind(store);
  store.renewLeases = (refs, ttlMs, at) => {
    renewals.calls += 1;
    return renewLeases(refs, ttlMs, at);
  };
  /** An attempt holding a lease on `signature` taken now (and held by the keeper). */
  const leased = async (signature: string): Promise<Attempt> => {
    const [grant] = await store.acquireLeases([{ signature, owner: OWNER, ttlMs: TTL, runId: `run-${signature}`, instanceId: 'collector-a', task: 'fetch' }], now);
    if (!grant?.granted) throw new Error(`expected a grant for ${signature}`);
    const attempt = {
      planned: { kind: 'batch', signature } as PlannedTask,
      run: makeRun(`run-${signature}`, { signature, status: 'running', runner: OWNER, fencingToken: grant.lease.token }),
      lease: refOf(grant.lease),
      state: 'running',
      lastRenewal: now,
      lost: false,
    } as Attempt;
    held.push(attempt);
    return attempt;
  };
  /** Another runner takes the lease over (it must have expired by `now`). */
  const takeOver = async (signature: string): Promise<void> => {
    const [grant] = await store.acquireLeases([{ signature, owner: 'runner-2', ttlMs: TTL, runId: 'other', instanceId: 'collector-a', task: 'fetch' }], now);
    if (!grant?.granted) throw new Error(`expected runner-2 to take ${signature} over`);
  };
  const expiry = async (signature: string) => (await store.getLease(signature))?.expiresAt;
  return { store, keeper, held, lost, storeErrors, renewals, leased, takeOver, expiry };
}

describe('lease keeper', () => {
  beforeEach(() => {
    now = T0;
  });

  it('renews three times per lease period, and no less often than every 10 ms', () => {
    const store = new MemoryStore();
    const hooks = { held: () => [], lost: () => undefined, storeError: () => undefined };

    expect(new LeaseKeeper(store, 30_000, () => now, hooks).renewEveryMs).toBe(10_000);
    expect(new LeaseKeeper(store, 20, () => now, hooks).renewEveryMs).toBe(10);
  });

  it('renews every held lease in one store call, noting when', async () => {
    const { keeper, lost, renewals, leased, expiry } = setup();
    const a = await leased('sig-a');
    const b = await leased('sig-b');
    now = T0 + 400;

    keeper.renewAll();
    await turn();

    expect(renewals.calls).toBe(1);
    expect([await expiry('sig-a'), await expiry('sig-b')]).toEqual([T0 + 400 + TTL, T0 + 400 + TTL]);
    expect([a.lastRenewal, b.lastRenewal]).toEqual([T0 + 400, T0 + 400]);
    expect(lost).toEqual([]);
  });

  it('reports a lease another runner took over as lost on the next renewal, renewing the others', async () => {
    const { keeper, lost, leased, takeOver, expiry } = setup();
    const a = await leased('sig-a');
    now = T0 + TTL + 1;
    await leased('sig-b');
    await takeOver('sig-a');

    keeper.renewAll();
    await turn();

    expect(lost).toEqual(['sig-a']);
    expect(a.lastRenewal).toBe(T0);
    expect(await expiry('sig-b')).toBe(now + TTL);
  });

  it('makes one renewal call at a time, and calls again once a failed one is reported', async () => {
    const { store, keeper, storeErrors, leased } = setup();
    await leased('sig-a');
    let calls = 0;
    let fail: (error: Error) => void = () => undefined;
    store.renewLeases = () => {
      calls += 1;
      return new Promise((_resolve, reject) => {
        fail = reject;
      });
    };

    keeper.renewAll();
    keeper.renewAll();
    expect(calls).toBe(1);
    const error = new Error('database is locked');
    fail(error);
    await turn();
    keeper.renewAll();

    expect(storeErrors).toEqual([error]);
    expect(calls).toBe(2);
  });

  it('renews on a heartbeat at most once per tenth of the lease period', async () => {
    const { keeper, renewals, leased, expiry } = setup();
    const a = await leased('sig-a');
    now = T0 + TTL / 10;

    keeper.heartbeat(a);
    keeper.heartbeat(a);
    now += TTL / 10 - 1;
    keeper.heartbeat(a);
    await turn();
    expect(renewals.calls).toBe(1);
    expect(await expiry('sig-a')).toBe(T0 + TTL / 10 + TTL);

    now += 1;
    keeper.heartbeat(a);
    expect(renewals.calls).toBe(2);
  });

  it('reports a lease lost when a heartbeat’s renewal is refused', async () => {
    const { keeper, lost, leased, takeOver } = setup();
    const a = await leased('sig-a');
    now = T0 + TTL + 1;
    await takeOver('sig-a');

    keeper.heartbeat(a);
    await turn();

    expect(lost).toEqual(['sig-a']);
  });

  it('passes a fence check while the lease is current', async () => {
    const { keeper, lost, leased } = setup();
    const a = await leased('sig-a');
    now = T0 + TTL - 1;

    await keeper.check(a);

    expect(lost).toEqual([]);
  });

  it('fails a fence check once the lease expired, even if nobody took it over yet', async () => {
    const { keeper, lost, leased } = setup();
    const a = await leased('sig-a');
    now = T0 + TTL;

    await keeper.check(a);

    expect(lost).toEqual(['sig-a']);
  });

  it('fails a fence check once the lease moved on to another runner', async () => {
    const { keeper, lost, leased, takeOver } = setup();
    const a = await leased('sig-a');
    now = T0 + TTL + 1;
    await takeOver('sig-a');

    await keeper.check(a);

    expect(lost).toEqual(['sig-a']);
  });

  it('does not check again an attempt already known lost', async () => {
    const { store, keeper, lost, leased } = setup();
    const a = await leased('sig-a');
    a.lost = true;
    now = T0 + TTL;
    let reads = 0;
    const getLease = store.getLease.bind(store);
    store.getLease = (signature) => {
      reads += 1;
      return getLease(signature);
    };

    await keeper.check(a);

    expect([reads, lost]).toEqual([0, []]);
  });

  it('sweeps a live run once its lease expired, ending it interrupted', async () => {
    const { store, keeper, leased } = setup();
    const a = await leased('sig-a');
    await store.commit({ fenced: [{ fence: a.lease, runs: [a.run] }], at: now });

    now = T0 + TTL - 1;
    expect(await keeper.sweep()).toEqual([]);
    now = T0 + TTL;
    const swept = await keeper.sweep();

    expect(swept.map(({ run }) => [run.id, run.status, run.error?.name])).toEqual([[a.run.id, 'interrupted', 'LeaseExpiredError']]);
    expect((await store.getRun(a.run.id))?.status).toBe('interrupted');
  });

  it('reports a store error in a sweep and sweeps nothing', async () => {
    const { store, keeper, storeErrors } = setup();
    const error = new Error('disk I/O error');
    store.sweep = () => Promise.reject(error);

    expect(await keeper.sweep()).toEqual([]);
    expect(storeErrors).toEqual([error]);
  });
});
