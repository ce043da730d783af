// The example of README.md ("Test it"), kept verbatim below: test/unit/docs.test.ts checks that the page shows
// this file's text, and tsc and eslint check the file like any other of the repository.

import { plan, runTask } from 'ujr/testing';
import { greeter } from './greeter.js';

const { tasks } = await plan(greeter, { params: { names: ['ada', 'alan'] }, history: [{ task: 'greet', input: { name: 'ada' } }] });
// tasks: [{ task: 'greet', input: { name: 'alan' }, signature: '…', kind: 'batch', … }]
const run = await runTask(greeter, 'greet', { name: 'ada' }, { params: { names: ['ada'] } });
// run.status === 'succeeded'; await run.objects.getText('greetings/ada.txt') === 'hello'

// What the test of the docs asserts about the example.
export { tasks, run };
