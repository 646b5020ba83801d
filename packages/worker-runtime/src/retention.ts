/**
 * Deletes the blobs of jobs whose retention ran out, and of TurboFiles uploads whose file expired (or
 * was deleted) and that no running task still reads; the rows stay as the record.
 */
import { expiredJobs, expiredUploads, foldJobTotals, markJobsPurged, purgeUpload, type Pool } from '@kiln/db';
import type { BlobStore } from '@kiln/storage';
import { keys } from '@kiln/storage';
import type { Logger } from '@kiln/config';

export interface SweepOptions {
  /** Expired jobs per batch (RETENTION_SWEEP_BATCH). */
  batch?: number;
  /** A sweep stops starting batches after this long (RETENTION_SWEEP_SECONDS: the next sweep goes on). */
  budgetMs?: number;
}

/**
 * Returns how many jobs and uploads it purged. Jobs go in batches: the batch's blobs are deleted, then
 * its rows marked in one short statement, and the next batch is read, until none is left or the
 * time budget is spent; a backlog (a year of history expiring at once) drains over a few sweeps
 * without any long-held lock or long transaction.
 */
export async function sweepExpired(pool: Pool, store: BlobStore, log: Logger, opts: SweepOptions = {}): Promise<number> {
  const batch = opts.batch ?? 200;
  const until = Date.now() + (opts.budgetMs ?? 60_000);
  let jobs = 0;
  for (;;) {
    const expired = await expiredJobs(pool, batch);
    const done: string[] = [];
    for (const job of expired) {
      await store.delete([...job.keys, keys.job(job.id)]);
      done.push(job.id);
    }
    await markJobsPurged(pool, done);
    jobs += done.length;
    if (expired.length < batch || Date.now() >= until) break;
  }
  let uploads = 0;
  for (const id of await expiredUploads(pool)) {
    if (await purgeUpload(pool, id, () => store.delete([keys.uploads(id)]))) uploads++;
  }
  if (jobs) log.info('purged expired jobs', { count: jobs });
  if (uploads) log.info('purged expired uploads', { count: uploads });
  return jobs + uploads;
}

export function startRetentionSweeper(pool: Pool, store: BlobStore, log: Logger, everyMs = 60_000, batch = 200): () => void {
  let running = false;
  const timer = setInterval(() => {
    // One sweep at a time: a long one (a backlog) is not overlapped by the next tick.
    if (!running) {
      running = true;
      void sweepExpired(pool, store, log, { batch, budgetMs: everyMs })
        .catch((err) => log.error('retention sweep failed', { err }))
        .finally(() => {
          running = false;
        });
    }
    // Every job appends job-total deltas (migrations/0009); folding them here keeps them few even
    // when nothing scrapes /metrics (a scrape folds too).
    void foldJobTotals(pool).catch((err) => log.warn('folding job totals failed', { err }));
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
