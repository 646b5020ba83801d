/**
 * Deletes the blobs of jobs whose retention ran out, and of TurboFiles uploads whose file expired (or
 * was deleted) and that no running task still reads; the rows stay as the record.
 */
import { expiredJobs, expiredUploads, foldJobTotals, markJobPurged, purgeUpload, type Pool } from '@kiln/db';
import type { BlobStore } from '@kiln/storage';
import { keys } from '@kiln/storage';
import type { Logger } from '@kiln/config';

/** Returns how many jobs and uploads it purged. */
export async function sweepExpired(pool: Pool, store: BlobStore, log: Logger): Promise<number> {
  let jobs = 0;
  for (const job of await expiredJobs(pool)) {
    await store.delete([...job.keys, keys.job(job.id)]);
    await markJobPurged(pool, job.id);
    jobs++;
  }
  let uploads = 0;
  for (const id of await expiredUploads(pool)) {
    if (await purgeUpload(pool, id, () => store.delete([keys.uploads(id)]))) uploads++;
  }
  if (jobs) log.info('purged expired jobs', { count: jobs });
  if (uploads) log.info('purged expired uploads', { count: uploads });
  return jobs + uploads;
}

export function startRetentionSweeper(pool: Pool, store: BlobStore, log: Logger, everyMs = 60_000): () => void {
  const timer = setInterval(() => {
    void sweepExpired(pool, store, log).catch((err) => log.error('retention sweep failed', { err }));
    // Every job appends job-total deltas (migrations/0009); folding them here keeps them few even
    // when nothing scrapes /metrics (a scrape folds too).
    void foldJobTotals(pool).catch((err) => log.warn('folding job totals failed', { err }));
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
