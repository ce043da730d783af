/** createTestRunner()'s `limits` option: the instances file's format, validated, kept on the virtual clock. */
import { defineJob, InvalidLimitError, z } from 'ujr';
import { createTestRunner, type TestRunner } from 'ujr/testing';
import { afterEach, describe, expect, it } from 'vitest';

const START = Date.UTC(2026, 0, 1);
const MINUTE = 60_000;

const open: TestRunner[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

/** Plans three pages at once, each taking a token of "api". */
const pages = defineJob({
  name: 'pages',
  params: z.object({}),
  getRunnableTasks: () => [1, 2, 3].map((page) => ({ task: 'fetch', input: { page } })),
  tasks: { fetch: { limits: ['api'], run: (input: { page: number }) => input } },
});

describe('createTestRunner() limits', () => {
  it('starts no more tasks than the rate allows until the virtual clock refills it', async () => {
    // Prepare
    const t = await createTestRunner({ now: START, jobs: [pages], instances: [{ id: 'p', job: 'pages', schedule: '1d' }], limits: { api: { rate: 1, per: '1m' } } });
    open.push(t);

    // Act
    await t.clock.advance(0);
    const first = (await t.runs({ status: 'succeeded' })).length;
    await t.clock.advance(MINUTE);
    const second = (await t.runs({ status: 'succeeded' })).length;

    // Assess
    expect([first, second]).toEqual([1, 2]);
  });

  it('lets a burst of tasks start at once', async () => {
    // Prepare
    const t = await createTestRunner({ now: START, jobs: [pages], instances: [{ id: 'p', job: 'pages', schedule: '1d' }], limits: { api: { rate: 1, per: '1m', burst: 3 } } });
    open.push(t);

    // Act
    await t.clock.advance(0);

    // Assess
    expect(await t.runs({ status: 'succeeded' })).toHaveLength(3);
  });

  it('refuses a bad limit, naming it and its field', async () => {
    // Act
    const made = createTestRunner({ jobs: [pages], instances: [], limits: { api: { rate: 1, per: 'a minute' } } });

    // Assess
    await expect(made).rejects.toThrow(InvalidLimitError);
    await expect(made).rejects.toThrow('createTestRunner options: limits.api.per: use a duration such as');
  });
});
