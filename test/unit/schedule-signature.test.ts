import { describe, expect, it } from 'vitest';
import { parseSchedule } from '../../core/schedule.js';
import { canonicalJson, defaultSignature, NotJsonError } from '../../core/signature.js';

const T0 = Date.UTC(2026, 0, 31, 12, 0, 0);

describe('schedules', () => {
  it('reads EventBridge rates and the short form as the same period', () => {
    expect(parseSchedule('rate(5 minutes)').next(T0)).toBe(T0 + 300_000);
    expect(parseSchedule('rate(1 hour)').next(T0)).toBe(T0 + 3_600_000);
    expect(parseSchedule('30s').next(T0)).toBe(T0 + 30_000);
    expect(parseSchedule('2d').next(T0)).toBe(T0 + 2 * 86_400_000);
  });

  it('evaluates cron expressions in UTC, strictly after the given time', () => {
    expect(parseSchedule('0 6 * * *').next(T0)).toBe(Date.UTC(2026, 1, 1, 6, 0, 0));
    expect(parseSchedule('*/15 * * * *').next(T0)).toBe(T0 + 15 * 60_000);
  });

  it('rejects what it cannot read with a message showing the accepted forms', () => {
    expect(() => parseSchedule('every tuesday')).toThrow(/rate \(e\.g\. "rate\(5 minutes\)" or "5m"\) nor a cron expression/);
    expect(() => parseSchedule('rate(0 minutes)')).toThrow(/positive number/);
    expect(() => parseSchedule('rate(5 fortnights)')).toThrow(/seconds, minutes, hours or days/);
  });
});

describe('signatures', () => {
  it('gives equal JSON the same canonical form whatever the key order', () => {
    expect(canonicalJson({ b: [1, { d: 2, c: 3 }], a: 'x' })).toBe(canonicalJson({ a: 'x', b: [1, { c: 3, d: 2 }] }));
    expect(canonicalJson({ a: undefined, b: null })).toBe('{"b":null}');
  });

  it('names the path of a value JSON cannot hold', () => {
    expect(() => canonicalJson({ files: [1, Number.NaN] })).toThrow(NotJsonError);
    expect(() => canonicalJson({ files: [1, Number.NaN] })).toThrow(/input\.files\[1\] is NaN/);
    expect(() => canonicalJson({ at: new Date(0) })).toThrow(/input\.at is a Date/);
    expect(() => canonicalJson({ f: () => 1 })).toThrow(/input\.f is a function/);
  });

  it('derives the default signature from instance, task and input, each of them telling signatures apart', () => {
    const base = defaultSignature('a', 'process', canonicalJson({ file: 'x' }));

    expect(defaultSignature('a', 'process', canonicalJson({ file: 'x' }))).toBe(base);
    expect(defaultSignature('b', 'process', canonicalJson({ file: 'x' }))).not.toBe(base);
    expect(defaultSignature('a', 'archive', canonicalJson({ file: 'x' }))).not.toBe(base);
    expect(defaultSignature('a', 'process', canonicalJson({ file: 'y' }))).not.toBe(base);
    expect(base).toMatch(/^a\/process\/[A-Za-z0-9_-]{22}$/);
  });
});
