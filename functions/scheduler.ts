/** The scheduler Lambda: ticks from EventBridge Scheduler and ad-hoc runs (see core/adapters/aws/handlers.ts). */
import { parseEnv, schedulerEnvSchema } from '../core/adapters/aws/env.js';
import { makeSchedulerHandler } from '../core/adapters/aws/handlers.js';
import { schedulerRuntime } from '../core/adapters/aws/runtime.js';
import jobs from '../jobs/index.js';

const runtime = schedulerRuntime(parseEnv(schedulerEnvSchema, process.env, 'scheduler function'), { jobs, serviceName: 'ujr-scheduler' });

export const handler = makeSchedulerHandler(runtime);
