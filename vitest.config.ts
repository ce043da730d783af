import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // `ujr` is this repository's own source here, as in tsconfig.json's paths.
    alias: [
      { find: /^ujr$/, replacement: source('./core/index.ts') },
      { find: /^ujr\/testing$/, replacement: source('./core/testing/index.ts') },
      { find: /^ujr\/cdk$/, replacement: source('./infra/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // DynamoDB Local, the SQS emulator and the S3 emulator, started once per run.
    globalSetup: ['test/servers/global-setup.ts'],
    env: {
      // The SDK warns once per process that releases after January 2027 need Node 22 (Lambda runs 22+).
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // Processes the tests start (the CLI, task processes) resolve `ujr` to the sources too.
      TSX_TSCONFIG_PATH: source('./tsconfig.json'),
    },
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.ujr-test/report.json' }]] : ['default'],
  },
});
