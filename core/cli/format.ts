/**
 * Human output of the CLI: tables, times, durations, errors and colour. Colour is decided once per
 * command (see `colorEnabled`) and passed down as a {@link Paint}; with it off, every function
 * here prints plain text.
 */
import pc from 'picocolors';
import type { ErrorInfo, RunRecord, RunStatus } from '../types.js';

/** The picocolors functions, all of them identity functions when colour is off. */
export type Paint = ReturnType<typeof pc.createColors>;

/** No colour: what tests and pipes get. */
export const PLAIN: Paint = pc.createColors(false);

/**
 * Whether the CLI colours its output: only on a terminal, and never with `NO_COLOR` set (to
 * anything, as https://no-color.org asks) or `--no-color`.
 */
export function colorEnabled(options: { flag: boolean; isTTY: boolean; env: NodeJS.ProcessEnv }): boolean {
  return options.flag && options.isTTY && options.env.NO_COLOR === undefined;
}

export function paint(enabled: boolean): Paint {
  return enabled ? pc.createColors(true) : PLAIN;
}

/**
 * One colour per status: green succeeded, red failed (and invalid instances), cyan running, blue
 * queued, yellow retrying, magenta interrupted, bright yellow outdated, gray cancelled, dim skipped.
 */
export function statusText(status: RunStatus | 'outdated' | 'invalid', c: Paint): string {
  switch (status) {
    case 'succeeded':
      return c.green(status);
    case 'failed':
    case 'invalid':
      return c.red(status);
    case 'running':
      return c.cyan(status);
    case 'queued':
      return c.blue(status);
    case 'retrying':
      return c.yellow(status);
    case 'interrupted':
      return c.magenta(status);
    case 'outdated':
      return c.yellowBright(status);
    case 'cancelled':
      return c.gray(status);
    case 'skipped':
      return c.dim(status);
  }
}

// eslint-disable-next-line no-control-regex -- the escape sequences picocolors writes
const ANSI = /\x1b\[[0-9;]*m/g;

/** The width of `text` on a terminal: its length without colour codes. */
export function visibleLength(text: string): number {
  return text.replace(ANSI, '').length;
}

export function table(headers: string[], rows: string[][], c: Paint = PLAIN): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(Math.max(0, (widths[i] ?? 0) - visibleLength(cell)))))
      .join('  ')
      .trimEnd();
  return [c.bold(line(headers)), ...rows.map(line)].join('\n');
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

export function progress(run: Pick<RunRecord, 'progress'>): string {
  const p = run.progress;
  if (!p) return '';
  const share = p.total ? ` ${Math.round((100 * p.current) / p.total)}%` : '';
  return `${p.current}${p.total !== undefined ? `/${p.total}` : ''}${share}${p.message ? ` ${p.message}` : ''}`;
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** A run's attempt: `2/3`, or `2` for continuous tasks (which retry without a limit). */
export function attemptText(run: Pick<RunRecord, 'kind' | 'attempt' | 'maxAttempts'>): string {
  return run.kind === 'continuous' ? `${run.attempt}` : `${run.attempt}/${run.maxAttempts}`;
}

/**
 * A run's error as every command names it: `Name: message`. The same line heads {@link errorWithStack}.
 */
export function errorLine(error: Pick<ErrorInfo, 'name' | 'message'>): string {
  return `${error.name}: ${error.message}`;
}

/**
 * `Name: message`, then the stack's frames (and its `Caused by:` lines). A stack whose first line
 * is another error's (one recorded before errors named their cause) is kept whole, below the line.
 */
export function errorWithStack(error: ErrorInfo): string {
  const head = errorLine(error);
  if (error.stack === undefined) return head;
  const rest = error.stack.startsWith(head) ? error.stack.slice(head.length).replace(/^\n/, '') : error.stack;
  return rest.length > 0 ? `${head}\n${rest}` : head;
}

/** DETAIL of a run in a table: its error line, else its progress. */
export function runDetail(run: RunRecord): string {
  return run.error ? errorLine(run.error) : progress(run);
}

export interface RunsTableOptions {
  now?: number;
  /** Whole DETAIL column (`runs --wide`); else it is cut at 80 characters. */
  wide?: boolean;
  paint?: Paint;
}

/** Runs as a table, one line each, their error or progress last. */
export function runsTable(runs: readonly RunRecord[], options: RunsTableOptions = {}): string {
  const { now = Date.now(), wide = false, paint: c = PLAIN } = options;
  return table(
    ['RUN', 'INSTANCE', 'TASK', 'STATUS', 'ATTEMPT', 'QUEUED', 'DURATION', 'DETAIL'],
    runs.map((run) => {
      const detail = wide ? runDetail(run) : truncate(runDetail(run), 80);
      return [
        run.id,
        run.instanceId,
        run.task,
        statusText(run.status, c),
        attemptText(run),
        time(run.queuedAt),
        runDuration(run, now),
        run.error ? c.red(detail) : detail,
      ];
    }),
    c,
  );
}
