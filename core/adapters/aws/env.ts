/**
 * The environment of the Lambda functions and containers, validated once at cold start. A missing
 * or malformed variable fails the start with every such variable named (CDK sets them all; a
 * hand-made deployment learns here what it forgot).
 */
import { z } from 'zod';
import { RuntimeConfigError } from '../../cloud/errors.js';

const positiveInt = z.coerce.number().int().positive();
const list = z
  .string()
  .transform((text) => text.split(',').map((item) => item.trim()).filter((item) => item !== ''));

const tables = {
  UJR_LEASES_TABLE: z.string().min(1),
  UJR_RUNS_TABLE: z.string().min(1),
  UJR_INSTANCES_TABLE: z.string().min(1),
  UJR_DATA_BUCKET: z.string().min(1),
  /** Path-style S3 addressing (S3 emulators). */
  UJR_S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).default('false'),
  UJR_METRICS_NAMESPACE: z.string().min(1).default('ujr'),
  /** How long warm functions reuse the instances they read. */
  UJR_INSTANCES_MAX_AGE_MS: z.coerce.number().int().nonnegative().default(60_000),
};

const fleet = {
  UJR_CLUSTER: z.string().min(1).optional(),
  UJR_CONDUCTOR_SERVICE: z.string().min(1).optional(),
  UJR_LONG_TASK_DEFINITION: z.string().min(1).optional(),
  UJR_LONG_TASK_CONTAINER: z.string().min(1).default('task'),
  UJR_SUBNETS: list.optional(),
  UJR_SECURITY_GROUPS: list.optional(),
  UJR_ASSIGN_PUBLIC_IP: z.enum(['true', 'false']).default('false'),
  UJR_MAX_CONDUCTORS: z.coerce.number().int().nonnegative().default(4),
};

/** How many continuous tasks one conductor runs: the scheduler sizes the service by it, a conductor claims up to it. */
const tasksPerConductor = { UJR_TASKS_PER_CONDUCTOR: positiveInt.default(4) };

export const schedulerEnvSchema = z.object({
  ...tables,
  ...fleet,
  ...tasksPerConductor,
  UJR_TASK_QUEUE_URL: z.string().url(),
  UJR_DEAD_LETTER_QUEUE_URL: z.string().url(),
  /** Batch tasks with a longer timeout run on Fargate. */
  UJR_WORKER_TASK_LIMIT_MS: positiveInt.default(14 * 60_000),
  UJR_TICK_MS: positiveInt.default(60_000),
});

/** The plan queue: where follow-up requests go when tasks end. Without it, instances are planned at their ticks only. */
const planQueue = { UJR_PLAN_QUEUE_URL: z.string().url().optional() };

export const workerEnvSchema = z.object({
  ...tables,
  ...planQueue,
  UJR_TASK_QUEUE_URL: z.string().url(),
  UJR_DEAD_LETTER_QUEUE_URL: z.string().url(),
  /** The task queue's redrive maxReceiveCount. */
  UJR_MAX_RECEIVE_COUNT: positiveInt.default(5),
  /** Kept back from the invocation's remaining time to record, release and reply. */
  UJR_SAFETY_MARGIN_MS: positiveInt.default(10_000),
  /** After an abort, how long a handler gets to return. */
  UJR_GRACE_MS: positiveInt.default(2_000),
});

export const containerEnvSchema = z.object({
  ...tables,
  ...planQueue,
  ...tasksPerConductor,
  UJR_TASK_QUEUE_URL: z.string().url(),
  UJR_DEAD_LETTER_QUEUE_URL: z.string().url(),
  /** Set on one-off long tasks: the dispatch message to run. Without it the container is a conductor. */
  UJR_TASK_MESSAGE: z.string().min(1).optional(),
  UJR_CONDUCTOR_LEASE_TTL_MS: positiveInt.default(30_000),
  UJR_CONDUCTOR_POLL_MS: positiveInt.default(5_000),
  /** After SIGTERM, how long tasks get to checkpoint and return (ECS waits stopTimeout, 30 s by default). */
  UJR_GRACE_MS: positiveInt.default(10_000),
});

export type SchedulerEnv = z.infer<typeof schedulerEnvSchema>;
export type WorkerEnv = z.infer<typeof workerEnvSchema>;
export type ContainerEnv = z.infer<typeof containerEnvSchema>;

/** Parses the environment; throws naming every missing or malformed variable. */
export function parseEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>, what: string): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? '?');
    return env[name] === undefined ? `${name} is not set` : `${name}: ${issue.message}`;
  });
  throw new RuntimeConfigError(`the ${what} cannot start: ${problems.join('; ')}. The CDK stack sets these; set them by hand only outside it.`);
}
