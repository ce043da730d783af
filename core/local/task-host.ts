/**
 * Entry point of a local task's child process (ProcessExecutor's default program): runs one
 * attempt (./attempt-host.ts) with the job types of the jobs module the runner names and the
 * local object store under the root it names.
 */
import { DirectoryObjectStore } from '../adapters/fs/objects.js';
import { TaskProcessError } from '../errors.js';
import { hostAttempt } from './attempt-host.js';
import { loadJobTypes } from './jobs-module.js';

hostAttempt(async ({ jobsModule, objectsRoot }) => {
  if (jobsModule === undefined || objectsRoot === undefined) {
    throw new TaskProcessError('the local task host was started without a jobs module and an objects root; the runner sends both');
  }
  return { jobs: await loadJobTypes(jobsModule), objects: new DirectoryObjectStore(objectsRoot), source: jobsModule };
});
