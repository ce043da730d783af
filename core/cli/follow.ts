/**
 * Following runs to their end, for `trigger --wait` locally and on a stack: each run is followed
 * along its retries (`nextRunId`) to the attempt that ended it for good.
 */
import type { Store } from '../ports/store.js';
import { TERMINAL_STATUSES, type RunRecord } from '../types.js';

export type Followed = { ended: RunRecord[] } | { waitingFor: string };

/**
 * Polls the store every `pollMs` until the final attempt of each of `runIds` has ended; at
 * `deadline` (epoch ms) it gives up and names the run it was waiting for. A run without a record
 * yet (on AWS, an attempt that has not ended) is waited for like a live one.
 */
export async function followToFinalAttempts(store: Pick<Store, 'getRun'>, runIds: readonly string[], opts: { deadline: number; pollMs: number }): Promise<Followed> {
  const ended: RunRecord[] = [];
  for (const firstId of runIds) {
    let id = firstId;
    for (;;) {
      const run = await store.getRun(id);
      if (run?.nextRunId !== undefined) {
        id = run.nextRunId;
        continue;
      }
      if (run && TERMINAL_STATUSES.has(run.status)) {
        ended.push(run);
        break;
      }
      if (Date.now() > opts.deadline) return { waitingFor: id };
      await new Promise((resolve) => setTimeout(resolve, opts.pollMs));
    }
  }
  return { ended };
}
