/**
 * What the throughput benchmark reads off the machine: a process's write counters from
 * /proc/<pid>/io, the peak RSS of this process, and the percentiles and medians it reports.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Two of the counters of /proc/<pid>/io. */
export interface IoCounters {
  /**
   * `write_bytes`: bytes this process caused to be sent to storage, counted by the kernel when
   * it dirties a page-cache page. A page written again while still dirty is not counted again,
   * so this is close to what reaches the disk, not to what was handed to write().
   */
  writeBytes: number;
  /** `wchar`: bytes handed to write()/pwrite() (any file, pipes included). */
  writeCallBytes: number;
}

/** The counters of `pid` (default this process), or `undefined` when they cannot be read. */
export function readIo(pid: number | 'self' = 'self'): IoCounters | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/io`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  const counters = { writeBytes: field('write_bytes'), writeCallBytes: field('wchar') };
  return Number.isFinite(counters.writeBytes) && Number.isFinite(counters.writeCallBytes) ? counters : undefined;
}

export function ioDelta(before: IoCounters, after: IoCounters): IoCounters {
  return { writeBytes: after.writeBytes - before.writeBytes, writeCallBytes: after.writeCallBytes - before.writeCallBytes };
}

/** The parent pid of `pid` (field 4 of /proc/<pid>/stat, after the command in parentheses). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** The io counters of a server: `pid` itself and its direct children, by pid. */
export function processTreeIo(pid: number): Map<number, IoCounters> {
  const tree = new Map<number, IoCounters>();
  const own = readIo(pid);
  if (own) tree.set(pid, own);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const child = Number(entry);
    if (parentOf(child) !== pid) continue;
    const io = readIo(child);
    if (io) tree.set(child, io);
  }
  return tree;
}

/**
 * What a server's processes wrote between two {@link processTreeIo} readings: processes that
 * appeared in between count whole, processes that exited in between are missed (`exited`).
 */
export function treeDelta(before: Map<number, IoCounters>, after: Map<number, IoCounters>): IoCounters & { processes: number; exited: number } {
  const total = { writeBytes: 0, writeCallBytes: 0, processes: after.size, exited: 0 };
  for (const [pid, counters] of after) {
    const delta = ioDelta(before.get(pid) ?? { writeBytes: 0, writeCallBytes: 0 }, counters);
    total.writeBytes += delta.writeBytes;
    total.writeCallBytes += delta.writeCallBytes;
  }
  for (const pid of before.keys()) if (!after.has(pid)) total.exited += 1;
  return total;
}

/** Peak resident set size of this process so far, in MiB (`process.resourceUsage().maxRSS`). */
export function peakRssMiB(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/** Resident set size of this process now, in MiB. */
export function rssMiB(): number {
  return Math.round(process.memoryUsage().rss / 2 ** 20);
}

/** The `p`th percentile of ascending `sorted` (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** `/proc/loadavg`'s three load averages, e.g. `2.83 2.43 2.30`. */
export function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
}
