/**
 * Run ids that say where their record is kept. An id minted by {@link runIdFor} is
 * `<ULID of the queue time>-<task hash>`: the ULID's time is the run's `queuedAt` and the hash
 * names its instance and task, so a store that keeps each task's runs together in queue order
 * (the DynamoDB adapter: one partition per task, sorted by queue time) finds the record of a run
 * from its id alone, with no index of runs by id to write. Any other id stays valid everywhere;
 * such a store just keeps a pointer from the id to the record (one more write per run).
 */
import { createHash } from 'node:crypto';
import { decodeTime, ulid } from 'ulid';

/** Hex digits of the task hash: 48 bits, so that two tasks of one deployment practically never share one. */
const HASH_DIGITS = 12;
const SHAPE = new RegExp(`^([0-9A-HJKMNP-TV-Z]{26})-([0-9a-f]{${HASH_DIGITS}})$`);

/** The hash of an instance's task in a run id. Stores that group runs by it still check instance and task. */
export function taskHash(instanceId: string, task: string): string {
  return createHash('sha256').update(instanceId).update('\u0000').update(task).digest('hex').slice(0, HASH_DIGITS);
}

/** A new run id of `instanceId`'s `task` queued at `queuedAt` (epoch ms). */
export function runIdFor(instanceId: string, task: string, queuedAt: number): string {
  return `${ulid(queuedAt)}-${taskHash(instanceId, task)}`;
}

/** What an id minted by {@link runIdFor} says: the queue time and the task hash; `undefined` for any other id. */
export function parseRunId(id: string): { queuedAt: number; taskHash: string } | undefined {
  const match = SHAPE.exec(id);
  if (!match?.[1] || !match[2]) return undefined;
  try {
    return { queuedAt: decodeTime(match[1]), taskHash: match[2] };
  } catch {
    // A time past the ULID's range (a first character above 7).
    return undefined;
  }
}

/** Whether a run's id says its queue time and task, as {@link runIdFor} mints them. */
export function idLocates(run: { id: string; instanceId: string; task: string; queuedAt: number }): boolean {
  const parsed = parseRunId(run.id);
  return parsed !== undefined && parsed.queuedAt === run.queuedAt && parsed.taskHash === taskHash(run.instanceId, run.task);
}
