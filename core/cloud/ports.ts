/**
 * The serverless runtime's other ports (the board is in board.ts): the task queue (SQS on AWS),
 * the fleet that runs containers (ECS), where instance configuration comes from (the instances
 * table), and telemetry (Powertools Logger and Metrics). Adapters live in core/adapters/aws/.
 */
import type { LimitState } from '../ports/limits.js';
import type { InstanceStatus } from '../ports/store.js';
import type { DispatchMessage, FollowUpMessage } from './messages.js';

export interface SendFailure {
  message: DispatchMessage;
  error: string;
}

export interface TaskQueue {
  /** Sends dispatch messages (10 per call on SQS); returns the ones that could not be sent. */
  send(messages: DispatchMessage[]): Promise<SendFailure[]>;
  /** Sends one message that becomes visible after `delaySec` (at most 900, SQS's limit). */
  sendLater(message: DispatchMessage, delaySec: number): Promise<void>;
  /** Puts a task that failed for good into the dead-letter queue, with why. */
  sendToDeadLetter(message: DispatchMessage, reason: string): Promise<void>;
}

/** The plan queue (SQS on AWS): follow-up requests from workers and containers to the scheduler. */
export interface PlanQueue {
  /** Sends follow-up requests (10 per call on SQS); returns the ones that could not be sent. */
  send(messages: FollowUpMessage[]): Promise<{ message: FollowUpMessage; error: string }[]>;
}

export interface Fleet {
  /** Makes the conductor service run `count` containers (no call when it already wants that many). */
  setConductors(count: number): Promise<void>;
  /** Starts a one-off container that runs one long batch task. */
  runLongTask(message: DispatchMessage): Promise<void>;
}

export interface InstanceCatalog {
  /**
   * Raw instance entries and the raw `"limits"` object of the shared limits (both validated by the
   * caller; `limits` undefined when none are configured), and every instance's status, in one read.
   */
  loadInstancesAndStatus(): Promise<{ entries: unknown[]; statuses: InstanceStatus[]; limits?: unknown }>;
}

/** Metric names, each counted per job type. */
export type MetricName =
  | 'planned'
  | 'deduplicated'
  | 'started'
  | 'succeeded'
  | 'failed'
  | 'retried'
  | 'takenOver'
  | 'swept'
  | 'dropped'
  | 'planErrors';

/** Fields every log line of a task carries. */
export interface LogFields {
  instanceId?: string;
  jobType?: string;
  task?: string;
  signature?: string;
  runId?: string;
  [key: string]: unknown;
}

export interface Telemetry {
  log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: LogFields): void;
  count(metric: MetricName, jobType: string, value?: number): void;
  /** A task attempt's duration. */
  duration(jobType: string, ms: number): void;
  /**
   * The shared limits' buckets as read at a tick (issue 15): per limit, the tokens of its scarcest
   * bucket, the slots held, the tasks waiting for its buckets (when counted) and, so far, the
   * grants, refusals and throttled time of its buckets.
   */
  limits(states: readonly (LimitState & { waiting?: number })[]): void;
  /** Writes what was counted (EMF lines); called at the end of each invocation. */
  flush(): void;
}

/** Telemetry that drops everything (tests that do not look at it). */
export const silentTelemetry: Telemetry = {
  log() {},
  count() {},
  duration() {},
  limits() {},
  flush() {},
};
