/** The instances file's "limits": each rule, a message naming the limit and field, a bad limit leaving the rest loaded. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatProblem, isWholeFileBroken, parseInstances } from '../../core/config.js';
import { parseInstancesText } from '../../core/config-file.js';
import { defineJob } from '../../core/define.js';
import { formatLimit, mergeLimitsWithLastGood, parseDuration, parseLimits, requireLimits } from '../../core/limit-config.js';
import { InvalidLimitError } from '../../core/ports/limits.js';

const greeter = defineJob({ name: 'greeter', params: z.object({}), getRunnableTasks: () => [], tasks: { hello: { run: () => undefined } } });

function problemsOf(raw: unknown): string[] {
  return parseLimits(raw).problems.map((p) => formatProblem('jobs/instances.json', p));
}

describe('parseLimits', () => {
  it('reads a rate, a concurrency cap and both, with burst 1 unless given', () => {
    // Act
    const { limits, problems } = parseLimits({
      'twitter-app': { rate: 300, per: '15m' },
      'archive-host': { concurrency: 3 },
      api: { rate: 10, per: '1s', burst: 5, concurrency: 2 },
    });

    // Assess
    expect(problems).toEqual([]);
    expect([...limits.values()]).toEqual([
      { name: 'twitter-app', rate: { count: 300, perMs: 900_000, burst: 1 } },
      { name: 'archive-host', concurrency: 3 },
      { name: 'api', rate: { count: 10, perMs: 1_000, burst: 5 }, concurrency: 2 },
    ]);
  });

  it('takes durations in ms, s, m, h, d, with decimals, and a plain number of milliseconds', () => {
    // Act
    const perMs = ['500ms', '1.5s', '15m', '1h', '1d', 250].map((per) => parseLimits({ l: { rate: 1, per } }).limits.get('l')?.rate?.perMs);

    // Assess
    expect(perMs).toEqual([500, 1_500, 900_000, 3_600_000, 86_400_000, 250]);
    expect(parseDuration('2 weeks')).toBeUndefined();
  });

  it.each([
    [{ rate: 3, per: 'soon' }, 'jobs/instances.json: limits.l.per: use a duration such as "500ms", "1s", "15m", "1h", "1d" or a positive number of milliseconds, not "soon"'],
    [{ rate: 3, per: 0 }, 'jobs/instances.json: limits.l.per: use a duration such as "500ms", "1s", "15m", "1h", "1d" or a positive number of milliseconds, not 0'],
    [{ rate: 0, per: '1s' }, 'jobs/instances.json: limits.l.rate: use a positive number of starts per "per"'],
    [{ rate: '3', per: '1s' }, 'jobs/instances.json: limits.l.rate: use a positive number of starts per "per"'],
    [{ rate: 3 }, 'jobs/instances.json: limits.l.per: a rate needs "per", the time it counts over (e.g. "15m")'],
    [{ per: '1s' }, 'jobs/instances.json: limits.l.rate: "per" needs a "rate", how many starts it allows'],
    [{ rate: 3, per: '1s', burst: 0 }, 'jobs/instances.json: limits.l.burst: use a whole number of at least 1 (how many may start at once)'],
    [{ rate: 3, per: '1s', burst: 1.5 }, 'jobs/instances.json: limits.l.burst: use a whole number of at least 1 (how many may start at once)'],
    [{ concurrency: 2, burst: 2 }, 'jobs/instances.json: limits.l.burst: "burst" needs a "rate" and "per"'],
    [{ concurrency: 0 }, 'jobs/instances.json: limits.l.concurrency: use a whole number of at least 1 (how many may run at once)'],
    [{ concurrency: 2.5 }, 'jobs/instances.json: limits.l.concurrency: use a whole number of at least 1 (how many may run at once)'],
    [{}, 'jobs/instances.json: limits.l: give it a "rate" with "per", a "concurrency", or both'],
    [{ concurrency: 2, window: '1s' }, 'jobs/instances.json: limits.l.window: unknown field "window"; a limit takes rate, per, burst and concurrency'],
    [3, 'jobs/instances.json: limits.l: use an object such as { "rate": 300, "per": "15m" } or { "concurrency": 3 }'],
  ])('refuses %j, naming the limit and the field', (entry, message) => {
    // Act
    const { limits } = parseLimits({ l: entry });

    // Assess
    expect(limits.size).toBe(0);
    expect(problemsOf({ l: entry })).toEqual([message]);
  });

  it('refuses a name with "#", saying to rename it', () => {
    // Assess
    expect(problemsOf({ 'a#b': { concurrency: 1 } })).toEqual(['jobs/instances.json: limits.a#b: limit name "a#b" must be non-empty and hold no "#"; rename it']);
  });

  it('refuses "limits" that is not an object', () => {
    // Assess
    expect(problemsOf([1])).toEqual(['jobs/instances.json: limits: use an object of limits by name: { "api": { "rate": 300, "per": "15m" } }']);
  });

  it('formats a definition as one phrase', () => {
    // Act
    const { limits } = parseLimits({ a: { rate: 300, per: '15m' }, b: { concurrency: 3 }, c: { rate: 10, per: 1_500, burst: 5, concurrency: 2 } });

    // Assess
    expect([...limits.values()].map(formatLimit)).toEqual(['300 per 15m, burst 1', '3 at once', '10 per 1.5s, burst 5; 2 at once']);
  });

  it('requireLimits throws an InvalidLimitError naming every bad limit', () => {
    // Act
    const act = () => requireLimits({ a: { rate: 1 }, b: { concurrency: 0 } }, 'createRunner options');

    // Assess
    expect(act).toThrow(InvalidLimitError);
    expect(act).toThrow('2 problems: createRunner options: limits.a.per: a rate needs "per"');
  });
});

describe('limits in the instances file', () => {
  it('loads the instances and the good limits when one limit is bad, and the file is not broken as a whole', () => {
    // Act
    const parsed = parseInstancesText(
      `{
        // JSONC, as the file is written
        "instances": [{ "id": "a", "job": "greeter" }],
        "limits": { "api": { "rate": 10, "per": "1s" }, "bad": { "rate": 10 } },
      }`,
      [greeter],
    );

    // Assess
    expect(parsed.instances.map((i) => i.id)).toEqual(['a']);
    expect([...parsed.limits.keys()]).toEqual(['api']);
    expect(parsed.problems).toEqual([{ limit: 'bad', field: 'limits.bad.per', message: 'a rate needs "per", the time it counts over (e.g. "15m")' }]);
    expect(isWholeFileBroken(parsed)).toBe(false);
  });

  it('has no limits when the file names none', () => {
    // Assess
    expect(parseInstances({ instances: [] }, [greeter]).limits.size).toBe(0);
  });

  it('keeps the last good version of a limit broken by an edit, and drops a removed one', () => {
    // Prepare
    const lastGood = parseLimits({ api: { rate: 10, per: '1s' }, old: { concurrency: 1 }, host: { concurrency: 3 } }).limits;
    const next = parseLimits({ api: { rate: 'ten', per: '1s' }, host: { concurrency: 4 } });

    // Act
    const merged = mergeLimitsWithLastGood(lastGood, next.limits, next.problems, false);

    // Assess
    expect(Object.fromEntries(merged)).toEqual({ host: { name: 'host', concurrency: 4 }, api: { name: 'api', rate: { count: 10, perMs: 1_000, burst: 1 } } });
    expect(mergeLimitsWithLastGood(lastGood, new Map(), [], true)).toEqual(lastGood);
  });
});
