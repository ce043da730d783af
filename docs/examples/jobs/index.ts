// The example of README.md, kept verbatim below: test/unit/docs.test.ts checks that the page shows
// this file's text, and tsc and eslint check the file like any other of the repository.

// jobs/index.ts: the jobs module; its default export lists the job types (an array or a record)
import { greeter } from './greeter.js';
export default [greeter];
