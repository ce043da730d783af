/**
 * What a run waiting for a shared limit says (its progress message while queued), and reading it
 * back: the status page counts the tasks waiting for each bucket from the runs it lists.
 */
import type { LimitRef, LimitWaitReason } from '../ports/limits.js';

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
