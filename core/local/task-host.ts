/**
 * Entry point of a task's child process: loads the job types, runs one attempt, relays logs,
 * progress, heartbeats and checkpoints to the runner over IPC, and exits. If the runner goes
 * away, the task is aborted and the process exits on its own.
 */
import { DirectoryObjectStore } from '../adapters/fs/objects.js';
import { NonRetryableError, TaskProcessError } from '../errors.js';
import { failure, runHandler, type AttemptOutcome } from '../engine/executor.js';
import { toChildSchema, type FromChild } from './protocol.js';
import { loadJobTypes } from './jobs-module.js';

const ORPHAN_GRACE_MS = 5_000;
const EXIT_GRACE_MS = 1_000;
const controller = new AbortController();
const pendingCheckpoints = new Map<number, () => void>();
let checkpointSeq = 0;
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
        checkpoint: (value) =>
          new Promise<void>((resolve) => {
            checkpointSeq += 1;
            pendingCheckpoints.set(checkpointSeq, resolve);
            void send({ type: 'checkpoint', seq: checkpointSeq, value });
          }),
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
  } else if (message.type === 'checkpointed') {
    pendingCheckpoints.get(message.seq)?.();
    pendingCheckpoints.delete(message.seq);
  }
});

process.on('disconnect', () => {
  if (controller.signal.aborted) return;
  controller.abort(new TaskProcessError('the runner went away'));
  setTimeout(() => process.exit(1), ORPHAN_GRACE_MS).unref();
});
