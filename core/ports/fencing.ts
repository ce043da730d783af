/**
 * The fencing rules every store adapter applies, in one place: when a lease is current for a
 * fence, when a run is still backed by its lease, and the record the sweeper leaves for a run
 * whose lease is gone. Adapters only translate these into their own conditional writes.
 */
import type { Lease, LeaseRef } from './store.js';
import { TERMINAL_STATUSES, type RunRecord } from '../types.js';

/** The fence still names the lease's holder: same owner and token, not released. */
export function fenceHolds(lease: Pick<Lease, 'owner' | 'token'> | undefined, fence: LeaseRef): boolean {
  return lease !== undefined && lease.owner !== null && lease.owner === fence.owner && lease.token === fence.token;
}

/** The run is live (queued, running, retrying) and its holder's lease is current and unexpired. */
export function leaseBacksRun(lease: Lease | undefined, run: RunRecord, now: number): boolean {
  return fenceHolds(lease, { signature: run.signature, owner: run.runner, token: run.fencingToken }) && (lease?.expiresAt ?? 0) > now;
}

/** Whether a write of `next` may replace `stored`: a run in a final state never changes again. */
export function mayReplaceRun(stored: Pick<RunRecord, 'status'> | undefined): boolean {
  return stored === undefined || !TERMINAL_STATUSES.has(stored.status);
}

/** The expired lease of a swept run is released only if it still names that run's holder. */
export function sweepReleases(lease: Lease | undefined, run: RunRecord): boolean {
  return fenceHolds(lease, { signature: run.signature, owner: run.runner, token: run.fencingToken });
}

/** The record of a run whose lease expired (or moved on) without a final record. */
export function sweptRun(run: RunRecord, lease: Lease | undefined, now: number): RunRecord {
  const why =
    lease === undefined || lease.token === run.fencingToken
      ? `runner ${run.runner} stopped renewing its lease (token ${run.fencingToken}) without recording how the attempt ended: it died, hung or lost its store`
      : `runner ${run.runner} held token ${run.fencingToken}, but the lease moved on to token ${lease.token} without this attempt being recorded: its runner died or hung`;
  return { ...run, status: 'interrupted', endedAt: now, error: { name: 'LeaseExpiredError', message: `${why}; the attempt was ended by the sweeper and the task is planned again like any other` } };
}
