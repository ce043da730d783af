/**
 * Loads a user's jobs module and validates the instance configuration against its job types, in
 * a child process of the CDK app (./user-jobs.ts): constructs are synchronous, loading a module is
 * not, and the module is TypeScript (tsx loads it, as the local runner's task processes do).
 * Kept apart from ./user-jobs.ts so that the child process loads the job types and the
 * validation, never aws-cdk-lib.
 *
 *   node --import tsx infra/jobs-check.ts <request.json> <result.json>
 *
 * The request is `{ jobsModule, instances: { name, raw } }` (./instances.ts `InstancesSource`);
 * the result `{ ok: true, jobTypes, entries }` or `{ ok: false, error: { name, message } }`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadJobTypes } from '../core/local/jobs-module.js';
import { validateSeedEntries, type SeedEntry } from './instances.js';
import { jobsCheckRequestSchema, type JobsCheckRequest, type JobsCheckResult } from './user-jobs.js';

async function check(request: JobsCheckRequest): Promise<JobsCheckResult> {
  try {
    const jobs = await loadJobTypes(request.jobsModule);
    const entries: SeedEntry[] = validateSeedEntries(request.instances, jobs);
    return { ok: true, jobTypes: jobs.map((job) => job.name), entries: entries.map((entry) => ({ id: entry.id, config: { ...entry.config } })) };
  } catch (error) {
    const { name, message } = error instanceof Error ? error : new Error(String(error));
    return { ok: false, error: { name, message } };
  }
}

const [requestFile, resultFile] = process.argv.slice(2);
if (requestFile === undefined || resultFile === undefined) {
  console.error('usage: node --import tsx infra/jobs-check.ts <request.json> <result.json>');
  process.exit(2);
}
const request = jobsCheckRequestSchema.parse(JSON.parse(readFileSync(requestFile, 'utf8')));
writeFileSync(resultFile, JSON.stringify(await check(request)));
// The user's module may have left timers or sockets behind: the answer is written, the process is done.
process.exit(0);
