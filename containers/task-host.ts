/**
 * The container program as a task process. The conductor (./main.ts) runs each continuous task in
 * a child process, supervised by the local runner's ProcessExecutor: the child is the very module
 * that started the conductor (in the deployed container, the one bundle file), started again with
 * {@link TASK_HOST_ARG}. It runs the one attempt it is sent (core/local/attempt-host.ts) with the
 * job types bundled in and the data bucket as its object store; everything that touches the board
 * (renewals, checkpoints, fences, records) stays in the conductor, asked for over IPC.
 */
import { fileURLToPath } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import { containerEnvSchema, parseEnv } from '../core/adapters/aws/env.js';
import { S3ObjectStore } from '../core/adapters/aws/s3-objects.js';
import { hostAttempt } from '../core/local/attempt-host.js';
import type { TaskHostProgram } from '../core/local/process-executor.js';
import type { JobType } from '../core/types.js';

/** The argument that makes the container program a task process instead of a conductor. */
export const TASK_HOST_ARG = '--ujr-task-host';

/** Whether this process was started as a task process. */
export function isTaskHost(argv: readonly string[] = process.argv): boolean {
  return argv.slice(2).includes(TASK_HOST_ARG);
}

/**
 * Node.js options for a task process, from the conductor's: those of how the program was started
 * (`--eval <program>` and `--input-type`, by the stock image's bootstrap, containers/bootstrap.ts)
 * are left out, since the child runs the program's module itself; the others (`--import tsx`,
 * memory limits) are kept.
 *
 * @example
 * ```ts
 * taskHostExecArgv(['--input-type=module', '--eval', program]); // []
 * ```
 */
export function taskHostExecArgv(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const option = execArgv[i] as string;
    if (['--eval', '-e', '--print', '-p', '--input-type'].includes(option)) {
      i += 1; // and its value
      continue;
    }
    if (/^(--eval|--print|--input-type)=/.test(option)) continue;
    kept.push(option);
  }
  return kept;
}

/**
 * The program of the conductor's task processes: the module at `entry` (a `file:` URL or a path;
 * the container bundle, or in tests the module calling `runContainer`) with {@link TASK_HOST_ARG}.
 *
 * @example
 * ```ts
 * new ProcessExecutor({ host: taskHostProgram(import.meta.url) });
 * ```
 */
export function taskHostProgram(entry: string, execArgv: readonly string[] = process.execArgv): TaskHostProgram {
  const module = entry.startsWith('file:') ? fileURLToPath(entry) : entry;
  return { module, args: [TASK_HOST_ARG], execArgv: taskHostExecArgv(execArgv) };
}

/** Runs this process as a task process over `jobs` (see the header): the environment is the conductor's. */
export function runTaskHost(jobs: readonly JobType[]): void {
  hostAttempt(() => {
    const env = parseEnv(containerEnvSchema.pick({ UJR_DATA_BUCKET: true, UJR_S3_FORCE_PATH_STYLE: true }), process.env, 'ujr task process');
    const objects = new S3ObjectStore({ client: new S3Client({ forcePathStyle: env.UJR_S3_FORCE_PATH_STYLE === 'true' }), bucket: env.UJR_DATA_BUCKET });
    return Promise.resolve({ jobs, objects, source: "the container's job types" });
  });
}
