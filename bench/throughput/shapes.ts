/**
 * The task shapes both systems run, with the same work function on each side:
 *
 * - `sync`: a no-op handler that returns synchronously (flattering: it never yields, so an engine
 *   that batches its writes per turn of the event loop can finish many tasks per turn);
 * - `yield`: awaits `setImmediate` once, as any task doing real I/O yields at least once;
 * - `slow`: 1 ms of awaited work (`await setTimeout(1)`), at a higher concurrency.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Shape } from './protocol.js';

export interface ShapeSpec {
  /** The default concurrency, for both systems. */
  concurrency: number;
  /** The work of one task: `undefined` synchronously, or a promise to await. */
  work: () => Promise<void> | undefined;
  describe: string;
}

export const SHAPES: Record<Shape, ShapeSpec> = {
  sync: { concurrency: 24, work: () => undefined, describe: 'no-op handler returning synchronously' },
  yield: { concurrency: 24, work: () => new Promise<void>((resolve) => setImmediate(resolve)), describe: 'awaits setImmediate once' },
  slow: { concurrency: 64, work: () => sleep(1), describe: '1 ms of awaited work (setTimeout)' },
};

/**
 * A handler of `shape` that calls `done(i)` when its work is over: synchronously for `sync`
 * (the handler returns no promise), after the await otherwise.
 */
export function handlerOf(shape: Shape, done: (i: number) => void): (input: { i: number }) => Promise<void> | undefined {
  const { work } = SHAPES[shape];
  return (input) => {
    const pending = work();
    if (pending === undefined) {
      done(input.i);
      return undefined;
    }
    return pending.then(() => done(input.i));
  };
}
