/** Builds the job's one zip of outputs (createArchive) and completes the job. */
import { QUEUES } from '@kiln/contracts';
import { finishArchive, getJob, getJobFiles, withTransaction } from '@kiln/db';
import { isStorageUnavailable, keys } from '@kiln/storage';
import { zipFiles } from '@kiln/codec';
import type { JobContext } from '@kiln/queue';
import { recordJobEvents } from '@kiln/webhooks';
import { notifyJobDone, type WorkerDeps } from './file-handler.ts';
import { requeueWhileStorageIsDown } from './storage-outage.ts';

export { QUEUES };

/** The job's error message when its archive could not be built (the handler's last attempt, or the reconcile sweep). */
export const ARCHIVE_FAILED_MESSAGE = 'The archive of results could not be built; the files are still available one by one.';

export function createArchiveHandler(deps: WorkerDeps) {
  return async function handle(payload: { jobId: string; storageWaitSince?: string | undefined }, ctx: JobContext): Promise<void> {
    try {
      await build(payload, ctx);
    } catch (err) {
      const log = deps.log.child({ jobId: payload.jobId });
      if (isStorageUnavailable(err) && (await requeueWhileStorageIsDown(deps.queue, QUEUES.archiveBuild, payload, err, deps.settings.storageRetryMaxSeconds, log))) return;
      throw err;
    }
  };

  async function build(payload: { jobId: string }, ctx: JobContext): Promise<void> {
    const job = await getJob(deps.pool, payload.jobId);
    if (job?.status !== 'processing') return;
    const files = (await getJobFiles(deps.pool, job.id)).filter((f) => f.status === 'completed' && f.output);
    const scratch = await deps.store.scratch();
    const held: { release: () => Promise<void> }[] = [];
    try {
      const entries = [];
      for (const f of files) {
        // Copied (remote storage) into the archive's own scratch folder: its release removes them all.
        const p = await deps.store.localPath(f.output!.storageKey, { under: scratch.dir });
        held.push(p);
        entries.push({ path: p.path, name: f.output!.filename });
      }
      const out = `${scratch.dir}/archive.zip`;
      let outcome: Parameters<typeof finishArchive>[2];
      try {
        await zipFiles(entries, out);
        const storageKey = keys.archive(job.id);
        const { size } = await deps.store.putFile(storageKey, out);
        outcome = { storageKey, filename: `kiln-${job.id.slice(0, 8)}.zip`, mimeType: 'application/zip', size };
      } catch (err) {
        // Storage being down is not the archive's fault: let the caller queue it again.
        if (isStorageUnavailable(err) || ctx.retryCount < ctx.retryLimit) throw err;
        outcome = { error: ARCHIVE_FAILED_MESSAGE };
      }
      const settled = await withTransaction(deps.pool, async (tx) => {
        const done = await finishArchive(tx, job.id, outcome, deps.settings.retentionHours);
        if (done) await notifyJobDone(tx, job.id);
        if (done && deps.events) await recordJobEvents(tx, deps.events, job.id, { kind: 'archive_done' });
        return done;
      });
      if (settled) deps.metrics.jobsCompleted.inc({ type: job.jobType, dialect: job.dialect });
    } finally {
      for (const h of held) await h.release();
      await scratch.release();
    }
  }
}
