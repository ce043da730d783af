// The example of docs/testing.md, kept verbatim below: test/unit/docs.test.ts checks that the page shows
// this file's text, and tsc and eslint check the file like any other of the repository.

import { createTestRunner, plan, runTask } from 'ujr/testing';
import { greeter } from './greeter.js';

// What the job would return, given a run history (partial records are filled in), objects and a time.
const { tasks } = await plan(greeter, { params: { names: ['ada', 'alan'] }, history: [{ task: 'greet', input: { name: 'ada' } }] });
// tasks: [{ task: 'greet', input: { name: 'alan' }, signature: '…', kind: 'batch', … }]

// One task with a real task context: status, result, error, log lines, progress, checkpoints, and what it wrote.
const run = await runTask(greeter, 'greet', { name: 'ada' }, { params: { names: ['ada'] } });
// run.status === 'succeeded'; await run.objects.getText('greetings/ada.txt') === 'hello'

// A whole instance on the engine, on a clock the test moves: schedules come due, retry
// backoffs and leases elapse on advance(), without waiting.
const runner = await createTestRunner({ jobs: [greeter], instances: [{ id: 'lab', job: 'greeter', params: { names: ['ada'] } }] });
await runner.runUntilIdle();
await runner.clock.advance(3_600_000);
await runner.runUntilIdle();
const runs = await runner.runs(); // every attempt's run record, oldest first
await runner.close();

// What the test of the docs asserts about the example.
export { tasks, run, runs };
