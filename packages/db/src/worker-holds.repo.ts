/**
 * Worker processes and the files they hold (migration 0010). A process registers itself, refreshes
 * `seen_at` while it lives and removes itself on a clean stop; one that died without stopping is
 * found by its stale `seen_at`. A hold is taken by the statement that claims the file
 * (jobs.repo.ts claimFileHeld, with the attempt's scratch folder) and released by the one that
 * records its outcome (finishFile's `holder`), or by releaseFileHold when the attempt ends another
 * way: at most one live process holds a file, so a duplicate or retried message for a file someone
 * is still working on is skipped instead of converting it a second time beside the first.
 */
import { named, type Queryable } from './pool.ts';

export interface WorkerInstance {
  id: string;
  service: string;
  host: string;
  pid: number;
}

export async function registerWorkerInstance(db: Queryable, w: WorkerInstance): Promise<void> {
  await db.query(
    `INSERT INTO worker_instances (id, service, host, pid) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET seen_at = now()`,
    [w.id, w.service, w.host, w.pid],
  );
}

/** Refreshes the instance's `seen_at`; re-registers it when a reconcile sweep already removed it. */
export async function touchWorkerInstance(db: Queryable, w: WorkerInstance): Promise<void> {
  await db.query(
    named(
      'touch_worker_instance',
      `INSERT INTO worker_instances (id, service, host, pid) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET seen_at = now()`,
      [w.id, w.service, w.host, w.pid],
    ),
  );
}

/**
 * Releases a dead instance's files without removing it: its scratch folders are on another host's
 * disk, so they are kept on the row for a sweep on that host.
 */
export async function releaseDeadInstanceElsewhere(db: Queryable, id: string, scratch: string[]): Promise<void> {
  await db.query('UPDATE worker_instances SET leftover_scratch = $2 WHERE id = $1', [id, scratch]);
  await db.query('DELETE FROM worker_holds WHERE instance_id = $1', [id]);
}

/** A clean stop: the instance and any hold it still has go (its files were finished or queued again). */
export async function removeWorkerInstance(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM worker_instances WHERE id = $1', [id]);
}

/**
 * Where the attempt's scratch folder is, so the sweep can remove it if this process dies. The claim
 * records it already (claimFileHeld); this is for a folder made somewhere else than planned.
 */
export async function setHoldScratch(db: Queryable, fileId: string, instanceId: string, scratchDir: string): Promise<void> {
  await db.query(named('set_hold_scratch', 'UPDATE worker_holds SET scratch_dir = $3 WHERE file_id = $1 AND instance_id = $2', [fileId, instanceId, scratchDir]));
}

export async function releaseFileHold(db: Queryable, fileId: string, instanceId: string): Promise<void> {
  await db.query(named('release_file_hold', 'DELETE FROM worker_holds WHERE file_id = $1 AND instance_id = $2', [fileId, instanceId]));
}

export interface DeadInstance extends WorkerInstance {
  seenSecondsAgo: number;
  /** Scratch folders left for a sweep on the instance's own host. */
  leftoverScratch: string[];
  holds: { fileId: string; scratchDir: string | null }[];
}

/** Instances not seen for `orphanSeconds`, with what they held. */
export async function listDeadWorkerInstances(db: Queryable, orphanSeconds: number): Promise<DeadInstance[]> {
  const r = await db.query<DeadInstance>(
    `SELECT w.id, w.service, w.host, w.pid, extract(epoch FROM now() - w.seen_at)::float8 AS "seenSecondsAgo", w.leftover_scratch AS "leftoverScratch",
            coalesce(json_agg(json_build_object('fileId', h.file_id, 'scratchDir', h.scratch_dir)) FILTER (WHERE h.file_id IS NOT NULL), '[]') AS holds
       FROM worker_instances w LEFT JOIN worker_holds h ON h.instance_id = w.id
      WHERE w.seen_at < now() - make_interval(secs => $1::int)
      GROUP BY w.id`,
    [orphanSeconds],
  );
  return r.rows;
}

export interface UnheldFile {
  fileId: string;
  jobId: string;
  jobType: 'convert' | 'compress';
  sourceKind: string | null;
  tool: string | null;
  attempts: number;
}

/**
 * Files left 'processing' that no live instance holds: their holder died (a dead holder's hold counts
 * as none), or their last attempt ended without recording an outcome (its final write failed).
 * Whether a queue message still carries each one is for the caller to check.
 */
export async function listUnheldProcessingFiles(db: Queryable, orphanSeconds: number, limit = 500): Promise<UnheldFile[]> {
  const r = await db.query<UnheldFile>(
    `SELECT f.id AS "fileId", f.job_id AS "jobId", j.job_type AS "jobType", f.source_kind AS "sourceKind", j.tool, f.attempts
       FROM job_files f JOIN jobs j ON j.id = f.job_id
      WHERE f.status = 'processing' AND NOT j.cancelled
        AND NOT EXISTS (SELECT 1 FROM worker_holds h JOIN worker_instances w ON w.id = h.instance_id
                         WHERE h.file_id = f.id AND w.seen_at > now() - make_interval(secs => $1::int))
      LIMIT $2`,
    [orphanSeconds, limit],
  );
  return r.rows;
}

/**
 * Jobs waiting for their archive (createArchive, every file final, still 'processing'): the reconcile
 * sweep settles those whose archive.build message is gone (its retries used up by crashes, expiries
 * or a long storage outage), which would otherwise wait forever. Few jobs are processing at any time;
 * jobs_active_by_key (a partial index on them) keeps this off the history.
 */
export async function listJobsAwaitingArchive(db: Queryable, limit = 500): Promise<string[]> {
  const r = await db.query<{ id: string }>(
    `SELECT id FROM jobs
      WHERE status = 'processing' AND create_archive AND NOT cancelled AND completed_files + failed_files >= total_files
      LIMIT $1`,
    [limit],
  );
  return r.rows.map((row) => row.id);
}

/** Runs `fn` only if no other process is running it now (a transaction-scoped advisory lock). */
export async function tryWithSweepLock<T>(client: Queryable, fn: () => Promise<T>): Promise<T | undefined> {
  // 0x6b696c6e = 'kiln': one fixed key for the reconcile sweep.
  const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(1802071150, 7) AS ok');
  if (!got.rows[0]?.ok) return undefined;
  return fn();
}
