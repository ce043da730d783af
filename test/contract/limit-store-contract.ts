/**
 * The limit store contract: one suite every `LimitStore` adapter must pass (memory, SQLite,
 * DynamoDB). The memory store is the reference. Times are passed explicitly (`now`), so nothing
 * here sleeps; the bucket arithmetic is checked to the millisecond.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidLimitError, type LimitGrant, type LimitPermit, type LimitSpec, type LimitState, type LimitStore } from '../../core/ports/limits.js';

export interface LimitStoreFixture {
  limits: LimitStore;
  /** Closes the store and removes whatever it left behind. */
  cleanup(): Promise<void>;
}

const T0 = 1_700_000_000_000;
/** 10 per second, burst 10: a token every 100 ms. */
const TEN_PER_SECOND = { count: 10, perMs: 1000, burst: 10 };

function api(key = 'cred-1', rate = TEN_PER_SECOND): LimitSpec {
  return { name: 'api', key, rate };
}

function host(max: number, key = 'archive.example'): LimitSpec {
  return { name: 'host', key, concurrency: max };
}

function permitOf(grant: LimitGrant): LimitPermit {
  if (!grant.granted) throw new Error(`expected a grant, got a refusal waiting on ${grant.waitingOn.name}/${grant.waitingOn.key} (${grant.waitingOn.reason}) until ${grant.retryAt}`);
  return grant.permit;
}

/**
 * Registers the limit store contract for one adapter. `makeLimits` gives a fresh, empty store per test.
 *
 * @example
 * ```ts
 * describeLimitStoreContract('memory', () => Promise.resolve({ limits: new MemoryLimitStore(), cleanup: () => Promise.resolve() }));
 * ```
 */
export function describeLimitStoreContract(name: string, makeLimits: () => Promise<LimitStoreFixture>): void {
  describe(`LimitStore contract: ${name}`, () => {
    let limits: LimitStore;
    let fixture: LimitStoreFixture;

    beforeEach(async () => {
      fixture = await makeLimits();
      limits = fixture.limits;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    async function take(spec: LimitSpec | LimitSpec[], now: number, holder = 'h', ttlMs = 1000): Promise<LimitGrant> {
      return limits.acquireLimits({ holder, ttlMs, limits: Array.isArray(spec) ? spec : [spec] }, now);
    }

    /** Acquires one at a time at `now` until refused; returns how many were granted and the refusal. */
    async function drain(spec: LimitSpec, now: number): Promise<{ granted: number; refusal: LimitGrant }> {
      for (let granted = 0; granted < 1000; granted += 1) {
        const grant = await take(spec, now, `drain-${now}-${granted}`);
        if (!grant.granted) return { granted, refusal: grant };
      }
      throw new Error('the bucket never ran dry');
    }

    async function state(name: string, key: string, now: number): Promise<LimitState | undefined> {
      return (await limits.listLimitStates(now)).find((s) => s.name === name && s.key === key);
    }

    describe('token buckets', () => {
      it('starts full: a new bucket grants its burst at once, then refuses until the next token is due', async () => {
        const { granted, refusal } = await drain(api(), T0);

        expect(granted).toBe(10);
        expect(refusal).toEqual({ granted: false, retryAt: T0 + 100, waitingOn: { name: 'api', key: 'cred-1', reason: 'rate' } });
      });

      it('refills count per period: one token per 100 ms, fractions carried to the next grant', async () => {
        await drain(api(), T0);

        const early = await take(api(), T0 + 99);
        const due = await take(api(), T0 + 100);
        const afterDue = await take(api(), T0 + 100);
        // 1.5 tokens by T0 + 250: one grant, and half a token left over.
        const { granted, refusal } = await drain(api(), T0 + 250);

        expect(early).toMatchObject({ granted: false, retryAt: T0 + 100 });
        expect(due.granted).toBe(true);
        expect(afterDue).toMatchObject({ granted: false, retryAt: T0 + 200 });
        expect(granted).toBe(1);
        expect(refusal).toMatchObject({ granted: false, retryAt: T0 + 300 });
        expect((await state('api', 'cred-1', T0 + 250))?.tokens).toBeCloseTo(0.5, 9);
      });

      it('holds at most the burst, however long it stays unused', async () => {
        await drain(api(), T0);

        const level = await state('api', 'cred-1', T0 + 450);
        const { granted } = await drain(api(), T0 + 3_600_000);

        expect(level?.tokens).toBeCloseTo(4.5, 9);
        expect(granted).toBe(10);
      });

      it('keeps one bucket per key: draining one credential leaves another full', async () => {
        await drain(api('cred-1'), T0);

        const { granted } = await drain(api('cred-2'), T0);

        expect(granted).toBe(10);
      });

      it('never refills from a clock behind the bucket: a caller whose now is earlier gets no extra tokens', async () => {
        await drain(api(), T0 + 1000);

        const behind = await take(api(), T0);

        expect(behind).toMatchObject({ granted: false, retryAt: T0 + 1100 });
      });

      it('counts grants and refusals per bucket', async () => {
        await drain(api(), T0);
        await take(api(), T0 + 1);

        expect(await state('api', 'cred-1', T0 + 1)).toMatchObject({ granted: 10, refused: 2, held: 0, throttledMs: 0, rate: TEN_PER_SECOND });
      });
    });

    describe('all or nothing', () => {
      it('leaves the first bucket untouched when the second refuses', async () => {
        const other = await take(host(1), T0, 'other');
        expect(other.granted).toBe(true);

        const refused = await take([api(), host(1)], T0, 'me');

        expect(refused).toEqual({ granted: false, retryAt: T0 + 1000, waitingOn: { name: 'host', key: 'archive.example', reason: 'concurrency' } });
        const tokens = await state('api', 'cred-1', T0);
        // No token was taken (the bucket may not even exist yet: then it is full).
        expect(tokens?.tokens ?? 10).toBe(10);
        expect(tokens?.granted ?? 0).toBe(0);
      });

      it('leaves the slot free when the rate refuses', async () => {
        await drain(api(), T0);

        const refused = await take([host(1), api()], T0, 'me');
        const alone = await take(host(1), T0, 'someone-else');

        expect(refused).toMatchObject({ granted: false, waitingOn: { name: 'api', reason: 'rate' } });
        expect(alone.granted).toBe(true);
      });

      it('takes from every bucket when all have room, and names the slots in the permit', async () => {
        const grant = await take([api(), host(2)], T0, 'me', 5000);

        expect(permitOf(grant)).toEqual({ holder: 'me', slots: [{ name: 'host', key: 'archive.example' }], expiresAt: T0 + 5000 });
        expect((await state('api', 'cred-1', T0))?.tokens).toBeCloseTo(9, 9);
        expect((await state('host', 'archive.example', T0))?.held).toBe(1);
      });

      it('waits on the bucket free latest when several refuse', async () => {
        await drain(api(), T0);
        await limits.backoffLimit('host', 'archive.example', T0 + 5000, T0);

        const refused = await take([api(), host(1)], T0, 'me');

        expect(refused).toEqual({ granted: false, retryAt: T0 + 5000, waitingOn: { name: 'host', key: 'archive.example', reason: 'backoff' } });
      });
    });

    describe('concurrency caps', () => {
      it('grants at most the cap, and a refusal is retried when the earliest slot expires', async () => {
        const first = await take(host(2), T0, 'a', 1000);
        const second = await take(host(2), T0 + 10, 'b', 1000);

        const third = await take(host(2), T0 + 20, 'c', 1000);

        expect([first.granted, second.granted]).toEqual([true, true]);
        expect(third).toEqual({ granted: false, retryAt: T0 + 1000, waitingOn: { name: 'host', key: 'archive.example', reason: 'concurrency' } });
      });

      it("frees a dead holder's slot when it expires", async () => {
        permitOf(await take(host(1), T0, 'dead', 1000));

        const before = await take(host(1), T0 + 999, 'next');
        const after = await take(host(1), T0 + 1000, 'next');

        expect(before.granted).toBe(false);
        expect(after.granted).toBe(true);
      });

      it('keeps a renewed slot past its first expiry, and says when a slot was lost', async () => {
        const kept = permitOf(await take(host(1), T0, 'a', 1000));

        const renewed = await limits.renewLimits(kept, 1000, T0 + 900);
        const blocked = await take(host(1), T0 + 1500, 'b');
        const lateRenewal = await limits.renewLimits(kept, 1000, T0 + 1900);

        expect(renewed).toBe(true);
        expect(blocked).toMatchObject({ granted: false, retryAt: T0 + 1900 });
        expect(lateRenewal).toBe(false);
        expect((await take(host(1), T0 + 1900, 'b')).granted).toBe(true);
      });

      it('frees the slot at release, and a second release does nothing', async () => {
        const permit = permitOf(await take(host(1), T0, 'a', 60_000));
        const holder = permitOf(await take(host(2, 'other'), T0, 'a', 60_000));

        await limits.releaseLimits(permit, T0 + 1);
        const next = await take(host(1), T0 + 2, 'b', 60_000);
        await limits.releaseLimits(permit, T0 + 3);
        const refusedAfterDoubleRelease = await take(host(1), T0 + 4, 'c', 60_000);

        expect(next.granted).toBe(true);
        expect(refusedAfterDoubleRelease.granted).toBe(false);
        expect(await limits.renewLimits(permit, 1000, T0 + 5)).toBe(false);
        expect(await limits.renewLimits(holder, 1000, T0 + 5)).toBe(true);
      });

      it('lets a holder that holds a slot ask again without taking a second one', async () => {
        permitOf(await take(host(2), T0, 'a'));

        const again = await take(host(2), T0 + 1, 'a');
        const other = await take(host(2), T0 + 2, 'b');

        expect(again.granted).toBe(true);
        expect(other.granted).toBe(true);
        expect((await state('host', 'archive.example', T0 + 3))?.held).toBe(2);
      });

      it('has no slots to renew for a rate-only permit', async () => {
        const permit = permitOf(await take(api(), T0));

        expect(permit.slots).toEqual([]);
        expect(await limits.renewLimits(permit, 1000, T0 + 10)).toBe(true);
      });
    });

    describe('several requests at once (acquireMany, releaseMany), where the store has them', () => {
      it('decides each in turn as acquireLimits would: a cap of 2 grants two of three, a burst of 1 one of two', async () => {
        if (!limits.acquireMany || !limits.releaseMany) {
          // A store without them has neither (the runner then asks one request at a time).
          expect([typeof limits.acquireMany, typeof limits.releaseMany]).toEqual(['undefined', 'undefined']);
          return;
        }
        const grants = await limits.acquireMany(
          [
            { holder: 'a', ttlMs: 1000, limits: [host(2)] },
            { holder: 'b', ttlMs: 1000, limits: [host(2)] },
            { holder: 'c', ttlMs: 1000, limits: [host(2)] },
            { holder: 'd', ttlMs: 1000, limits: [{ name: 'api', key: 'cred-1', rate: { count: 10, perMs: 1000, burst: 1 } }] },
            { holder: 'e', ttlMs: 1000, limits: [{ name: 'api', key: 'cred-1', rate: { count: 10, perMs: 1000, burst: 1 } }] },
          ],
          T0,
        );

        expect(grants.map((grant) => grant.granted)).toEqual([true, true, false, true, false]);
        expect(grants[2]).toEqual({ granted: false, retryAt: T0 + 1000, waitingOn: { name: 'host', key: 'archive.example', reason: 'concurrency' } });
        expect(grants[4]).toMatchObject({ granted: false, retryAt: T0 + 100, waitingOn: { name: 'api', key: 'cred-1', reason: 'rate' } });

        await limits.releaseMany(grants.flatMap((grant) => (grant.granted ? [grant.permit] : [])), T0 + 1);
        expect((await state('host', 'archive.example', T0 + 2))?.held).toBe(0);
      });

      it('decides none when one request is malformed', async () => {
        if (!limits.acquireMany) return;
        const refused = await limits.acquireMany([{ holder: 'a', ttlMs: 1000, limits: [host(2)] }, { holder: '', ttlMs: 1000, limits: [host(2)] }], T0).catch((error: unknown) => error);

        expect(refused).toBeInstanceOf(InvalidLimitError);
        expect(await state('host', 'archive.example', T0)).toBeUndefined();
      });
    });

    describe('back-off', () => {
      it('drains the bucket until the time given, then refills from 0', async () => {
        permitOf(await take(api(), T0));

        await limits.backoffLimit('api', 'cred-1', T0 + 5000, T0 + 10);
        const during = await take(api(), T0 + 1000);
        const atEnd = await take(api(), T0 + 5000);
        const { granted } = await drain(api(), T0 + 5250);

        expect(during).toEqual({ granted: false, retryAt: T0 + 5100, waitingOn: { name: 'api', key: 'cred-1', reason: 'backoff' } });
        expect(atEnd).toMatchObject({ granted: false, retryAt: T0 + 5100, waitingOn: { reason: 'rate' } });
        // 2.5 tokens refilled from 0 since T0 + 5000, not the burst of 10.
        expect(granted).toBe(2);
      });

      it('keeps the longer of two back-offs, and counts the time closed once', async () => {
        await limits.backoffLimit('api', 'cred-1', T0 + 5000, T0);
        await limits.backoffLimit('api', 'cred-1', T0 + 3000, T0 + 1000);
        await limits.backoffLimit('api', 'cred-1', T0 + 8000, T0 + 2000);

        const bucket = await state('api', 'cred-1', T0 + 2000);
        const refused = await take(api(), T0 + 6000);

        expect(bucket).toMatchObject({ blockedUntil: T0 + 8000, throttledMs: 8000 });
        expect(refused).toMatchObject({ granted: false, waitingOn: { reason: 'backoff' }, retryAt: T0 + 8100 });
      });

      it('closes a concurrency cap too, until the time given', async () => {
        await limits.backoffLimit('host', 'archive.example', T0 + 2000, T0);

        const during = await take(host(3), T0 + 1999);
        const after = await take(host(3), T0 + 2000);

        expect(during).toEqual({ granted: false, retryAt: T0 + 2000, waitingOn: { name: 'host', key: 'archive.example', reason: 'backoff' } });
        expect(after.granted).toBe(true);
      });

      it('shows a closed bucket with no tokens and its end', async () => {
        await take(api(), T0);
        await limits.backoffLimit('api', 'cred-1', T0 + 5000, T0);

        const during = await state('api', 'cred-1', T0 + 100);
        const after = await state('api', 'cred-1', T0 + 5500);

        expect(during).toMatchObject({ tokens: 0, blockedUntil: T0 + 5000, throttledMs: 5000 });
        expect(after?.blockedUntil).toBeUndefined();
        expect(after?.tokens).toBeCloseTo(5, 9);
      });
    });

    describe('many callers at once', () => {
      it('grants exactly the burst to 50 simultaneous requests for one bucket', async () => {
        const grants = await Promise.all(Array.from({ length: 50 }, (_, i) => take(api(), T0, `caller-${i}`)));

        expect(grants.filter((g) => g.granted)).toHaveLength(10);
        expect((await state('api', 'cred-1', T0))).toMatchObject({ granted: 10, refused: 40 });
      });

      it('grants exactly the cap to 20 simultaneous requests for slots', async () => {
        const grants = await Promise.all(Array.from({ length: 20 }, (_, i) => take(host(3), T0, `caller-${i}`, 60_000)));

        const holders = grants.flatMap((g) => (g.granted ? [g.permit.holder] : []));
        expect(holders).toHaveLength(3);
        expect((await state('host', 'archive.example', T0))?.held).toBe(3);
      });

      it('never grants two-limit requests beyond either bucket', async () => {
        const grants = await Promise.all(Array.from({ length: 20 }, (_, i) => take([api('cred-1', { count: 1, perMs: 1000, burst: 5 }), host(3)], T0, `caller-${i}`, 60_000)));

        expect(grants.filter((g) => g.granted)).toHaveLength(3);
        expect((await state('api', 'cred-1', T0))?.tokens).toBeCloseTo(2, 9);
      });
    });

    describe('listing and checks', () => {
      it('lists every bucket used, by name then key', async () => {
        await take(api('b'), T0);
        await take(api('a'), T0);
        await take(host(1), T0);

        const states = await limits.listLimitStates(T0);

        expect(states.map((s) => `${s.name}/${s.key}`)).toEqual(['api/a', 'api/b', 'host/archive.example']);
        expect(states[2]).toEqual({ name: 'host', key: 'archive.example', concurrency: 1, held: 1, granted: 1, refused: 0, throttledMs: 0 });
      });

      it('refuses malformed requests, naming the limit', async () => {
        await expect(take({ name: 'api', key: '' }, T0)).rejects.toThrow(InvalidLimitError);
        await expect(take({ name: 'a#b', key: '', concurrency: 1 }, T0)).rejects.toThrow(/"a#b"/);
        await expect(take(api('x', { count: 10, perMs: 1000, burst: 0 }), T0)).rejects.toThrow(/burst/);
        await expect(take([host(1), host(2)], T0)).rejects.toThrow(/named twice/);
        await expect(limits.acquireLimits({ holder: 'h', ttlMs: 0, limits: [host(1)] }, T0)).rejects.toThrow(/ttlMs/);
      });
    });
  });
}
