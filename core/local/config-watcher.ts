/**
 * Watches the instances file and applies edits to a running runner without a restart. Each
 * problem is reported with the file, instance and field; broken instances keep their last good
 * version. Polls the file's stat (robust against editors that replace files) and also listens
 * to fs.watch for a quicker reaction.
 */
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, basename } from 'node:path';
import { formatProblem, isWholeFileBroken, mergeWithLastGood } from '../config.js';
import { readInstancesFile } from '../config-file.js';
import { mergeLimitsWithLastGood } from '../limit-config.js';
import type { LimitDefinition } from '../ports/limits.js';
import type { InstanceConfig, JobType } from '../types.js';

export interface ConfigWatcherOptions {
  path: string;
  jobs: readonly JobType[];
  /** Receives the instances to run after each change. */
  apply(instances: InstanceConfig[]): void;
  /** Receives the file's shared limits after each change (broken ones keep their last good version). */
  applyLimits?(limits: ReadonlyMap<string, LimitDefinition>): void;
  /** Receives one line per problem. */
  report(message: string): void;
  pollMs?: number;
}

export class ConfigWatcher {
  private lastGood: InstanceConfig[] = [];
  private lastGoodLimits: ReadonlyMap<string, LimitDefinition> = new Map();
  private fingerprint = '';
  private timer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | undefined;
  private checking: Promise<void> | undefined;

  constructor(private readonly options: ConfigWatcherOptions) {}

  /** Reads the file once; returns its problems (empty when all is well). */
  async load(): Promise<string[]> {
    this.fingerprint = await this.readFingerprint();
    return this.reload();
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.options.pollMs ?? 1_000);
    this.timer.unref();
    try {
      this.watcher = watch(dirname(this.options.path), (_event, file) => {
        if (file === null || file === basename(this.options.path)) void this.check();
      });
      this.watcher.on('error', () => this.watcher?.close());
    } catch {
      // Polling alone still works.
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.watcher?.close();
  }

  get instances(): readonly InstanceConfig[] {
    return this.lastGood;
  }

  /** The shared limits in force, by name. */
  get limits(): ReadonlyMap<string, LimitDefinition> {
    return this.lastGoodLimits;
  }

  /** Looks for a change now (tests call it to avoid waiting for the poll). */
  check(): Promise<void> {
    this.checking ??= this.checkOnce().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    const fingerprint = await this.readFingerprint();
    if (fingerprint === this.fingerprint) return;
    this.fingerprint = fingerprint;
    await this.reload();
  }

  private async reload(): Promise<string[]> {
    const parsed = await readInstancesFile(this.options.path, this.options.jobs);
    const messages = parsed.problems.map((p) => formatProblem(this.options.path, p));
    const whole = isWholeFileBroken(parsed);
    // Said only when there is one: a file broken from the start has no last good configuration.
    const hasLastGood = this.lastGood.length > 0 || this.lastGoodLimits.size > 0;
    for (const message of messages) {
      this.options.report(`${message}${hasLastGood ? ' (the last good configuration keeps running)' : ''}`);
    }
    this.lastGood = mergeWithLastGood(this.lastGood, parsed, whole);
    this.lastGoodLimits = mergeLimitsWithLastGood(this.lastGoodLimits, parsed.limits, parsed.problems, whole);
    this.options.applyLimits?.(this.lastGoodLimits);
    this.options.apply(this.lastGood);
    return messages;
  }

  private async readFingerprint(): Promise<string> {
    try {
      const info = await stat(this.options.path);
      return `${info.mtimeMs}:${info.size}:${info.ino}`;
    } catch {
      return 'missing';
    }
  }
}
