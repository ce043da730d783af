/**
 * Messages between the runner and a task's child process, one zod schema each; both sides
 * parse what they receive, so a confused child cannot corrupt the runner.
 */
import { z } from 'zod';
import type { Json } from '../types.js';

const json: z.ZodType<Json> = z.lazy(() =>
  z.union([z.null(), z.boolean(), z.number(), z.string(), z.array(json), z.record(z.string(), json)]),
);

const errorInfo = z.object({ name: z.string(), message: z.string(), stack: z.string().optional() });

export const attemptRequestSchema = z.object({
  runId: z.string(),
  instanceId: z.string(),
  jobType: z.string(),
  task: z.string(),
  signature: z.string(),
  attempt: z.number(),
  input: json,
  params: z.unknown(),
  fencingToken: z.number(),
  lastCheckpoint: json.optional(),
});

export const toChildSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('start'),
    /** Where the local task host loads the job types and keeps objects; a host that has its own (the AWS container's) gets neither. */
    jobsModule: z.string().optional(),
    objectsRoot: z.string().optional(),
    request: attemptRequestSchema,
  }),
  z.object({ type: z.literal('abort'), reason: errorInfo }),
  /** The answer to a checkpoint or fence request; `error` when it was refused (a lost lease). */
  z.object({ type: z.literal('reply'), seq: z.number(), error: errorInfo.optional() }),
]);
export type ToChild = z.infer<typeof toChildSchema>;
export type StartMessage = Extract<ToChild, { type: 'start' }>;

export const fromChildSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('log'), level: z.enum(['debug', 'info', 'warn', 'error']), message: z.string() }),
  z.object({
    type: z.literal('progress'),
    current: z.number(),
    total: z.number().optional(),
    message: z.string().optional(),
  }),
  z.object({ type: z.literal('started') }),
  z.object({ type: z.literal('heartbeat') }),
  z.object({ type: z.literal('checkpoint'), seq: z.number(), value: json }),
  /** Asks whether the attempt's lease is still current (before a fenced object write). */
  z.object({ type: z.literal('fence'), seq: z.number() }),
  /** `tctx.limits.backoff(name, retryAfterMs)`. */
  z.object({ type: z.literal('backoff'), seq: z.number(), name: z.string(), retryAfterMs: z.number() }),
  z.object({
    type: z.literal('done'),
    outcome: z.discriminatedUnion('ok', [
      z.object({ ok: z.literal(true), result: json.optional() }),
      z.object({
        ok: z.literal(false),
        error: errorInfo,
        retryable: z.boolean(),
        skip: z.boolean(),
        rateLimited: z.object({ retryAfterMs: z.number(), limit: z.string().optional() }).optional(),
      }),
    ]),
  }),
]);
export type FromChild = z.infer<typeof fromChildSchema>;
