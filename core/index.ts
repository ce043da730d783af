/** The public API for job authors: `defineJob`, the error types, and the types a job sees. */
export { defineJob, defineTask, type JobDefinition } from './define.js';
export { LeaseLostError, NonRetryableError, SkipError, UjrError } from './errors.js';
/** `defineConfig`: types a project's ujr.config.ts (where the CLI finds the jobs module, instances file and home). */
export { defineConfig, type UjrConfig } from './local/project-config.js';
/** zod, as ujr validates with it: define params and inputs with the same copy ujr uses. */
export { z } from 'zod';
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
