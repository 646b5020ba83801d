/**
 * Jobs, their files and the blobs they produced. This table set is the record of what happened;
 * pg-boss only carries messages. A job's counters move only in the statement that moves one of its
 * files out of pending/processing (finishFile), under the job row's lock, so a retried or duplicated
 * message, which finds its file already final, can never double-count.
 *
 * The rows hold facts, not client sentences: a job that failed because every file failed, or was
 * cancelled, is told by its counters and its `cancelled` flag, and the gateway words it. Only messages
 * a caller passes in are stored (a file's error, an archive that could not be built).
 */
import type { Dialect } from '@kiln/contracts';
import { countJobs, countJobsStatement } from './job-totals.repo.ts';
import { named, namedByText, type PoolClient, type Queryable } from './pool.ts';

export type JobStatus = 'pending' | 'processing' | 'completed' | 'failed';
export type FileStatus = JobStatus;

/** A further input of one tool run (image-to-pdf's other pages, watermark's overlay), stored as JSON. */
export interface ExtraSource {
  key: string;
  filename: string;
  /** `page` (image-to-pdf) or `overlay` (watermark). */
  role: string;
  /** Set when a worker fetches it; `kind` and `size` are filled in once it has. */
  url?: string;
  kind?: string | null;
  size?: number | null;
}

export interface NewJobFile {
  id: string;
  idx: number;
  filename: string;
  sourceKey: string;
  sourceKind: string | null;
  /** Null until a URL source's bytes have been fetched. */
  originalSize: number | null;
  options: Record<string, unknown>;
  /** A URL source: a worker fetches it into sourceKey, under sourceMaxBytes. */
  sourceUrl?: string | null;
  sourceMaxBytes?: number | null;
  extraSources?: ExtraSource[] | null;
}

export interface NewJob {
  id: string;
  apiKeyId: string;
  jobType: 'convert' | 'compress';
  createArchive: boolean;
  files: NewJobFile[];
  /** The creating key's result retention; null/undefined means the workers' RETENTION_HOURS. */
  retentionHours?: number | null;
  /** The API the job came in through; 'convertly' when unset. */
  dialect?: Dialect;
  /** The media tool the job runs; null for conversions. */
  tool?: string | null;
  /** Kiln's per-job webhook (`webhookUrl`): sent every event of the job. */
  webhookUrl?: string | null;
}

export interface JobRow {
  id: string;
  apiKeyId: string;
  jobType: 'convert' | 'compress';
  /** The API the job came in through (contracts' DIALECTS). */
  dialect: Dialect;
  status: JobStatus;
  createArchive: boolean;
  totalFiles: number;
  completedFiles: number;
  failedFiles: number;
  /** A message a worker recorded (the archive could not be built). Older rows also hold the sentences the gateway now derives. */
  errorMessage: string | null;
  cancelled: boolean;
  createdAt: Date;
  startedAt: Date | null;
  completedAt: Date | null;
  expiresAt: Date | null;
  archiveFileId: string | null;
  progress: number;
  tool: string | null;
}

export interface JobFileRow extends NewJobFile {
  jobId: string;
  sourceUrl: string | null;
  sourceMaxBytes: number | null;
  extraSources: ExtraSource[] | null;
  status: FileStatus;
  progress: number;
  attempts: number;
  result: Record<string, unknown> | null;
  outputFileId: string | null;
  errorCode: string | null;
  errorMessage: string | null;
}

export interface StoredFileRow {
  id: string;
  jobId: string;
  storageKey: string;
  filename: string;
  mimeType: string;
  size: number;
}

const JOB_COLS = `j.id, j.api_key_id AS "apiKeyId", j.job_type AS "jobType", j.status, j.create_archive AS "createArchive",
  j.total_files AS "totalFiles", j.completed_files AS "completedFiles", j.failed_files AS "failedFiles",
  j.error_message AS "errorMessage", j.cancelled, j.created_at AS "createdAt", j.started_at AS "startedAt",
  j.completed_at AS "completedAt", j.expires_at AS "expiresAt", j.archive_file_id AS "archiveFileId", j.dialect, j.tool,
  CASE WHEN j.status IN ('completed','failed') THEN 100 ELSE
    (SELECT coalesce(floor(avg(CASE WHEN f.status IN ('completed','failed') THEN 100 ELSE f.progress END)), 0)::int
       FROM job_files f WHERE f.job_id = j.id) END AS progress`;

const FILE_COLS = `id, job_id AS "jobId", idx, filename, source_key AS "sourceKey", source_kind AS "sourceKind",
  original_size AS "originalSize", options, status, progress, attempts, result, output_file_id AS "outputFileId",
  error_code AS "errorCode", error_message AS "errorMessage", source_url AS "sourceUrl", source_max_bytes::float8 AS "sourceMaxBytes",
  extra_sources AS "extraSources"`;

const STORED_COLS = `id, job_id AS "jobId", storage_key AS "storageKey", filename, mime_type AS "mimeType", size`;

/**
 * SQL another package adds to one of our statements (the queue's messages: @kiln/queue's
 * insertFragment), which db does not otherwise know: CTEs for the WITH list, a scalar the final SELECT
 * evaluates, and the parameters its CTEs number from the index they were given.
 */
export interface SqlFragment {
  ctes: string;
  inserted: string;
  values: unknown[];
}

const INSERT_JOB = `j AS (
       INSERT INTO jobs (id, api_key_id, job_type, create_archive, total_files, retention_hours, dialect, tool, webhook_url) VALUES ($1, $2, $3, $4, $5, $6, $8, $9, $10)
       RETURNING id)`;
const INSERT_FILES = `INSERT INTO job_files (id, job_id, idx, filename, source_key, source_kind, original_size, options, source_url, source_max_bytes, extra_sources)
     SELECT f.id, j.id, f.idx, f.filename, f.source_key, f.source_kind, f.original_size, f.options, f.source_url, f.source_max_bytes, f.extra_sources
       FROM j, jsonb_to_recordset($7::jsonb) AS f(id uuid, idx int, filename text, source_key text, source_kind text, original_size bigint, options jsonb,
                                                source_url text, source_max_bytes bigint, extra_sources jsonb)`;
/** The first parameter index a fragment may use: insertJob's own are $1–$10. */
const FIRST_FRAGMENT_PARAM = 11;

/**
 * One statement for the job and all its files, however many there are; with `messages` (called with
 * the first parameter index it may use), the queue's messages too, so the job, its files and its
 * messages commit together in one round trip without a transaction (on `db` = a pool), or as one
 * statement of the caller's transaction. Returns how many messages were inserted.
 */
export async function insertJob(db: Queryable, job: NewJob, messages?: (firstParam: number) => SqlFragment): Promise<number> {
  const values = [
    job.id,
    job.apiKeyId,
    job.jobType,
    job.createArchive,
    job.files.length,
    job.retentionHours ?? null,
    JSON.stringify(
      job.files.map((f) => ({
        id: f.id,
        idx: f.idx,
        filename: f.filename,
        source_key: f.sourceKey,
        source_kind: f.sourceKind,
        original_size: f.originalSize,
        options: f.options,
        source_url: f.sourceUrl ?? null,
        source_max_bytes: f.sourceMaxBytes ?? null,
        extra_sources: f.extraSources ?? null,
      })),
    ),
    job.dialect ?? 'convertly',
    job.tool ?? null,
    job.webhookUrl ?? null,
  ];
  if (!messages) {
    await db.query(named('insert_job', `WITH ${INSERT_JOB}\n     ${INSERT_FILES}`, values));
    return 0;
  }
  const m = messages(FIRST_FRAGMENT_PARAM);
  const text = `WITH ${INSERT_JOB},\n     files AS (${INSERT_FILES}),\n${m.ctes}\n     SELECT ${m.inserted} AS messages`;
  // The text differs only with the queues the job's files go to, so a handful of names in all.
  const r = await db.query<{ messages: string }>(namedByText('insert_job_messages', text, [...values, ...m.values]));
  return Number(r.rows[0]?.messages ?? 0);
}

/**
 * Claims an Idempotency-Key for a job inside the job's transaction. Returns the job id that owns the
 * key: `jobId` itself when this request claimed it, an older job's id when the key was used before.
 */
export async function claimIdempotencyKey(db: Queryable, apiKeyId: string, key: string, jobId: string): Promise<string> {
  const r = await db.query<{ job_id: string }>(
    `INSERT INTO idempotency_keys (api_key_id, key, job_id) VALUES ($1, $2, $3)
     ON CONFLICT (api_key_id, key) DO NOTHING RETURNING job_id`,
    [apiKeyId, key, jobId],
  );
  if (r.rows[0]) return r.rows[0].job_id;
  const existing = await db.query<{ job_id: string }>(`SELECT job_id FROM idempotency_keys WHERE api_key_id = $1 AND key = $2`, [apiKeyId, key]);
  return existing.rows[0]!.job_id;
}

export async function findIdempotentJob(db: Queryable, apiKeyId: string, key: string): Promise<string | undefined> {
  const r = await db.query<{ job_id: string }>(`SELECT job_id FROM idempotency_keys WHERE api_key_id = $1 AND key = $2`, [apiKeyId, key]);
  return r.rows[0]?.job_id;
}

/** A job as its owner sees it; `apiKeyId` undefined means the operator (dashboard) view. */
export async function getJob(db: Queryable, jobId: string, apiKeyId?: string): Promise<JobRow | undefined> {
  const r = await db.query<JobRow>(
    apiKeyId
      ? named('job_for_key', `SELECT ${JOB_COLS} FROM jobs j WHERE j.id = $1 AND j.api_key_id = $2`, [jobId, apiKeyId])
      : named('job', `SELECT ${JOB_COLS} FROM jobs j WHERE j.id = $1`, [jobId]),
  );
  return r.rows[0];
}

/** A job's files with their outputs, for `WHERE f.job_id = …`. */
const FILES_WITH_OUTPUT = `SELECT ${FILE_COLS.split(', ')
  .map((c) => 'f.' + c.trim())
  .join(', ')},
            CASE WHEN s.id IS NULL THEN NULL ELSE json_build_object('id', s.id, 'jobId', s.job_id, 'storageKey', s.storage_key,
              'filename', s.filename, 'mimeType', s.mime_type, 'size', s.size) END AS output
       FROM job_files f LEFT JOIN stored_files s ON s.id = f.output_file_id`;

export type JobFileWithOutput = JobFileRow & { output: StoredFileRow | null };

export async function getJobFiles(db: Queryable, jobId: string): Promise<JobFileWithOutput[]> {
  const r = await db.query<JobFileWithOutput>(named('job_files', `${FILES_WITH_OUTPUT} WHERE f.job_id = $1 ORDER BY f.idx`, [jobId]));
  return r.rows;
}

/**
 * A job and its files in one round trip (GET /api/jobs/:id, the sync answers). The files travel as
 * JSON: every JobFileRow field is a string, number, boolean or JSON value, so nothing changes type.
 */
export async function getJobWithFiles(db: Queryable, jobId: string, apiKeyId: string): Promise<{ job: JobRow; files: JobFileWithOutput[] } | undefined> {
  const r = await db.query<JobRow & { files: JobFileWithOutput[] }>(
    named(
      'job_with_files',
      `SELECT ${JOB_COLS},
            coalesce((SELECT json_agg(x ORDER BY x.idx) FROM (${FILES_WITH_OUTPUT} WHERE f.job_id = j.id) x), '[]'::json) AS files
       FROM jobs j WHERE j.id = $1 AND j.api_key_id = $2`,
      [jobId, apiKeyId],
    ),
  );
  const row = r.rows[0];
  if (!row) return undefined;
  const { files, ...job } = row;
  return { job, files };
}

export interface ListJobsQuery {
  apiKeyId?: string;
  status?: JobStatus;
  limit: number;
  offset: number;
  /**
   * Keyset paging: the page starts after this job in the listing's order (newest first), and `offset`
   * counts from there. Postgres then starts the index scan at the job instead of stepping over every
   * entry before it, so a deep page costs what the first does. A job that is not in the listing's
   * scope (another key's, or none) gives an empty page: `listJobs` says so with `afterFound`.
   */
  after?: string;
}

/**
 * A page of jobs, newest first, and how many there are. The page's ids come from an index-only scan
 * of jobs_by_key / jobs_by_key_status / jobs_by_created (migrations/0010): OFFSET skips index
 * entries, and only the page's own rows are read. `total` is read from the job totals, not counted.
 */
export async function listJobs(db: Queryable, q: ListJobsQuery): Promise<{ jobs: JobRow[]; total: number; hasMore: boolean; afterFound: boolean }> {
  // One row more than the page: whether another page follows, without counting where this one is.
  const [rows, total] = await Promise.all([
    db.query<JobRow>(listJobsStatement({ ...q, limit: q.limit + 1 })),
    countJobs(db, { ...(q.apiKeyId ? { apiKeyId: q.apiKeyId } : {}), ...(q.status ? { status: q.status } : {}) }),
  ]);
  const jobs = rows.rows.slice(0, q.limit);
  // Only an empty page can mean the cursor was not found; one primary-key lookup tells.
  let afterFound = true;
  if (q.after && jobs.length === 0) {
    const found = await db.query('SELECT 1 FROM jobs WHERE id = $1 AND ($2::uuid IS NULL OR api_key_id = $2)', [q.after, q.apiKeyId ?? null]);
    afterFound = (found.rowCount ?? 0) > 0;
  }
  return { jobs, total, hasMore: rows.rows.length > q.limit, afterFound };
}

/** The statements behind listJobs, for EXPLAIN (the growth benchmark and its test check their plans). */
export function listJobsStatements(q: ListJobsQuery): { text: string; values: unknown[] }[] {
  const page = listJobsStatement(q);
  return [{ text: page.text, values: page.values ?? [] }, countJobsStatement({ ...(q.apiKeyId ? { apiKeyId: q.apiKeyId } : {}), ...(q.status ? { status: q.status } : {}) })];
}

function listJobsStatement(q: ListJobsQuery) {
  const where: string[] = [];
  const args: unknown[] = [];
  if (q.apiKeyId) {
    args.push(q.apiKeyId);
    where.push(`api_key_id = $${args.length}`);
  }
  if (q.status) {
    args.push(q.status);
    where.push(`status = $${args.length}`);
  }
  if (q.after) {
    // The cursor's place, looked up once (an InitPlan): the index scan starts at it, in the index's
    // own order (created_at DESC, id), so LIMIT stops after the page. Ties on created_at are ordered
    // by id, which the second condition handles for the few entries sharing the cursor's instant.
    args.push(q.after);
    const cur = `(SELECT created_at FROM jobs c WHERE c.id = $${args.length}${q.apiKeyId ? ' AND c.api_key_id = $1' : ''})`;
    where.push(`created_at <= ${cur} AND (created_at < ${cur} OR id > $${args.length})`);
  }
  const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
  args.push(q.limit, q.offset);
  return named(
    `list_jobs_${q.apiKeyId ? 'k' : ''}${q.status ? 's' : ''}${q.after ? 'a' : ''}`,
    `SELECT ${JOB_COLS}
       FROM (SELECT id, created_at FROM jobs ${w} ORDER BY created_at DESC, id LIMIT $${args.length - 1} OFFSET $${args.length}) page
       JOIN jobs j ON j.id = page.id
      ORDER BY page.created_at DESC, page.id`,
    args,
  );
}

/** Cancels a pending job: it and its pending files end failed, the files with error code `cancelled`. */
export async function cancelJob(db: Queryable, jobId: string, apiKeyId: string, retentionHours: number): Promise<'cancelled' | 'not_found' | JobStatus> {
  // One statement: a live stream (or anyone) never sees the job cancelled with its files still pending.
  const r = await db.query<{ id: string }>(
    `WITH j AS (
       UPDATE jobs SET status = 'failed', cancelled = true, completed_at = now(),
              expires_at = now() + make_interval(secs => coalesce(retention_hours, $3) * 3600)
        WHERE id = $1 AND api_key_id = $2 AND status = 'pending' RETURNING id),
     f AS (
       UPDATE job_files SET status = 'failed', error_code = 'cancelled', completed_at = now()
        WHERE job_id = (SELECT id FROM j) AND status = 'pending')
     SELECT id FROM j`,
    [jobId, apiKeyId, retentionHours],
  );
  if (r.rowCount) return 'cancelled';
  const existing = await getJob(db, jobId, apiKeyId);
  return existing ? existing.status : 'not_found';
}

export async function getStoredFile(db: Queryable, id: string): Promise<StoredFileRow | undefined> {
  const r = await db.query<StoredFileRow>(named('stored_file', `SELECT ${STORED_COLS} FROM stored_files WHERE id = $1`, [id]));
  return r.rows[0];
}

// ---- worker side -------------------------------------------------------------------------------

export interface FileClaim {
  file: JobFileRow;
  job: Pick<JobRow, 'id' | 'jobType' | 'dialect' | 'status' | 'cancelled' | 'createArchive' | 'tool'>;
  /** This claim moved the job from pending to processing (exactly one claim per job does). */
  jobStarted: boolean;
}

type ClaimRow = JobFileRow & {
  jobStatus: JobStatus;
  jobType: 'convert' | 'compress';
  dialect: Dialect;
  cancelled: boolean;
  createArchive: boolean;
  tool: string | null;
  jobStarted: boolean;
};

const CLAIM_COLS = `${FILE_COLS.split(', ')
  .map((c) => 'f.' + c.trim())
  .join(', ')}, jobs.status AS "jobStatus", jobs.job_type AS "jobType", jobs.dialect, jobs.cancelled,
            jobs.create_archive AS "createArchive", jobs.tool, EXISTS (SELECT 1 FROM j) AS "jobStarted"`;

// The claim itself, shared by both statements: attempts + 1, the job pending → processing, never a
// file already final or of a cancelled job. `$1` is the file id; `fWhere` picks the file.
const claimCtes = (fWhere: string) => `f AS (
       UPDATE job_files SET status = 'processing', attempts = attempts + 1, started_at = coalesce(started_at, now())
        WHERE ${fWhere} AND status IN ('pending', 'processing')
          AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_files.job_id AND jobs.cancelled)
        RETURNING *),
     j AS (
       UPDATE jobs SET status = 'processing', started_at = coalesce(started_at, now())
        WHERE id = (SELECT job_id FROM f) AND status = 'pending' RETURNING id)`;

function toClaim(row: ClaimRow): FileClaim {
  const { jobStatus, jobType, dialect, cancelled, createArchive, tool, jobStarted, ...file } = row;
  return { file, job: { id: file.jobId, jobType, dialect, status: jobStatus, cancelled, createArchive, tool }, jobStarted };
}

/**
 * Marks a file as being processed and returns it, or undefined when there is nothing to do: the file
 * already reached a final state (a duplicate or retried message) or its job was cancelled.
 */
export async function claimFile(db: Queryable, fileId: string): Promise<FileClaim | undefined> {
  const r = await db.query<ClaimRow>(named('claim_file', `WITH ${claimCtes('id = $1')} SELECT ${CLAIM_COLS} FROM f JOIN jobs ON jobs.id = f.job_id`, [fileId]));
  const row = r.rows[0];
  return row ? toClaim(row) : undefined;
}

/** The hold a claim takes in a worker process's name (worker_holds, migration 0010). */
export interface HoldRequest {
  instanceId: string;
  /** WORKER_ORPHAN_SECONDS: a holder not seen for this long is dead, and its hold is taken over. */
  orphanSeconds: number;
  /** Where the attempt's scratch folder will be (it may not exist yet), for the sweep after a crash. */
  scratchDir: string | null;
}

export type HeldClaim =
  /** The hold is ours and the file is claimed. */
  | { outcome: 'claimed'; claim: FileClaim }
  /** Another live process holds the file: this message is a duplicate. Nothing was written. */
  | { outcome: 'refused'; holder: string }
  /**
   * Nothing to claim: the file is final or its job cancelled. `holdTaken`: the file was claimable
   * when the statement began and was finished or cancelled concurrently, after the hold was written;
   * the caller must release that hold.
   */
  | { outcome: 'nothing'; holdTaken: boolean };

/**
 * claimFile and taking the file's hold for `hold.instanceId` in one statement. The hold is taken when
 * nobody holds the file, when this instance already does, or when the holder has not been seen for
 * `orphanSeconds` (it is dead: its hold is taken over). The claim runs only when the hold was taken,
 * so a duplicate message for a file another live process holds changes nothing (no attempt counted),
 * and the hold is written only for a file there is something to do for.
 */
export async function claimFileHeld(db: Queryable, fileId: string, hold: HoldRequest): Promise<HeldClaim> {
  const r = await db.query<Partial<ClaimRow> & { claimable: boolean; held: boolean; holder: string | null }>(
    named(
      'claim_file_held',
      // A data-modifying CTE cannot see another's rows (one snapshot for the whole statement), so
      // `c` decides claimability from the snapshot, `h` takes the hold only then, and the claim `f`
      // waits for `h`'s row. `holder` reads the snapshot: a hold committed before this statement.
      `WITH c AS (
       SELECT id FROM job_files
        WHERE id = $1 AND status IN ('pending', 'processing')
          AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_files.job_id AND jobs.cancelled)),
     -- A dead holder's hold is taken over below; its scratch folder is kept on its instance's row,
     -- where the sweep (listDeadWorkerInstances' leftover_scratch) still finds it. h reads d before
     -- it writes, so the instance row is locked before the hold row: the sweep's own order.
     d AS (
       UPDATE worker_instances w SET leftover_scratch = array_append(w.leftover_scratch, o.scratch_dir)
         FROM worker_holds o
        WHERE o.file_id = $1 AND o.instance_id <> $2::uuid AND o.scratch_dir IS NOT NULL AND EXISTS (SELECT 1 FROM c)
          AND w.id = o.instance_id AND w.seen_at <= now() - make_interval(secs => $3::int)
       RETURNING w.id),
     h AS (
       INSERT INTO worker_holds (file_id, instance_id, scratch_dir) SELECT id, $2::uuid, $4::text FROM c WHERE (SELECT count(*) FROM d) >= 0
       ON CONFLICT (file_id) DO UPDATE SET instance_id = excluded.instance_id, scratch_dir = excluded.scratch_dir, held_at = now()
        WHERE worker_holds.instance_id = excluded.instance_id
           OR NOT EXISTS (SELECT 1 FROM worker_instances w
                           WHERE w.id = worker_holds.instance_id AND w.seen_at > now() - make_interval(secs => $3::int))
       RETURNING file_id),
     ${claimCtes('id = (SELECT file_id FROM h)')}
     SELECT ${CLAIM_COLS}, EXISTS (SELECT 1 FROM c) AS claimable, EXISTS (SELECT 1 FROM h) AS held,
            (SELECT instance_id FROM worker_holds WHERE file_id = $1) AS holder
       FROM (SELECT) one LEFT JOIN (f JOIN jobs ON jobs.id = f.job_id) ON true`,
      [fileId, hold.instanceId, hold.orphanSeconds, hold.scratchDir],
    ),
  );
  const { claimable, held, holder, ...row } = r.rows[0]!;
  if (row.id) return { outcome: 'claimed', claim: toClaim(row as ClaimRow) };
  if (claimable && !held) {
    // The holder's hold was committed after this statement's snapshot (rare): look again.
    const again = holder ?? (await db.query<{ instance_id: string }>('SELECT instance_id FROM worker_holds WHERE file_id = $1', [fileId])).rows[0]?.instance_id;
    return { outcome: 'refused', holder: again ?? 'unknown' };
  }
  return { outcome: 'nothing', holdTaken: held };
}

/**
 * A URL source's bytes are in storage now: what they are and how many. Later attempts of the same
 * file (a retried conversion) see them and do not fetch again.
 */
export async function recordFetchedSource(db: Queryable, fileId: string, fetched: { kind: string | null; size: number; extraSources?: ExtraSource[] | null }): Promise<void> {
  await db.query(`UPDATE job_files SET source_kind = $2, original_size = $3, extra_sources = coalesce($4::jsonb, extra_sources) WHERE id = $1`, [
    fileId,
    fetched.kind,
    fetched.size,
    fetched.extraSources ? JSON.stringify(fetched.extraSources) : null,
  ]);
}

export async function setFileProgress(db: Queryable, fileId: string, progress: number): Promise<void> {
  await db.query(
    named('file_progress', `UPDATE job_files SET progress = $2 WHERE id = $1 AND status = 'processing' AND progress < $2`, [
      fileId,
      Math.max(0, Math.min(99, Math.round(progress))),
    ]),
  );
}

export type FileOutcome = { ok: true; output: Omit<StoredFileRow, 'id' | 'jobId'>; result: Record<string, unknown> } | { ok: false; code: string; message: string };

export interface JobProgressAfter {
  /** Every file reached a final state with this call. */
  allFilesDone: boolean;
  /** The job itself reached completed/failed (false while an archive is still to be built). */
  jobFinal: boolean;
  needsArchive: boolean;
  status: JobStatus;
}

/**
 * Records a file's outcome and moves the job on, in one statement (one round trip, atomic on its own):
 * store the output row, finalise the file, bump the job's counters and, when this was the last file,
 * settle the job. Concurrent finishers serialise on the job row, and each sees the counters the one
 * before left (READ COMMITTED re-reads a row it waited for). Returns undefined when the file was already
 * final (a duplicate or retried message): nothing changes then. `retentionHours` is the fallback for
 * jobs created without a per-key retention; `notify` names a channel told the job id when the job ends.
 * `holder`: the worker instance whose hold on the file (claimFileHeld) this attempt ends; the hold is
 * deleted in the same statement, whether or not the file was still to finish.
 */
export async function finishFile(
  db: Queryable,
  jobId: string,
  fileId: string,
  outcome: FileOutcome,
  retentionHours: number,
  notify?: string,
  holder?: string,
  also?: (firstParam: number) => { ctes: string; values: unknown[] },
): Promise<JobProgressAfter | undefined> {
  const ok = outcome.ok;
  // More writes of the same statement (the queue message's completion, @kiln/queue's
  // completionFragment): data-modifying CTEs run whether or not the final SELECT reads them.
  const extra = also?.(FINISH_FRAGMENT_PARAM);
  const text = `WITH ${extra ? `${extra.ctes},\n     ` : ''}${FINISH_FILE}`;
  const values = [
    fileId,
    jobId,
    ok ? outcome.output.storageKey : null,
    ok ? outcome.output.filename : null,
    ok ? outcome.output.mimeType : null,
    ok ? outcome.output.size : null,
    ok,
    ok ? JSON.stringify(outcome.result) : null,
    ok ? null : outcome.code,
    ok ? null : outcome.message,
    retentionHours,
    notify ?? null,
    holder ?? null,
    ...(extra?.values ?? []),
  ];
  const r = await db.query<{ status: JobStatus; all_done: boolean; job_final: boolean; needs_archive: boolean }>(
    extra ? namedByText('finish_file', text, values) : named('finish_file', text, values),
  );
  const row = r.rows[0];
  if (!row) return undefined;
  return { allFilesDone: row.all_done, jobFinal: row.job_final, needsArchive: row.needs_archive, status: row.status };
}

/** finishFile's own parameters are $1–$13; a fragment's start here. */
const FINISH_FRAGMENT_PARAM = 14;

const FINISH_FILE = `s AS (
       INSERT INTO stored_files (job_id, storage_key, filename, mime_type, size)
       SELECT $2::uuid, $3::text, $4::text, $5::text, $6::bigint WHERE $7::boolean
       ON CONFLICT (storage_key) DO UPDATE SET filename = EXCLUDED.filename, mime_type = EXCLUDED.mime_type, size = EXCLUDED.size
       RETURNING id),
     f AS (
       UPDATE job_files SET status = CASE WHEN $7 THEN 'completed' ELSE 'failed' END, progress = 100,
              output_file_id = (SELECT id FROM s), result = $8::jsonb, completed_at = now(),
              error_code = $9::text, error_message = $10::text
        WHERE id = $1 AND status IN ('pending', 'processing')
        RETURNING *),
     j AS (
       UPDATE jobs SET
              completed_files = completed_files + $7::int,
              failed_files = failed_files + (NOT $7)::int,
              status = CASE
                WHEN cancelled OR status NOT IN ('pending', 'processing') THEN status
                WHEN completed_files + failed_files + 1 < total_files THEN 'processing'
                WHEN completed_files + $7::int > 0 AND create_archive THEN 'processing'
                WHEN completed_files + $7::int > 0 THEN 'completed'
                ELSE 'failed' END,
              completed_at = CASE
                WHEN NOT cancelled AND status IN ('pending', 'processing') AND completed_files + failed_files + 1 >= total_files
                     AND NOT (create_archive AND completed_files + $7::int > 0)
                THEN now() ELSE completed_at END,
              expires_at = CASE
                WHEN NOT cancelled AND status IN ('pending', 'processing') AND completed_files + failed_files + 1 >= total_files
                     AND NOT (create_archive AND completed_files + $7::int > 0)
                THEN now() + make_interval(secs => coalesce(retention_hours, $11) * 3600) ELSE expires_at END
        WHERE id = $2 AND EXISTS (SELECT 1 FROM f)
        -- now() is the statement's transaction time: completed_at equals it only if this statement set it.
        RETURNING *, completed_at IS NOT NULL AND completed_at = now() AS job_final,
                  completed_files + failed_files >= total_files AS all_done,
                  NOT cancelled AND status = 'processing' AND create_archive AND completed_files > 0
                    AND completed_files + failed_files >= total_files AS needs_archive),
     -- The attempt's hold: the outcome is written, so the file is nobody's any more.
     h AS (DELETE FROM worker_holds WHERE file_id = $1 AND instance_id = $13::uuid),
     -- The waiters' notice. A job of one file carries itself and its file (what getJobWithFiles
     -- returns), so the sync answer needs no read; the file row is this statement's own. Jobs of
     -- several files carry the id only: their other files may have been finished by statements that
     -- committed after this one's snapshot. Payloads near pg_notify's 8000-byte limit fall back too.
     n AS (
       SELECT CASE WHEN j.total_files = 1 THEN json_build_object(
                'id', j.id,
                'job', json_build_object('id', j.id, 'apiKeyId', j.api_key_id, 'jobType', j.job_type, 'status', j.status,
                  'createArchive', j.create_archive, 'totalFiles', j.total_files, 'completedFiles', j.completed_files,
                  'failedFiles', j.failed_files, 'errorMessage', j.error_message, 'cancelled', j.cancelled, 'createdAt', j.created_at,
                  'startedAt', j.started_at, 'completedAt', j.completed_at, 'expiresAt', j.expires_at, 'archiveFileId', j.archive_file_id,
                  'dialect', j.dialect, 'tool', j.tool, 'progress', 100),
                'files', json_build_array(json_build_object('id', f.id, 'jobId', f.job_id, 'idx', f.idx, 'filename', f.filename,
                  'sourceKey', f.source_key, 'sourceKind', f.source_kind, 'originalSize', f.original_size, 'options', f.options,
                  'status', f.status, 'progress', f.progress, 'attempts', f.attempts, 'result', f.result, 'outputFileId', f.output_file_id,
                  'errorCode', f.error_code, 'errorMessage', f.error_message, 'sourceUrl', f.source_url,
                  'sourceMaxBytes', f.source_max_bytes::float8, 'extraSources', f.extra_sources,
                  'output', CASE WHEN f.output_file_id IS NULL THEN NULL ELSE json_build_object('id', f.output_file_id, 'jobId', j.id,
                    'storageKey', $3::text, 'filename', $4::text, 'mimeType', $5::text, 'size', $6::bigint) END))
              )::text END AS body
         FROM j, f
        WHERE j.job_final AND NOT j.cancelled AND $12::text IS NOT NULL)
     SELECT status, all_done, job_final AND NOT cancelled AS job_final, needs_archive,
            CASE WHEN job_final AND NOT cancelled AND $12::text IS NOT NULL THEN pg_notify($12,
              coalesce((SELECT CASE WHEN octet_length(body) < 7900 THEN body END FROM n), $2::text)) END AS notified
       FROM j`;

/** Records the job's archive (or the reason there is none) and completes the job. */
export async function finishArchive(tx: PoolClient, jobId: string, archive: Omit<StoredFileRow, 'id' | 'jobId'> | { error: string }, retentionHours: number): Promise<boolean> {
  let archiveId: string | null = null;
  if (!('error' in archive)) {
    const s = await tx.query<{ id: string }>(
      `INSERT INTO stored_files (job_id, storage_key, filename, mime_type, size) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (storage_key) DO UPDATE SET size = EXCLUDED.size RETURNING id`,
      [jobId, archive.storageKey, archive.filename, archive.mimeType, archive.size],
    );
    archiveId = s.rows[0]!.id;
  }
  const r = await tx.query(
    `UPDATE jobs SET status = 'completed', archive_file_id = $2, completed_at = now(),
            error_message = $3, expires_at = now() + make_interval(secs => coalesce(retention_hours, $4) * 3600)
      WHERE id = $1 AND status = 'processing'`,
    [jobId, archiveId, 'error' in archive ? archive.error : null, retentionHours],
  );
  return (r.rowCount ?? 0) > 0;
}

/**
 * Jobs whose retention ran out, with every blob key they own, oldest first. A job owns the sources
 * under its own folder; a source elsewhere (a TurboFiles upload several tasks may read) belongs to
 * its file and expires with it.
 */
export async function expiredJobs(db: Queryable, limit = 100): Promise<{ id: string; keys: string[] }[]> {
  const r = await db.query<{ id: string; keys: string[] }>(
    `SELECT j.id,
            array_remove(array_cat(
              ARRAY(SELECT source_key FROM job_files WHERE job_id = j.id AND starts_with(source_key, 'jobs/' || j.id || '/')),
              ARRAY(SELECT storage_key FROM stored_files WHERE job_id = j.id)), NULL) AS keys
       FROM jobs j WHERE j.expires_at < now() AND j.purged_at IS NULL ORDER BY j.expires_at LIMIT $1`,
    [limit],
  );
  return r.rows;
}

/** After retention: the blobs are gone, so their rows go too; the job row stays as the record. */
export async function markJobPurged(db: Queryable, jobId: string): Promise<void> {
  await markJobsPurged(db, [jobId]);
}

/**
 * markJobPurged for a batch, in one statement: the jobs' rows are marked and their stored files
 * deleted together. Each row is locked only for this statement (the foreign keys' lookups use
 * job_files_by_output / jobs_by_archive, so nothing scans a table), never across a sweep.
 */
export async function markJobsPurged(db: Queryable, jobIds: string[]): Promise<void> {
  if (!jobIds.length) return;
  await db.query(
    named(
      'mark_jobs_purged',
      `WITH j AS (UPDATE jobs SET archive_file_id = NULL, purged_at = now() WHERE id = ANY($1::uuid[]) RETURNING id)
       DELETE FROM stored_files WHERE job_id IN (SELECT id FROM j)`,
      [jobIds],
    ),
  );
}
