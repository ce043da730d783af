import type { TimerHandle, Timers } from '../ports/timers.js';

/** Rejects with `onTimeout()` when `promise` has not settled within `ms` (measured on `timers`). */
export function withTimeout<T>(promise: Promise<T>, ms: number, timers: Timers, onTimeout: () => Error): Promise<T> {
  let timer: TimerHandle | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = timers.setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => timer?.cancel());
}
