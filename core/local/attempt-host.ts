/**
 * The child's side of a task process (the parent's is ProcessExecutor): waits for the `start`
 * message, runs that one attempt's handler, relays logs, progress, heartbeats, checkpoints and
 * fences to the parent over IPC, and exits. If the parent goes away, the task is aborted and the
 * process exits on its own. SIGINT and SIGTERM do not kill it: they reach the whole process group
 * (Ctrl-C in a terminal, `timeout`, a service manager), the runner got them too and stops its tasks
 * itself, so that a stopped run records the runner's reason and a task gets to clean up. Where the job types and the object store come from is the entry's
 * business: the local task host loads the jobs module the runner names (./task-host.ts), the AWS
 * container has its job types bundled in and its object store in S3 (containers/task-host.ts).
 */
import { LeaseLostError, NonRetryableError, TaskProcessError } from '../errors.js';
import { failure, runHandler, type AttemptOutcome } from '../engine/executor.js';
import type { JobType, ObjectStore } from '../types.js';
import { toChildSchema, type FromChild, type StartMessage } from './protocol.js';

const ORPHAN_GRACE_MS = 5_000;
const EXIT_GRACE_MS = 1_000;
/** How long a signalled task process waits for its runner's abort before it stops on its own. */
const SIGNAL_GRACE_MS = 5_000;

/** What a task process runs its attempt with. */
export interface HostedJobs {
  jobs: readonly JobType[];
  objects: ObjectStore;
  /** Where the job types came from, as an error naming a missing one says it. */
  source: string;
}

/**
 * Serves one attempt in this process: call it once, from the entry module of a task process.
 * `load` gets the start message and returns the job types and object store to run it with; if it
 * throws, the attempt fails with its error.
 *
 * @example
 * ```ts
 * hostAttempt(async (start) => ({ jobs: await loadJobTypes(start.jobsModule!), objects, source: start.jobsModule! }));
 * ```
 */
export function hostAttempt(load: (start: StartMessage) => Promise<HostedJobs>): void {
  const controller = new AbortController();
  /** Checkpoint and fence requests waiting for the parent's reply, by sequence number. */
  const pendingReplies = new Map<number, { resolve(): void; reject(error: Error): void }>();
  let requestSeq = 0;
  let started = false;
  /** Why this process stopped its task on its own (its runner went away, or never answered a signal). */
  let ownReason: Error | undefined;

  const send = (message: FromChild): Promise<void> =>
    new Promise((resolve) => {
      if (!process.send || !process.connected) {
        resolve();
        return;
      }
      process.send(message, undefined, {}, () => resolve());
    });

  /** Sends a request the parent answers with a `reply` (refused: the promise rejects with its error). */
  const ask = (message: (seq: number) => FromChild): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      requestSeq += 1;
      pendingReplies.set(requestSeq, { resolve, reject });
      void send(message(requestSeq));
    });

  const start = async (message: StartMessage): Promise<void> => {
    const { request } = message;
    let outcome: AttemptOutcome;
    try {
      const { jobs, objects, source } = await load(message);
      const job = jobs.find((j) => j.name === request.jobType);
      const definition = job?.tasks[request.task];
      if (!definition) {
        throw new NonRetryableError(`job type "${request.jobType}" with task "${request.task}" is not in ${source}`);
      }
      outcome = await runHandler(
        definition,
        { ...request, lastCheckpoint: request.lastCheckpoint },
        {
          log: (level, text) => void send({ type: 'log', level, message: text }),
          progress: (current, total, text) => {
            const update: FromChild = { type: 'progress', current };
            if (total !== undefined) update.total = total;
            if (text !== undefined) update.message = text;
            void send(update);
          },
          started: () => void send({ type: 'started' }),
          heartbeat: () => void send({ type: 'heartbeat' }),
          checkpoint: (value) => ask((seq) => ({ type: 'checkpoint', seq, value })),
          fence: () => ask((seq) => ({ type: 'fence', seq })),
          backoff: (name, retryAfterMs) => ask((seq) => ({ type: 'backoff', seq, name, retryAfterMs })),
        },
        objects,
        controller.signal,
      );
    } catch (error) {
      outcome = failure(error);
    }
    // Stopped by this process, not by its runner: the task did not finish, even if it returned.
    if (ownReason && outcome.ok) outcome = failure(ownReason);
    await send({ type: 'done', outcome });
    process.disconnect();
    // Handles the task left open (sockets, timers) must not keep a finished task's process alive.
    setTimeout(() => process.exit(0), EXIT_GRACE_MS).unref();
  };

  process.on('message', (raw: unknown) => {
    const parsed = toChildSchema.safeParse(raw);
    if (!parsed.success) return;
    const message = parsed.data;
    if (message.type === 'start' && !started) {
      started = true;
      void start(message);
    } else if (message.type === 'abort') {
      const reason = new TaskProcessError(message.reason.message);
      reason.name = message.reason.name;
      controller.abort(reason);
    } else if (message.type === 'reply') {
      const pending = pendingReplies.get(message.seq);
      pendingReplies.delete(message.seq);
      if (!pending) return;
      if (message.error === undefined) {
        pending.resolve();
        return;
      }
      // A refusal is a lost lease (the only reason the parent refuses); keep its message.
      const error = message.error.name === 'LeaseLostError' ? new LeaseLostError(message.error.message) : new TaskProcessError(message.error.message);
      pending.reject(error);
    }
  });

  /** Aborts the task for `reason` and exits after a grace period if it does not end. */
  const stopOnOwn = (reason: Error): void => {
    if (controller.signal.aborted) return;
    ownReason = reason;
    controller.abort(reason);
    setTimeout(() => process.exit(1), ORPHAN_GRACE_MS).unref();
  };

  process.on('disconnect', () => stopOnOwn(new TaskProcessError('the runner went away')));

  // A signal to the whole process group reaches the runner as well, which aborts this task with its
  // own reason (ShutdownError) and kills it after its grace period: dying at once would lose what the
  // task does when aborted (a collector's last flush) and record "killed by SIGINT" as the run's end.
  // A signal sent to this process alone gets no abort from the runner: then it stops on its own.
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) return;
    signalled = true;
    setTimeout(
      () => stopOnOwn(new TaskProcessError(`the task process received ${signal} and its runner did not stop it within ${SIGNAL_GRACE_MS} ms`)),
      SIGNAL_GRACE_MS,
    ).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
