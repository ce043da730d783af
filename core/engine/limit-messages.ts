/**
 * What a run waiting for a shared limit says (its progress message while queued), and reading it
 * back: the status page, `ujr status` and the scheduler's limit metrics count the tasks waiting
 * for each bucket from the runs (or board entries) they list.
 */
import { bucketId, type LimitRef, type LimitState, type LimitWaitReason } from '../ports/limits.js';

/** The time of day of `ms`, UTC, to the millisecond: `12:00:01.500`. */
export function clockTime(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

/** `waiting for limit "api" (key "k"): no token before 12:00:01.500` (the time in UTC). */
export function waitingMessage(on: LimitRef & { reason: LimitWaitReason; until: number }): string {
  const bucket = `limit "${on.name}"${on.key === '' ? '' : ` (key "${on.key}")`}`;
  const until = clockTime(on.until);
  const why = on.reason === 'rate' ? `no token before ${until}` : on.reason === 'backoff' ? `backing off until ${until} (the API asked)` : 'every slot is taken';
  return `waiting for ${bucket}: ${why}`;
}

const WAITING = /^waiting for limit "([^"]*)"(?: \(key "([^"]*)"\))?: /;

/** The bucket a {@link waitingMessage} names; `undefined` for any other message. */
export function waitingFor(message: string | undefined): LimitRef | undefined {
  const match = message === undefined ? null : WAITING.exec(message);
  return match ? { name: match[1] ?? '', key: match[2] ?? '' } : undefined;
}

/** A bucket's state, and how many queued tasks say they wait for it. */
export type LimitView = LimitState & { waiting: number };

/**
 * Each bucket of `states` with the number of `runs` waiting for it: queued ones whose progress
 * is a {@link waitingMessage} naming it.
 */
export function withWaiting(states: readonly LimitState[], runs: Iterable<{ status: string; progress?: { message?: string } | undefined }>): LimitView[] {
  const waiting = new Map<string, number>();
  for (const run of runs) {
    const bucket = run.status === 'queued' ? waitingFor(run.progress?.message) : undefined;
    if (bucket) waiting.set(bucketId(bucket), (waiting.get(bucketId(bucket)) ?? 0) + 1);
  }
  return states.map((state) => ({ ...state, waiting: waiting.get(bucketId(state)) ?? 0 }));
}
