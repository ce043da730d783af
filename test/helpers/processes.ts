/** Child processes running TypeScript fixtures (tsx), tracked so a test never leaves one behind. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UjrProcess } from '../fixtures/cli/sandbox.js';
import { pollFor } from './runner.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export class ProcessPool {
  private readonly processes = new Set<UjrProcess>();

  /** Starts `node --import tsx <script>` with exactly `env` (plus PATH). */
  start(script: string, env: Record<string, string>): UjrProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    });
    const proc = new UjrProcess(child, [script]);
    this.processes.add(proc);
    void proc.exited.finally(() => this.processes.delete(proc)).catch(() => undefined);
    return proc;
  }

  /** Waits until the process printed a line matching `pattern`; returns the match. */
  async waitForOutput(proc: UjrProcess, pattern: RegExp, ms = 30_000): Promise<RegExpMatchArray> {
    return pollFor(() => {
      if (!proc.running) throw new Error(`the process exited before printing ${String(pattern)}:\n${proc.describe()}`);
      return proc.stdout.match(pattern) ?? undefined;
    }, ms, `${String(pattern)} from ${proc.args.join(' ')}`);
  }

  /** Kills whatever still runs. */
  async killAll(): Promise<void> {
    const running = [...this.processes];
    for (const proc of running) proc.signal('SIGKILL');
    await Promise.allSettled(running.map((proc) => proc.exited));
  }
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === 'ESRCH') return false;
    throw error;
  }
}
