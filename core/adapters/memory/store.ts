/**
 * An in-memory store for tests and throwaway runs. Same semantics as the durable adapters
 * (the contract suite runs against all of them); nothing survives the process.
 */
import { MemoryLimitStore } from './limits.js';
import type {
  Checkpoint,
  CommitResult,
  InstanceStatus,
  Lease,
  LeaseGrant,
  LeaseRef,
  LeaseRequest,
  RunQuery,
  Store,
  SweptRun,
  Trigger,
  TriggerResult,
  WriteBatch,
} from '../../ports/store.js';
import { LIVE_STATUSES, TERMINAL_STATUSES, type Json, type LogLine, type RunRecord } from '../../types.js';
import { fenceHolds, leaseBacksRun, mayReplaceRun, sweepReleases, sweptRun } from '../../ports/fencing.js';
import { matchesRunQuery } from '../run-query.js';

/** A lease as this store keeps it: with the time it was last released. */
type StoredLease = Lease & { releasedAt?: number };

export class MemoryStore implements Store {
  /** Shared limits, in memory as the rest (./limits.ts). */
  readonly limits = new MemoryLimitStore();
  private readonly leases = new Map<string, StoredLease>();
  private readonly triggerResults = new Map<string, TriggerResult>();
  private readonly runs = new Map<string, RunRecord>();
  private readonly logs = new Map<string, LogLine[]>();
  private readonly checkpoints = new Map<string, Checkpoint>();
  private readonly state = new Map<string, Json>();
  private readonly statuses = new Map<string, InstanceStatus>();
  private triggers: Trigger[] = [];

  acquireLeases(requests: LeaseRequest[], now: number): Promise<LeaseGrant[]> {
    return Promise.resolve(
      requests.map((request): LeaseGrant => {
        const current = this.leases.get(request.signature);
        if (current && current.owner !== null && current.expiresAt > now) {
          return { granted: false, holder: leaseOnly(current) };
        }
        if (request.notReleasedSince !== undefined && current?.releasedAt !== undefined && current.releasedAt >= request.notReleasedSince) {
          return { granted: false, holder: leaseOnly(current) };
        }
        const lease: StoredLease = {
          signature: request.signature,
          owner: request.owner,
          expiresAt: now + request.ttlMs,
          token: (current?.token ?? 0) + 1,
          runId: request.runId,
          instanceId: request.instanceId,
          task: request.task,
        };
        if (current?.releasedAt !== undefined) lease.releasedAt = current.releasedAt;
        this.leases.set(request.signature, lease);
        const grant: LeaseGrant = { granted: true, lease: leaseOnly(lease) };
        if (current && current.owner !== null) grant.takenOver = leaseOnly(current);
        const checkpoint = this.checkpoints.get(request.signature);
        if (checkpoint) grant.checkpoint = clone(checkpoint);
        return grant;
      }),
    );
  }

  renewLeases(refs: LeaseRef[], ttlMs: number, now: number): Promise<boolean[]> {
    return Promise.resolve(
      refs.map((ref) => {
        const lease = this.leases.get(ref.signature);
        if (!lease || lease.owner !== ref.owner || lease.token !== ref.token) return false;
        lease.expiresAt = now + ttlMs;
        return true;
      }),
    );
  }

  getLease(signature: string): Promise<Lease | undefined> {
    const lease = this.leases.get(signature);
    return Promise.resolve(lease ? leaseOnly(lease) : undefined);
  }

  listActiveLeases(now: number): Promise<Lease[]> {
    return Promise.resolve(
      [...this.leases.values()].filter((l) => l.owner !== null && l.expiresAt > now).map(leaseOnly),
    );
  }

  commit(batch: WriteBatch): Promise<CommitResult> {
    const refused: LeaseRef[] = [];
    for (const group of batch.fenced ?? []) {
      const lease = this.leases.get(group.fence.signature);
      if (!fenceHolds(lease, group.fence)) {
        refused.push({ ...group.fence });
        continue;
      }
      for (const run of group.runs ?? []) if (mayReplaceRun(this.runs.get(run.id))) this.runs.set(run.id, clone(run));
      for (const line of group.logs ?? []) {
        const lines = this.logs.get(line.runId) ?? [];
        lines.push({ ...line });
        this.logs.set(line.runId, lines);
      }
      if (group.checkpoint) this.checkpoints.set(group.checkpoint.signature, clone(group.checkpoint));
      if (group.release && lease) this.releaseLease(lease, batch.at ?? Date.now());
    }
    for (const trigger of batch.triggers ?? []) this.triggers.push(clone(trigger));
    for (const result of batch.triggerResults ?? []) this.triggerResults.set(result.id, clone(result));
    return Promise.resolve({ refused });
  }

  sweep(now: number): Promise<SweptRun[]> {
    const swept: SweptRun[] = [];
    for (const run of this.runs.values()) {
      if (!LIVE_STATUSES.includes(run.status)) continue;
      const lease = this.leases.get(run.signature);
      if (leaseBacksRun(lease, run, now)) continue;
      const ended = sweptRun(run, lease, now);
      this.runs.set(run.id, ended);
      swept.push({ run: clone(ended), lease: lease && leaseOnly(lease) });
      if (lease && sweepReleases(lease, run)) this.releaseLease(lease, now);
    }
    return Promise.resolve(swept);
  }

  getRun(id: string): Promise<RunRecord | undefined> {
    const run = this.runs.get(id);
    return Promise.resolve(run ? clone(run) : undefined);
  }

  listRuns(query: RunQuery): Promise<RunRecord[]> {
    const limit = query.limit ?? 100;
    const { before, inputContains } = query;
    const matching = [...this.runs.values()].filter(
      (run) =>
        matchesRunQuery(run, query) &&
        (before === undefined || run.queuedAt < before.queuedAt || (run.queuedAt === before.queuedAt && run.id < before.id)) &&
        (inputContains === undefined || JSON.stringify(run.input).includes(inputContains)),
    );
    matching.sort(newestFirst);
    return Promise.resolve(matching.slice(0, limit).map(clone));
  }

  lastRun(query: Omit<RunQuery, 'limit' | 'since' | 'until'>): Promise<RunRecord | undefined> {
    // listRuns' order: the first run listRuns would return.
    let best: RunRecord | undefined;
    for (const run of this.runs.values()) {
      if (matchesRunQuery(run, query) && (!best || newestFirst(run, best) < 0)) best = run;
    }
    return Promise.resolve(best ? clone(best) : undefined);
  }

  getLogs(runId: string, afterSeq = 0): Promise<LogLine[]> {
    const lines = (this.logs.get(runId) ?? []).filter((l) => l.seq > afterSeq);
    lines.sort((a, b) => a.seq - b.seq);
    return Promise.resolve(lines.map((l) => ({ ...l })));
  }

  getCheckpoint(signature: string): Promise<Checkpoint | undefined> {
    const checkpoint = this.checkpoints.get(signature);
    return Promise.resolve(checkpoint ? clone(checkpoint) : undefined);
  }

  getState(instanceId: string, key: string): Promise<Json | undefined> {
    const value = this.state.get(stateKey(instanceId, key));
    return Promise.resolve(value === undefined ? undefined : clone(value));
  }

  setState(instanceId: string, key: string, value: Json | undefined): Promise<void> {
    if (value === undefined) this.state.delete(stateKey(instanceId, key));
    else this.state.set(stateKey(instanceId, key), clone(value));
    return Promise.resolve();
  }

  getInstanceStatus(instanceId: string): Promise<InstanceStatus | undefined> {
    const status = this.statuses.get(instanceId);
    return Promise.resolve(status ? clone(status) : undefined);
  }

  listInstanceStatus(): Promise<InstanceStatus[]> {
    return Promise.resolve([...this.statuses.values()].map(clone));
  }

  setInstanceStatus(instanceId: string, status: InstanceStatus | undefined): Promise<void> {
    if (status) this.statuses.set(instanceId, clone(status));
    else this.statuses.delete(instanceId);
    return Promise.resolve();
  }

  addTrigger(trigger: Trigger): Promise<void> {
    this.triggers.push(clone(trigger));
    return Promise.resolve();
  }

  getTriggerResult(id: string): Promise<TriggerResult | undefined> {
    const result = this.triggerResults.get(id);
    return Promise.resolve(result ? clone(result) : undefined);
  }

  takeTriggers(limit: number): Promise<Trigger[]> {
    this.triggers.sort((a, b) => a.at - b.at);
    return Promise.resolve(this.triggers.splice(0, limit));
  }

  pruneRuns(endedBefore: number): Promise<number> {
    const keep = new Set<string>();
    const latestSuccess = new Map<string, RunRecord>();
    for (const run of this.runs.values()) {
      if (run.status !== 'succeeded') continue;
      const best = latestSuccess.get(run.signature);
      // The success lastRun reports: newest by queue time, then the greater id.
      if (!best || newestFirst(run, best) < 0) latestSuccess.set(run.signature, run);
    }
    for (const run of latestSuccess.values()) keep.add(run.id);
    let removed = 0;
    for (const run of [...this.runs.values()]) {
      const ended = TERMINAL_STATUSES.has(run.status) && run.endedAt !== undefined && run.endedAt < endedBefore;
      if (ended && !keep.has(run.id)) {
        this.runs.delete(run.id);
        this.logs.delete(run.id);
        removed += 1;
      }
    }
    return Promise.resolve(removed);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private releaseLease(lease: StoredLease, now: number): void {
    lease.owner = null;
    lease.expiresAt = 0;
    lease.releasedAt = now;
  }
}

/**
 * The order of listRuns and lastRun: newest queued first, ties by the greater id (ids compared as
 * strings, by UTF-16 code units). Negative when `a` comes first.
 */
function newestFirst(a: RunRecord, b: RunRecord): number {
  return b.queuedAt - a.queuedAt || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0);
}

/** The port's view of a stored lease (without the release time). */
function leaseOnly(lease: StoredLease): Lease {
  const { releasedAt: _releasedAt, ...rest } = lease;
  return clone(rest);
}

function stateKey(instanceId: string, key: string): string {
  return `${instanceId}\u0000${key}`;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}
