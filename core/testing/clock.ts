/**
 * A virtual clock for the runner's timers port: its time moves only when the test runner advances
 * it, and then every timer due by the new time fires, in order of due time (then of creation), at
 * its own due time.
 */
import type { TimerHandle, Timers } from '../ports/timers.js';

/** Node's bounds: a delay under 1 ms or over 2^31 - 1 ms (or not a number) is 1 ms. */
const MAX_DELAY_MS = 2 ** 31 - 1;

interface VirtualTimer {
  callback: () => void;
  delay: number;
  repeat: boolean;
  dueAt: number;
  /** Creation (or re-arming) order, for timers due at the same time. */
  order: number;
}

/** Epoch milliseconds of a Date or a number. */
export function epochOf(time: Date | number): number {
  const ms = typeof time === 'number' ? time : time.getTime();
  if (!Number.isFinite(ms)) throw new RangeError(`not a valid time: ${String(time)}`);
  return ms;
}

export class VirtualClock implements Timers {
  private current: number;
  private created = 0;
  private readonly pending = new Set<VirtualTimer>();

  constructor(start: number) {
    this.current = start;
  }

  /** The virtual time, epoch ms. */
  readonly now = (): number => this.current;

  setTimeout(callback: () => void, ms: number): TimerHandle {
    return this.add(callback, ms, false);
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    return this.add(callback, ms, true);
  }

  /**
   * Moves the clock to the earliest timer due at or before `until` and fires it (an interval is
   * re-armed first). Returns false, leaving the clock as it is, when no timer is due by then.
   */
  fireNext(until: number): boolean {
    let next: VirtualTimer | undefined;
    for (const timer of this.pending) {
      if (timer.dueAt > until) continue;
      if (!next || timer.dueAt < next.dueAt || (timer.dueAt === next.dueAt && timer.order < next.order)) next = timer;
    }
    if (!next) return false;
    this.current = Math.max(this.current, next.dueAt);
    if (next.repeat) this.arm(next);
    else this.pending.delete(next);
    next.callback();
    return true;
  }

  /** Moves the clock to `time` without firing anything (the caller fired what was due before). */
  moveTo(time: number): void {
    this.current = Math.max(this.current, time);
  }

  private add(callback: () => void, ms: number, repeat: boolean): TimerHandle {
    const delay = ms >= 1 && ms <= MAX_DELAY_MS ? ms : 1;
    const timer: VirtualTimer = { callback, delay, repeat, dueAt: 0, order: 0 };
    this.arm(timer);
    return {
      refresh: () => this.arm(timer),
      unref: () => undefined,
      cancel: () => void this.pending.delete(timer),
    };
  }

  private arm(timer: VirtualTimer): void {
    timer.dueAt = this.current + timer.delay;
    this.created += 1;
    timer.order = this.created;
    this.pending.add(timer);
  }
}
