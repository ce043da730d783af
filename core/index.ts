/** The public API for job authors: `defineJob`, the error types, and the types a job sees. */
export { defineJob, defineTask, type JobDefinition } from './define.js';
export { NonRetryableError, SkipError, UjrError } from './errors.js';
export type {
  ErrorInfo,
  HistoryQuery,
  InstanceConfig,
  JobType,
  Json,
  Logger,
  ObjectInfo,
  ObjectReader,
  ObjectStore,
  PlanContext,
  RetryPolicy,
  RevertContext,
  RunRecord,
  RunStatus,
  RunSummary,
  TaskContext,
  TaskDefinition,
  TaskKind,
  TaskSpec,
} from './types.js';
