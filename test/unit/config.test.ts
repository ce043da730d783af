import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatProblem, isWholeFileBroken, mergeWithLastGood } from '../../core/config.js';
import { parseInstancesText } from '../../core/config-file.js';
import { defineJob } from '../../core/define.js';
import type { InstanceConfig } from '../../core/types.js';

const collector = defineJob({
  name: 'collector',
  params: z.object({ intervalMs: z.number().int().positive().default(1000), url: z.string().url().optional() }),
  getRunnableTasks: () => [],
  tasks: { collect: { kind: 'continuous', run: () => undefined } },
});

const text = (instances: unknown[]) => JSON.stringify({ instances });

describe('instances file', () => {
  it('parses instances with defaults: enabled, the job type or global schedule, unlimited concurrency, parsed params', () => {
    const parsed = parseInstancesText(text([{ id: 'a', job: 'collector', params: {} }]), [collector]);

    expect(parsed.problems).toEqual([]);
    expect(parsed.instances).toEqual([
      { id: 'a', job: 'collector', params: { intervalMs: 1000 }, enabled: true, schedule: 'rate(1 minute)', concurrency: Infinity },
    ]);
  });

  it('names the instance and the field of each problem, and keeps the good instances', () => {
    const parsed = parseInstancesText(
      text([
        { id: 'good', job: 'collector' },
        { id: 'bad-param', job: 'collector', params: { intervalMs: 'fast' } },
        { id: 'ghost', job: 'nope' },
        { id: 'bad-schedule', job: 'collector', schedule: 'every tuesday' },
        { id: 'extra', job: 'collector', colour: 'red' },
        { id: 'good', job: 'collector' },
      ]),
      [collector],
    );

    expect(parsed.instances.map((i) => i.id)).toEqual(['good']);
    const messages = parsed.problems.map((p) => formatProblem('jobs/instances.json', p));
    expect(messages).toEqual([
      expect.stringMatching(/^jobs\/instances\.json: instance "bad-param": params\.intervalMs: /),
      expect.stringMatching(/^jobs\/instances\.json: instance "ghost": job: no job type is named "nope"; known job types: collector/),
      expect.stringMatching(/^jobs\/instances\.json: instance "bad-schedule": schedule: "every tuesday" is neither a rate/),
      expect.stringMatching(/^jobs\/instances\.json: instance "extra": /),
      expect.stringMatching(/^jobs\/instances\.json: instance "good": id: this id is used by another instance/),
    ]);
  });

  it('reports a file that is not JSON as a whole-file problem, and then keeps every last good instance', () => {
    const lastGood: InstanceConfig[] = [
      { id: 'a', job: 'collector', params: {}, enabled: true, schedule: '1m', concurrency: Infinity },
    ];
    const parsed = parseInstancesText('{ "instances": [ ', [collector]);

    expect(isWholeFileBroken(parsed)).toBe(true);
    expect(parsed.problems[0]?.message).toMatch(/not valid JSON/);
    expect(mergeWithLastGood(lastGood, parsed, true)).toEqual(lastGood);
  });

  it('keeps the last good version of a broken instance while others take their edits', () => {
    const lastGood: InstanceConfig[] = [
      { id: 'a', job: 'collector', params: { intervalMs: 5 }, enabled: true, schedule: '1m', concurrency: Infinity },
      { id: 'b', job: 'collector', params: { intervalMs: 5 }, enabled: true, schedule: '1m', concurrency: Infinity },
    ];
    const parsed = parseInstancesText(
      text([
        { id: 'a', job: 'collector', params: { intervalMs: 'x' } },
        { id: 'b', job: 'collector', params: { intervalMs: 7 }, schedule: '1m' },
      ]),
      [collector],
    );

    const merged = mergeWithLastGood(lastGood, parsed, isWholeFileBroken(parsed));

    expect(merged.find((i) => i.id === 'a')).toEqual(lastGood[0]);
    expect(merged.find((i) => i.id === 'b')?.params).toEqual({ intervalMs: 7 });
  });
  it('stops the last good version of a broken instance whose entry says enabled false', () => {
    const lastGood: InstanceConfig[] = [
      { id: 'a', job: 'collector', params: { intervalMs: 5 }, enabled: true, schedule: '1m', concurrency: Infinity },
    ];
    const parsed = parseInstancesText(text([{ id: 'a', job: 'collector', params: { intervalMs: 'x' }, enabled: false }]), [collector]);

    const merged = mergeWithLastGood(lastGood, parsed, isWholeFileBroken(parsed));

    expect(parsed.problems).toHaveLength(1);
    expect(merged).toEqual([{ ...lastGood[0], enabled: false }]);
  });
});
