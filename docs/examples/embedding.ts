// The example of docs/embedding.md, kept verbatim below: test/unit/docs.test.ts checks that the page shows
// this file's text, and tsc and eslint check the file like any other of the repository.

import { createRunner } from 'ujr';

const runner = await createRunner({ jobs: 'jobs/index.ts', instances: 'jobs/instances.json', home: '.ujr' });
runner.on('run', (run) => console.log(run.task, run.status));
const stats = await runner.runUntilIdle(); // as `ujr run --once`; or start() … stop()
await runner.close();

export { stats };
