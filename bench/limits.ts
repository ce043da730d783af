/**
 * What a shared limit costs each task locally (issue 15; not a test; run by hand, see
 * BENCHMARKS.md):
 *
 *   npm run bench:limits                                    # yield shape, 10,000 tasks, 5 pairs
 *   npm run bench:limits -- --tasks 20000 --pairs 3 --limit both
 *
 * Options: --tasks N (default 10000), --pairs N (default 5), --limit rate|concurrency|both (what
 * each task takes; default rate), --concurrency N (default 24).
 *
 * Method: the throughput benchmark's ujr child (bench/throughput/ujr-run.ts: the real Runner on a
 * new SQLite file per run, `yield` tasks that await setImmediate once, every record read back),
 * run in interleaved pairs, without a limit and with one every task takes, the order swapped every
 * other pair. The limit is never tight (a rate of 10^9 per second, a cap of 10^6), so what is
 * measured is taking it (a SQLite transaction per acquire, one more per release of a concurrency
 * slot), not waiting for it. Printed: each run's tasks/s, bytes written per task (/proc io
 * write_bytes) and peak RSS; per pair, the ratio (limited ÷ plain) and the time a task pays for
 * the limit (1/limited − 1/plain); then the medians, never a best of N.
 */
import { parseArgs } from 'node:util';
import { loadAverage, median } from './throughput/measure.js';
import { benchLimitSchema, measureInChild, runResultSchema, stopCurrentChild, type BenchLimit, type RunResult, type UjrRunRequest } from './throughput/protocol.js';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '10000' },
    pairs: { type: 'string', default: '5' },
    limit: { type: 'string', default: 'rate' },
    concurrency: { type: 'string', default: '24' },
  },
});
const tasks = Number(values.tasks);
const pairs = Number(values.pairs);
const concurrency = Number(values.concurrency);
const limit = benchLimitSchema.exclude(['none']).safeParse(values.limit);
if (!(tasks > 0) || !(pairs > 0) || !(concurrency > 0) || !limit.success) {
  console.error('usage: npm run bench:limits -- [--tasks N] [--pairs N] [--limit rate|concurrency|both] [--concurrency N]');
  process.exit(2);
}

process.on('SIGINT', () => {
  stopCurrentChild();
  process.exit(130);
});

function measure(kind: BenchLimit): Promise<RunResult> {
  const request: UjrRunRequest = { shape: 'yield', tasks, concurrency, durability: 'normal', limit: kind };
  return measureInChild(new URL('./throughput/ujr-run.ts', import.meta.url), request, runResultSchema);
}

function line(label: string, result: RunResult): string {
  return `${label.padEnd(8)} ${String(result.tasksPerSecond).padStart(7)} tasks/s  ${String(result.bytesPerTask ?? '?').padStart(6)} B/task  peak RSS ${result.peakRssMiB} MiB`;
}

console.log(`limits overhead: ${tasks} yield tasks, concurrency ${concurrency}, limit "${limit.data}" never tight; ${pairs} interleaved pairs; load average ${loadAverage()}`);
const ratios: number[] = [];
const costsUs: number[] = [];
const bytes: { plain: number[]; limited: number[] } = { plain: [], limited: [] };
for (let pair = 1; pair <= pairs; pair += 1) {
  const limitedFirst = pair % 2 === 0;
  const first = await measure(limitedFirst ? limit.data : 'none');
  const second = await measure(limitedFirst ? 'none' : limit.data);
  const [plain, limited] = limitedFirst ? [second, first] : [first, second];
  const ratio = limited.tasksPerSecond / plain.tasksPerSecond;
  const costUs = (1 / limited.tasksPerSecond - 1 / plain.tasksPerSecond) * 1e6;
  ratios.push(ratio);
  costsUs.push(costUs);
  if (plain.bytesPerTask !== null) bytes.plain.push(plain.bytesPerTask);
  if (limited.bytesPerTask !== null) bytes.limited.push(limited.bytesPerTask);
  console.log(`pair ${pair} (${limitedFirst ? 'limited first' : 'plain first'}), load ${loadAverage()}`);
  console.log(`  ${line('plain', plain)}`);
  console.log(`  ${line('limited', limited)}`);
  console.log(`  ratio ${ratio.toFixed(3)}, ${costUs.toFixed(1)} µs per task for the limit`);
}
console.log(
  `median ratio ${median(ratios).toFixed(3)}; median cost ${median(costsUs).toFixed(1)} µs per task; bytes per task ${median(bytes.plain)} plain, ${median(bytes.limited)} limited (medians)`,
);
