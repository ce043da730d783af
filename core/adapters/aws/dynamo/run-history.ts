/**
 * Reading runs back from the runs table: one run, its log lines, `listRuns` and `lastRun` (the
 * planner's run history), all in one order: newest by queue time, then the greater id. Each
 * instance's task keeps its runs in a partition of its own in that order (`task#<hash>` /
 * `run#<queuedAt>#<id>`, see tables.ts), so `listRuns` and `lastRun` of a task are one Query of
 * the table, strongly consistent, that stops once it has what it was asked for; a run is read by
 * key from its id (core/run-ids.ts), or through its locator item when its id does not say.
 * A signature's runs are found from the pointers of its lease item (./run-pointers.ts): `lastRun`
 * by signature is the lease item and the run read by key (two consistent reads), `listRuns` by
 * signature a walk back along the runs' `priorRunId`, a read by key per run.
 *
 * `listRuns` without a task (by instance, or neither instance nor signature) reads the partition
 * of each task with runs (./run-instances.ts: of the instance, or of every instance) at once and
 * merges them. A query of live statuses only (`listRuns` or `lastRun`, of a task or not) reads
 * the sparse `byLive` index (eventually consistent) instead. `lastRun` with only an instance is the newest of its tasks' newest, and
 * `lastRun` with neither instance nor signature is a Scan; no caller in ujr asks for it.
 *
 * A status filter is a FilterExpression: `lastRun` of a task's newest success reads back past the
 * newer runs that did not succeed (1 read unit per 4 KB read, about 8 runs).
 */
import { GetCommand, type QueryCommandInput, type ScanCommandInput } from '@aws-sdk/lib-dynamodb';
import type { RunQuery } from '../../../ports/store.js';
import { mapLimit } from '../../../concurrency.js';
import { taskHash } from '../../../run-ids.js';
import { LIVE_STATUSES, type LogLine, type RunRecord, type RunStatus } from '../../../types.js';
import { matchesRunQuery } from '../../run-query.js';
import { LIVE_KEY, LOG_SK_END, RUN_SK, RUN_SK_PREFIX, locatorOf, logOf, logSk, priorOf, runKeyOfId, runOf, runPk, taskPk, type Item } from '../dynamo-items.js';
import { Expr } from './expressions.js';
import { newer, queuedOrder, queuedQuery, runFilters, statusSet, taskQuery } from './run-queries.js';
import { readPointers, type RunPointers } from './run-pointers.js';
import type { RunInstances } from './run-instances.js';
import { BATCH_CONCURRENCY, type TableCalls } from './table-calls.js';

/** Clock skew between machines tolerated when a run's end time bounds its queue time. */
const CLOCK_SKEW_MS = 60_000;
/** Runs of one signature a walk back from its pointers reads at most. */
const MAX_SIGNATURE_RUNS = 10_000;

/** Whether a status filter asks for live runs only (which the sparse `byLive` index holds). */
function liveOnly(statuses: Set<RunStatus> | undefined): boolean {
  return statuses !== undefined && [...statuses].every((status) => LIVE_STATUSES.includes(status));
}

/** The run history of the runs table. */
export class RunHistory {
  constructor(
    private readonly calls: TableCalls,
    private readonly instances: RunInstances,
  ) {}

  async getRun(id: string): Promise<RunRecord | undefined> {
    const item = await this.runItemOf(id);
    return item === undefined ? undefined : runOf(item, this.calls.tables.runs);
  }

  /**
   * The item of a run by id: by the key its id says (one consistent read), else through its
   * locator item (two); `undefined` for no record.
   */
  private async runItemOf(id: string): Promise<Item | undefined> {
    const own = runKeyOfId(id);
    if (own) {
      const item = await this.readItem(own, 'GetItem (read a run)');
      if (item) return item;
    }
    const locator = await this.readItem({ pk: runPk(id), sk: RUN_SK }, 'GetItem (find a run’s record)');
    return locator && this.readItem(locatorOf(locator, this.calls.tables.runs), 'GetItem (read a run)');
  }

  private async readItem(Key: { pk: string; sk: string }, operation: string): Promise<Item | undefined> {
    const { doc, tables } = this.calls;
    const output = await this.calls.call('runs', operation, () => doc.send(new GetCommand({ TableName: tables.runs, Key, ConsistentRead: true })));
    return output.Item;
  }

  async listRuns(query: RunQuery): Promise<RunRecord[]> {
    const limit = Math.floor(query.limit ?? 100);
    const statuses = statusSet(query.status);
    if (!(limit > 0) || statuses?.size === 0) return [];
    if (query.until !== undefined && query.until <= 0) return [];
    let runs: RunRecord[];
    if (query.signature !== undefined) {
      runs = await this.listBySignature(query.signature, query, limit);
    } else if (liveOnly(statuses)) {
      runs = await this.listLive(query, limit);
    } else if (query.instanceId !== undefined && query.task !== undefined) {
      runs = await this.listOfTask(query.instanceId, query.task, query, limit);
    } else {
      runs = await this.listAcrossTasks(await this.tasksWithRuns(query), query, limit);
    }
    return runs.filter((run) => matchesRunQuery(run, query)).sort(queuedOrder).slice(0, limit);
  }

  async lastRun(query: Omit<RunQuery, 'limit' | 'since' | 'until'>): Promise<RunRecord | undefined> {
    const statuses = statusSet(query.status);
    if (statuses?.size === 0) return undefined;
    if (query.signature !== undefined) return this.lastBySignature(query.signature, query);
    // Live runs only: the sparse index, not a read back past every final run of a task.
    if (liveOnly(statuses)) return (await this.listLive(query, 1))[0];
    if (query.instanceId !== undefined && query.task !== undefined) {
      return (await this.listOfTask(query.instanceId, query.task, query, 1))[0];
    }
    let best: RunRecord | undefined;
    if (query.instanceId !== undefined) {
      // The newest of the newest of each of the instance's tasks.
      const tasks = await this.tasksWithRuns(query);
      const heads = await mapLimit(tasks, BATCH_CONCURRENCY, (task) => this.listOfTask(task.instanceId, task.task, query, 1));
      for (const [head] of heads) if (head && matchesRunQuery(head, query) && (!best || newer(head, best))) best = head;
      return best;
    }
    // Nothing orders every run; no caller in ujr asks for this on a hot path.
    for await (const run of this.scanRuns(query)) {
      if (matchesRunQuery(run, query) && (!best || newer(run, best))) best = run;
    }
    return best;
  }

  async getLogs(runId: string, afterSeq = 0): Promise<LogLine[]> {
    const { tables } = this.calls;
    const first = afterSeq < 0 ? 0 : Math.floor(afterSeq) + 1;
    if (first > 999_999_999_999_999) return [];
    const e = new Expr();
    const input: QueryCommandInput = {
      TableName: tables.runs,
      KeyConditionExpression: `${e.n('pk')} = ${e.v(runPk(runId))} AND ${e.n('sk')} BETWEEN ${e.v(logSk(first))} AND ${e.v(LOG_SK_END)}`,
      ConsistentRead: true,
      ...e.params(),
    };
    const lines: LogLine[] = [];
    for await (const item of this.calls.queryItems('runs', 'Query (read logs)', input)) {
      const line = logOf(item, tables.runs);
      if (line.seq > afterSeq) lines.push(line);
    }
    return lines;
  }

  /** A run and the run of its signature written before it; `undefined` for no record. */
  private async runLink(id: string): Promise<{ run: RunRecord; prior: string | undefined } | undefined> {
    const { tables } = this.calls;
    const item = await this.runItemOf(id);
    return item === undefined ? undefined : { run: runOf(item, tables.runs), prior: priorOf(item, tables.runs) };
  }

  /**
   * A signature's runs, from its pointers back along `priorRunId`, a step at a time (the runs of
   * one step are read at once): newest written first, each step's runs written after the next's.
   */
  private async *signatureRuns(pointers: RunPointers): AsyncGenerator<RunRecord[]> {
    const seen = new Set<string>();
    let step = [...new Set([pointers.headRunId, pointers.lastRunId, pointers.lastSuccessId])].filter((id): id is string => id !== undefined);
    while (step.length > 0 && seen.size < MAX_SIGNATURE_RUNS) {
      for (const id of step) seen.add(id);
      const read = await Promise.all(step.map((id) => this.runLink(id)));
      const links = read.filter((link) => link !== undefined);
      yield links.map((link) => link.run);
      const priors = links.map((link) => link.prior);
      // A head without a record (its writer died between the release and the record, or is
      // writing it now): the walk goes on from the head before it.
      if (read.some((link, i) => link === undefined && step[i] === pointers.headRunId)) priors.push(pointers.headPriorRunId);
      step = [...new Set(priors)].filter((id): id is string => id !== undefined && !seen.has(id));
    }
  }

  /** The newest run of a signature matching: the pointer's run when it answers, else a walk back. */
  private async lastBySignature(signature: string, query: Omit<RunQuery, 'limit' | 'since' | 'until'>): Promise<RunRecord | undefined> {
    const pointers = await readPointers(this.calls, signature);
    const statuses = statusSet(query.status);
    // The newest success answers a query of successes it matches; the newest run, any other query it matches.
    const pointed = statuses?.size === 1 && statuses.has('succeeded') ? pointers.lastSuccessId : pointers.lastRunId;
    if (pointed !== undefined) {
      const link = await this.runLink(pointed);
      if (link && matchesRunQuery(link.run, query)) return link.run;
    }
    let best: RunRecord | undefined;
    for await (const step of this.signatureRuns(pointers)) {
      for (const run of step) if (matchesRunQuery(run, query) && (!best || newer(run, best))) best = run;
    }
    return best;
  }

  /**
   * The newest `limit` runs of a signature by queue time, walking back from its pointers. The
   * runs further back were first written before the runs of the step just read, so they were
   * queued no later than those were written (their start or end, give or take the clock skew):
   * once the last of `limit` picked was queued after that, the walk stops.
   */
  private async listBySignature(signature: string, query: RunQuery, limit: number): Promise<RunRecord[]> {
    const picked: RunRecord[] = [];
    for await (const step of this.signatureRuns(await readPointers(this.calls, signature))) {
      for (const run of step) if (matchesRunQuery(run, query)) picked.push(run);
      picked.sort(queuedOrder);
      if (picked.length > limit) picked.length = limit;
      const written = Math.max(...step.map((run) => Math.max(run.endedAt ?? 0, run.startedAt ?? 0, run.queuedAt)));
      const last = picked[limit - 1];
      if (last && last.queuedAt > written + CLOCK_SKEW_MS) break;
    }
    return picked;
  }

  /** Every run a Query of the runs table or one of its indexes finds. */
  async *queryRuns(input: QueryCommandInput): AsyncGenerator<RunRecord> {
    for await (const item of this.calls.queryItems('runs', `Query (${input.IndexName ?? 'table'})`, input)) yield runOf(item, this.calls.tables.runs);
  }

  /**
   * The newest `limit` runs of an instance's task matching the query: its partition read newest
   * first, a page at a time, until `limit` match.
   */
  private listOfTask(instanceId: string, task: string, query: RunQuery, limit: number): Promise<RunRecord[]> {
    const input = taskQuery(this.calls.tables.runs, taskPk(taskHash(instanceId, task)), { ...query, instanceId, task }, Math.min(1000, Math.max(limit, 10)));
    return input ? this.firstRuns(input, limit) : Promise.resolve([]);
  }

  /** Up to `limit` live runs, newest first: the sparse `byLive` index, which holds nothing else. */
  private listLive(query: RunQuery, limit: number): Promise<RunRecord[]> {
    return this.firstRuns(queuedQuery(this.calls.tables.runs, 'byLive', LIVE_KEY, query, Math.min(1000, limit)), limit);
  }

  /** The first `limit` runs a Query finds, read a page at a time until there are that many. */
  private async firstRuns(input: QueryCommandInput, limit: number): Promise<RunRecord[]> {
    const runs: RunRecord[] = [];
    for await (const run of this.queryRuns(input)) {
      runs.push(run);
      if (runs.length >= limit) break;
    }
    return runs;
  }

  /** The tasks with runs (./run-instances.ts) a query may match: of its instance, or of every instance. */
  private async tasksWithRuns(query: Omit<RunQuery, 'limit'>): Promise<{ instanceId: string; task: string }[]> {
    const instances =
      query.instanceId !== undefined ? [{ instanceId: query.instanceId, tasks: await this.instances.tasksOf(query.instanceId) }] : await this.instances.list();
    return instances.flatMap(({ instanceId, tasks }) => tasks.filter((task) => query.task === undefined || task === query.task).map((task) => ({ instanceId, task })));
  }

  /**
   * The newest `limit` runs of these tasks by queue time: each task's partition read at once (as
   * `listRuns` by instance and task reads it), merged.
   */
  private async listAcrossTasks(tasks: readonly { instanceId: string; task: string }[], query: RunQuery, limit: number): Promise<RunRecord[]> {
    const found = await mapLimit(tasks, BATCH_CONCURRENCY, ({ instanceId, task }) => this.listOfTask(instanceId, task, query, limit));
    return found.flat().sort(queuedOrder).slice(0, limit);
  }

  /** Every run item matching the query's filters: a Scan, for queries no index serves. */
  private async *scanRuns(query: Omit<RunQuery, 'limit'>): AsyncGenerator<RunRecord> {
    const e = new Expr();
    const filters = [`begins_with(${e.n('sk')}, ${e.v(RUN_SK_PREFIX)})`];
    const more = runFilters(e, query, { task: true, instanceId: true, statuses: statusSet(query.status) });
    if (more) filters.push(more);
    const input: ScanCommandInput = { TableName: this.calls.tables.runs, FilterExpression: filters.join(' AND '), ConsistentRead: true, ...e.params() };
    for await (const item of this.calls.scanItems('runs', 'Scan (runs without an index)', input)) yield runOf(item, this.calls.tables.runs);
  }
}
