/** Checks on recorded runs that hold whatever the runtime: no signature ran twice at once. */
import type { RunRecord } from '../../core/types.js';

/**
 * Pairs of runs of one signature whose [startedAt, endedAt] intervals intersect, described; empty
 * when no signature ever ran twice at the same time. A run still running counts until `now`.
 */
export function overlappingRuns(runs: RunRecord[], now = Date.now()): string[] {
  const bySignature = new Map<string, RunRecord[]>();
  for (const run of runs) {
    if (run.startedAt === undefined) continue;
    bySignature.set(run.signature, [...(bySignature.get(run.signature) ?? []), run]);
  }
  const problems: string[] = [];
  for (const [signature, list] of bySignature) {
    const sorted = list.sort((a, b) => (a.startedAt ?? 0) - (b.startedAt ?? 0));
    for (let i = 1; i < sorted.length; i++) {
      const before = sorted[i - 1] as RunRecord;
      const after = sorted[i] as RunRecord;
      const beforeEnd = before.endedAt ?? now;
      if ((after.startedAt ?? 0) < beforeEnd) {
        problems.push(`${signature}: run ${before.id} (${before.runner}) ran ${before.startedAt}–${beforeEnd}, run ${after.id} (${after.runner}) started at ${after.startedAt}`);
      }
    }
  }
  return problems;
}
