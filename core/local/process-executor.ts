/**
 * Runs attempts in child processes (continuous tasks, and batch tasks marked `isolate`): a crash
 * or a hang cannot take the runner down, and the hard stop is a real SIGKILL. Each child loads the
 * job types itself (TypeScript through tsx), so nothing but plain data crosses the boundary.
 * The AWS conductor runs its continuous tasks with the same executor over its own program (the
 * container bundle started as a task host, containers/task-host.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { TaskProcessError, toErrorInfo } from '../errors.js';
import { sibling } from '../package-root.js';
import { failure, type AttemptHandle, type AttemptHooks, type AttemptOutcome, type AttemptRequest, type Executor } from '../engine/executor.js';
import type { JobType, TaskDefinition } from '../types.js';
import { fromChildSchema, type ToChild } from './protocol.js';

/** The program a task process runs: a module that calls `hostAttempt` (./attempt-host.ts). */
export interface TaskHostProgram {
  /** Absolute path of the module. */
  module: string;
  /** Its arguments (`process.argv` after the module). Default none. */
  args?: string[];
  /** Node.js options. Default none. */
  execArgv?: string[];
  /** Its environment. Default: this process's. */
  env?: NodeJS.ProcessEnv;
}

export type ProcessExecutorOptions =
  | {
      /** Absolute path of the module whose default export lists the job types. */
      jobsModule: string;
      /** Root directory of the local object store the children use. */
      objectsRoot: string;
    }
  | {
      /** A program that has its own job types and object store (the AWS container's). */
      host: TaskHostProgram;
    };

/** The local task host (./task-host.ts), TypeScript through tsx. */
function localTaskHost(): TaskHostProgram {
  return { module: sibling(import.meta.url, 'task-host'), execArgv: ['--import', import.meta.resolve('tsx')] };
}

export class ProcessExecutor implements Executor {
  private readonly children = new Set<ChildProcess>();
  private readonly host: TaskHostProgram;

  constructor(private readonly options: ProcessExecutorOptions) {
    this.host = 'host' in options ? options.host : localTaskHost();
  }

  start(_job: JobType, _definition: TaskDefinition, request: AttemptRequest, hooks: AttemptHooks): AttemptHandle {
    const child = fork(this.host.module, this.host.args ?? [], {
      execArgv: this.host.execArgv ?? [],
      ...(this.host.env ? { env: this.host.env } : {}),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.children.add(child);
    let outcome: AttemptOutcome | undefined;
    const send = (message: ToChild) => {
      // A child that just exited cannot take the message; its exit settles the attempt anyway.
      if (child.connected) child.send(message, () => undefined);
    };
    // What the task prints goes to its run's log lines.
    if (child.stdout) createInterface({ input: child.stdout }).on('line', (line) => hooks.log('info', line));
    if (child.stderr) createInterface({ input: child.stderr }).on('line', (line) => hooks.log('error', line));
    child.on('message', (raw: unknown) => {
      const parsed = fromChildSchema.safeParse(raw);
      if (!parsed.success) {
        hooks.log('warn', `ignored a malformed message from the task process: ${parsed.error.issues[0]?.message ?? ''}`);
        return;
      }
      const message = parsed.data;
      switch (message.type) {
        case 'log':
          hooks.log(message.level, message.message);
          break;
        case 'progress':
          hooks.progress(message.current, message.total, message.message);
          break;
        case 'started':
          hooks.started();
          break;
        case 'heartbeat':
          hooks.heartbeat();
          break;
        case 'checkpoint':
        case 'fence':
        case 'backoff': {
          const { seq } = message;
          const asked =
            message.type === 'checkpoint'
              ? hooks.checkpoint(message.value)
              : message.type === 'fence'
                ? hooks.fence()
                : hooks.backoff
                  ? hooks.backoff(message.name, message.retryAfterMs)
                  : Promise.reject(new Error('shared limits are not kept by this runtime'));
          asked.then(
            () => send({ type: 'reply', seq }),
            (error: unknown) => send({ type: 'reply', seq, error: stripUndefined(toErrorInfo(error)) }),
          );
          break;
        }
        case 'done':
          outcome = message.outcome.ok
            ? { ok: true, result: message.outcome.result }
            : { ...message.outcome, error: stripUndefined(message.outcome.error) };
          break;
      }
    });
    const done = new Promise<AttemptOutcome>((resolve) => {
      child.on('error', (error) => {
        outcome ??= failure(new TaskProcessError(`could not start the task process: ${error.message}`, { cause: error }));
      });
      child.on('exit', (code, signal) => {
        this.children.delete(child);
        resolve(
          outcome ??
            failure(
              new TaskProcessError(
                `the task process ${signal ? `was killed by ${signal}` : `exited with code ${code ?? '?'}`} before the task finished`,
              ),
            ),
        );
      });
    });
    send('host' in this.options ? { type: 'start', request } : { type: 'start', jobsModule: this.options.jobsModule, objectsRoot: this.options.objectsRoot, request });
    return {
      done,
      abort: (reason) => send({ type: 'abort', reason: stripUndefined(toErrorInfo(reason)) }),
      kill: () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        return true;
      },
    };
  }

  async close(): Promise<void> {
    const exits = [...this.children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) resolve();
          else {
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }
        }),
    );
    await Promise.all(exits);
  }
}

function stripUndefined<T extends { stack?: string | undefined }>(error: T): T {
  if (error.stack === undefined) delete error.stack;
  return error;
}
