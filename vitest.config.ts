import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // DynamoDB Local, the SQS emulator and the S3 emulator, started once per run.
    globalSetup: ['test/servers/global-setup.ts'],
    // The SDK warns once per process that releases after January 2027 need Node 22 (Lambda runs 22+).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.ujr-test/report.json' }]] : ['default'],
  },
});
