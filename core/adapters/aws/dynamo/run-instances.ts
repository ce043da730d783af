/**
 * Which tasks of which instances have runs, for the run queries that name no task: they read the
 * runs table's partition of each (`task#<hash>`, see tables.ts), in place of indexes of every run by
 * instance and by day, which took a write unit each with every run record. An instance's tasks
 * are its job type's task names (a task's inputs share its partition), so they are few.
 *
 * One item per instance in the instances table (`kind: 'runs'`) holding the string set of its
 * tasks with runs, added to with the first run record of a task this store writes (an idempotent
 * `ADD`, remembered for the life of the store object: in Lambda, once per task and container),
 * never deleted. An instance's tasks are one read by key; every instance's, a Scan of the
 * instances table, which holds a few items per instance.
 */
import { GetCommand, UpdateCommand, type ScanCommandInput } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { mapLimit } from '../../../concurrency.js';
import { StoreError } from '../../../errors.js';
import { RUNS_KIND } from '../dynamo-items.js';
import { Expr } from './expressions.js';
import type { TableCalls } from './table-calls.js';

const runsItemSchema = z.object({ instanceId: z.string(), tasks: z.set(z.string()).optional() });

/** The tasks with run records of each instance, as the instances table lists them. */
export class RunInstances {
  /** `<instanceId>#<task>` of the tasks this store has noted (or found) already. */
  private readonly known = new Set<string>();
  /** Notes in flight, by `<instanceId>#<task>`: the tasks of one batch end at once. */
  private readonly pending = new Map<string, Promise<void>>();

  constructor(private readonly calls: TableCalls) {}

  /** Notes that runs of these tasks are about to be written. */
  async note(runs: Iterable<{ instanceId: string; task: string }>): Promise<void> {
    const fresh = new Map<string, Set<string>>();
    const waits: Promise<void>[] = [];
    for (const { instanceId, task } of runs) {
      const key = `${instanceId}#${task}`;
      const inFlight = this.pending.get(key);
      if (inFlight) waits.push(inFlight);
      else if (!this.known.has(key)) fresh.set(instanceId, (fresh.get(instanceId) ?? new Set()).add(task));
    }
    if (fresh.size > 0) {
      const written = this.write(fresh);
      for (const [instanceId, tasks] of fresh) for (const task of tasks) this.pending.set(`${instanceId}#${task}`, written);
      waits.push(written);
      void written.finally(() => {
        for (const [instanceId, tasks] of fresh) for (const task of tasks) this.pending.delete(`${instanceId}#${task}`);
      }).catch(() => undefined);
    }
    await Promise.all(waits);
  }

  private async write(fresh: Map<string, Set<string>>): Promise<void> {
    const { doc, tables } = this.calls;
    await mapLimit([...fresh], this.calls.concurrency, async ([instanceId, tasks]) => {
      const e = new Expr();
      await this.calls.call('instances', 'UpdateItem (note the tasks of an instance with runs)', () =>
        doc.send(
          new UpdateCommand({
            TableName: tables.instances,
            Key: { instanceId, kind: RUNS_KIND },
            UpdateExpression: `ADD ${e.n('tasks')} ${e.v(tasks)}`,
            ...e.params(),
          }),
        ),
      );
      for (const task of tasks) this.known.add(`${instanceId}#${task}`);
    });
  }

  /** The tasks of one instance that have runs. */
  async tasksOf(instanceId: string): Promise<string[]> {
    const { doc, tables } = this.calls;
    const output = await this.calls.call('instances', 'GetItem (read the tasks of an instance with runs)', () =>
      doc.send(new GetCommand({ TableName: tables.instances, Key: { instanceId, kind: RUNS_KIND }, ConsistentRead: true })),
    );
    return output.Item === undefined ? [] : this.parse(output.Item).tasks;
  }

  /** Every instance's tasks with runs. */
  async list(): Promise<{ instanceId: string; tasks: string[] }[]> {
    const e = new Expr();
    const input: ScanCommandInput = {
      TableName: this.calls.tables.instances,
      FilterExpression: `${e.n('kind')} = ${e.v(RUNS_KIND)}`,
      ConsistentRead: true,
      ...e.params(),
    };
    const found: { instanceId: string; tasks: string[] }[] = [];
    for await (const item of this.calls.scanItems('instances', 'Scan (list the instances with runs)', input)) found.push(this.parse(item));
    return found.sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0));
  }

  private parse(item: unknown): { instanceId: string; tasks: string[] } {
    const parsed = runsItemSchema.safeParse(item);
    if (!parsed.success) throw new StoreError(`a runs item of table ${this.calls.tables.instances} does not have the shape this adapter writes; was it written by another program?`);
    const tasks = [...(parsed.data.tasks ?? [])].sort();
    for (const task of tasks) this.known.add(`${parsed.data.instanceId}#${task}`);
    return { instanceId: parsed.data.instanceId, tasks };
  }
}
