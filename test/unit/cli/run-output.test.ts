/**
 * The terminal output of `ujr run` (the lines saying where to look, the live line with each
 * running task's progress, one line per ended run) and the error text every command shares.
 */
import { describe, expect, it } from 'vitest';
import { errorLine, errorWithStack, paint, statusText } from '../../../core/cli/format.js';
import { endedLine, liveLine, whereLines } from '../../../core/cli/run-command.js';
import type { RunnerStats } from '../../../core/engine/runner.js';
import { RUN_STATUSES, type RunRecord } from '../../../core/types.js';

const stats: RunnerStats = {
  queued: 1,
  running: 2,
  continuous: 0,
  backoff: 0,
  succeeded: 3,
  failed: 1,
  skipped: 0,
  interrupted: 0,
  cancelled: 0,
  retried: 0,
  rateLimited: 0,
  deduplicated: 0,
  takenOver: 0,
  planErrors: 0,
};

function run(overrides: Partial<RunRecord>): RunRecord {
  return {
    id: '01RUN',
    instanceId: 'lab',
    jobType: 'collector',
    task: 'collect',
    signature: 'sig',
    kind: 'batch',
    status: 'running',
    attempt: 1,
    maxAttempts: 3,
    origin: 'schedule',
    runner: 'me',
    fencingToken: 1,
    queuedAt: 1_000,
    startedAt: 1_000,
    input: {},
    ...overrides,
  };
}

describe('liveLine', () => {
  it('shows the counts, then each running task with its progress, or how long it has run without one', () => {
    // Prepare
    const running = [run({ task: 'collect', progress: { current: 4, total: 10, message: 'reading', updatedAt: 4_000 } }), run({ task: 'summarize', startedAt: 2_000 })];

    // Act
    const line = liveLine(stats, running, 5_200, 200);

    // Assess
    expect(line).toBe('running 2 · queued 1 · done 3 · failed 1 · skipped 0 · retried 0 │ lab/collect 4/10 40% reading · lab/summarize 3.2s');
  });

  it('fits the terminal: cut to its width, colour codes dropped when cut', () => {
    // Prepare
    const running = [run({ progress: { current: 1, total: 2, message: 'x'.repeat(200), updatedAt: 1_500 } })];

    // Act
    const line = liveLine(stats, running, 2_000, 80, paint(true));

    // Assess
    expect(line).toHaveLength(80);
    expect(line.endsWith('…')).toBe(true);
    expect(line).not.toContain('\x1b[');
  });

  it('is the counts alone when nothing runs', () => {
    expect(liveLine(stats, [], 0, 200)).toBe('running 2 · queued 1 · done 3 · failed 1 · skipped 0 · retried 0');
  });
});

describe('whereLines', () => {
  it('says what runs, where results go and how to open the page, with paths relative to the working folder', () => {
    // Act
    const lines = whereLines({ home: '/p/.ujr', jobsModule: '/p/jobs/index.ts', instancesFile: '/p/jobs/instances.json' }, 3, undefined, '/p');

    // Assess
    expect(lines).toEqual([
      'ujr run: 3 job instances from jobs/instances.json; Ctrl-C stops',
      '  results  .ujr/data/ (what tasks write with tctx.objects; "ujr runs" and "ujr logs <run>" show runs)',
      '  page     run "npx ujr ui" in another terminal, then open http://127.0.0.1:4680/',
    ]);
  });
});

describe('endedLine', () => {
  it('names the status, the task, its duration, the run and its error', () => {
    // Act
    const line = endedLine(run({ status: 'interrupted', endedAt: 2_500, error: { name: 'ShutdownError', message: 'interrupted by SIGINT' } }));

    // Assess
    expect(line).toBe('interrupted lab/collect 1.5s 01RUN ShutdownError: interrupted by SIGINT');
  });
});

describe('errorWithStack', () => {
  it('heads the stack with the error line once, whether the stack starts with it or not', () => {
    // Prepare
    const own = { name: 'TaskTimeoutError', message: 'task timed out', stack: 'TaskTimeoutError: task timed out\n    at a (x.ts:1:1)' };
    const foreign = { name: 'ShutdownError', message: 'stopping', stack: 'TaskProcessError: killed by SIGINT\n    at b (y.ts:2:2)' };

    // Act / Assess
    expect(errorWithStack(own)).toBe('TaskTimeoutError: task timed out\n    at a (x.ts:1:1)');
    expect(errorWithStack(foreign)).toBe('ShutdownError: stopping\nTaskProcessError: killed by SIGINT\n    at b (y.ts:2:2)');
    expect(errorWithStack({ name: 'Error', message: 'no stack' })).toBe(errorLine({ name: 'Error', message: 'no stack' }));
  });
});

describe('statusText', () => {
  it('gives each status its own colour on a terminal, and none without', () => {
    // Prepare
    const statuses = [...RUN_STATUSES, 'outdated', 'invalid'] as const;
    const colours = new Map<string, string>();

    // Act
    for (const status of statuses) colours.set(status, statusText(status, paint(true)).replace(status, ''));

    // Assess: failed and invalid share red; every other status has a colour of its own
    expect(colours.get('invalid')).toBe(colours.get('failed'));
    const others = statuses.filter((s) => s !== 'invalid').map((s) => colours.get(s));
    expect(new Set(others).size).toBe(others.length);
    expect(colours.get('succeeded')).toBe('\x1b[32m\x1b[39m');
    for (const status of statuses) expect(statusText(status, paint(false))).toBe(status);
  });
});
