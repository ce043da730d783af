/** `ujr jobs list|enable|disable`, over a {@link Target}. */
import { canonicalJson } from '../signature.js';
import { EXIT } from './errors.js';
import { statusText, table, time, truncate } from './format.js';
import type { OutputOptions } from './inspect.js';
import type { Io } from './io.js';
import { formatProblems, type Target } from './targets.js';

/**
 * `ujr jobs list`: the valid instances with their state, then the invalid entries with their
 * problems. Resolves with the exit code: 2 when the instances have any problem (a file that cannot
 * be read or parsed, an unknown job type, bad params), each printed on stderr.
 */
export async function jobsListCommand(target: Target, opts: OutputOptions, io: Io): Promise<number> {
  const view = await target.instances();
  const statuses = new Map((await target.store().listInstanceStatus()).map((s) => [s.instanceId, s]));
  const problems = formatProblems(target, view.problems);
  const invalid = view.invalid ?? [];
  const code = problems.length > 0 ? EXIT.usage : EXIT.ok;
  if (opts.json) {
    const instances = view.instances.map((i) => ({ ...i, concurrency: Number.isFinite(i.concurrency) ? i.concurrency : null, status: statuses.get(i.id) }));
    io.out(JSON.stringify({ instances, invalid, problems }, null, 2));
    return code;
  }
  const c = opts.paint;
  const rows = view.instances.map((i) => {
    const status = statuses.get(i.id);
    const state = status?.retiredAt !== undefined ? `done ${time(status.retiredAt)}` : status?.planError ? c.red('plan error') : 'ok';
    return [i.id, i.job, i.enabled ? 'yes' : c.dim('no'), i.schedule, state, truncate(canonicalJson(i.params, 'params'), 60)];
  });
  for (const entry of invalid) rows.push([entry.id, entry.job ?? '?', '-', '-', statusText('invalid', c), truncate(entry.problems.join('; '), 80)]);
  io.out(rows.length > 0 ? table(['INSTANCE', 'JOB', 'ENABLED', 'SCHEDULE', 'STATE', 'PARAMS'], rows, c) : `no job instances in ${target.instancesSource}`);
  for (const problem of problems) io.err(`config: ${problem}`);
  return code;
}

/** `ujr jobs enable|disable <instance>`: sets `enabled` where the instance is configured (only that field). */
export async function setEnabledCommand(target: Target, instanceId: string, enabled: boolean, opts: OutputOptions, io: Io): Promise<void> {
  const where = await target.setEnabled(instanceId, enabled);
  if (opts.json) io.out(JSON.stringify({ instanceId, enabled, where }));
  else io.out(`${instanceId} ${enabled ? 'enabled' : 'disabled'} in ${where}`);
}
