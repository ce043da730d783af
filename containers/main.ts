/**
 * The Fargate container's program. With UJR_TASK_MESSAGE set it runs that one long batch task
 * (ECS RunTask from the scheduler) and exits; otherwise it is a conductor of the conductor service,
 * running continuous tasks from the board until ECS stops it (SIGTERM: tasks are aborted, left to
 * checkpoint, recorded and handed back to the board within the stop timeout). The conductor runs
 * each continuous task in a child process: this same program started again as a task host
 * (./task-host.ts), so the deployed container still runs one file.
 *
 * build/bundle.ts generates the bundle's entry, which calls {@link runContainer} with the job
 * types of the user's module and its own URL. The container starts it through ./bootstrap.ts
 * (stock Node.js image) or as the image's entry point (Docker image).
 */
import { hostname } from 'node:os';
import { runLongTask } from '../core/cloud/long-task.js';
import { DEFAULT_WORKER_CONFIG } from '../core/cloud/worker.js';
import { containerEnvSchema, parseEnv } from '../core/adapters/aws/env.js';
import { containerRuntime } from '../core/adapters/aws/runtime.js';
import { ProcessExecutor } from '../core/local/process-executor.js';
import type { JobType } from '../core/types.js';
import { isTaskHost, runTaskHost, taskHostProgram } from './task-host.js';

const FLUSH_METRICS_MS = 60_000;

async function main(jobs: readonly JobType[], entry: string): Promise<number> {
  // Listened for from the first moment: ECS may stop a container that is still starting. A long
  // task stopped by ECS just ends; its lease expires and the scheduler posts the task again.
  const longTask = process.env.UJR_TASK_MESSAGE !== undefined;
  const stopped = new Promise<void>((resolve) => {
    const stop = () => (longTask ? process.exit(143) : resolve());
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  const env = parseEnv(containerEnvSchema, process.env, 'ujr container');
  const runtime = containerRuntime(env, {
    jobs,
    serviceName: env.UJR_TASK_MESSAGE ? 'ujr-long-task' : 'ujr-conductor',
    conductorExecutor: new ProcessExecutor({ host: taskHostProgram(entry) }),
  });
  const { telemetry } = runtime;
  if (env.UJR_TASK_MESSAGE) {
    try {
      const runs = await runLongTask({ ...runtime, config: DEFAULT_WORKER_CONFIG }, env.UJR_TASK_MESSAGE, `longtask@${hostname()}-${process.pid}`);
      return runs.some((run) => run.status === 'succeeded' || run.status === 'skipped') ? 0 : 1;
    } finally {
      telemetry.flush();
    }
  }
  const { conductor } = runtime;
  conductor.start();
  telemetry.log('info', `conductor ${conductor.owner} started`);
  const flusher = setInterval(() => telemetry.flush(), FLUSH_METRICS_MS);
  await stopped;
  telemetry.log('info', `conductor ${conductor.owner} stopping`, { running: conductor.runningSignatures().length });
  await conductor.stop();
  clearInterval(flusher);
  telemetry.flush();
  return 0;
}

/**
 * Runs the container over `jobs` until it is done (a long task) or stopped (a conductor), then
 * exits the process with its status. `entry` is the URL of the module calling it (its
 * `import.meta.url`): the conductor starts that module again, as a task host, for each
 * continuous task; a process started so runs its one task and exits.
 *
 * @example
 * ```ts
 * runContainer([collector, processor], import.meta.url);
 * ```
 */
export function runContainer(jobs: readonly JobType[], entry: string): void {
  if (isTaskHost()) {
    runTaskHost(jobs);
    return;
  }
  main(jobs, entry).then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(JSON.stringify({ level: 'ERROR', message: (error as Error).message, stack: (error as Error).stack }));
      process.exit(1);
    },
  );
}
