// The example of README.md ("Deploy it"), kept verbatim below: test/unit/docs.test.ts checks that the page shows
// this file's text, and tsc and eslint check the file like any other of the repository.

// infra/app.ts (cdk.json: "app": "node --import tsx infra/app.ts")
import { App, Stack } from 'aws-cdk-lib';
import { JobRunner } from 'ujr/cdk';

const app = new App();
const stack = new Stack(app, 'Ujr');
new JobRunner(stack, 'Jobs', { jobs: 'jobs/index.ts', instances: 'jobs/instances.json', stackOutputs: true });
