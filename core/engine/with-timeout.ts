import { TaskTimeoutError } from '../errors.js';
import type { TimerHandle, Timers } from '../ports/timers.js';

/** Rejects with a `TaskTimeoutError` naming `message` when `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string, timers: Timers): Promise<T> {
  let timer: TimerHandle | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = timers.setTimeout(() => reject(new TaskTimeoutError(ms, ` (${message})`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => timer?.cancel());
}
