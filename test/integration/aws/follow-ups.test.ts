/**
 * Follow-up plans on the emulators: when a task ends, the worker asks through the plan queue for
 * its instance to be planned again, and the scheduler's follow-up plan posts the next stage at
 * once instead of at the next tick. Coalesced per instance through its follow-up gate (one plan
 * in flight, one pending), deduplicated through the board like tick plans, and safe next to a tick.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { makeSchedulerHandler, makeWorkerHandler } from '../../../core/adapters/aws/handlers.js';
import { benchStages } from '../../../bench/aws-jobs.js';
import { defineJob } from '../../../core/define.js';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { runLongTask } from '../../../core/cloud/long-task.js';
import { parseFollowUpMessage, type FollowUpMessage } from '../../../core/cloud/messages.js';
import { DEFAULT_WORKER_CONFIG } from '../../../core/cloud/worker.js';
import { HISTORY_INDEX_LAG_MS } from '../../../core/cloud/scheduler.js';
import type { JobType } from '../../../core/types.js';
import { LocalAwsStack } from '../../helpers/aws-stack.js';
import { overlappingRuns } from '../../helpers/overlaps.js';
import { SqsEventSource } from '../../helpers/sqs-event-source.js';

let stack: LocalAwsStack;
const sources: SqsEventSource[] = [];

beforeEach(async () => {
  stack = await new LocalAwsStack({ maxReceiveCount: 3, visibilityTimeoutSec: 5, planQueue: true }).create();
});

afterEach(async () => {
  await Promise.all(sources.splice(0).map((source) => source.stop()));
  await stack.destroy();
});

/** Returns the same task on every plan (a periodic task), and counts its plans. */
let periodicPlans = 0;
let releasePlan: (() => void) | undefined;
let planStarted: (() => void) | undefined;
const periodic = defineJob({
  name: 'periodic',
  params: z.object({ slowPlan: z.boolean().default(false) }),
  async getRunnableTasks(ctx) {
    periodicPlans += 1;
    if (ctx.params.slowPlan && ctx.reason === 'followup') {
      planStarted?.();
      await new Promise<void>((resolve) => {
        releasePlan = resolve;
      });
    }
    return [{ task: 'tick', input: {} }];
  },
  tasks: { tick: { run: () => 'ok' } },
});

/** A continuous task that ends by itself (a collector whose source is exhausted), and a batch task longer than the worker allows. */
const ending = defineJob({
  name: 'ending',
  params: z.object({}),
  getRunnableTasks: () => [
    { task: 'drain', input: {} },
    { task: 'export', input: {} },
  ],
  tasks: {
    drain: { kind: 'continuous', run: () => Promise.resolve('drained') },
    export: { timeoutMs: 30 * 60_000, run: () => 'exported' },
  },
});

const jobs: JobType[] = [benchStages, periodic, ending];

/** The follow-up requests waiting in the plan queue. */
async function planQueueMessages(): Promise<FollowUpMessage[]> {
  const received = await stack.clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.planQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
  return (received.Messages ?? []).map((message) => parseFollowUpMessage(message.Body ?? ''));
}

function startWorkerAndPlanner() {
  const { worker, telemetry, planQueue } = stack.worker(jobs);
  const { scheduler } = stack.scheduler(jobs);
  const workerSource = new SqsEventSource({ client: stack.clients.sqs, queueUrl: stack.queueUrl, handler: makeWorkerHandler({ worker, telemetry, ...(planQueue ? { planQueue } : {}) }), functionTimeoutMs: 60_000 });
  const planner = makeSchedulerHandler({ scheduler, telemetry });
  const planSource = new SqsEventSource({ client: stack.clients.sqs, queueUrl: stack.planQueueUrl, handler: planner, functionTimeoutMs: 60_000, functionName: 'ujr-planner' });
  sources.push(workerSource, planSource);
  return { scheduler, workerSource, planSource };
}

function followUp(instanceId: string, at = Date.now()): FollowUpMessage {
  return { v: 1, followUp: instanceId, at, ended: [] };
}

describe('follow-up plans on AWS', () => {
  it('takes a three-stage pipeline from stage to stage without another tick', async () => {
    // Prepare
    await stack.seedInstances([{ id: 'pipeline', job: 'bench-stages', params: { items: 3 }, schedule: '1h' }]);
    const { scheduler, workerSource, planSource } = startWorkerAndPlanner();

    // Act: one tick posts stage a; the rest follows from the tasks' endings.
    const tick = await scheduler.tick();
    workerSource.start();
    planSource.start();
    const deadline = Date.now() + 20_000;
    let runs = await stack.store.listRuns({ instanceId: 'pipeline', limit: 100 });
    while (runs.filter((run) => run.task === 'c' && run.status === 'succeeded').length < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      runs = await stack.store.listRuns({ instanceId: 'pipeline', limit: 100 });
    }

    // Assess
    expect(tick.dispatched.queue).toBe(3);
    const succeeded = runs.filter((run) => run.status === 'succeeded').map((run) => `${run.task}${JSON.stringify(run.input)}`).sort();
    expect(succeeded).toEqual(['a{"i":0}', 'a{"i":1}', 'a{"i":2}', 'b{"i":0}', 'b{"i":1}', 'b{"i":2}', 'c{"i":0}', 'c{"i":1}', 'c{"i":2}']);
    expect(runs.filter((run) => run.task !== 'a').every((run) => run.origin === 'followup')).toBe(true);
    expect(runs).toHaveLength(9);
    expect(overlappingRuns(runs)).toEqual([]);
  });

  it('does not run again, on a follow-up, a task that ended since the tick', async () => {
    // Prepare: a task the job returns on every plan ran once after the tick.
    await stack.seedInstances([{ id: 'every', job: 'periodic', params: {}, schedule: '1h' }]);
    const { scheduler, workerSource, planSource } = startWorkerAndPlanner();
    await scheduler.tick();

    // Act: the follow-up plan comes after the history index's lag (HISTORY_INDEX_LAG_MS), so
    // only the follow-up rule keeps the task from running again.
    await workerSource.drain({ timeoutMs: 10_000 });
    stack.advanceSchedulerClock(HISTORY_INDEX_LAG_MS * 2);
    const plansBefore = periodicPlans;
    await planSource.drain({ until: () => periodicPlans > plansBefore, timeoutMs: 10_000 });
    await workerSource.drain({ timeoutMs: 2_000 });

    // Assess: the follow-up plan was made, and passed over the task it returned again.
    expect(periodicPlans).toBeGreaterThan(plansBefore);
    const runs = await stack.store.listRuns({ instanceId: 'every', limit: 10 });
    expect(runs.map((run) => [run.task, run.status, run.origin])).toEqual([['tick', 'succeeded', 'schedule']]);
  });

  it('coalesces requests made during a follow-up plan into one more plan', async () => {
    // Prepare: a follow-up plan that waits until the test lets it go on.
    await stack.seedInstances([{ id: 'slow', job: 'periodic', params: { slowPlan: true }, schedule: '1h' }]);
    const { scheduler } = stack.scheduler(jobs);
    const started = new Promise<void>((resolve) => {
      planStarted = resolve;
    });
    periodicPlans = 0;

    // Act: while the first plan is in flight, ten more requests arrive (ten invocations at once).
    const first = scheduler.followUp([followUp('slow', Date.now() - 1)]);
    await started;
    planStarted = undefined;
    const during = Array.from({ length: 10 }, () => scheduler.followUp([followUp('slow')]));
    const duringReports = await Promise.all(during);
    const secondStarted = new Promise<void>((resolve) => {
      planStarted = resolve;
    });
    releasePlan?.();
    await secondStarted;
    releasePlan?.();
    const firstReport = await first;

    // Assess: the ten were left to the plan in flight, which planned once more for all of them.
    expect(duringReports.every((report) => report.planned.length === 0)).toBe(true);
    expect(firstReport.planned).toEqual(['slow', 'slow']);
    expect(periodicPlans).toBe(2);
  });

  it('leaves a request made before the latest plan started to that plan', async () => {
    await stack.seedInstances([{ id: 'every', job: 'periodic', params: {}, schedule: '1h' }]);
    const { scheduler } = stack.scheduler(jobs);
    const old = Date.now() - 1_000;

    const first = await scheduler.followUp([followUp('every', old + 500)]);
    const stale = await scheduler.followUp([followUp('every', old)]);

    expect(first.planned).toEqual(['every']);
    expect(stale.planned).toEqual([]);
  });

  it('posts each signature once when a tick and follow-ups plan an instance at the same time', async () => {
    // Prepare
    await stack.seedInstances([{ id: 'race', job: 'bench-stages', params: { items: 20 }, schedule: '1m' }]);
    const { scheduler } = stack.scheduler(jobs);
    const other = stack.scheduler(jobs).scheduler;

    // Act: a tick and three follow-up invocations at once.
    const reports = await Promise.all([scheduler.tick(), other.followUp([followUp('race')]), other.followUp([followUp('race')]), scheduler.followUp([followUp('race')])]);

    // Assess: twenty tasks posted in all, each once.
    const posted = reports.reduce((sum, report) => sum + report.dispatched.queue, 0);
    expect(posted).toBe(20);
    const runs = await stack.store.listRuns({ instanceId: 'race', limit: 100 });
    expect(new Set(runs.map((run) => run.signature)).size).toBe(runs.length);
  });

  it('asks for a follow-up when a continuous task on a conductor ends, and when a long task does', async () => {
    // Prepare
    await stack.seedInstances([{ id: 'ends', job: 'ending', params: {}, schedule: '1h' }]);
    await stack.scheduler(jobs).scheduler.tick();
    const container = stack.container(jobs, { UJR_CONDUCTOR_POLL_MS: '50' });

    // Act: the conductor runs the continuous task to its end; the long task runs in "its container".
    container.conductor.start();
    const deadline = Date.now() + 10_000;
    while ((await stack.store.lastRun({ instanceId: 'ends', task: 'drain', status: 'succeeded' })) === undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await container.conductor.stop();
    const [message] = stack.longTasks;
    await runLongTask({ ...container, config: { ...DEFAULT_WORKER_CONFIG, safetyMarginMs: 100, graceMs: 100 } }, JSON.stringify(message), 'longtask@test', () => Promise.resolve());

    // Assess: one request per ending, each naming its run.
    const requests = await planQueueMessages();
    // (A standard queue keeps no order.)
    expect(requests.map((request) => [request.followUp, request.ended.map((run) => [run.task, run.status])]).sort()).toEqual([
      ['ends', [['drain', 'succeeded']]],
      ['ends', [['export', 'succeeded']]],
    ]);
  });

  it('does not plan an instance that was switched off', async () => {
    await stack.seedInstances([{ id: 'off', job: 'periodic', params: {}, schedule: '1h', enabled: false }]);
    const { scheduler } = stack.scheduler(jobs);
    periodicPlans = 0;

    const report = await scheduler.followUp([followUp('off')]);

    expect(report.planned).toEqual([]);
    expect(periodicPlans).toBe(0);
  });
});
