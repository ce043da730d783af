/**
 * The Lambda functions' code, bundled by our own bundler (build/bundle.ts), so that what is
 * deployed is what the bundle tests exercised. CDK asks for code synchronously (ILocalBundling)
 * while esbuild's API is asynchronous: the bundle runs in a child Node.js process
 * (./bundle-function.ts), about a second per function. No Docker is involved; the Docker image CDK's
 * type requires is never started, because local bundling either succeeds or throws.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AssetHashType, DockerImage, type ILocalBundling } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { ENTRY_POINTS, ROOT, type BundleName } from '../build/bundle.js';

const BUNDLE_FUNCTION = fileURLToPath(new URL('./bundle-function.ts', import.meta.url));

/** Runs build/bundle.ts for one entry point in a child process; throws with esbuild's output when it fails. */
export class LocalBundle implements ILocalBundling {
  constructor(readonly name: BundleName) {}

  tryBundle(outputDir: string): boolean {
    const result = spawnSync(process.execPath, ['--import', 'tsx', BUNDLE_FUNCTION, this.name, outputDir], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (result.status !== 0) {
      const output = [result.error?.message, result.stderr, result.stdout].filter(Boolean).join('\n').trim();
      throw new Error(`bundling ${ENTRY_POINTS[this.name]} failed (node --import tsx infra/bundle-function.ts ${this.name} <dir>): ${output || `exit ${String(result.status)}`}`);
    }
    return true;
  }
}

/**
 * The code of one Lambda entry point: `<name>/index.mjs` (and its source map) in the asset, so the
 * handler is `<name>/index.handler`. The asset hash is the bundle's: a change that leaves the
 * bundle alone does not redeploy the function.
 *
 * @example
 * ```ts
 * new lambda.Function(this, 'Worker', { code: bundledCode('worker'), handler: handlerOf('worker'), ... });
 * ```
 */
export function bundledCode(name: Extract<BundleName, 'scheduler' | 'worker'>): lambda.AssetCode {
  return lambda.Code.fromAsset(ROOT, {
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      local: new LocalBundle(name),
      // Required by the type, never run: LocalBundle bundles or throws.
      image: DockerImage.fromRegistry('public.ecr.aws/docker/library/node:22-bookworm-slim'),
      command: ['sh', '-c', 'echo "ujr bundles on the host with esbuild (infra/bundling.ts), not in Docker" >&2; exit 1'],
    },
  });
}

/** The handler setting of a bundled function. */
export function handlerOf(name: BundleName): string {
  return `${name}/index.handler`;
}
