/**
 * Reading runs back from the runs table: one run, its log lines, `listRuns` and `lastRun` (the
 * planner's run history). A run is `run#<id>`/`run`, its log lines `run#<id>`/`log#<seq>`. Runs
 * are indexed by instance+task in recency order (see tables.ts and ./run-queries.ts),
 * successes (`S#`) apart from the rest (`R#`), so that `lastRun` of a task is one or two
 * single-item queries, and `listRuns` of a task merges the two; live runs apart (`byLive`), in
 * queue order. A signature's
 * runs are found from the pointers of its lease item (./run-pointers.ts): `lastRun` by signature
 * is the lease item and the run read by key (two consistent reads), `listRuns` by signature a walk
 * back along the runs' `priorRunId`, a read by key per run.
 *
 * `listRuns` without a task (by instance, or neither instance nor signature) reads the `byTask`
 * partition of each task with runs (./run-instances.ts: of the instance, or of every instance) at
 * once and merges them, or only the sparse `byLive` index when it asks for live statuses only.
 * `listRuns` of a task reads its recency partition and
 * stops once no unread run can rank: a run is never queued after it ended, give or take one
 * minute of clock skew between machines. `lastRun` with only an instance is the newest of its
 * tasks' (two single-item queries each), and `lastRun` with neither instance nor signature is a
 * Scan; no caller in ujr asks for it. Reads of the tables are
 * strongly consistent (the pointers too); the index queries read global secondary indexes,
 * which are eventually consistent.
 */
import { GetCommand, QueryCommand, type QueryCommandInput, type ScanCommandInput } from '@aws-sdk/lib-dynamodb';
import type { RunQuery } from '../../../ports/store.js';
import { mapLimit } from '../../../concurrency.js';
import { LIVE_STATUSES, type LogLine, type RunRecord } from '../../../types.js';
import { matchesRunQuery, runRecency } from '../../run-query.js';
import { LIVE_KEY, LOG_SK_END, RUN_SK, logOf, logSk, priorOf, runOf, runPk, taskKey } from '../dynamo-items.js';
import { Expr } from './expressions.js';
import { PageStream, newer, queuedOrder, queuedQuery, recencyQuery, runFilters, statusSet } from './run-queries.js';
import { readPointers, type RunPointers } from './run-pointers.js';
import type { RunInstances } from './run-instances.js';
import { BATCH_CONCURRENCY, type TableCalls } from './table-calls.js';

/** Clock skew between machines tolerated when a run's end time bounds its queue time. */
const CLOCK_SKEW_MS = 60_000;
/** Runs of one signature a walk back from its pointers reads at most. */
const MAX_SIGNATURE_RUNS = 10_000;

/** The run history of the runs table. */
export class RunHistory {
  constructor(
    private readonly calls: TableCalls,
    private readonly instances: RunInstances,
  ) {}

  async getRun(id: string): Promise<RunRecord | undefined> {
    const { doc, tables } = this.calls;
    const output = await this.calls.call('runs', 'GetItem (read a run)', () =>
      doc.send(new GetCommand({ TableName: tables.runs, Key: { pk: runPk(id), sk: RUN_SK }, ConsistentRead: true })),
    );
    return output.Item === undefined ? undefined : runOf(output.Item, tables.runs);
  }

  async listRuns(query: RunQuery): Promise<RunRecord[]> {
    const limit = Math.floor(query.limit ?? 100);
    const statuses = statusSet(query.status);
    if (!(limit > 0) || statuses?.size === 0) return [];
    if (query.until !== undefined && query.until <= 0) return [];
    let runs: RunRecord[];
    if (query.signature !== undefined) {
      runs = await this.listBySignature(query.signature, query, limit);
    } else if (query.instanceId !== undefined && query.task !== undefined) {
      runs = await this.listByRecency('byTask', taskKey(query.instanceId, query.task), query, limit);
    } else if (statuses && [...statuses].every((status) => LIVE_STATUSES.includes(status))) {
      runs = await this.listLive(query, limit);
    } else {
      runs = await this.listAcrossTasks(await this.tasksWithRuns(query), query, limit);
    }
    return runs.filter((run) => matchesRunQuery(run, query)).sort(queuedOrder).slice(0, limit);
  }

  async lastRun(query: Omit<RunQuery, 'limit' | 'since' | 'until'>): Promise<RunRecord | undefined> {
    const statuses = statusSet(query.status);
    if (statuses?.size === 0) return undefined;
    if (query.signature !== undefined) return this.lastBySignature(query.signature, query);
    if (query.instanceId !== undefined && query.task !== undefined) {
      return this.lastByRecency('byTask', taskKey(query.instanceId, query.task), query);
    }
    let best: RunRecord | undefined;
    if (query.instanceId !== undefined) {
      // The newest of the newest of each of the instance's tasks.
      const tasks = await this.tasksWithRuns(query);
      const heads = await mapLimit(tasks, BATCH_CONCURRENCY, (task) => this.lastByRecency('byTask', taskKey(task.instanceId, task.task), query));
      for (const head of heads) if (head && matchesRunQuery(head, query) && (!best || newer(head, best))) best = head;
      return best;
    }
    // No index orders every run by recency; no caller in ujr asks for this on a hot path.
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
    const { doc, tables } = this.calls;
    const output = await this.calls.call('runs', 'GetItem (read a run)', () => doc.send(new GetCommand({ TableName: tables.runs, Key: { pk: runPk(id), sk: RUN_SK }, ConsistentRead: true })));
    return output.Item === undefined ? undefined : { run: runOf(output.Item, tables.runs), prior: priorOf(output.Item, tables.runs) };
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

  /** The newest `limit` runs of a recency index partition by queue time. */
  private async listByRecency(index: 'byTask', keyValue: string, query: RunQuery, limit: number): Promise<RunRecord[]> {
    const streams = this.recencyStreams(index, keyValue, query, Math.min(1000, Math.max(limit, 10)));
    const picked: RunRecord[] = [];
    for (;;) {
      const heads = await Promise.all(streams.map((stream) => stream.peek()));
      let best = -1;
      heads.forEach((head, i) => {
        const current = heads[best];
        if (head && (!current || newer(head, current))) best = i;
      });
      const head = heads[best];
      const stream = streams[best];
      if (!head || !stream) break;
      // Unread runs ended (or were queued) no later than `head`, so were queued no later than
      // that plus the clock skew: once the last of `limit` picked was queued after it, stop.
      const last = picked[limit - 1];
      if (last && last.queuedAt > runRecency(head) + CLOCK_SKEW_MS) break;
      stream.shift();
      picked.push(head);
      picked.sort(queuedOrder);
      if (picked.length > limit) picked.pop();
    }
    return picked;
  }

  /** The most recent run of a recency index partition: the newer of the first success and the first other. */
  private async lastByRecency(
    index: 'byTask',
    keyValue: string,
    query: Omit<RunQuery, 'limit' | 'since' | 'until'>,
  ): Promise<RunRecord | undefined> {
    const heads = await Promise.all(this.recencyStreams(index, keyValue, query, 1).map((stream) => stream.peek()));
    let best: RunRecord | undefined;
    for (const head of heads) if (head && (!best || newer(head, best))) best = head;
    return best;
  }

  private recencyStreams(
    index: 'byTask',
    keyValue: string,
    query: RunQuery,
    pageSize: number,
  ): PageStream<RunRecord>[] {
    const runsTable = this.calls.tables.runs;
    const statuses = statusSet(query.status);
    const others = statuses && new Set([...statuses].filter((status) => status !== 'succeeded'));
    const streams: PageStream<RunRecord>[] = [];
    if (!statuses || statuses.has('succeeded')) {
      streams.push(this.runStream(recencyQuery(runsTable, index, keyValue, 'S', query, undefined, pageSize)));
    }
    if (!others || others.size > 0) {
      streams.push(this.runStream(recencyQuery(runsTable, index, keyValue, 'R', query, others, pageSize)));
    }
    return streams;
  }

  /** Up to `limit` live runs, newest first: the sparse `byLive` index, which holds nothing else. */
  private async listLive(query: RunQuery, limit: number): Promise<RunRecord[]> {
    const runs: RunRecord[] = [];
    for await (const run of this.queryRuns(queuedQuery(this.calls.tables.runs, 'byLive', LIVE_KEY, query, Math.min(1000, limit)))) {
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
   * The newest `limit` runs of these tasks by queue time: each task's `byTask` partition read at
   * once (as `listRuns` by instance and task reads it), merged.
   */
  private async listAcrossTasks(tasks: readonly { instanceId: string; task: string }[], query: RunQuery, limit: number): Promise<RunRecord[]> {
    const found = await mapLimit(tasks, BATCH_CONCURRENCY, ({ instanceId, task }) => this.listByRecency('byTask', taskKey(instanceId, task), query, limit));
    return found.flat().sort(queuedOrder).slice(0, limit);
  }

  private runStream(input: QueryCommandInput): PageStream<RunRecord> {
    const { doc, tables } = this.calls;
    return new PageStream(async (startKey) => {
      const page = await this.calls.call('runs', `Query (${input.IndexName ?? 'table'})`, () =>
        doc.send(new QueryCommand({ ...input, ...(startKey ? { ExclusiveStartKey: startKey } : {}) })),
      );
      return { items: (page.Items ?? []).map((item) => runOf(item, tables.runs)), lastKey: page.LastEvaluatedKey };
    });
  }

  /** Every run item matching the query's filters: a Scan, for queries no index serves. */
  private async *scanRuns(query: Omit<RunQuery, 'limit'>): AsyncGenerator<RunRecord> {
    const e = new Expr();
    const filters = [`${e.n('sk')} = ${e.v(RUN_SK)}`];
    const more = runFilters(e, query, { task: true, instanceId: true, statuses: statusSet(query.status) });
    if (more) filters.push(more);
    const input: ScanCommandInput = { TableName: this.calls.tables.runs, FilterExpression: filters.join(' AND '), ConsistentRead: true, ...e.params() };
    for await (const item of this.calls.scanItems('runs', 'Scan (runs without an index)', input)) yield runOf(item, this.calls.tables.runs);
  }
}
