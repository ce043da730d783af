/**
 * The one message that crosses SQS (and ECS RunTask overrides): it names a board entry and the
 * lease it was posted with. The task itself (input, attempt) is read from the board by the claim,
 * so messages stay small whatever the input, and a duplicate or stale one is recognised by its
 * token. Instance and task are carried too so a poison message can be reported without the board.
 */
import { z } from 'zod';
import type { Json } from '../types.js';
import { PoisonMessageError } from './errors.js';

/** Any JSON value. */
export const jsonSchema: z.ZodType<Json> = z.lazy(() =>
  z.union([z.null(), z.boolean(), z.number(), z.string(), z.array(jsonSchema), z.record(z.string(), jsonSchema)]),
);

/** Most shared-limit buckets one task may take (a task names a few; this keeps a message far below SQS's 256 KiB). */
export const LIMITS_PER_TASK = 25;

export const dispatchMessageSchema = z.object({
  v: z.literal(1),
  signature: z.string().min(1),
  /** The fencing token the entry was posted with; the claim requires it. */
  token: z.number().int().nonnegative(),
  /** The dispatcher owner the entry was posted to; the claim requires it too. */
  owner: z.string().min(1),
  instanceId: z.string().min(1),
  task: z.string().min(1),
  runId: z.string().min(1),
  attempt: z.number().int().positive(),
  timeoutMs: z.number().positive(),
  /**
   * When the entry's lease (the dispatcher's, posted with this message) expires, as of the post:
   * a worker whose limits make it wait past this extends it first. Absent: not known.
   */
  leaseExpiresAt: z.number().optional(),
  /**
   * The shared-limit buckets the task takes before it is claimed (issue 15), resolved at plan
   * time: limit name and key. The worker takes each limit's definition as configured when it runs.
   */
  limits: z.array(z.object({ name: z.string().min(1), key: z.string() })).max(LIMITS_PER_TASK).optional(),
  /**
   * The bucket (`bucketId`) the entry's progress says the task waits for: the worker wrote it when
   * the bucket first refused the task, and writes nothing more while the same bucket refuses it.
   */
  waitingOn: z.string().optional(),
  /**
   * Set by the scheduler on a long task's message (route `fargate`): it took the task's limits
   * before it started the container (holder: the run id), so the first attempt runs on them.
   */
  limitsHeld: z.literal(true).optional(),
  /** Not to be run before this time (epoch ms): retry delays longer than SQS's 15 minutes. */
  notBefore: z.number().optional(),
  /**
   * Set on a task the worker put in the dead-letter queue after its last attempt: moved back to
   * the task queue (`ujr redrive`), it runs again from attempt 1, once, with this input.
   */
  redrive: z.object({ input: jsonSchema, deadLetteredAt: z.number() }).optional(),
});

export type DispatchMessage = z.infer<typeof dispatchMessageSchema>;

export function parseDispatchMessage(body: string): DispatchMessage {
  return parseMessage(dispatchMessageSchema, body, 'message body', 'a ujr dispatch message', 'ujr only reads messages its scheduler sent');
}

/**
 * A run that ended, as a follow-up request names it: what asked for the plan, for whoever reads the
 * plan queue. The plan itself reads the run history, which is strongly consistent and holds the
 * run's record before the request is sent.
 */
export const endedRunSchema = z.object({
  runId: z.string().min(1),
  signature: z.string().min(1),
  task: z.string().min(1),
  status: z.enum(['succeeded', 'failed', 'cancelled', 'interrupted', 'skipped']),
  endedAt: z.number(),
});

/**
 * Asks the scheduler to plan an instance again because tasks of it ended (a follow-up, as the
 * local runner asks a job again when one of its tasks ends). Sent by workers and containers to
 * the plan queue, one message per instance per batch of ended tasks.
 */
export const followUpMessageSchema = z.object({
  v: z.literal(1),
  followUp: z.string().min(1),
  /** When the last of `ended` was recorded (the worker's clock, after its final write). */
  at: z.number(),
  ended: z.array(endedRunSchema).max(100),
});

export type EndedRun = z.infer<typeof endedRunSchema>;
export type FollowUpMessage = z.infer<typeof followUpMessageSchema>;

/** Parses a plan-queue message body; a body ujr did not send is a {@link PoisonMessageError}. */
export function parseFollowUpMessage(body: string): FollowUpMessage {
  return parseMessage(followUpMessageSchema, body, 'plan-queue message body', 'a ujr follow-up request', 'ujr only reads follow-up requests its workers sent');
}

/** A message body as `schema` says; anything else is a {@link PoisonMessageError} naming the field at fault. */
function parseMessage<S extends z.ZodType>(schema: S, body: string, what: string, shape: string, why: string): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (error) {
    throw new PoisonMessageError(`${what} is not JSON (${(error as Error).message}); ${why}`, { cause: error });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PoisonMessageError(`${what} is not ${shape} (${issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid'}); ${why}`);
  }
  return parsed.data;
}
