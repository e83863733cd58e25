/**
 * Runs `work` on every item with at most `jobs` at a time, in item order. The first error stops the
 * pool from starting more items and is thrown once the running ones have settled; an aborted `signal`
 * stops it too (quietly: the caller reads the signal). Errors that should not stop the run (a
 * video that cannot be read) are the work function's to catch.
 */
export async function runPool<T>(items: readonly T[], jobs: number, work: (item: T, index: number) => Promise<void>,
  options: { signal?: AbortSignal } = {}): Promise<void> {
  let next = 0;
  let failed = false;
  let failure: unknown;
  const lane = async (): Promise<void> => {
    while (!failed && next < items.length && !options.signal?.aborted) {
      const index = next++;
      try {
        await work(items[index]!, index);
      } catch (error) {
        if (!failed) {
          failed = true;
          failure = error;
        }
      }
    }
  };
  const lanes = Math.max(1, Math.min(Math.floor(jobs) || 1, items.length));
  await Promise.all(Array.from({ length: lanes }, () => lane()));
  if (failed) throw failure;
}
