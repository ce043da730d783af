/**
 * One input cap everywhere: `resolveSpecs` (which the local runner and the AWS scheduler both plan
 * through) refuses an input one byte over `MAX_INPUT_BYTES` with the same error, and accepts one
 * right at it; so do `ujr trigger --input` (checkTrigger) and the scheduler's ad-hoc run.
 */
import { describe, expect, it } from 'vitest';
import { defineJob } from '../../../core/define.js';
import { resolveSpecs } from '../../../core/engine/planner.js';
import { InputTooLargeError } from '../../../core/errors.js';
import { MAX_INPUT_BYTES, MAX_RESULT_BYTES } from '../../../core/limits.js';
import { checkTrigger, type InstanceView, type Target } from '../../../core/cli/targets.js';
import { CliError } from '../../../core/cli/errors.js';
import { InstanceDirectory } from '../../../core/cloud/instances.js';
import { silentTelemetry } from '../../../core/cloud/ports.js';
import { DEFAULT_SCHEDULER_CONFIG, Scheduler, type SchedulerDeps } from '../../../core/cloud/scheduler.js';
import { DEFAULT_WORKER_CONFIG } from '../../../core/cloud/worker.js';
import { instance, noParams, useHarnesses, waitFor } from '../../helpers/runner.js';

const { harness } = useHarnesses();

/** An input whose canonical JSON, `{"blob":"xx…"}`, is exactly `bytes` long. */
function inputOf(bytes: number): { blob: string } {
  return { blob: 'x'.repeat(bytes - '{"blob":""}'.length) };
}

const job = defineJob({
  name: 'carrier',
  params: noParams,
  getRunnableTasks: () => [],
  tasks: { carry: { run: (input: { blob: string }) => ({ length: input.blob.length }) } },
});

const OVER = new RegExp(
  `: its input is ${MAX_INPUT_BYTES + 1} bytes as JSON, over the ${MAX_INPUT_BYTES}-byte limit of a task input \\(the same locally and on AWS\\); put large data in the object store \\(tctx\\.objects\\.put\\) and pass its key$`,
);

/** A dependency the path under test must not reach. */
function unused<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get(_target, property) {
      throw new Error(`${name}.${String(property)} was used`);
    },
  });
}

describe('input size at plan time', () => {
  it('caps inputs and results at one constant each, sized for a 400 KB DynamoDB item', () => {
    expect(MAX_INPUT_BYTES).toBe(200 * 1024);
    expect(MAX_RESULT_BYTES).toBe(128 * 1024);
    expect(DEFAULT_WORKER_CONFIG.maxResultBytes).toBe(MAX_RESULT_BYTES);
  });

  it('accepts an input right at the cap and refuses one a byte over, naming the instance, task and size', () => {
    const outcome = resolveSpecs(job, 'lab-a', [
      { task: 'carry', input: inputOf(MAX_INPUT_BYTES) },
      { task: 'carry', input: inputOf(MAX_INPUT_BYTES + 1) },
    ]);

    expect(outcome.tasks.map((t) => t.input)).toEqual([inputOf(MAX_INPUT_BYTES)]);
    expect(outcome.rejected).toHaveLength(1);
    const [rejected] = outcome.rejected;
    expect(rejected).toBeInstanceOf(InputTooLargeError);
    expect(rejected?.retryable).toBe(false);
    expect(rejected?.message.startsWith('instance "lab-a" (job type "carrier"), task spec #1 (task "carry")')).toBe(true);
    expect(rejected?.message).toMatch(OVER);
  });

  it('reports an input over the cap as a plan error of the local runner and runs the rest', async () => {
    const planner = defineJob({
      ...job,
      name: 'carrier-plan',
      getRunnableTasks: () => [
        { task: 'carry', input: inputOf(MAX_INPUT_BYTES + 1) },
        { task: 'carry', input: inputOf(MAX_INPUT_BYTES) },
      ],
    });
    const h = harness({ jobs: [planner], instances: [instance('big-1', 'carrier-plan')] });
    const planError = waitFor<[string, { name: string; message: string }]>(h.runner, 'planError');

    const stats = await h.runner.runOnce();

    const [instanceId, error] = await planError;
    expect(instanceId).toBe('big-1');
    expect(error.name).toBe('InputTooLargeError');
    expect(error.message).toMatch(OVER);
    expect(stats.succeeded).toBe(1);
  });

  it('refuses the same input in an ad-hoc run of the AWS scheduler, with the same message', async () => {
    const instances = new InstanceDirectory({
      catalog: { loadInstancesAndStatus: () => Promise.resolve({ entries: [{ id: 'cloud-1', job: 'carrier', params: {} }], statuses: [] }) },
      jobs: [job],
      maxAgeMs: 0,
      now: () => 0,
    });
    const deps: SchedulerDeps = {
      board: unused('board'),
      queue: unused('queue'),
      fleet: unused('fleet'),
      objects: unused('objects'),
      telemetry: silentTelemetry,
      instances,
      config: DEFAULT_SCHEDULER_CONFIG,
      now: () => 0,
    };
    const scheduler = new Scheduler(deps);

    const refusal = scheduler.runNow({ instanceId: 'cloud-1', task: 'carry', input: inputOf(MAX_INPUT_BYTES + 1) });

    await expect(refusal).rejects.toBeInstanceOf(InputTooLargeError);
    await expect(refusal).rejects.toThrow(OVER);
  });

  it('refuses `ujr trigger --input` over the cap before anything is written, and accepts one at it', async () => {
    const config = instance('lab-a', 'carrier');
    const view: InstanceView = { instances: [config], problems: [], knowsTasks: true, tasksOf: () => Promise.resolve(['carry']) };
    const target = unused<Target>('target');

    await expect(checkTrigger(target, view, 'lab-a', 'carry', inputOf(MAX_INPUT_BYTES))).resolves.toBe(config);
    const refusal = checkTrigger(target, view, 'lab-a', 'carry', inputOf(MAX_INPUT_BYTES + 1));

    await expect(refusal).rejects.toBeInstanceOf(CliError);
    await expect(refusal).rejects.toThrow(/^instance "lab-a", task "carry": its input is/);
    await expect(refusal).rejects.toThrow(OVER);
  });
});
