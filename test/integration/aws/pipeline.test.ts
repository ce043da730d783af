/**
 * The example research pipeline (jobs/) end to end on the emulators, as it runs on AWS: the
 * scheduler ticks, the collector runs continuously on a conductor and rolls files into the S3
 * bucket, the processor, archiver and summary tasks go through SQS to the worker, and every
 * attempt is recorded in DynamoDB.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeWorkerHandler } from '../../../core/adapters/aws/handlers.js';
import type { Conductor } from '../../../core/cloud/conductor.js';
import exampleJobs from '../../../jobs/index.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { overlappingRuns } from '../../helpers/overlaps.js';
import { SqsEventSource } from '../../helpers/sqs-event-source.js';

let stack: LocalAwsStack;
let conductor: Conductor | undefined;

beforeEach(async () => {
  stack = await new LocalAwsStack({ maxReceiveCount: 3, visibilityTimeoutSec: 5 }).create();
});

afterEach(async () => {
  await conductor?.stop();
  await stack.destroy();
});

describe('the example pipeline on the emulators', () => {
  it('collects into S3 on a conductor, then processes, archives and summarises through the queue', async () => {
    await stack.seedInstances([
      { id: 'metrics', job: 'collector', params: { intervalMs: 50, rolloverMs: 1000, flushMs: 200 }, schedule: '1s' },
      { id: 'metrics-processor', job: 'processor', params: { source: 'metrics' }, schedule: '1s', concurrency: 2 },
      { id: 'metrics-archiver', job: 'archiver', params: { source: 'metrics', olderThanMs: 0 }, schedule: '1s' },
      { id: 'metrics-summary', job: 'summary', params: { source: 'metrics' }, schedule: '1s' },
    ]);
    const { scheduler } = stack.scheduler(exampleJobs, { UJR_TICK_MS: '1000' });
    const { worker, telemetry } = stack.worker(exampleJobs);
    const container = stack.container(exampleJobs, { UJR_CONDUCTOR_POLL_MS: '100', UJR_CONDUCTOR_LEASE_TTL_MS: '5000' });
    conductor = container.conductor;
    const { objects } = container;
    const source = new SqsEventSource({ client: stack.clients.sqs, queueUrl: stack.queueUrl, handler: makeWorkerHandler({ worker, telemetry }), functionTimeoutMs: 60_000 });
    conductor.start();

    const deadline = Date.now() + 60_000;
    for (;;) {
      await scheduler.tick();
      await source.drain({ timeoutMs: 20_000 });
      const archived = await objects.list('archive/metrics/');
      const report = await objects.stat('reports/metrics/summary.json');
      if (archived.length >= 2 && report) break;
      if (Date.now() > deadline) throw new Error(`the pipeline did not get through within 60 s: ${JSON.stringify((await stack.store.listRuns({ limit: 50 })).map((r) => [r.instanceId, r.task, r.status, r.error?.message]))}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await conductor.stop();

    const runs = await stack.store.listRuns({ limit: 1000 });
    const byInstance = (id: string) => runs.filter((run) => run.instanceId === id);
    expect(stack.desiredConductors).toBe(1);
    expect(byInstance('metrics')[0]).toMatchObject({ task: 'collect', kind: 'continuous', status: 'interrupted' });
    const processed = byInstance('metrics-processor');
    expect(processed.length).toBeGreaterThanOrEqual(2);
    expect(processed.every((run) => run.status === 'succeeded' && run.signature.startsWith('process:collected/metrics/'))).toBe(true);
    expect(byInstance('metrics-archiver').filter((run) => run.status === 'succeeded').length).toBeGreaterThanOrEqual(2);
    expect(byInstance('metrics-summary').some((run) => run.status === 'succeeded')).toBe(true);
    const summary = JSON.parse((await objects.getText('reports/metrics/summary.json')) ?? '{}') as { files?: number; samples?: number };
    expect(summary.files).toBeGreaterThanOrEqual(1);
    expect(summary.samples).toBeGreaterThan(0);
    expect(overlappingRuns(runs)).toEqual([]);
    expect(await stack.drainDeadLetters()).toEqual([]);
  });
});
