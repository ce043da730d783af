/** ujr/testing's runTask(): one handler, with the runner's task context, and what it did. */
import { defineJob, defineTask, NonRetryableError, SkipError, z, type TaskContext } from 'ujr';
import { MemoryObjectStore, runTask } from 'ujr/testing';
import { describe, expect, it } from 'vitest';
import { InvalidTaskSpecError } from '../../../core/errors.js';

/** Resolves when the signal aborts, with its reason thrown: a handler that honours its signal. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason as Error);
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
}

type Params = { prefix: string; copies: number };
type Handler = (input: { file: string }, tctx: TaskContext<Params>) => unknown;

/** A job with one task `copy` whose handler each test writes. */
function jobWith(run: Handler, extra: { kind?: 'batch' | 'continuous'; timeoutMs?: number } = {}) {
  return defineJob({
    name: 'copier',
    params: z.object({ prefix: z.string(), copies: z.number().int().default(1) }),
    getRunnableTasks: () => [],
    tasks: {
      copy: defineTask<Params, { file: string }, unknown>({ input: z.object({ file: z.string().min(1) }), ...extra, run }),
    },
  });
}

describe('runTask()', () => {
  it('runs the handler with the task context and reports result, logs, progress, checkpoints, heartbeats and objects', async () => {
    const job = jobWith(async (input, tctx) => {
      const text = await tctx.objects.getText(input.file);
      tctx.log.info('copying', { file: input.file, attempt: tctx.attempt });
      tctx.progress(1, 2, 'read');
      tctx.heartbeat();
      await tctx.checkpoint({ from: tctx.lastCheckpoint ?? null, at: 1 });
      for (let n = 0; n < tctx.params.copies; n += 1) await tctx.objects.put(`${tctx.params.prefix}/${n}`, text ?? '');
      tctx.progress(2, 2);
      tctx.log.warn('done');
      return { copies: tctx.params.copies, instance: tctx.instanceId };
    });

    const run = await runTask(job, 'copy', { file: 'in/a.txt' }, {
      params: { prefix: 'out' },
      instanceId: 'copier-a',
      objects: { 'in/a.txt': 'AAA' },
      checkpoint: 0,
      attempt: 2,
      now: 5_000,
    });

    expect(run).toMatchObject({
      status: 'succeeded',
      result: { copies: 1, instance: 'copier-a' },
      error: undefined,
      kind: 'batch',
      input: { file: 'in/a.txt' },
      logs: [
        { level: 'info', message: 'copying {"file":"in/a.txt","attempt":2}' },
        { level: 'warn', message: 'done' },
      ],
      progress: [{ current: 1, total: 2, message: 'read' }, { current: 2, total: 2 }],
      checkpoints: [{ from: 0, at: 1 }],
      heartbeats: 1,
    });
    expect(await run.objects.getText('out/0')).toBe('AAA');
    expect(await run.objects.stat('out/0')).toMatchObject({ modifiedAt: 5_000 });
  });

  it('uses an object store given as such', async () => {
    const objects = new MemoryObjectStore({ 'in/b': 'B' });
    const job = jobWith(async (input, tctx) => tctx.objects.put('out/b', (await tctx.objects.getText(input.file)) ?? ''));

    const run = await runTask(job, 'copy', { file: 'in/b' }, { params: { prefix: 'out' }, objects });

    expect(run.objects).toBe(objects);
    expect(await objects.getText('out/b')).toBe('B');
  });

  it('records a thrown error as the runner does: failed, retryable, with name, message and stack', async () => {
    const job = jobWith(() => {
      throw new TypeError('the disk is full');
    });

    const run = await runTask(job, 'copy', { file: 'x' }, { params: { prefix: 'p' } });

    expect(run.status).toBe('failed');
    expect(run.retryable).toBe(true);
    expect(run.error).toMatchObject({ name: 'TypeError', message: 'the disk is full' });
    expect(run.error?.stack).toContain('the disk is full');
  });

  it('says a NonRetryableError would not be tried again', async () => {
    const job = jobWith(() => {
      throw new NonRetryableError('bad file');
    });

    const run = await runTask(job, 'copy', { file: 'x' }, { params: { prefix: 'p' } });

    expect(run).toMatchObject({ status: 'failed', retryable: false, error: { name: 'NonRetryableError', message: 'bad file' } });
  });

  it('records a SkipError as skipped', async () => {
    const job = jobWith(() => {
      throw new SkipError('nothing to copy');
    });

    const run = await runTask(job, 'copy', { file: 'x' }, { params: { prefix: 'p' } });

    expect(run).toMatchObject({ status: 'skipped', retryable: false, error: { name: 'SkipError', message: 'nothing to copy' } });
  });

  it('aborts the handler\'s signal when the caller\'s signal aborts, and records it interrupted with the reason', async () => {
    const controller = new AbortController();
    const job = jobWith(async (_input, tctx) => {
      tctx.log.info('started');
      controller.abort(new Error('the test stops the runner'));
      await untilAborted(tctx.signal);
    });

    const run = await runTask(job, 'copy', { file: 'x' }, { params: { prefix: 'p' }, signal: controller.signal });

    expect(run.status).toBe('interrupted');
    expect(run.error).toMatchObject({ name: 'Error', message: 'the test stops the runner' });
    expect(run.logs).toEqual([{ level: 'info', message: 'started' }]);
  });

  it('aborts the handler\'s signal as it starts when the caller\'s already is (a batch task that still returns succeeds)', async () => {
    const job = jobWith(async (_input, tctx) => {
      await Promise.resolve();
      return { aborted: tctx.signal.aborted, reason: (tctx.signal.reason as Error).message };
    });

    const run = await runTask(job, 'copy', { file: 'x' }, { params: { prefix: 'p' }, signal: AbortSignal.abort(new Error('stop')) });

    expect(run).toMatchObject({ status: 'succeeded', result: { aborted: true, reason: 'stop' } });
  });

  it('times a handler out: its signal aborts with TaskTimeoutError and the run fails, retryable', async () => {
    const job = jobWith((_input, tctx) => untilAborted(tctx.signal));

    const run = await runTask(job, 'copy', { file: 'x' }, { params: { prefix: 'p' }, timeoutMs: 5 });

    expect(run).toMatchObject({ status: 'failed', retryable: true, error: { name: 'TaskTimeoutError' } });
    expect(run.error?.message).toContain('timed out after 5 ms');
  });

  it('gives up on a handler that ignores its abort after the grace period, recording the reason', async () => {
    const job = jobWith(() => new Promise(() => undefined));

    const run = await runTask(job, 'copy', { file: 'x' }, { params: { prefix: 'p' }, timeoutMs: 5, graceMs: 5 });

    expect(run).toMatchObject({ status: 'failed', error: { name: 'TaskTimeoutError' } });
  });

  it('records a continuous task that returned on its abort as interrupted, keeping its result', async () => {
    const job = jobWith(
      async (_input, tctx) => {
        await untilAborted(tctx.signal).catch(() => undefined);
        return { flushed: true };
      },
      { kind: 'continuous' },
    );
    const controller = new AbortController();

    const running = runTask(job, 'copy', { file: 'x' }, { params: { prefix: 'p' }, signal: controller.signal });
    controller.abort(new Error('stop'));
    const run = await running;

    expect(run).toMatchObject({ status: 'interrupted', kind: 'continuous', result: { flushed: true }, error: { message: 'stop' } });
  });

  it('fails a result that is not JSON, naming where, and one over the size cap', async () => {
    const dated = await runTask(jobWith(() => ({ at: new Date(0) })), 'copy', { file: 'x' }, { params: { prefix: 'p' } });
    const huge = await runTask(jobWith(() => ({ text: 'x'.repeat(200 * 1024) })), 'copy', { file: 'x' }, { params: { prefix: 'p' } });

    expect(dated).toMatchObject({ status: 'failed', retryable: false });
    expect(dated.error?.message).toContain('result.at');
    expect(huge).toMatchObject({ status: 'failed', retryable: false, error: { name: 'ResultTooLargeError' } });
  });

  it('validates the input as a plan\'s task input is validated, naming the field', async () => {
    const job = jobWith(() => undefined);

    await expect(runTask(job, 'copy', { file: '' }, { params: { prefix: 'p' } })).rejects.toThrow(InvalidTaskSpecError);
    await expect(runTask(job, 'copy', { file: '' }, { params: { prefix: 'p' } })).rejects.toThrow(/\(task "copy"\): input\.file: /);
    await expect(runTask(job, 'paste', {}, { params: { prefix: 'p' } })).rejects.toThrow(/names task "paste", which job type "copier" does not define; its tasks are: copy/);
  });

  it('validates the params, naming the field', async () => {
    const job = jobWith(() => undefined);

    await expect(runTask(job, 'copy', { file: 'x' }, { params: { copies: 2 } })).rejects.toThrow(/instance "copier": params\.prefix: /);
  });
});
