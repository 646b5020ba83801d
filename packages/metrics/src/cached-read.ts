/**
 * A read shared by every caller for `ttlMs`: Prometheus (or several, or a person refreshing) may scrape
 * as often as it likes and Postgres still answers one query per period. Callers arriving while a read
 * is in flight wait for that one. A failed read is not cached, so the next scrape tries again.
 */
export function cachedRead<T>(read: () => Promise<T>, ttlMs: number, now: () => number = Date.now): () => Promise<T> {
  let last: { at: number; value: T } | undefined;
  let inFlight: Promise<T> | undefined;
  return () => {
    if (last && now() - last.at < ttlMs) return Promise.resolve(last.value);
    inFlight ??= read().then(
      (value) => {
        last = { at: now(), value };
        inFlight = undefined;
        return value;
      },
      (err: unknown) => {
        inFlight = undefined;
        throw err;
      },
    );
    return inFlight;
  };
}
