/**
 * How a {@link JobRunner}'s task definitions run the container bundle (build/bundle.ts over the
 * user's job types), in one of two ways:
 *
 * - `'stock'` (the default; no Docker anywhere): the official Node.js image from ECR Public. The
 *   bundle is a CDK S3 asset of one file. An init container from the AWS CLI's public image
 *   copies it into a task volume with one `s3api get-object` (the task role may GetObject that
 *   one object and nothing else of the assets bucket); the Node.js container starts once it
 *   exited 0, checks the file's SHA-256 against the one computed at synth and runs it
 *   (containers/bootstrap.ts), or refuses with one log line saying why.
 * - `'docker'`: an image built at deploy from a generated build context, the same bundle on the
 *   same Node.js image (./bundling.ts), pushed to the CDK assets repository.
 *
 * Both the conductor service's task definition and the long-task definition (whose container the
 * scheduler's RunTask overrides by name) get the program this way.
 */
import { Aws, Duration } from 'aws-cdk-lib';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import type { Construct } from 'constructs';
import { bootstrapProgram, CODE_SHA256_VARIABLE } from '../containers/bootstrap.js';
import { containerCode, containerImageContext } from './bundling.js';
import { acknowledge } from './nag.js';

/** The init container that copies the container code from S3 (`containerImage: 'stock'`). */
export const CODE_FETCH_CONTAINER = 'fetch-code';

/** The Node.js image of the containers: the official image, from ECR Public. */
export const NODE_IMAGE = 'public.ecr.aws/docker/library/node:22-bookworm-slim';

/** The image of the init container that copies the code: the AWS CLI's, from ECR Public (pinned). */
export const CODE_FETCH_IMAGE = 'public.ecr.aws/aws-cli/aws-cli:2.36.44';

/** Where the container code goes in a task (a volume the init and Node.js containers share). */
const CODE_VOLUME = 'ujr-code';
const CODE_DIR = '/ujr/code';
const CODE_FILE = `${CODE_DIR}/index.mjs`;

/** What the Node.js container checks when the synthesis skipped bundling (a stack not being deployed): no code, no digest. */
const NOT_BUNDLED = 'not-bundled';

/** Where the container runs from: a stock Node.js image with the code fetched from S3 at start, or an image built with Docker at deploy. */
export type ContainerImageSource = 'stock' | 'docker';

/** How the task definitions run the container bundle. */
export type ContainerProgram =
  | { readonly kind: 'docker'; readonly image: ecs.ContainerImage }
  | {
      readonly kind: 'stock';
      /** The bundle: one file, `<hash>.mjs`, in the CDK assets bucket. */
      readonly asset: s3assets.Asset;
      readonly sha256: string;
      readonly nodeImage: ecs.ContainerImage;
      readonly fetchImage: ecs.ContainerImage;
    };

export interface ContainerProgramOptions {
  /** The jobs module (absolute) the bundle is made of. */
  readonly jobsModule: string;
  readonly source: ContainerImageSource;
  readonly architecture: ecs.CpuArchitecture;
  readonly nodeImage: string;
  readonly fetchImage: string;
}

/**
 * The container bundle as task definitions run it: an S3 asset a stock Node.js image fetches at
 * start, or an image built at deploy. Made once per runner, for all its task definitions.
 *
 * @example
 * ```ts
 * const program = containerProgram(this, { jobsModule, source: 'stock', architecture, nodeImage: NODE_IMAGE, fetchImage: CODE_FETCH_IMAGE });
 * ```
 */
export function containerProgram(scope: Construct, options: ContainerProgramOptions): ContainerProgram {
  if (options.source === 'docker') {
    const image = new ecrAssets.DockerImageAsset(scope, 'Image', {
      directory: containerImageContext(scope, options.jobsModule, options.nodeImage),
      platform: options.architecture === ecs.CpuArchitecture.ARM64 ? ecrAssets.Platform.LINUX_ARM64 : ecrAssets.Platform.LINUX_AMD64,
    });
    return { kind: 'docker', image: ecs.ContainerImage.fromDockerImageAsset(image) };
  }
  const { asset, sha256 } = containerCode(scope, 'ContainerCode', options.jobsModule);
  return {
    kind: 'stock',
    asset,
    sha256: sha256 ?? NOT_BUNDLED,
    nodeImage: ecs.ContainerImage.fromRegistry(options.nodeImage),
    fetchImage: ecs.ContainerImage.fromRegistry(options.fetchImage),
  };
}

/** The container of a task definition that runs the program. */
export interface ProgramContainer {
  /** The construct id of the container. */
  readonly id: string;
  readonly containerName: string;
  readonly environment: Readonly<Record<string, string>>;
  readonly logGroup: logs.ILogGroup;
  readonly streamPrefix: string;
}

/**
 * Adds the container `container` running `program` to `definition`, with what it needs: for
 * `'stock'` the code volume, the init container, the start once it succeeded, and GetObject of
 * the code object for the task role; for `'docker'` the image's own entry point.
 *
 * @example
 * ```ts
 * addProgram(taskDefinition, program, { id: 'Conductor', containerName: 'conductor', environment, logGroup, streamPrefix: 'conductor' });
 * ```
 */
export function addProgram(definition: ecs.FargateTaskDefinition, program: ContainerProgram, container: ProgramContainer): ecs.ContainerDefinition {
  const logging = (prefix: string) => ecs.LogDrivers.awsLogs({ logGroup: container.logGroup, streamPrefix: prefix });
  // SIGTERM, then this long before SIGKILL: tasks get UJR_GRACE_MS to checkpoint and return.
  const stopTimeout = Duration.seconds(30);
  acknowledge(definition, {
    'AwsSolutions-ECS2': 'The environment holds resource names, queue URLs, tuning values and the code\'s SHA-256 only; secrets are referenced from instance params ({ "$secret": ... }) and fetched at run time.',
  });
  if (program.kind === 'docker') {
    acknowledge(definition, {
      'AwsSolutions-IAM5[Resource::*]': 'ecr:GetAuthorizationToken (the execution role pulling the image) has no resource-level permissions; it must be granted on "*".',
    });
    return definition.addContainer(container.id, {
      containerName: container.containerName,
      image: program.image,
      environment: { ...container.environment },
      logging: logging(container.streamPrefix),
      stopTimeout,
    });
  }
  definition.addVolume({ name: CODE_VOLUME });
  const fetch = definition.addContainer(`${container.id}FetchCode`, {
    containerName: CODE_FETCH_CONTAINER,
    image: program.fetchImage,
    essential: false,
    // The image's entry point is `aws`: one GetObject of the code, into the shared volume.
    command: ['s3api', 'get-object', '--bucket', program.asset.s3BucketName, '--key', program.asset.s3ObjectKey, CODE_FILE],
    environment: { AWS_REGION: Aws.REGION },
    logging: logging(`${container.streamPrefix}-fetch-code`),
  });
  fetch.addMountPoints({ sourceVolume: CODE_VOLUME, containerPath: CODE_DIR, readOnly: false });
  iam.Grant.addToPrincipal({ grantee: definition.taskRole, actions: ['s3:GetObject'], resourceArns: [program.asset.bucket.arnForObjects(program.asset.s3ObjectKey)] });
  const node = definition.addContainer(container.id, {
    containerName: container.containerName,
    image: program.nodeImage,
    entryPoint: ['node'],
    command: ['--input-type=module', '--eval', bootstrapProgram(CODE_FILE)],
    user: 'node',
    environment: { ...container.environment, NODE_ENV: 'production', [CODE_SHA256_VARIABLE]: program.sha256 },
    logging: logging(container.streamPrefix),
    stopTimeout,
  });
  node.addMountPoints({ sourceVolume: CODE_VOLUME, containerPath: CODE_DIR, readOnly: true });
  node.addContainerDependencies({ container: fetch, condition: ecs.ContainerDependencyCondition.SUCCESS });
  return node;
}
