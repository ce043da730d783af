/** Human output of the CLI: tables, times and durations. */
import type { RunRecord } from '../types.js';

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function time(ms: number | undefined): string {
  if (ms === undefined) return '-';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function duration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1_000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.round((ms % 3_600_000) / 60_000)}m`;
}

export function runDuration(run: RunRecord, now: number): string {
  if (run.startedAt === undefined) return '-';
  return duration((run.endedAt ?? now) - run.startedAt);
}

export function progress(run: RunRecord): string {
  const p = run.progress;
  if (!p) return '';
  const share = p.total ? ` ${Math.round((100 * p.current) / p.total)}%` : '';
  return `${p.current}${p.total !== undefined ? `/${p.total}` : ''}${share}${p.message ? ` ${p.message}` : ''}`;
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Runs as a table, one line each, their error or progress last. */
export function runsTable(runs: readonly RunRecord[], now = Date.now()): string {
  return table(
    ['RUN', 'INSTANCE', 'TASK', 'STATUS', 'ATTEMPT', 'QUEUED', 'DURATION', 'DETAIL'],
    runs.map((run) => [
      run.id,
      run.instanceId,
      run.task,
      run.status,
      run.kind === 'continuous' ? `${run.attempt}` : `${run.attempt}/${run.maxAttempts}`,
      time(run.queuedAt),
      runDuration(run, now),
      truncate(run.error ? `${run.error.name}: ${run.error.message}` : progress(run), 80),
    ]),
  );
}
