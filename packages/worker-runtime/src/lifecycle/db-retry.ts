/**
 * A write that must land: a finished file's outcome. While Postgres is unreachable (a restart, a
 * failover) the write is retried with backoff for at most WORKER_RECORD_RETRY_SECONDS, keeping the
 * output already in storage, rather than failing the attempt and leaving the file to a queue expiry.
 * Any other error, or an outage longer than that, is thrown to the caller.
 */
import { isDatabaseUnavailable } from '@kiln/db';
import type { Logger } from '@kiln/config';

export async function retryWhileDatabaseIsDown<T>(what: string, fn: () => Promise<T>, opts: { maxSeconds: number; log: Logger; signal?: AbortSignal }): Promise<T> {
  const started = Date.now();
  let delayMs = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const waited = (Date.now() - started) / 1000;
      if (!isDatabaseUnavailable(err) || waited + delayMs / 1000 > opts.maxSeconds || opts.signal?.aborted) throw err;
      if (attempt === 1 || attempt % 10 === 0) {
        opts.log.warn(`database unavailable; retrying ${what}`, { attempt, waitedSeconds: Math.round(waited), limit: 'WORKER_RECORD_RETRY_SECONDS', err: (err as Error).message });
      }
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(5000, delayMs * 2);
    }
  }
}
