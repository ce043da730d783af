/**
 * Entry point of a task's child process: loads the job types, runs one attempt, relays logs,
 * progress, heartbeats and checkpoints to the runner over IPC, and exits. If the runner goes
 * away, the task is aborted and the process exits on its own.
 */
import { DirectoryObjectStore } from '../adapters/fs/objects.js';
import { LeaseLostError, NonRetryableError, TaskProcessError } from '../errors.js';
import { failure, runHandler, type AttemptOutcome } from '../engine/executor.js';
import { toChildSchema, type FromChild } from './protocol.js';
import { loadJobTypes } from './jobs-module.js';

const ORPHAN_GRACE_MS = 5_000;
const EXIT_GRACE_MS = 1_000;
const controller = new AbortController();
/** Checkpoint and fence requests waiting for the runner's reply, by sequence number. */
const pendingReplies = new Map<number, { resolve(): void; reject(error: Error): void }>();
let requestSeq = 0;

/** Sends a request the runner answers with a `reply` (refused: the promise rejects with its error). */
function ask(message: (seq: number) => FromChild): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    requestSeq += 1;
    pendingReplies.set(requestSeq, { resolve, reject });
    void send(message(requestSeq));
  });
}
let started = false;

function send(message: FromChild): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) {
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => resolve());
  });
}

async function start(message: Extract<ReturnType<typeof toChildSchema.parse>, { type: 'start' }>): Promise<void> {
  const { request } = message;
  let outcome: AttemptOutcome;
  try {
    const jobs = await loadJobTypes(message.jobsModule);
    const job = jobs.find((j) => j.name === request.jobType);
    const definition = job?.tasks[request.task];
    if (!definition) {
      throw new NonRetryableError(`job type "${request.jobType}" with task "${request.task}" is not in ${message.jobsModule}`);
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
      },
      new DirectoryObjectStore(message.objectsRoot),
      controller.signal,
    );
  } catch (error) {
    outcome = failure(error);
  }
  await send({ type: 'done', outcome });
  process.disconnect();
  // Handles the task left open (sockets, timers) must not keep a finished task's process alive.
  setTimeout(() => process.exit(0), EXIT_GRACE_MS).unref();
}

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
    // A refusal is a lost lease (the only reason the runner refuses); keep its message.
    const error = message.error.name === 'LeaseLostError' ? new LeaseLostError(message.error.message) : new TaskProcessError(message.error.message);
    pending.reject(error);
  }
});

process.on('disconnect', () => {
  if (controller.signal.aborted) return;
  controller.abort(new TaskProcessError('the runner went away'));
  setTimeout(() => process.exit(1), ORPHAN_GRACE_MS).unref();
});
