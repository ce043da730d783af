/** Strict params: an instance's unknown params are an error naming the key, unless the job's schema takes other keys. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatProblem, parseInstances } from '../../../core/config.js';
import { defineJob } from '../../../core/define.js';

const tasks = { work: { run: () => undefined } };
const strict = defineJob({ name: 'strict', params: z.object({ count: z.number() }), getRunnableTasks: () => [], tasks });
const loose = defineJob({ name: 'loose', params: z.looseObject({ count: z.number() }), getRunnableTasks: () => [], tasks });
const typedRest = defineJob({ name: 'typed-rest', params: z.object({ count: z.number() }).catchall(z.string()), getRunnableTasks: () => [], tasks });

describe('strict params', () => {
  it('refuses an unknown key of a plain z.object schema, naming the key, the instance, the job type and what it takes', () => {
    // Act
    const parsed = parseInstances({ instances: [{ id: 'a', job: 'strict', params: { count: 1, extra: 1, other: 2 } }] }, [strict]);

    // Assess
    expect(parsed.instances).toEqual([]);
    expect(parsed.problems.map((p) => formatProblem('jobs/instances.json', p))).toEqual([
      'jobs/instances.json: instance "a": params: unknown params "extra", "other" for job type "strict" (it takes: count); remove or rename them, or let the job accept other keys with z.looseObject',
    ]);
  });

  it('keeps the unknown keys of a job that opts out with z.looseObject, and checks them against a catchall', () => {
    // Act
    const parsed = parseInstances(
      {
        instances: [
          { id: 'l', job: 'loose', params: { count: 1, extra: 1 } },
          { id: 't', job: 'typed-rest', params: { count: 1, label: 'x' } },
          { id: 'u', job: 'typed-rest', params: { count: 1, label: 2 } },
        ],
      },
      [loose, typedRest],
    );

    // Assess
    expect(parsed.instances.map((i) => [i.id, i.params])).toEqual([
      ['l', { count: 1, extra: 1 }],
      ['t', { count: 1, label: 'x' }],
    ]);
    expect(parsed.problems.map((p) => [p.instanceId, p.field])).toEqual([['u', 'params.label']]);
  });
});
