/**
 * The timers port: how the runner waits (schedule ticks, lease renewals, retry backoffs, task
 * timeouts, heartbeat watchdogs). The real timers by default; `ujr/testing` passes a virtual
 * clock's, whose time moves only when a test advances it.
 */

/** A pending timer, as the runner uses one. */
export interface TimerHandle {
  /** Re-arms the timer for its full delay from now, as Node's `timeout.refresh()` (also after it fired). */
  refresh(): void;
  /** Lets the process exit while the timer is pending, as Node's `timeout.unref()`. */
  unref(): void;
  /** Cancels the timer; cancelling it twice, or after it fired, does nothing. */
  cancel(): void;
}

/** Starts timers; `ms` is measured on the clock the runner reads (`RunnerOptions.now`). */
export interface Timers {
  setTimeout(callback: () => void, ms: number): TimerHandle;
  setInterval(callback: () => void, ms: number): TimerHandle;
}

function handleOf(timer: NodeJS.Timeout): TimerHandle {
  return {
    refresh: () => void timer.refresh(),
    unref: () => void timer.unref(),
    // clearTimeout clears intervals too.
    cancel: () => clearTimeout(timer),
  };
}

/**
 * Node's own timers.
 *
 * @example
 * ```ts
 * const timer = realTimers.setTimeout(() => console.log('due'), 1_000);
 * timer.unref();
 * timer.cancel();
 * ```
 */
export const realTimers: Timers = {
  setTimeout: (callback, ms) => handleOf(setTimeout(callback, ms)),
  setInterval: (callback, ms) => handleOf(setInterval(callback, ms)),
};
