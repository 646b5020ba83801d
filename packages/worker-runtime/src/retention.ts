/** Deletes the blobs of jobs whose retention ran out; the job rows stay as the record. */
import { expiredJobs, foldJobTotals, markJobPurged, type Pool } from '@kiln/db';
import type { BlobStore } from '@kiln/storage';
import { keys } from '@kiln/storage';
import type { Logger } from '@kiln/config';

export async function sweepExpired(pool: Pool, store: BlobStore, log: Logger): Promise<number> {
  let n = 0;
  for (const job of await expiredJobs(pool)) {
    await store.delete([...job.keys, keys.job(job.id)]);
    await markJobPurged(pool, job.id);
    n++;
  }
  if (n) log.info('purged expired jobs', { count: n });
  return n;
}

export function startRetentionSweeper(pool: Pool, store: BlobStore, log: Logger, everyMs = 60_000): () => void {
  const timer = setInterval(() => {
    void sweepExpired(pool, store, log).catch((err) => log.error('retention sweep failed', { err }));
    // Every job appends job-total deltas (migrations/0005); folding them here keeps them few even
    // when nothing scrapes /metrics (a scrape folds too).
    void foldJobTotals(pool).catch((err) => log.warn('folding job totals failed', { err }));
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
