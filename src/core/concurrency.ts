/** Bounded concurrency, without I/O of its own. */

/**
 * Run `fn` over `items` with at most `limit` in flight. Every item runs; results come back in input
 * order as settled outcomes, so one failure neither hides the others nor stops them.
 */
export async function mapSettled<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<PromiseSettledResult<R>[]> {
  const results = new Array<PromiseSettledResult<R>>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await fn(items[i] as T) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/** mapSettled, then the values — or the first failure, in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  return (await mapSettled(items, limit, fn)).map((r) => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  });
}

/** The value of a settled outcome, or its failure thrown again. */
export function settledValue<T>(r: PromiseSettledResult<T>): T {
  if (r.status === 'rejected') throw r.reason;
  return r.value;
}
