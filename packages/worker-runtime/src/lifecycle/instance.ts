/**
 * This worker process's registration (worker_instances), the files it holds (worker_holds), and the
 * reconcile sweep that cleans up after processes that died without stopping.
 *
 * Recovery from a worker killed mid-file (kill -9, the OOM killer, a lost host) has three layers:
 * 1. pg-boss's heartbeat (`heartbeatSeconds` = WORKER_ORPHAN_SECONDS / 2): a dead worker's message
 *    stops being refreshed and pg-boss retries it within about WORKER_ORPHAN_SECONDS.
 * 2. The engines it ran die with it: the process runner starts each one under
 *    `setpriv --pdeathsig KILL` (codec, process/sandbox.ts), so the kernel kills them.
 * 3. This sweep, at start and every WORKER_ORPHAN_SECONDS / 2 in every worker (one at a time, under an
 *    advisory lock): an instance not seen for WORKER_ORPHAN_SECONDS is dead; its scratch folders (and files) are
 *    removed and its holds dropped. Then any file still 'processing' that no live worker holds and no
 *    queue message carries (its retries were used up by crashes, or its last outcome could not be
 *    written) is queued again — or, after too many attempts, recorded as failed, so a file that kills
 *    every worker that touches it cannot loop forever. And a job still waiting for its archive whose
 *    archive.build message is gone (its retries used up: a zip that killed its workers, a storage
 *    outage longer than STORAGE_RETRY_MAX_SECONDS) is completed without one, as the archive handler's
 *    last attempt completes it: its files stay available one by one.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { JOB_DONE_CHANNEL, QUEUES, queueFor } from '@kiln/contracts';
import {
  finishArchive,
  finishFile,
  listJobsAwaitingArchive,
  listDeadWorkerInstances,
  listUnheldProcessingFiles,
  registerWorkerInstance,
  releaseDeadInstanceElsewhere,
  removeWorkerInstance,
  touchWorkerInstance,
  tryWithSweepLock,
  withTransaction,
  type Pool,
  type Queryable,
} from '@kiln/db';
import type { Logger } from '@kiln/config';
import type { Queue } from '@kiln/queue';
import { recordJobEvents, type EventContext } from '@kiln/webhooks';
import { ARCHIVE_FAILED_MESSAGE } from '../archive-handler.ts';
import { notifyJobDone } from '../file-handler.ts';

export interface InstanceSettings {
  /** WORKER_ORPHAN_SECONDS */
  orphanSeconds: number;
  /** JOB_RETRY_LIMIT: a file re-queued by the sweep more than a few times past it is failed instead. */
  retryLimit: number;
  retentionHours: number;
}

/** What the file handler needs to hold files in this process's name. */
export interface WorkerInstanceHandle {
  id: string;
  orphanSeconds: number;
  /** Files this process works on right now (added before a hold is taken, removed after it is released). */
  active: Set<string>;
}

export interface RunningInstance extends WorkerInstanceHandle {
  /** One reconcile pass now (tests, and the start). */
  reconcile: () => Promise<ReconcileReport>;
  /** Stops the timers and removes the instance row (a clean stop). */
  stop: () => Promise<void>;
}

export interface ReconcileReport {
  deadInstances: number;
  scratchRemoved: number;
  requeued: number;
  failed: number;
  /** Jobs completed without their archive: nothing was left to build it. */
  archivesAbandoned: number;
}

/** Attempts past JOB_RETRY_LIMIT the sweep still re-queues before failing the file (shutdown re-queues also count attempts). */
const EXTRA_ATTEMPTS = 3;

export async function startWorkerInstance(opts: {
  pool: Pool;
  queue: Queue;
  log: Logger;
  service: string;
  settings: InstanceSettings;
  /** Webhook events of what the sweep settles (absent: none are recorded). */
  events?: EventContext;
}): Promise<RunningInstance> {
  const { pool, queue, log, settings, events } = opts;
  const me = { id: crypto.randomUUID(), service: opts.service, host: os.hostname(), pid: process.pid };
  const active = new Set<string>();
  await registerWorkerInstance(pool, me);

  const touch = async () => {
    await touchWorkerInstance(pool, me);
    // A hold whose release failed (Postgres was down) would keep its file from everyone while this
    // process lives: drop the holds of files this process no longer works on.
    await pool.query('DELETE FROM worker_holds WHERE instance_id = $1 AND NOT (file_id = ANY($2::uuid[]))', [me.id, [...active]]);
  };

  const reconcile = async (): Promise<ReconcileReport> => {
    const report: ReconcileReport = { deadInstances: 0, scratchRemoved: 0, requeued: 0, failed: 0, archivesAbandoned: 0 };
    await withTransaction(pool, (tx) =>
      tryWithSweepLock(tx, async () => {
        for (const dead of await listDeadWorkerInstances(tx, settings.orphanSeconds)) {
          const scratch = [...dead.leftoverScratch, ...dead.holds.map((h) => h.scratchDir).filter((d): d is string => !!d)];
          const facts = {
            instance: dead.id,
            service: dead.service,
            host: dead.host,
            pid: dead.pid,
            lastSeenSecondsAgo: Math.round(dead.seenSecondsAgo),
            files: dead.holds.map((h) => h.fileId),
            setting: 'WORKER_ORPHAN_SECONDS',
          };
          if (dead.host === me.host || !scratch.length) {
            for (const dir of scratch) if (await removeScratch(dir)) report.scratchRemoved++;
            await removeWorkerInstance(tx, dead.id);
          } else if (dead.holds.length) {
            // Its scratch is on its own host's disk (STORAGE=s3): its files are released now, its
            // folders are left on its row for a sweep on that host.
            await releaseDeadInstanceElsewhere(tx, dead.id, scratch);
          } else {
            continue; // released before; waiting for a sweep on its host
          }
          report.deadInstances++;
          log.warn('worker presumed dead: released its files', facts);
        }
        const awaiting = await listJobsAwaitingArchive(tx);
        const building = await queue.liveArchiveJobIds(awaiting);
        for (const jobId of awaiting) {
          if (building.has(jobId)) continue;
          // No-op when the archive was recorded after the list was read (its handler committed first).
          if (!(await finishArchive(tx, jobId, { error: ARCHIVE_FAILED_MESSAGE }, settings.retentionHours))) continue;
          await notifyJobDone(tx, jobId);
          if (events) await recordJobEvents(tx, events, jobId, { kind: 'archive_done' });
          report.archivesAbandoned++;
          log.error('job waiting for an archive no message will build: completed without it', { jobId });
        }
        const unheld = await listUnheldProcessingFiles(tx, settings.orphanSeconds);
        if (!unheld.length) return;
        const live = await queue.liveFileIds(unheld.map((f) => f.fileId));
        for (const f of unheld) {
          if (live.has(f.fileId)) continue;
          if (f.attempts > settings.retryLimit + EXTRA_ATTEMPTS) {
            await failAbandoned(tx, queue, f.jobId, f.fileId, f.attempts, settings.retentionHours);
            report.failed++;
            log.error('file abandoned by its workers too often; recorded as failed', { jobId: f.jobId, fileId: f.fileId, attempts: f.attempts });
            continue;
          }
          await queue.send(queueFor(f.jobType, { kind: f.sourceKind, tool: f.tool }), { jobId: f.jobId, fileId: f.fileId }, tx);
          report.requeued++;
          log.warn('file left processing with no worker and no queue message: queued again', { jobId: f.jobId, fileId: f.fileId, attempts: f.attempts });
        }
      }),
    );
    return report;
  };

  const safely = (what: string, fn: () => Promise<unknown>) => () => void fn().catch((err) => log.warn(`${what} failed`, { err: (err as Error).message }));
  await reconcile().catch((err) => log.warn('reconcile sweep failed', { err: (err as Error).message }));
  // Seen well within the orphan window, even on a loaded machine or across a short database blip.
  const touchTimer = setInterval(safely('worker instance heartbeat', touch), Math.max(1000, (settings.orphanSeconds * 1000) / 6));
  const sweepTimer = setInterval(safely('reconcile sweep', reconcile), (settings.orphanSeconds * 1000) / 2);
  touchTimer.unref();
  sweepTimer.unref();
  let stopped = false;
  return {
    id: me.id,
    orphanSeconds: settings.orphanSeconds,
    active,
    reconcile,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      clearInterval(touchTimer);
      clearInterval(sweepTimer);
      await removeWorkerInstance(pool, me.id).catch((err) => log.warn('could not remove worker instance row', { err: (err as Error).message }));
    },
  };
}

/**
 * A dead worker's scratch folder, or its scratch file (a conversion that wrote straight into the
 * planned path: BlobStore.scratchFile): only names the blob stores make (`w-…`, `kiln-…`), never
 * anything else.
 */
async function removeScratch(dir: string): Promise<boolean> {
  if (!path.isAbsolute(dir) || !/^(w-|kiln-)[A-Za-z0-9]+$/.test(path.basename(dir))) return false;
  const exists = await fs.lstat(dir).then(
    (s) => s.isDirectory() || s.isFile(),
    () => false,
  );
  if (!exists) return false;
  await fs.rm(dir, { recursive: true, force: true });
  return true;
}

async function failAbandoned(db: Queryable, queue: Queue, jobId: string, fileId: string, attempts: number, retentionHours: number): Promise<void> {
  const after = await finishFile(
    db,
    jobId,
    fileId,
    {
      ok: false,
      code: 'engine_failed',
      message: `The worker converting this file stopped before finishing ${attempts} times; the file was not retried again.`,
    },
    retentionHours,
    JOB_DONE_CHANNEL,
  );
  // As the file handler does: a job whose last file this was may have an archive to build.
  if (after?.needsArchive) await queue.send(QUEUES.archiveBuild, { jobId }, db);
}
