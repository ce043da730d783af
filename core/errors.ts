/**
 * Errors of ujr. Whether to retry is part of the error model (`retryable`), never decided by
 * matching messages. Messages say what is wrong and what to do next.
 */
import type { ErrorInfo } from './types.js';

export class UjrError extends Error {
  /** Whether the runner may try the same task again after this error. */
  readonly retryable: boolean = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Throw from a task handler to fail at once, without the remaining attempts. */
export class NonRetryableError extends UjrError {
  override readonly retryable = false;
}

/** Throw from a task handler to mark the run `skipped` (nothing to do), not failed. */
export class SkipError extends UjrError {
  override readonly retryable = false;
}

/**
 * Throw from a task handler when the API it calls says "too many requests" (a 429 and its
 * Retry-After): the runner drains the task's shared limits named `limit` (every rate limit the
 * task takes, when no name is given) for `retryAfterMs`, so that every task sharing them waits,
 * and queues the attempt again. It is not a failure and uses up no attempt.
 *
 * @example
 * ```ts
 * if (response.status === 429) {
 *   throw new RateLimitedError('the feed API answered 429', { retryAfterMs: Number(response.headers.get('retry-after')) * 1000, limit: 'feed-api' });
 * }
 * ```
 */
export class RateLimitedError extends UjrError {
  readonly retryAfterMs: number;
  readonly limit: string | undefined;

  constructor(message: string, options: { retryAfterMs: number; limit?: string; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (!(Number.isFinite(options.retryAfterMs) && options.retryAfterMs >= 0)) {
      throw new TypeError(`RateLimitedError: retryAfterMs must be a non-negative number of milliseconds, got ${String(options.retryAfterMs)}`);
    }
    this.retryAfterMs = options.retryAfterMs;
    this.limit = options.limit;
  }
}

/** What a thrown {@link RateLimitedError} asks for, also one made in another realm (a task process). */
export function rateLimitOf(error: unknown): { retryAfterMs: number; limit?: string } | undefined {
  if (!(error instanceof Error) || error.name !== 'RateLimitedError') return undefined;
  const { retryAfterMs, limit } = error as Partial<RateLimitedError>;
  if (typeof retryAfterMs !== 'number' || !Number.isFinite(retryAfterMs) || retryAfterMs < 0) return undefined;
  return typeof limit === 'string' ? { retryAfterMs, limit } : { retryAfterMs };
}

/** The task ran past its timeout. */
export class TaskTimeoutError extends UjrError {
  constructor(
    readonly timeoutMs: number,
    detail = '',
  ) {
    super(
      `task timed out after ${timeoutMs} ms${detail}; raise timeoutMs on the task (or in its spec) if it needs longer`,
    );
  }
}

/** The runner is shutting down; the run is recorded `interrupted` and planned again next start. */
export class ShutdownError extends UjrError {
  /** @param signal The signal that stopped the runner (`SIGINT` for Ctrl-C), when one did; the message names it. */
  constructor(readonly signal?: string) {
    super(`${signal === undefined ? '' : `interrupted by ${signal}: `}the runner is shutting down; the task will be planned again on the next start`);
  }
}

/** The job stopped returning the task or its instance was disabled or retired. */
export class CancelledError extends UjrError {
  override readonly retryable = false;
}

/** Another runner took the lease over (this one missed its renewals); the work is fenced off. */
export class LeaseLostError extends UjrError {
  override readonly retryable = false;
}

/** A child process running a task exited or hung. */
export class TaskProcessError extends UjrError {}

/** The result is larger than the runner's cap. */
export class ResultTooLargeError extends NonRetryableError {}

/** A task spec returned by `getRunnableTasks` that cannot be run. */
export class InvalidTaskSpecError extends NonRetryableError {}

/** A task's input is larger than `MAX_INPUT_BYTES` (core/limits.ts), in every runtime. */
export class InputTooLargeError extends InvalidTaskSpecError {}

/** A configuration problem: names the file, instance and field at fault. */
export class ConfigError extends UjrError {
  override readonly retryable = false;
}

/** A store adapter failed to read or write. */
export class StoreError extends UjrError {}

/** Whether the error allows another attempt. Plain errors do. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof Error && 'retryable' in error && typeof error.retryable === 'boolean') {
    return error.retryable;
  }
  return true;
}

/**
 * Whether the error marks a skip. Matched by name as well, because errors thrown in a child
 * process cross the process boundary as plain data.
 */
export function isSkip(error: unknown): boolean {
  return error instanceof SkipError || (error instanceof Error && error.name === 'SkipError');
}

/** The name, message and stack of anything thrown. */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const info: ErrorInfo = { name: error.name, message: error.message };
    if (error.stack !== undefined) info.stack = error.stack;
    return info;
  }
  return { name: 'Error', message: typeof error === 'string' ? error : safeString(error) };
}

/**
 * `error` with `cause` appended to its stack as `Caused by: <cause's stack>` (how Java and many
 * loggers print a chain; `ErrorInfo` is plain data and has no `cause` field). Name and message stay
 * `error`'s, so the stack's first line names the same error as the record. A cause that is `error`
 * itself (a handler that rethrew its abort reason, possibly rebuilt in a child process) is not repeated.
 */
export function withCause(error: ErrorInfo, cause: ErrorInfo): ErrorInfo {
  if (cause.name === error.name && cause.message === error.message) return { ...error };
  const header = `${error.name}: ${error.message}`;
  const causeText = cause.stack ?? `${cause.name}: ${cause.message}`;
  return { ...error, stack: `${error.stack ?? header}\nCaused by: ${causeText}` };
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
