/**
 * The deployed code, bundled by our own bundler (build/bundle.ts) over the user's jobs module, so
 * that what is deployed is what the bundle tests exercised: the Lambda functions' code assets, the
 * container's code as an S3 asset of one file (a stock Node.js image fetches it at start), or the
 * build context of a container image. CDK asks for code synchronously (ILocalBundling) while
 * esbuild's API is asynchronous: the bundle runs in a child Node.js process (./bundle-function.ts,
 * under tsx, from the sources or from dist/), about a second per program. No Docker is involved;
 * the Docker image CDK's type requires is never started, because local bundling either succeeds
 * or throws.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AssetHashType, AssetStaging, BundlingOutput, DockerImage, Names, Stack, Stage, type BundlingOptions, type ILocalBundling } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import type { Construct } from 'constructs';
import type { BundleName } from '../build/bundle.js';
import { sibling } from '../core/package-root.js';

const BUNDLE_FUNCTION = sibling(import.meta.url, 'bundle-function');

/** Bundles program `name` over `jobsModule` into `outputDir` in a child process; throws with esbuild's output when it fails. */
export function runBundler(name: BundleName, jobsModule: string, outputDir: string): void {
  const result = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), BUNDLE_FUNCTION, name, outputDir, jobsModule], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.status !== 0) {
    const output = [result.error?.message, result.stderr, result.stdout].filter(Boolean).join('\n').trim();
    throw new Error(`bundling the ${name} code over ${jobsModule} failed (node --import tsx ${BUNDLE_FUNCTION} ${name} <dir> <jobs module>): ${output || `exit ${String(result.status)}`}`);
  }
}

/**
 * Runs build/bundle.ts for one program over a jobs module. Its fields are part of CDK's asset
 * cache key: two runners over different modules never share a bundle.
 */
export class LocalBundle implements ILocalBundling {
  constructor(
    readonly name: BundleName,
    readonly jobsModule: string,
  ) {}

  tryBundle(outputDir: string): boolean {
    runBundler(this.name, this.jobsModule, outputDir);
    return true;
  }
}

function bundlingOf(name: BundleName, jobsModule: string): BundlingOptions {
  return {
    local: new LocalBundle(name, jobsModule),
    // Required by the type, never run: LocalBundle bundles or throws.
    image: DockerImage.fromRegistry('public.ecr.aws/docker/library/node:22-bookworm-slim'),
    command: ['sh', '-c', 'echo "ujr bundles on the host with esbuild (infra/bundling.ts), not in Docker" >&2; exit 1'],
  };
}

/**
 * The code of one Lambda entry point over the user's job types: `<name>/index.mjs` (and its
 * chunks and source maps) in the asset, so the handler is `<name>/index.handler`. The asset hash
 * is the bundle's: a change that leaves the bundle alone does not redeploy the function.
 *
 * @example
 * ```ts
 * new lambda.Function(this, 'Worker', { code: bundledCode('worker', jobsModule), handler: handlerOf('worker'), ... });
 * ```
 */
export function bundledCode(name: Extract<BundleName, 'scheduler' | 'worker'>, jobsModule: string): lambda.AssetCode {
  return lambda.Code.fromAsset(dirname(jobsModule), { assetHashType: AssetHashType.OUTPUT, bundling: bundlingOf(name, jobsModule) });
}

/** The handler setting of a bundled function. */
export function handlerOf(name: BundleName): string {
  return `${name}/index.handler`;
}

/** The container's code as an S3 asset, and the SHA-256 of that code. */
export interface ContainerCode {
  /** One file, `<hash>.mjs`, in the CDK assets bucket. */
  readonly asset: s3assets.Asset;
  /** Hex SHA-256 of the file; undefined when the synthesis skips bundling (a stack not being deployed). */
  readonly sha256: string | undefined;
}

/**
 * The container bundle over the user's job types as an S3 asset of one file (no chunks: the
 * container copies it as it is, nothing to unpack), with the SHA-256 a container checks before
 * running it.
 *
 * @example
 * ```ts
 * const { asset, sha256 } = containerCode(this, 'ContainerCode', jobsModule);
 * ```
 */
export function containerCode(scope: Construct, id: string, jobsModule: string): ContainerCode {
  const asset = new s3assets.Asset(scope, id, {
    path: dirname(jobsModule),
    assetHashType: AssetHashType.OUTPUT,
    bundling: { ...bundlingOf('container', jobsModule), outputType: BundlingOutput.SINGLE_FILE },
  });
  if (!Stack.of(scope).bundlingRequired) return { asset, sha256: undefined };
  const staging = asset.node.findChild('Stage');
  if (!(staging instanceof AssetStaging)) throw new Error(`the asset ${asset.node.path} has no staging; cannot compute the SHA-256 of the container code`);
  return { asset, sha256: createHash('sha256').update(readFileSync(staging.absoluteStagedPath)).digest('hex') };
}

/** What the image's program prints when the synthesis skipped bundling (a stack not being deployed). */
const NOT_BUNDLED = "console.error('this image was built from a synthesis that skipped bundling; deploy the stack with bundling'); process.exit(1);\n";

/**
 * The build context of a container image over the user's job types, generated under the cloud
 * assembly: the container bundle (`index.mjs`) and a Dockerfile that copies it into `baseImage`.
 * A user's project needs no Dockerfile of its own.
 *
 * @example
 * ```ts
 * new ecrAssets.DockerImageAsset(this, 'Image', { directory: containerImageContext(this, jobsModule, NODE_IMAGE) });
 * ```
 */
export function containerImageContext(scope: Construct, jobsModule: string, baseImage: string): string {
  const outdir = Stage.of(scope)?.assetOutdir;
  if (outdir === undefined) throw new Error(`${scope.node.path} is not in a CDK app: the container image's build context goes into its cloud assembly`);
  const dir = join(outdir, `ujr-image-context-${Names.uniqueId(scope)}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  if (Stack.of(scope).bundlingRequired) runBundler('container', jobsModule, dir);
  else writeFileSync(join(dir, 'index.mjs'), NOT_BUNDLED);
  writeFileSync(
    join(dir, 'Dockerfile'),
    [
      '# Generated by ujr (infra/bundling.ts): the container bundle on a Node.js image.',
      `FROM ${baseImage}`,
      'ENV NODE_ENV=production',
      'WORKDIR /app',
      'COPY index.mjs ./',
      'USER node',
      '# ECS sends SIGTERM and waits stopTimeout before SIGKILL: node is PID 1 and handles it itself.',
      'ENTRYPOINT ["node", "index.mjs"]',
      '',
    ].join('\n'),
  );
  return dir;
}
