/**
 * How the container program starts its task processes (containers/task-host.ts): the module that
 * started the conductor, with the task host argument, and the Node.js options of the conductor
 * minus those that only said how the program itself was started (the stock image's bootstrap runs
 * it with `--input-type=module --eval <program>`).
 */
import { describe, expect, it } from 'vitest';
import { bootstrapProgram } from '../../containers/bootstrap.js';
import { isTaskHost, TASK_HOST_ARG, taskHostExecArgv, taskHostProgram } from '../../containers/task-host.js';

describe('the container task host', () => {
  it("leaves the bootstrap's --eval program and --input-type out of a task process's options", () => {
    expect(taskHostExecArgv(['--input-type=module', '--eval', bootstrapProgram('/ujr/code/index.mjs')])).toEqual([]);
    expect(taskHostExecArgv(['--input-type', 'module', '-e', 'code', '--max-old-space-size=512'])).toEqual(['--max-old-space-size=512']);
    expect(taskHostExecArgv(['--print=1', '--import', 'tsx', '--enable-source-maps'])).toEqual(['--import', 'tsx', '--enable-source-maps']);
  });

  it('starts the module that started the conductor, given as a file URL or a path, with the task host argument', () => {
    expect(taskHostProgram('file:///ujr/code/index.mjs', ['--input-type=module', '--eval', 'x'])).toEqual({ module: '/ujr/code/index.mjs', args: [TASK_HOST_ARG], execArgv: [] });
    expect(taskHostProgram('/app/index.mjs', [])).toEqual({ module: '/app/index.mjs', args: [TASK_HOST_ARG], execArgv: [] });
  });

  it('tells a task process by its argument, not by the Node.js options', () => {
    expect(isTaskHost(['/usr/bin/node', '/ujr/code/index.mjs', TASK_HOST_ARG])).toBe(true);
    expect(isTaskHost(['/usr/bin/node', '/ujr/code/index.mjs'])).toBe(false);
    expect(isTaskHost(['/usr/bin/node'])).toBe(false);
  });
});
