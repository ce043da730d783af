/**
 * The CDK app of `npx cdk synth|deploy` in this repository (cdk.json: `node --import tsx
 * infra/app.ts`, from the repository root): one {@link UjrStack} over the example jobs, built as a
 * user's app is, from `ujr/cdk` (tsconfig paths map it to infra/index.ts here), and checked by
 * cdk-nag's AWS Solutions and Serverless packs as validation plugins. A finding that is not
 * acknowledged in code, with its reason, stops the synthesis.
 *
 * Context (`-c key=value`): `stackName` (default `Ujr`), `alarmEmail`.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { addNagChecks, UjrStack, type JobRunnerProps, type UjrStackProps } from 'ujr/cdk';

/** The example jobs and their instances, relative to the repository root (where cdk runs). */
export const EXAMPLE_RUNNER = { jobs: 'jobs/index.ts', instances: 'jobs/instances.json' } as const satisfies JobRunnerProps;

export interface UjrAppOptions {
  /** Passed to `new App()`: context, outdir (tests). */
  readonly app?: ConstructorParameters<typeof App>[0];
  /** @default the context value `stackName`, else `Ujr` */
  readonly stackName?: string;
  /** The stack's props; its runner's override {@link EXAMPLE_RUNNER}. */
  readonly stack?: Omit<UjrStackProps, 'runner'> & { readonly runner?: Partial<JobRunnerProps> };
}

/**
 * The app with its stack and the cdk-nag plugins; tests build it the same way.
 *
 * @example
 * ```ts
 * const { app, stack } = createApp({ app: { context } });
 * app.synth(); // throws when cdk-nag reports an unacknowledged finding
 * ```
 */
export function createApp(options: UjrAppOptions = {}): { app: App; stack: UjrStack } {
  const app = new App(options.app);
  const context = (key: string): string | undefined => {
    const value: unknown = app.node.tryGetContext(key);
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const alarmEmail = context('alarmEmail');
  const stack = new UjrStack(app, options.stackName ?? context('stackName') ?? 'Ujr', {
    ...options.stack,
    runner: { ...EXAMPLE_RUNNER, ...(alarmEmail === undefined ? {} : { alarmEmail }), ...options.stack?.runner },
    env: options.stack?.env ?? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
  addNagChecks(app);
  return { app, stack };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  createApp().app.synth();
}
