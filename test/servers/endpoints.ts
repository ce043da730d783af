/**
 * What AWS tests use to reach the emulators the global setup started: endpoints, clients with
 * fake credentials, and fresh resource names so test files never share a table, queue or bucket.
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import type { EmulatorName } from './global-setup.js';
import { EMULATOR_CREDENTIALS, EMULATOR_REGION } from './emulators.js';

/** The emulator's endpoint; throws saying what is missing when it could not start. */
export function emulatorEndpoint(name: EmulatorName): string {
  const state = inject('emulators')[name];
  if ('error' in state) throw new Error(`the ${name} emulator is not running, so this test cannot run: ${state.error}`);
  return state.endpoint;
}

/** Client configuration for an emulator: endpoint, region and fake credentials. */
export function emulatorClientConfig(name: EmulatorName) {
  return {
    endpoint: emulatorEndpoint(name),
    region: EMULATOR_REGION,
    credentials: EMULATOR_CREDENTIALS,
    ...(name === 's3' ? { forcePathStyle: true } : {}),
  };
}

/** A name no other test uses (tables, queues, buckets). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}
