/** The public API for job authors: `defineJob`, the error types, and the types a job sees. */
export { defineJob, defineTask, type JobDefinition } from './define.js';
export { LeaseLostError, NonRetryableError, RateLimitedError, SkipError, UjrError } from './errors.js';
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
  TaskLimit,
  TaskSpec,
} from './types.js';
/** The embedded runner: `ujr run` inside a program or a test (see core/embedded/embedded-runner.ts). */
export { createRunner } from './embedded/create-runner.js';
export type { CreateRunnerOptions, EmbeddedRunner } from './embedded/embedded-runner.js';
export { InvalidInstancesError, RunnerStateError, UnknownInstanceError } from './embedded/errors.js';
export type { InstanceEntry } from './embedded/instance-entries.js';
export type { LimitEntry, LimitsConfig } from './limit-config.js';
export { InvalidLimitError, type LimitDefinition, type RateSpec } from './ports/limits.js';
export type { RunnerEvents, RunnerStats } from './engine/runner.js';
export type { RunQuery, Trigger, TriggerResult } from './ports/store.js';
export type { LogLine } from './types.js';
