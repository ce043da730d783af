import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { mapLimit, mapLimitInKeyOrder } from '../../core/concurrency.js';

describe('mapLimit', () => {
  it('keeps the results in the order of the items and never runs more than the limit at once', async () => {
    let running = 0;
    let peak = 0;
    const results = await mapLimit([30, 5, 20, 1, 10], 2, async (ms, index) => {
      running += 1;
      peak = Math.max(peak, running);
      await sleep(ms);
      running -= 1;
      return `${index}:${ms}`;
    });

    expect(results).toStrictEqual(['0:30', '1:5', '2:20', '3:1', '4:10']);
    expect(peak).toBe(2);
  });
});

describe('mapLimitInKeyOrder', () => {
  it('runs items of one key one after another in the order given, even when the first is slowest', async () => {
    const finished: string[] = [];
    const items = [
      { key: 'a', name: 'a1', ms: 40 },
      { key: 'b', name: 'b1', ms: 1 },
      { key: 'a', name: 'a2', ms: 1 },
      { key: 'a', name: 'a3', ms: 1 },
    ];

    const results = await mapLimitInKeyOrder(items, 4, (item) => item.key, async (item) => {
      await sleep(item.ms);
      finished.push(item.name);
      return item.name;
    });

    expect(results).toStrictEqual(['a1', 'b1', 'a2', 'a3']);
    expect(finished.filter((name) => name.startsWith('a'))).toStrictEqual(['a1', 'a2', 'a3']);
    expect(finished.indexOf('b1')).toBeLessThan(finished.indexOf('a1'));
  });
});
