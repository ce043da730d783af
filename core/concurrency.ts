/**
 * Bounded concurrency for fan-outs of independent calls (store writes, plans).
 */

/**
 * `fn` over every item, at most `limit` at a time; results in the items' order.
 *
 * @example
 * ```ts
 * const sizes = await mapLimit(files, 8, (file) => stat(file).then((s) => s.size));
 * ```
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, lane));
  return results;
}

/**
 * Like {@link mapLimit}, but items with the same key run one after another in the order given,
 * so a later item sees what an earlier one did (two lease requests for one signature in one call
 * must be answered first come, first served, not by whichever write lands first).
 */
export async function mapLimitInKeyOrder<T, R>(
  items: readonly T[],
  limit: number,
  key: (item: T) => string,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const groups = new Map<string, number[]>();
  items.forEach((item, index) => {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(index);
    else groups.set(k, [index]);
  });
  const results = new Array<R>(items.length);
  await mapLimit([...groups.values()], limit, async (indexes) => {
    for (const index of indexes) results[index] = await fn(items[index] as T, index);
  });
  return results;
}
