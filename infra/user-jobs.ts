/**
 * The user's job types at synth time: the CDK construct needs their names (one failure-rate alarm
 * each) and must refuse an instance entry they would reject, but constructs are synchronous and
 * the user's module is TypeScript loaded asynchronously. So ./jobs-check.ts loads it in a child
 * Node.js process under tsx (about half a second) and answers with the names and the validated
 * entries. Works from the sources and from dist/ alike (core/package-root.ts `sibling`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { JobsModuleError } from '../build/errors.js';
import { jsonSchema } from '../core/cloud/messages.js';
import { sibling } from '../core/package-root.js';
import { InstanceSeedError } from './errors.js';
import type { InstancesSource, SeedEntry } from './instances.js';

export const jobsCheckRequestSchema = z.object({
  jobsModule: z.string().min(1),
  instances: z.object({ name: z.string(), raw: jsonSchema }),
});

export type JobsCheckRequest = z.infer<typeof jobsCheckRequestSchema>;

export const jobsCheckResultSchema = z.union([
  z.object({
    ok: z.literal(true),
    jobTypes: z.array(z.string()),
    entries: z.array(z.object({ id: z.string(), config: z.record(z.string(), jsonSchema) })),
  }),
  z.object({ ok: z.literal(false), error: z.object({ name: z.string(), message: z.string() }) }),
]);

export type JobsCheckResult = z.infer<typeof jobsCheckResultSchema>;

/** What the construct learns of the user's jobs. */
export interface InspectedJobs {
  /** The names of the job types, in the module's order. */
  readonly jobTypes: readonly string[];
  /** The instance entries to seed, validated against the job types. */
  readonly entries: readonly SeedEntry[];
}

/**
 * Loads the jobs module `jobsModule` (an absolute path) in a child process and validates
 * `instances` against its job types. Throws an {@link InstanceSeedError} naming each invalid
 * instance and field, or a {@link JobsModuleError} when the module cannot be loaded or exports no
 * job types.
 *
 * @example
 * ```ts
 * const { jobTypes, entries } = inspectJobs('/home/me/research/jobs.ts', readInstances('instances.json'));
 * ```
 */
export function inspectJobs(jobsModule: string, instances: InstancesSource): InspectedJobs {
  const dir = mkdtempSync(join(tmpdir(), 'ujr-jobs-check-'));
  try {
    const requestFile = join(dir, 'request.json');
    const resultFile = join(dir, 'result.json');
    const request: JobsCheckRequest = { jobsModule, instances };
    writeFileSync(requestFile, JSON.stringify(request));
    const child = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), sibling(import.meta.url, 'jobs-check'), requestFile, resultFile], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text: string;
    try {
      text = readFileSync(resultFile, 'utf8');
    } catch {
      const output = [child.error?.message, child.stderr, child.stdout].filter(Boolean).join('\n').trim();
      throw new JobsModuleError(`loading the jobs module ${jobsModule} in a child process failed (exit ${String(child.status)}): ${output || 'no output'}`);
    }
    const result = jobsCheckResultSchema.parse(JSON.parse(text));
    if (!result.ok) {
      if (result.error.name === InstanceSeedError.name) throw new InstanceSeedError(result.error.message);
      throw new JobsModuleError(result.error.message);
    }
    return { jobTypes: result.jobTypes, entries: result.entries };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
