/**
 * The pieces under ujr/testing's test runner: the virtual clock (timers fire in order of due time,
 * then of creation, only when advanced) and the in-memory object store (the object store contract).
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../../core/testing/clock.js';
import { MemoryObjectStore } from '../../../core/testing/objects.js';
import { describeObjectStoreContract } from '../../contract/object-store-contract.js';

describeObjectStoreContract('memory (ujr/testing)', () => Promise.resolve({ objects: new MemoryObjectStore(), cleanup: () => Promise.resolve() }));

describe('MemoryObjectStore', () => {
  it('holds the seed, stamped with its clock, and hands out copies', async () => {
    let now = 1_000;
    const objects = new MemoryObjectStore({ 'a/text': 'hello', 'a/bytes': new Uint8Array([1, 2]) }, () => now);
    now = 2_000;
    await objects.put('b', 'later');

    const bytes = await objects.get('a/bytes');
    bytes?.fill(9);

    expect(await objects.list('')).toEqual([
      { key: 'a/bytes', size: 2, modifiedAt: 1_000 },
      { key: 'a/text', size: 5, modifiedAt: 1_000 },
      { key: 'b', size: 5, modifiedAt: 2_000 },
    ]);
    expect(await objects.get('a/bytes')).toEqual(new Uint8Array([1, 2]));
  });

  it('refuses an invalid key in the seed, naming it', () => {
    expect(() => new MemoryObjectStore({ '../x': 'no' })).toThrow(/invalid object key "\.\.\/x"/);
  });
});

describe('VirtualClock', () => {
  it('fires nothing until asked, then due timers in order of due time and creation, each at its own time', () => {
    const clock = new VirtualClock(1_000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push('late'), 31);

    expect(fired).toEqual([]);
    while (clock.fireNext(1_030));

    expect(fired).toEqual(['a@1010', 'b@1020', 'c@1020']);
    expect(clock.now()).toBe(1_020);
  });

  it('repeats intervals, re-arms refreshed timers, and forgets cancelled ones', () => {
    const clock = new VirtualClock(0);
    const fired: string[] = [];
    const interval = clock.setInterval(() => fired.push(`tick@${clock.now()}`), 100);
    const watchdog = clock.setTimeout(() => fired.push(`watchdog@${clock.now()}`), 150);
    clock.setTimeout(() => watchdog.refresh(), 120).unref();
    const cancelled = clock.setTimeout(() => fired.push('cancelled'), 50);
    cancelled.cancel();

    while (clock.fireNext(300));
    interval.cancel();
    clock.moveTo(1_000);

    expect(fired).toEqual(['tick@100', 'tick@200', 'watchdog@270', 'tick@300']);
    expect(clock.fireNext(10_000)).toBe(false);
    expect(clock.now()).toBe(1_000);
  });

  it('takes a delay under 1 ms (or not a number) as 1 ms, as Node does', () => {
    const clock = new VirtualClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 0);
    clock.setTimeout(() => fired.push(clock.now()), Number.NaN);

    while (clock.fireNext(5));

    expect(fired).toEqual([1, 1]);
  });
});
