/**
 * The conductor: a long-lived container (an ECS service of N of them) that runs continuous tasks
 * from the board. It polls the `conductor` route, claims entries posted for a conductor and
 * entries whose lease expired (a conductor died: it takes the task over and resumes from the
 * checkpoint kept in the entry), renews its short leases by heartbeat, stops a task when the
 * scheduler asks, and on SIGTERM aborts its tasks, lets them checkpoint, records them
 * `interrupted` and posts them back for another conductor.
 *
 * A continuous task that ends (returns, fails or is stopped) is recorded and released; the
 * scheduler posts it again on its next tick if the job still returns it.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { ShutdownError } from '../errors.js';
import type { RunRecord } from '../types.js';
import { baseRun, endedRun, entryFields, newRunId, runAttempt, type AttemptDeps } from './attempt.js';
import type { BoardEntry } from './board.js';
import type { InstanceDirectory } from './instances.js';

export interface ConductorConfig {
  /** Continuous tasks this conductor runs at once. Default 4. */
  capacity: number;
  /** Lease lifetime; renewed every third of it. A dead conductor's tasks are taken over after it. Default 30 s. */
  leaseTtlMs: number;
  /** How often the board is looked at. Default 5 s. */
  pollMs: number;
  /** After SIGTERM, how long tasks get to checkpoint and return. Default 10 s (ECS waits 30 s). */
  graceMs: number;
  /** How long an entry handed back at shutdown waits for another conductor. Default 10 min. */
  pendingTtlMs: number;
}

export const DEFAULT_CONDUCTOR_CONFIG: ConductorConfig = {
  capacity: 4,
  leaseTtlMs: 30_000,
  pollMs: 5_000,
  graceMs: 10_000,
  pendingTtlMs: 10 * 60_000,
};

export interface ConductorDeps extends AttemptDeps {
  instances: InstanceDirectory;
  config: ConductorConfig;
  /** This conductor's owner id. Default: host, pid and a random suffix. */
  owner?: string;
}

/** Owners of entries waiting for a conductor start with this (see the scheduler). */
const PENDING_PREFIX = 'conductor:';

export class Conductor {
  readonly owner: string;
  private readonly running = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<number> | undefined;

  constructor(private readonly deps: ConductorDeps) {
    this.owner = deps.owner ?? `conductor@${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  }

  /** Signatures this conductor runs now. */
  runningSignatures(): string[] {
    return [...this.running.keys()];
  }

  start(): void {
    const loop = () => {
      this.polling = this.pollOnce().catch((error: unknown) => {
        this.deps.telemetry.log('error', `could not read the board: ${(error as Error).message}; trying again`, { owner: this.owner });
        return 0;
      });
      void this.polling.finally(() => {
        if (!this.stopping.signal.aborted) this.timer = setTimeout(loop, this.deps.config.pollMs);
      });
    };
    loop();
  }

  /** Claims what it can run; returns how many tasks it started. */
  async pollOnce(): Promise<number> {
    const { board, now, config, telemetry } = this.deps;
    if (this.stopping.signal.aborted) return 0;
    const entries = await board.listRoute('conductor');
    let started = 0;
    for (const entry of entries) {
      if (this.running.size >= config.capacity || this.stopping.signal.aborted) break;
      if (this.running.has(entry.signature)) continue;
      const pending = entry.owner.startsWith(PENDING_PREFIX);
      const expired = entry.expiresAt <= now();
      if (!pending && !expired) continue;
      const claimed = await board.claim({
        signature: entry.signature,
        token: entry.token,
        ...(pending ? { owner: entry.owner } : { runId: newRunId(), origin: 'takeover' as const }),
        newOwner: this.owner,
        ttlMs: config.leaseTtlMs,
        now: now(),
      });
      if (!claimed) continue;
      if (!pending) {
        telemetry.count('takenOver', entry.jobType);
        telemetry.log('warn', `took over continuous task "${entry.task}" from ${entry.owner}, whose lease expired`, entryFields(entry));
        await board.commit({ runs: [interrupted(entry, now())] });
      }
      if (claimed.stopRequested) {
        // Asked to stop before anyone started it: take it off the board without running it.
        const run = endedRun(claimed, this.owner, now(), 'cancelled', { name: 'CancelledError', message: 'asked to stop before it started' });
        await board.finish({ signature: claimed.signature, owner: this.owner, token: claimed.token }, run);
        continue;
      }
      started += 1;
      const supervised = this.supervise(claimed).finally(() => this.running.delete(claimed.signature));
      this.running.set(claimed.signature, supervised);
    }
    return started;
  }

  /** Aborts every task, waits for them to checkpoint and return, records and hands them back. */
  async stop(): Promise<void> {
    this.stopping.abort(new ShutdownError());
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
    await Promise.allSettled(this.running.values());
  }

  private async supervise(entry: BoardEntry): Promise<void> {
    const { board, now, config, telemetry } = this.deps;
    const fields = entryFields(entry);
    const ref = { signature: entry.signature, owner: this.owner, token: entry.token };
    try {
      const snapshot = await this.deps.instances.get();
      const loaded = snapshot.instances.get(entry.instanceId);
      const definition = loaded && Object.hasOwn(loaded.job.tasks, entry.task) ? loaded.job.tasks[entry.task] : undefined;
      if (!loaded || !definition) {
        const run = endedRun(entry, this.owner, now(), 'failed', {
          name: 'ConfigError',
          message: `instance "${entry.instanceId}" or its task "${entry.task}" is not configured any more; the task was taken off the board`,
        });
        await board.finish(ref, run);
        return;
      }
      await board.commit({ runs: [baseRun(entry, this.owner, now())] });
      telemetry.count('started', entry.jobType);
      const result = await runAttempt(this.deps, {
        entry,
        job: loaded.job,
        definition,
        params: loaded.config.params,
        owner: this.owner,
        budgetMs: definition.timeoutMs,
        leaseTtlMs: config.leaseTtlMs,
        renewEveryMs: Math.max(100, Math.floor(config.leaseTtlMs / 3)),
        graceMs: config.graceMs,
        signal: this.stopping.signal,
        maxResultBytes: 128 * 1024,
      });
      const { run } = result;
      telemetry.duration(entry.jobType, (run.endedAt ?? now()) - (run.startedAt ?? now()));
      if (result.abortReason instanceof ShutdownError) {
        await board.commit({ runs: [run] });
        const handedBack = await board.repost(ref, { owner: `${PENDING_PREFIX}${newRunId()}`, ttlMs: config.pendingTtlMs, now: now(), runId: newRunId(), attempt: 1, origin: 'restart' });
        telemetry.log('info', handedBack === undefined ? 'stopped; the lease had already moved on' : 'stopped; handed the task back to the board', fields);
        return;
      }
      if (run.status === 'interrupted') {
        await board.commit({ runs: [run] });
        return;
      }
      await board.finish(ref, run);
      telemetry.count(run.status === 'succeeded' ? 'succeeded' : run.status === 'failed' ? 'failed' : 'dropped', entry.jobType);
      telemetry.log(run.status === 'failed' ? 'error' : 'info', `continuous task ended: ${run.status}${run.error ? ` (${run.error.message})` : ''}`, fields);
    } catch (error) {
      telemetry.log('error', `supervising the task failed: ${(error as Error).message}; its lease expires and it is taken over`, fields);
    }
  }
}

/** The run of a conductor that died holding the entry. */
function interrupted(entry: BoardEntry, at: number): RunRecord {
  return endedRun(
    entry,
    entry.owner,
    at,
    'interrupted',
    { name: 'LeaseExpiredError', message: `${entry.owner} stopped renewing its lease (it died or hung); another conductor took the task over from its last checkpoint` },
    entry.startedAt ?? at,
  );
}
