/**
 * `ujr/testing`: unit-test job types without processes, servers or waiting, with any test
 * framework. `plan()` asks a job for its tasks over a given history and objects; `runTask()` runs
 * one handler and reports what it did; `createTestRunner()` runs the real engine in memory on a
 * virtual clock that the test advances.
 */
export { plan, type PlanOptions, type PlanResult, type PlannedTaskInfo } from './plan.js';
export { runTask, type ProgressUpdate, type RunTaskOptions, type TaskRun } from './run-task.js';
export { createTestRunner, type TestClock, type TestRunner, type TestRunnerOptions } from './test-runner.js';
export { MemoryObjectStore, type ObjectSeed } from './objects.js';
export type { HistoryRun } from './history.js';
export type { LogEntry } from './context.js';
export { InvalidInstancesError, RunnerStateError, UnknownInstanceError } from '../embedded/errors.js';
export type { InstanceEntry } from '../embedded/instance-entries.js';
export type { RunnerStats } from '../engine/runner.js';
export type { RunQuery, TriggerResult } from '../ports/store.js';
