// Bounded concurrency inside a workflow: deterministic, since the order in which the
// promises settle is the order of the events in history.

/** Runs `fn` over `items` with at most `limit` running at once, in the items' order. */
export async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
}
