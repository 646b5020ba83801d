/**
 * Job rows shaped into the public JobDetail (API.md §2.2): what `GET /api/jobs/:id` answers and what
 * a webhook's `data` carries. The rows hold facts; the sentences clients read are worded here. Links
 * come from `urlFor`, which the caller builds (the gateway from the request, a worker from PUBLIC_URL).
 */
import { fileResultExtras, readFileResult, type FileErrorCode, type FileResult, type JobDetail, type JobSummary } from '@kiln/contracts';
import { getJobFiles, getStoredFile, type JobFileRow, type JobFileWithOutput, type JobRow, type StoredFileRow } from './jobs.repo.ts';
import type { Queryable } from './pool.ts';

const iso = (d: Date | string | null) => (d ? new Date(d).toISOString() : null);

const CANCELLED = 'Job was cancelled.';

export type UrlFor = (stored: StoredFileRow) => string;

/**
 * The job's sentence for clients. The row stores facts (counters, the cancelled flag) and only the
 * messages workers pass in (an archive that could not be built); the words are chosen here. Rows
 * written before that still carry their stored sentence, which wins and reads the same.
 */
export function jobErrorMessage(job: Pick<JobRow, 'errorMessage' | 'status' | 'cancelled' | 'completedFiles' | 'totalFiles'>): string | null {
  if (job.errorMessage) return job.errorMessage;
  if (job.cancelled) return CANCELLED;
  if (job.status === 'failed' && job.completedFiles === 0) {
    return job.totalFiles === 1 ? 'The file failed to convert; see results[].error.' : `All ${job.totalFiles} files failed to convert; see results[].error.`;
  }
  return null;
}

/** A failed file's sentence: the one its worker recorded, or for a file of a cancelled job, that. */
export function fileErrorMessage(f: Pick<JobFileRow, 'errorCode' | 'errorMessage'>): string {
  return f.errorMessage ?? (f.errorCode === 'cancelled' ? CANCELLED : '');
}

export function toSummary(job: JobRow): JobSummary {
  return {
    jobId: job.id,
    jobType: job.jobType,
    ...(job.tool ? { tool: job.tool } : {}),
    status: job.status,
    totalFiles: job.totalFiles,
    completedFiles: job.completedFiles,
    failedFiles: job.failedFiles,
    progress: job.progress,
    errorMessage: jobErrorMessage(job),
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    completedAt: iso(job.completedAt),
    expiresAt: iso(job.expiresAt),
  };
}

export function toFileResult(f: JobFileWithOutput, urlFor: UrlFor): FileResult {
  // Through the schema, tolerantly: a row from an older worker still renders what it has.
  const r = readFileResult(f.result);
  return {
    index: f.idx,
    filename: f.output?.filename ?? f.filename,
    status: f.status,
    mimeType: r.mimeType ?? null,
    format: r.format ?? null,
    // A URL source's size is unknown until a worker has fetched it.
    originalSize: f.originalSize ?? 0,
    finalSize: f.output?.size ?? null,
    savedPercent: r.savedPercent ?? null,
    appliedQuality: r.appliedQuality ?? null,
    storedFileId: f.output?.id ?? null,
    downloadUrl: f.output ? urlFor(f.output) : null,
    progress: f.status === 'completed' || f.status === 'failed' ? 100 : f.progress,
    ...fileResultExtras(r),
    ...(f.status === 'failed' && f.errorCode ? { error: { code: f.errorCode as FileErrorCode, message: fileErrorMessage(f) } } : {}),
  };
}

/** `files` when the caller already has them (getJobWithFiles); else they are read with `db`. */
export async function renderJobDetail(db: Queryable, job: JobRow, urlFor: UrlFor, files?: JobFileWithOutput[]): Promise<JobDetail> {
  files ??= await getJobFiles(db, job.id);
  let archive: JobDetail['archive'] = null;
  if (job.archiveFileId) {
    const a = await getStoredFile(db, job.archiveFileId);
    if (a) archive = { filename: a.filename, size: a.size, downloadUrl: urlFor(a) };
  }
  return { ...toSummary(job), results: files.map((f) => toFileResult(f, urlFor)), archive };
}
