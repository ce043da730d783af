/**
 * The CDK app of `npx cdk synth|deploy` (cdk.json: `node --import tsx infra/app.ts`): one
 * {@link UjrStack}, checked by cdk-nag's AWS Solutions and Serverless packs as validation
 * plugins. A finding that is not acknowledged in code, with its reason, stops the synthesis.
 *
 * Context (`-c key=value`): `stackName` (default `Ujr`), `alarmEmail`.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { UjrStack, type UjrStackProps } from './stack.js';

export interface UjrAppOptions {
  /** Passed to `new App()`: context, outdir (tests). */
  readonly app?: ConstructorParameters<typeof App>[0];
  /** @default the context value `stackName`, else `Ujr` */
  readonly stackName?: string;
  readonly stack?: UjrStackProps;
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
    runner: { ...(alarmEmail === undefined ? {} : { alarmEmail }), ...options.stack?.runner },
    env: options.stack?.env ?? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
  return { app, stack };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  createApp().app.synth();
}
