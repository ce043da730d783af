/** The worker Lambda: batches of dispatched tasks from SQS (see core/adapters/aws/handlers.ts). */
import { parseEnv, workerEnvSchema } from '../core/adapters/aws/env.js';
import { makeWorkerHandler } from '../core/adapters/aws/handlers.js';
import { workerRuntime } from '../core/adapters/aws/runtime.js';
import jobs from '../jobs/index.js';

const runtime = workerRuntime(parseEnv(workerEnvSchema, process.env, 'worker function'), { jobs, serviceName: 'ujr-worker' });

export const handler = makeWorkerHandler(runtime);
