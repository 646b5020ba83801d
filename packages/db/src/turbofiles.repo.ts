/**
 * The TurboFiles dialect's own rows (migrations/0005): files declared before their bytes arrive, and
 * the task view of a job. A task's work is an ordinary job (jobs.repo.ts); this file only adds what
 * the dialect shows and the one kind of blob it owns, an upload several tasks may read in place.
 *
 * Lists are cursor-paged on (created_at, id), newest first: the cursor is the row's creation time to
 * the microsecond (as Postgres keeps it) and its id, so rows created in the same microsecond still
 * page without overlap or gap.
 */
import type { Cursor, PageRequest } from '@kiln/contracts';
import { withTransaction, type Pool, type Queryable } from './pool.ts';
import type { JobStatus, StoredFileRow } from './jobs.repo.ts';

export interface TurbofilesFileRow {
  id: string;
  apiKeyId: string;
  format: string;
  kind: string;
  size: number;
  storageKey: string | null;
  readyAt: Date | null;
  uploadError: string | null;
  createdAt: Date;
  updatedAt: Date;
  expiresAt: Date;
  purgedAt: Date | null;
  /** Where a list resumes after this row. */
  cursor: Required<Cursor>;
}

/** A task's output as a file: a stored result of one of the key's tasks. */
export interface TaskOutputRow extends StoredFileRow {
  createdAt: Date;
  /** The task's job expiry: when the result is deleted. */
  expiresAt: Date | null;
  cursor: Required<Cursor>;
}

export type ListedFile = ({ origin: 'upload' } & TurbofilesFileRow) | ({ origin: 'output' } & TaskOutputRow);

export interface TaskRow {
  id: string;
  apiKeyId: string;
  format: { input: string; output: string };
  settings: Record<string, unknown>;
  inputFileId: string;
  status: JobStatus;
  cancelled: boolean;
  createdAt: Date;
  startedAt: Date | null;
  completedAt: Date | null;
  expiresAt: Date | null;
  file: { status: JobStatus; progress: number; result: Record<string, unknown> | null; errorCode: string | null; errorMessage: string | null; originalSize: number };
  output: TaskOutputRow | null;
  cursor: Required<Cursor>;
}

export interface Page<T> {
  rows: T[];
  /** More rows exist in the requested range than the page holds (JSON:API meta.rangeTruncated). */
  truncated: boolean;
  /** Rows exist after the page's last (older) / before its first (newer), whatever the range asked. */
  older: boolean;
  newer: boolean;
}

/** Microseconds, which a JS Date would lose: cursors are compared by Postgres, never by us. */
const at = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

const FILE_COLS = `u.id, u.api_key_id AS "apiKeyId", u.format, u.kind, u.size, u.storage_key AS "storageKey", u.ready_at AS "readyAt",
  u.upload_error AS "uploadError", u.created_at AS "createdAt", u.updated_at AS "updatedAt", u.expires_at AS "expiresAt",
  u.purged_at AS "purgedAt", ${at('u.created_at')} AS "cursorAt"`;

type WithCursorAt<T> = Omit<T, 'cursor'> & { cursorAt: string };
function withCursor<T extends { id: string }>(row: WithCursorAt<T & { cursor: Required<Cursor> }>): T {
  const { cursorAt, ...rest } = row;
  return { ...rest, cursor: { at: cursorAt, id: row.id } } as unknown as T;
}

export interface NewTurbofilesFile {
  id: string;
  apiKeyId: string;
  format: string;
  kind: string;
  size: number;
  ttlHours: number;
}

export async function createTurbofilesFile(db: Queryable, f: NewTurbofilesFile): Promise<TurbofilesFileRow> {
  const r = await db.query<WithCursorAt<TurbofilesFileRow>>(
    `INSERT INTO turbofiles_files AS u (id, api_key_id, format, kind, size, expires_at)
     VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6 * 3600)) RETURNING ${FILE_COLS}`,
    [f.id, f.apiKeyId, f.format, f.kind, f.size, f.ttlHours],
  );
  return withCursor<TurbofilesFileRow>(r.rows[0]!);
}

/** A declared file, by its owner (or by anyone holding its signed link when `apiKeyId` is undefined). Deleted files are gone. */
export async function getTurbofilesFile(db: Queryable, id: string, apiKeyId?: string): Promise<TurbofilesFileRow | undefined> {
  const r = await db.query<WithCursorAt<TurbofilesFileRow>>(
    `SELECT ${FILE_COLS} FROM turbofiles_files u WHERE u.id = $1 AND u.deleted_at IS NULL AND ($2::uuid IS NULL OR u.api_key_id = $2)`,
    [id, apiKeyId ?? null],
  );
  return r.rows[0] && withCursor<TurbofilesFileRow>(r.rows[0]);
}

export type UploadClaim = { claimed: TurbofilesFileRow } | { refused: 'not_found' | 'expired' | 'ready' | 'busy' };

/**
 * Lets one PUT at a time write a file's bytes: the claim is taken when the file awaits its bytes and
 * nobody holds a claim younger than `staleSeconds` (a gateway that died mid-upload leaves one behind).
 */
export async function claimUpload(db: Queryable, id: string, claim: string, staleSeconds: number): Promise<UploadClaim> {
  const r = await db.query<WithCursorAt<TurbofilesFileRow>>(
    `UPDATE turbofiles_files u SET upload_claim = $2, upload_claimed_at = now()
      WHERE u.id = $1 AND u.deleted_at IS NULL AND u.ready_at IS NULL AND u.purged_at IS NULL AND u.expires_at > now()
        AND (u.upload_claim IS NULL OR u.upload_claimed_at < now() - make_interval(secs => $3))
      RETURNING ${FILE_COLS}`,
    [id, claim, staleSeconds],
  );
  if (r.rows[0]) return { claimed: withCursor<TurbofilesFileRow>(r.rows[0]) };
  const why = await db.query<{ ready: boolean; expired: boolean }>(
    `SELECT ready_at IS NOT NULL AS ready, purged_at IS NOT NULL OR expires_at <= now() AS expired FROM turbofiles_files WHERE id = $1 AND deleted_at IS NULL`,
    [id],
  );
  const row = why.rows[0];
  return { refused: !row ? 'not_found' : row.ready ? 'ready' : row.expired ? 'expired' : 'busy' };
}

/** The claimed attempt's bytes are the file's: READY. False when the claim was lost meanwhile (nothing changes then). */
export async function commitUpload(db: Queryable, id: string, claim: string, storageKey: string, kind: string): Promise<boolean> {
  const r = await db.query(
    `UPDATE turbofiles_files SET storage_key = $3, kind = $4, ready_at = now(), updated_at = now(), upload_claim = NULL, upload_error = NULL
      WHERE id = $1 AND upload_claim = $2 AND ready_at IS NULL AND deleted_at IS NULL`,
    [id, claim, storageKey, kind],
  );
  return (r.rowCount ?? 0) > 0;
}

/** A refused or broken attempt gives its claim back, with the reason clients will see. */
export async function releaseUpload(db: Queryable, id: string, claim: string, error: string | null): Promise<void> {
  await db.query(`UPDATE turbofiles_files SET upload_claim = NULL, upload_error = coalesce($3, upload_error), updated_at = now() WHERE id = $1 AND upload_claim = $2`, [
    id,
    claim,
    error,
  ]);
}

/** Bytes that arrived without passing through Kiln (a presigned PUT) were checked: READY, or why not. */
export async function settleDirectUpload(db: Queryable, id: string, outcome: { storageKey: string; kind: string } | { error: string }): Promise<TurbofilesFileRow | undefined> {
  const r =
    'error' in outcome
      ? await db.query<WithCursorAt<TurbofilesFileRow>>(
          `UPDATE turbofiles_files u SET upload_error = $2, updated_at = now() WHERE u.id = $1 AND u.ready_at IS NULL AND u.deleted_at IS NULL RETURNING ${FILE_COLS}`,
          [id, outcome.error],
        )
      : await db.query<WithCursorAt<TurbofilesFileRow>>(
          `UPDATE turbofiles_files u SET storage_key = $2, kind = $3, ready_at = now(), updated_at = now(), upload_error = NULL
            WHERE u.id = $1 AND u.ready_at IS NULL AND u.deleted_at IS NULL RETURNING ${FILE_COLS}`,
          [id, outcome.storageKey, outcome.kind],
        );
  return r.rows[0] && withCursor<TurbofilesFileRow>(r.rows[0]);
}

/** True when a task still pending or processing reads this file. */
const ACTIVE_TASK = `EXISTS (SELECT 1 FROM turbofiles_tasks t JOIN jobs j ON j.id = t.job_id WHERE t.input_file_id = $1 AND j.status IN ('pending', 'processing'))`;

/**
 * Deletes a declared file unless a task still reads it. The row's lock makes a task being created on
 * it at the same moment either commit first (then it is seen here) or find the file gone. The caller
 * deletes the blobs and then calls markUploadPurged; until then the retention sweep will.
 */
export async function deleteTurbofilesFile(pool: Pool, id: string, apiKeyId: string): Promise<'deleted' | 'not_found' | 'in_use'> {
  return withTransaction(pool, async (tx) => {
    const row = await tx.query(`SELECT 1 FROM turbofiles_files WHERE id = $1 AND api_key_id = $2 AND deleted_at IS NULL FOR UPDATE`, [id, apiKeyId]);
    if (!row.rowCount) return 'not_found';
    // A statement of its own: in READ COMMITTED it sees a task committed while we waited for the lock.
    const busy = await tx.query<{ busy: boolean }>(`SELECT ${ACTIVE_TASK} AS busy`, [id]);
    if (busy.rows[0]!.busy) return 'in_use';
    await tx.query(`UPDATE turbofiles_files SET deleted_at = now(), updated_at = now() WHERE id = $1`, [id]);
    return 'deleted';
  });
}

/** Declared files whose bytes are due for deletion: expired (or deleted) and read by no running task. */
export async function expiredUploads(db: Queryable, limit = 100): Promise<string[]> {
  const r = await db.query<{ id: string }>(
    `SELECT u.id FROM turbofiles_files u
      WHERE u.purged_at IS NULL AND (u.expires_at < now() OR u.deleted_at IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM turbofiles_tasks t JOIN jobs j ON j.id = t.job_id WHERE t.input_file_id = u.id AND j.status IN ('pending', 'processing'))
      ORDER BY u.expires_at LIMIT $1`,
    [limit],
  );
  return r.rows.map((x) => x.id);
}

/**
 * Deletes a file's bytes (`deleteBlobs`) and marks them gone, unless a task started reading them since
 * expiredUploads looked: checked under the row's lock, as deleteTurbofilesFile does. False then, or
 * when another sweeper got there first. When `deleteBlobs` throws nothing is marked: the next sweep retries.
 */
export async function purgeUpload(pool: Pool, id: string, deleteBlobs: () => Promise<void>): Promise<boolean> {
  return withTransaction(pool, async (tx) => {
    const row = await tx.query(`SELECT 1 FROM turbofiles_files WHERE id = $1 AND purged_at IS NULL FOR UPDATE`, [id]);
    if (!row.rowCount) return false;
    const busy = await tx.query<{ busy: boolean }>(`SELECT ${ACTIVE_TASK} AS busy`, [id]);
    if (busy.rows[0]!.busy) return false;
    await deleteBlobs();
    await tx.query(`UPDATE turbofiles_files SET purged_at = now() WHERE id = $1`, [id]);
    return true;
  });
}

/** After DELETE /v1/files/:id removed the bytes at once. */
export async function markUploadPurged(db: Queryable, id: string): Promise<void> {
  await db.query(`UPDATE turbofiles_files SET purged_at = coalesce(purged_at, now()) WHERE id = $1`, [id]);
}

const OUTPUT_COLS = `s.id, s.job_id AS "jobId", s.storage_key AS "storageKey", s.filename, s.mime_type AS "mimeType", s.size,
  s.created_at AS "createdAt", j.expires_at AS "expiresAt", ${at('s.created_at')} AS "cursorAt"`;

/** A result of one of the key's tasks, by its stored file id. */
export async function getTaskOutput(db: Queryable, id: string, apiKeyId: string): Promise<TaskOutputRow | undefined> {
  const r = await db.query<WithCursorAt<TaskOutputRow>>(
    `SELECT ${OUTPUT_COLS} FROM stored_files s JOIN turbofiles_tasks t ON t.job_id = s.job_id JOIN jobs j ON j.id = s.job_id
      WHERE s.id = $1 AND t.api_key_id = $2`,
    [id, apiKeyId],
  );
  return r.rows[0] && withCursor<TaskOutputRow>(r.rows[0]);
}

/** Removes a task's result before its retention ends; returns its blob key for the caller to delete. */
export async function deleteTaskOutput(db: Queryable, id: string, apiKeyId: string): Promise<string | undefined> {
  const r = await db.query<{ storage_key: string }>(
    `DELETE FROM stored_files s USING turbofiles_tasks t WHERE s.id = $1 AND t.job_id = s.job_id AND t.api_key_id = $2 RETURNING s.storage_key`,
    [id, apiKeyId],
  );
  return r.rows[0]?.storage_key;
}

/** `(sort_at, id) op cursor`, its values appended to `params`; a cursor without an id compares by time alone. */
function beyond(c: Cursor, op: '<' | '>', params: unknown[]): string {
  params.push(c.at);
  if (!c.id) return `x.sort_at ${op} $${params.length}::timestamptz`;
  params.push(c.id);
  return `(x.sort_at, x.id) ${op} ($${params.length - 1}::timestamptz, $${params.length}::uuid)`;
}

/**
 * Pages `base` (a query whose rows have `sort_at`, `id` and `cursorAt`, taking `args` as $1…) by
 * cursor. `before` alone walks towards newer rows (read ascending, returned newest first); otherwise
 * the page starts right after `after` (or at the newest row) and stops at `before` when both are given.
 */
async function pageOf<R extends { id: string; cursorAt: string }>(db: Queryable, base: string, args: unknown[], page: PageRequest): Promise<Page<R>> {
  const params = [...args];
  const where = [page.after && beyond(page.after, '<', params), page.before && beyond(page.before, '>', params)].filter(Boolean);
  const backwards = !!page.before && !page.after;
  const dir = backwards ? 'ASC' : 'DESC';
  params.push(page.size + 1);
  const r = await db.query<R & { sort_at: Date }>(
    `SELECT * FROM (${base}) x ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY x.sort_at ${dir}, x.id ${dir} LIMIT $${params.length}`,
    params,
  );
  const truncated = r.rows.length > page.size;
  const rows = r.rows.slice(0, page.size).map(({ sort_at: _omit, ...row }) => row as unknown as R);
  if (backwards) rows.reverse();
  // Whether anything lies beyond either end of the page, for links.next / links.prev.
  const exists = async (c: Cursor | undefined, op: '<' | '>') => {
    if (!c) return false;
    const p = [...args];
    const cond = beyond(c, op, p);
    return ((await db.query(`SELECT 1 FROM (${base}) x WHERE ${cond} LIMIT 1`, p)).rowCount ?? 0) > 0;
  };
  const cursorOf = (row: R | undefined): Cursor | undefined => row && { at: row.cursorAt, id: row.id };
  const [older, newer] = await Promise.all([exists(rows.length ? cursorOf(rows[rows.length - 1]) : page.before, '<'), exists(rows.length ? cursorOf(rows[0]) : page.after, '>')]);
  return { rows, truncated, older, newer };
}

/** The key's declared files and its tasks' results, newest first. */
export async function listTurbofilesFiles(db: Queryable, apiKeyId: string, page: PageRequest): Promise<Page<ListedFile>> {
  const base = `
    SELECT 'upload' AS origin, u.created_at AS sort_at, u.id, u.api_key_id AS "apiKeyId", u.format, u.kind, u.size, u.storage_key AS "storageKey",
           u.ready_at AS "readyAt", u.upload_error AS "uploadError", u.created_at AS "createdAt", u.updated_at AS "updatedAt",
           u.expires_at AS "expiresAt", u.purged_at AS "purgedAt", NULL::uuid AS "jobId", NULL::text AS filename, NULL::text AS "mimeType",
           ${at('u.created_at')} AS "cursorAt"
      FROM turbofiles_files u WHERE u.api_key_id = $1 AND u.deleted_at IS NULL
    UNION ALL
    SELECT 'output', s.created_at, s.id, t.api_key_id, s.mime_type, NULL, s.size, s.storage_key, s.created_at, NULL, s.created_at, s.created_at,
           j.expires_at, j.purged_at, s.job_id, s.filename, s.mime_type, ${at('s.created_at')}
      FROM stored_files s JOIN turbofiles_tasks t ON t.job_id = s.job_id JOIN jobs j ON j.id = s.job_id WHERE t.api_key_id = $1`;
  const p = await pageOf<WithCursorAt<ListedFile & { cursor: Required<Cursor> }>>(db, base, [apiKeyId], page);
  return { ...p, rows: p.rows.map((row) => withCursor<ListedFile>(row)) };
}

export interface NewTask {
  jobId: string;
  apiKeyId: string;
  inputFileId: string;
  format: { input: string; output: string };
  settings: Record<string, unknown>;
}

/**
 * Inside the job's transaction: the task row, once its input is confirmed still READY under a share
 * lock (a DELETE or the expiry sweep of the same file waits for this transaction, then sees the task).
 * False when the file is no longer usable: the caller rolls the job back.
 */
export async function insertTask(tx: Queryable, t: NewTask): Promise<boolean> {
  const ok = await tx.query(
    `SELECT 1 FROM turbofiles_files WHERE id = $1 AND api_key_id = $2 AND deleted_at IS NULL AND purged_at IS NULL AND ready_at IS NOT NULL AND expires_at > now() FOR SHARE`,
    [t.inputFileId, t.apiKeyId],
  );
  if (!ok.rowCount) return false;
  await tx.query(`INSERT INTO turbofiles_tasks (job_id, api_key_id, input_file_id, format, settings) VALUES ($1, $2, $3, $4, $5)`, [
    t.jobId,
    t.apiKeyId,
    t.inputFileId,
    JSON.stringify(t.format),
    JSON.stringify(t.settings),
  ]);
  return true;
}

const TASK_BASE = `
  SELECT t.created_at AS sort_at, t.job_id AS id, t.api_key_id AS "apiKeyId", t.format, t.settings, t.input_file_id AS "inputFileId",
         j.status, j.cancelled, j.created_at AS "createdAt", j.started_at AS "startedAt", j.completed_at AS "completedAt", j.expires_at AS "expiresAt",
         json_build_object('status', f.status, 'progress', f.progress, 'result', f.result, 'errorCode', f.error_code,
           'errorMessage', f.error_message, 'originalSize', f.original_size) AS file,
         CASE WHEN s.id IS NULL THEN NULL ELSE json_build_object('id', s.id, 'jobId', s.job_id, 'storageKey', s.storage_key, 'filename', s.filename,
           'mimeType', s.mime_type, 'size', s.size, 'createdAt', s.created_at, 'expiresAt', j.expires_at, 'cursorAt', ${at('s.created_at')}) END AS output,
         ${at('t.created_at')} AS "cursorAt"
    FROM turbofiles_tasks t JOIN jobs j ON j.id = t.job_id JOIN job_files f ON f.job_id = t.job_id AND f.idx = 0
    LEFT JOIN stored_files s ON s.id = f.output_file_id`;

type RawTask = Omit<TaskRow, 'cursor' | 'output'> & {
  cursorAt: string;
  output: (Omit<TaskOutputRow, 'createdAt' | 'expiresAt' | 'cursor'> & { createdAt: string; expiresAt: string | null; cursorAt: string }) | null;
};

function toTask(raw: RawTask): TaskRow {
  const { cursorAt, output, ...rest } = raw;
  return {
    ...rest,
    cursor: { at: cursorAt, id: raw.id },
    output: output
      ? {
          id: output.id,
          jobId: output.jobId,
          storageKey: output.storageKey,
          filename: output.filename,
          mimeType: output.mimeType,
          size: Number(output.size),
          createdAt: new Date(output.createdAt),
          expiresAt: output.expiresAt ? new Date(output.expiresAt) : null,
          cursor: { at: output.cursorAt, id: output.id },
        }
      : null,
  };
}

export async function getTask(db: Queryable, jobId: string, apiKeyId: string): Promise<TaskRow | undefined> {
  const r = await db.query<RawTask>(`SELECT * FROM (${TASK_BASE} WHERE t.api_key_id = $1) x WHERE x.id = $2`, [apiKeyId, jobId]);
  return r.rows[0] && toTask(r.rows[0]);
}

export async function listTasks(db: Queryable, apiKeyId: string, page: PageRequest): Promise<Page<TaskRow>> {
  const p = await pageOf<RawTask>(db, `${TASK_BASE} WHERE t.api_key_id = $1`, [apiKeyId], page);
  return { ...p, rows: p.rows.map((r) => toTask(r)) };
}

/** The declared files with these ids (tasks' inputs), deleted ones included: a task still names its input. */
export async function getTurbofilesFilesById(db: Queryable, ids: string[]): Promise<Map<string, TurbofilesFileRow & { deleted: boolean }>> {
  if (!ids.length) return new Map();
  const r = await db.query<WithCursorAt<TurbofilesFileRow> & { deleted: boolean }>(
    `SELECT ${FILE_COLS}, u.deleted_at IS NOT NULL AS deleted FROM turbofiles_files u WHERE u.id = ANY($1::uuid[])`,
    [ids],
  );
  return new Map(r.rows.map((row) => [row.id, withCursor<TurbofilesFileRow & { deleted: boolean }>(row)]));
}
