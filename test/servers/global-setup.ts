/**
 * Vitest global setup: starts DynamoDB Local, the SQS emulator and the S3 emulator once for the
 * whole run and hands their endpoints to the tests (`inject('dynamoEndpoint')`). Each test file
 * creates its own tables, queues and buckets under fresh names, so files never see each other.
 */
import type { TestProject } from 'vitest/node';
import { startDynamoDbLocal, startS3Emulator, startSqsEmulator, type RunningServer } from './emulators.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Endpoint of each emulator that started, or why it could not start. */
    emulators: Record<EmulatorName, { endpoint: string } | { error: string }>;
  }
}

export type EmulatorName = 'dynamodb' | 'sqs' | 's3';

const STARTERS: Record<EmulatorName, () => Promise<RunningServer>> = {
  dynamodb: startDynamoDbLocal,
  sqs: startSqsEmulator,
  s3: startS3Emulator,
};

/** An emulator that cannot start fails only the tests that need it, each saying what is missing. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const names = Object.keys(STARTERS) as EmulatorName[];
  const results = await Promise.allSettled(names.map((name) => STARTERS[name]()));
  const servers: RunningServer[] = [];
  const emulators = {} as Record<EmulatorName, { endpoint: string } | { error: string }>;
  results.forEach((result, index) => {
    const name = names[index] as EmulatorName;
    if (result.status === 'fulfilled') {
      servers.push(result.value);
      emulators[name] = { endpoint: result.value.endpoint };
    } else {
      emulators[name] = { error: String((result.reason as Error)?.message ?? result.reason) };
    }
  });
  project.provide('emulators', emulators);
  return async () => {
    await Promise.all(servers.map((server) => server.stop()));
  };
}
