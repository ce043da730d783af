/**
 * This project's CDK app (cdk.json runs it: `npx cdk synth`, `npx cdk deploy`): one stack holding
 * ujr's JobRunner over the job types of jobs/index.ts, its instances seeded from
 * jobs/instances.json at every deploy, and the outputs the ujr CLI reads (`npx ujr status --stack
 * Ujr`). The paths are relative to the folder cdk runs in: this project's root.
 *
 * Another stack name: `npx cdk deploy -c stackName=Lab` (then `--stack Lab`). Every JobRunner prop
 * (alarmEmail, workerMaxConcurrency, vpc, containerImage, ...) is documented with its default.
 */
import { App, Stack } from 'aws-cdk-lib';
import { JobRunner } from 'ujr/cdk';

const app = new App();
const stackName: unknown = app.node.tryGetContext('stackName');
const stack = new Stack(app, typeof stackName === 'string' && stackName !== '' ? stackName : 'Ujr', {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});

new JobRunner(stack, 'Jobs', {
  jobs: 'jobs/index.ts',
  instances: 'jobs/instances.json',
  stackOutputs: true, // what `ujr ... --stack <name>` reads
});
