/** `ujr ui`: serves the status page over the local store, or a deployed stack (`--stack`), until SIGINT/SIGTERM. */
import { spawn } from 'node:child_process';
import { InvalidArgumentError, type Command } from 'commander';
import type { AwsCliContext } from '../adapters/aws/cli-context.js';
import { openExistingLocalStore, type Target } from '../cli/targets.js';
import type { LocalPaths } from '../local/runtime.js';
import { startUiServer, type UiServer } from './server.js';

/** Where the command prints (the CLI's stdout/stderr, or a test's buffers). */
export interface UiIo {
  out(text: string): void;
  err(text: string): void;
}

interface UiOptions {
  port: number;
  host: string;
  token?: string;
  open?: boolean;
  /** `--json`: one line `{ "url": … }` once the page is served, and nothing else. */
  json?: boolean;
}

export const DEFAULT_UI_PORT = 4680;

/** How `ujr ui` reaches a deployed stack (`--stack <name>`); main.ts wires it to the CLI's stack mode. */
export interface UiStackDeps {
  /** The `--stack` option, when given. */
  stack(): string | undefined;
  /** Opens the stack's AWS context and the CLI's target over it (its `close` closes both). */
  openStack(stackName: string): Promise<{ aws: AwsCliContext; target: Target }>;
  /** Stops the page as SIGINT would (tests running the CLI in-process). */
  signal?: AbortSignal;
}

/**
 * Adds `ujr ui [--port N] [--host H] [--token T] [--open]` to the program.
 *
 * @example
 * ```ts
 * registerUiCommand(program, () => resolvePaths({}), { out: console.log, err: console.error });
 * ```
 */
export function registerUiCommand(program: Command, paths: () => LocalPaths, io: UiIo, stack?: UiStackDeps, json: () => boolean = () => false): void {
  program
    .command('ui')
    .description('serve the status page (instances, runs, progress, failures, "Run now") until Ctrl-C; with --stack, over a deployed stack')
    .option('--port <n>', 'port to listen on (0: any free port)', port, DEFAULT_UI_PORT)
    .option('--host <address>', 'address to bind; anything but loopback needs --token', '127.0.0.1')
    .option('--token <secret>', 'require this token on every request (default: $UJR_UI_TOKEN)')
    .option('--open', 'open the page in the default browser')
    .action(async (options: UiOptions) => {
      const opts = { ...options, json: json() };
      const stackName = stack?.stack();
      if (stack && stackName !== undefined) await stackUiCommand(stack, stackName, opts, io);
      else await uiCommand(paths(), opts, io);
    });
}

async function uiCommand(paths: LocalPaths, opts: UiOptions, io: UiIo): Promise<void> {
  const token = tokenOf(opts);
  // Exit 2 when there is no store yet: the page never creates one (only "ujr run" does).
  const store = openExistingLocalStore(paths);
  let server;
  try {
    server = await startUiServer({ store, paths, host: opts.host, port: opts.port, token });
  } catch (error) {
    await store.close();
    throw error;
  }
  await serveUntilStopped(server, opts, io);
  await store.close();
  if (!opts.json) io.out('status page stopped');
}

/** The page over a deployed stack: the same server and guards, another source. */
async function stackUiCommand(deps: UiStackDeps, stackName: string, opts: UiOptions, io: UiIo): Promise<void> {
  const token = tokenOf(opts);
  const { aws, target } = await deps.openStack(stackName);
  let server;
  try {
    // Loaded here: it reaches the AWS adapter, which local pages never load.
    const { stackStatusSource } = await import('./stack-source.js');
    server = await startUiServer({ source: stackStatusSource(aws, target), host: opts.host, port: opts.port, token });
  } catch (error) {
    await target.close();
    throw error;
  }
  await serveUntilStopped(server, opts, io, deps.signal);
  await target.close();
  if (!opts.json) io.out('status page stopped');
}

function tokenOf(opts: UiOptions): string | undefined {
  return opts.token ?? (process.env.UJR_UI_TOKEN || undefined);
}

/** Prints the URL (and opens it), then waits for SIGINT/SIGTERM (or `signal`) and closes the server. */
async function serveUntilStopped(server: UiServer, opts: UiOptions, io: UiIo, signal?: AbortSignal): Promise<void> {
  io.out(opts.json ? JSON.stringify({ url: server.url }) : `status page: ${server.url}  (Ctrl-C stops)`);
  if (opts.open) openBrowser(server.url, io);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      signal?.removeEventListener('abort', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (signal?.aborted) stop();
    else signal?.addEventListener('abort', stop, { once: true });
  });
  await server.close();
}

function openBrowser(url: string, io: UiIo): void {
  const command = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  try {
    const child = spawn(command, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => io.err(`could not start ${command}; open ${url} yourself`));
    child.unref();
  } catch {
    io.err(`could not start ${command}; open ${url} yourself`);
  }
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError('expected a port number from 0 to 65535.');
  return n;
}
