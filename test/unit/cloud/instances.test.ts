/**
 * The instance directory's shared limits (issue 15): read with the instances from the catalog,
 * validated limit by limit, a broken limit reported by name with its last good version kept.
 */
import { describe, expect, it } from 'vitest';
import { InstanceDirectory } from '../../../core/cloud/instances.js';
import type { InstanceCatalog } from '../../../core/cloud/ports.js';

/** A catalog whose limits item the test edits between reads. */
function catalog(initial: unknown): InstanceCatalog & { limits: unknown } {
  return {
    limits: initial,
    loadInstancesAndStatus() {
      return Promise.resolve({ entries: [], statuses: [], limits: this.limits });
    },
  };
}

describe('the instance directory’s limits', () => {
  it('reads the limits item as definitions, and an edit of it at the next read', async () => {
    const source = catalog({ api: { rate: 10, per: '1s' } });
    const directory = new InstanceDirectory({ catalog: source, jobs: [], maxAgeMs: 0, now: () => 0 });

    const first = await directory.get();
    source.limits = { api: { rate: 5, per: '1s', burst: 2 }, host: { concurrency: 3 } };
    const second = await directory.get();

    expect([...first.limits.values()]).toEqual([{ name: 'api', rate: { count: 10, perMs: 1000, burst: 1 } }]);
    expect([...second.limits.values()]).toEqual([
      { name: 'api', rate: { count: 5, perMs: 1000, burst: 2 } },
      { name: 'host', concurrency: 3 },
    ]);
  });

  it('reports a limit broken by an edit, naming it and its field, and keeps its last good version', async () => {
    const source = catalog({ api: { rate: 10, per: '1s' }, host: { concurrency: 3 } });
    const directory = new InstanceDirectory({ catalog: source, jobs: [], maxAgeMs: 0, now: () => 0 });
    await directory.get();

    source.limits = { api: { rate: 10, per: 'soon' }, host: { concurrency: 4 } };
    const snapshot = await directory.get();

    expect(snapshot.problems).toEqual([expect.objectContaining({ limit: 'api', field: 'limits.api.per' })]);
    expect(snapshot.limits.get('api')).toEqual({ name: 'api', rate: { count: 10, perMs: 1000, burst: 1 } });
    expect(snapshot.limits.get('host')).toEqual({ name: 'host', concurrency: 4 });
  });

  it('has no limits when the table holds none', async () => {
    const directory = new InstanceDirectory({ catalog: catalog(undefined), jobs: [], maxAgeMs: 0, now: () => 0 });

    const snapshot = await directory.get();

    expect(snapshot.limits.size).toBe(0);
    expect(snapshot.problems).toEqual([]);
  });
});
