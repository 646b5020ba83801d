/**
 * Synchronous `POST /api/convert` and `POST /api/compress` (API.md §2.3): the same pipeline as a job,
 * with the request held until the job ends. Past SYNC_TIMEOUT_SECONDS the answer is 202 with the job
 * id to poll. Without saveToStorage=true results come back inline as data: URLs and nothing is kept.
 */
import { pipeline } from 'node:stream/promises';
import { Router, type Request, type Response } from 'express';
import { AppError, fileResultExtras, requestCodeForFileError, type FileResult, type JobType, type SyncFile } from '@kiln/contracts';
import { getJobWithFiles, markJobPurged, type ApiKeyRow, type JobFileWithOutput } from '@kiln/db';
import { keys } from '@kiln/storage';
import type { GatewayDeps } from './deps.ts';
import { apiKeyOf } from './auth.ts';
import type { NotifiedJob, PendingJob } from './job-waiter.ts';
import { jobErrorMessage, toFileResult, urlBuilder, type UrlFor } from './job-responses.ts';
import { submitMultipart } from './multipart-intake.ts';
import { BUFFERED_DOWNLOAD_MAX_BYTES, contentDisposition } from './files.routes.ts';
import type { Submitted } from './jobs.service.ts';

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

type SyncEntry = SyncFile & { error?: FileResult['error'] };

export function syncRouter(deps: GatewayDeps): Router {
  const r = Router();
  const handle = (jobType: JobType) => async (req: Request, res: Response) => {
    const key = apiKeyOf(req);
    const bytes = wantsBytes(req);
    const { created, final, notified } = await submitAndWait(deps, res, (listen) =>
      submitMultipart(deps, req, res, key, {
        jobType,
        beforeVisible: (jobId, files) => {
          // The bytes answer carries one file: refuse more before the job exists.
          if (bytes) refuseManyFiles(files);
          listen(jobId);
        },
      }),
    );
    if (bytes && final) return void (await answerBytes(deps, res, key, created.jobId, created.request.saveToStorage === true, notified));
    await answerSync(deps, req, res, key, created.jobId, final, created.request.saveToStorage === true, undefined, notified);
  };
  r.post('/convert', handle('convert'));
  r.post('/compress', handle('compress'));
  return r;
}

/**
 * The client asked for the result's bytes rather than JSON: `?download=1` (or `true`), or an Accept
 * header that names application/octet-stream and not JSON. One response instead of the JSON answer
 * plus a GET of its link.
 */
function wantsBytes(req: Request): boolean {
  const q = req.query.download;
  if (q !== undefined) {
    if (q === '1' || q === 'true') return true;
    if (q === '0' || q === 'false') return false;
    throw new AppError('invalid_field', 'download: use 1 or true to receive the result file itself as the response body, 0 or false (the default) for the JSON answer.', {
      detail: { field: 'download' },
    });
  }
  const accept = req.get('accept') ?? '';
  return /application\/octet-stream/i.test(accept) && !/application\/json|\*\/\*/i.test(accept);
}

function refuseManyFiles(n: number): void {
  if (n > 1)
    throw new AppError(
      'invalid_field',
      `download: the file itself can be returned for a request of one file; this one has ${n}. Leave download off (and Accept on JSON) for the JSON answer with one link per file.`,
      { detail: { field: 'download', files: n } },
    );
}

/**
 * The bytes answer of a finished sync job of one file: the result streamed as the body (its type,
 * size and name in the headers, the job id in Kiln-Job-Id). A failed file gets the usual error
 * answer. Without saveToStorage nothing is kept once it is sent.
 */
async function answerBytes(deps: GatewayDeps, res: Response, key: ApiKeyRow, jobId: string, save: boolean, notified?: NotifiedJob): Promise<void> {
  const found = fromNotice(notified, jobId, key) ?? (await getJobWithFiles(deps.pool, jobId, key.id));
  if (!found) throw new AppError('not_found', `No job ${jobId}.`);
  const { job, files: rows } = found;
  const f = rows[0];
  if (f?.status !== 'completed' || !f.output) {
    throw new AppError(requestCodeForFileError(f?.errorCode ?? null), f?.errorMessage ?? jobErrorMessage(job) ?? 'The conversion failed.', {
      detail: { jobId: job.id, fileErrorCode: f?.errorCode ?? null },
    });
  }
  const out = f.output;
  // Without saveToStorage nothing is kept: as for the inline answer, the job is purged before the
  // answer goes (so a client that reads the job next finds it so), which holds up to
  // SYNC_INLINE_MAX_BYTES in memory. A stored result is held only when small.
  const got = await deps.store.get(out.storageKey, save ? BUFFERED_DOWNLOAD_MAX_BYTES : deps.config.SYNC_INLINE_MAX_BYTES);
  if (!got) throw new AppError('not_found', `The result of job ${job.id} is no longer stored.`);
  res.set({
    'Content-Type': out.mimeType,
    'Content-Length': String(got.size),
    'Content-Disposition': contentDisposition(out.filename),
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
    'Kiln-Job-Id': job.id,
    ...(save ? { 'Kiln-Stored-File-Id': out.id } : {}),
  });
  if (got.bytes) {
    if (!save) await purge(deps, job.id);
    res.end(got.bytes);
    return;
  }
  try {
    await pipeline(got.stream, res);
  } catch (err) {
    if (!((err as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE' && res.destroyed)) throw err;
  }
  // Larger than SYNC_INLINE_MAX_BYTES: streamed, then deleted.
  if (!save) await purge(deps, job.id);
}

/** Nothing is kept: the job's sources and outputs go, its row stays as the record. */
async function purge(deps: GatewayDeps, jobId: string): Promise<void> {
  await deps.store.delete([keys.job(jobId)]);
  await markJobPurged(deps.pool, jobId);
}

/** The notice's job when it is this key's job `jobId`, final (else the answer reads it). */
function fromNotice(n: NotifiedJob | undefined, jobId: string, key: ApiKeyRow): NotifiedJob | undefined {
  if (!n || n.job.id !== jobId || n.job.apiKeyId !== key.id) return undefined;
  return n.job.status === 'completed' || n.job.status === 'failed' ? n : undefined;
}

/**
 * The answer of a request that waited for its job (sync convert/compress, a media tool without
 * async): 202 with the job id past SYNC_TIMEOUT_SECONDS; the error of the first file when every file
 * failed; else `{files, storage}` (plus what `extra` adds, e.g. a tool's name and inspect's facts),
 * inlined as data: URLs unless `save`, in which case nothing is kept once answered.
 */
export async function answerSync(
  deps: GatewayDeps,
  req: Request,
  res: Response,
  key: ApiKeyRow,
  jobId: string,
  final: boolean,
  save: boolean,
  extra: (rows: JobFileWithOutput[]) => Record<string, unknown> = () => ({}),
  /** The job as its NOTIFY carried it: the answer is built from it without reading the job again. */
  notified?: NotifiedJob,
): Promise<void> {
  const found = fromNotice(notified, jobId, key) ?? (await getJobWithFiles(deps.pool, jobId, key.id));
  if (!found) throw new AppError('not_found', `No job ${jobId}.`);
  const { job, files: rows } = found;
  if (!final) {
    res.status(202).json({
      jobId: job.id,
      status: job.status,
      ...(job.tool ? { tool: job.tool } : {}),
      notice: `Still running after ${deps.config.SYNC_TIMEOUT_SECONDS} s (SYNC_TIMEOUT_SECONDS); poll GET /api/jobs/${job.id}.`,
    });
    return;
  }
  const urlFor = urlBuilder(deps, req);
  const failed = rows.filter((f) => f.status !== 'completed');
  if (failed.length === rows.length) {
    // Nothing to return: the call fails as its first file did.
    const first = failed[0]!;
    throw new AppError(requestCodeForFileError(first.errorCode), first.errorMessage ?? jobErrorMessage(job) ?? 'The conversion failed.', {
      detail: { jobId: job.id, fileErrorCode: first.errorCode, results: rows.map((f) => toFileResult(f, urlFor)) },
    });
  }
  const { files, tooBigToInline } = await syncEntries(deps, rows, urlFor, save);
  if (!save && !tooBigToInline) await purge(deps, job.id);
  res.json({
    ...extra(rows),
    files,
    storage: {
      saved: save || tooBigToInline,
      notice: save
        ? `Results are stored until ${job.expiresAt?.toISOString() ?? 'the retention period ends'}; download URLs are signed and expire.`
        : tooBigToInline
          ? `A result is larger than SYNC_INLINE_MAX_BYTES (${deps.config.SYNC_INLINE_MAX_BYTES} bytes), so results were stored and are returned as signed URLs.`
          : 'Results are returned inline as data: URLs and were not stored; send saveToStorage=true for download links.',
    },
  });
}

/**
 * Submits (through `submit`, which calls `listen` from submitJob's `beforeVisible`) and waits for the
 * job to end: at most SYNC_TIMEOUT_SECONDS, and only while the client is still there. A new job is
 * listened for before its insert is sent (or, in a transaction, commits), so its NOTIFY cannot be
 * missed and the wait needs no first look at it; a replayed one is waited on by id.
 */
export async function submitAndWait<T extends Submitted>(
  deps: GatewayDeps,
  res: Response,
  submit: (listen: (jobId: string) => void) => Promise<T>,
  /** False for a submission that is answered at once (a media tool's async=true). */
  shouldWait: (created: T) => boolean = () => true,
): Promise<{ created: T; final: boolean; notified?: NotifiedJob }> {
  let pending: PendingJob | undefined;
  let created: T;
  try {
    created = await submit((jobId) => {
      pending = deps.waiter.expect(jobId);
    });
  } catch (err) {
    pending?.cancel();
    throw err;
  }
  if (pending && !created.created) {
    // Not this request's job after all (submitJob calls beforeVisible only for one it creates, so
    // this is a guard): wait for the one it answers with, by id.
    pending.cancel();
    pending = undefined;
  }
  if (!shouldWait(created)) {
    pending?.cancel();
    return { created, final: false };
  }
  const abort = new AbortController();
  // Only while waiting: aborting builds a DOMException (a stack trace), which every answered
  // request would otherwise pay for when its connection closes.
  const gone = () => abort.abort();
  res.once('close', gone);
  const timeoutMs = deps.config.SYNC_TIMEOUT_SECONDS * 1000;
  const final = await (pending ? pending.wait(timeoutMs, abort.signal) : deps.waiter.wait(created.jobId, timeoutMs, abort.signal)).finally(() => res.off('close', gone));
  const notified = final ? pending?.notified() : undefined;
  return { created, final, ...(notified ? { notified } : {}) };
}

/**
 * The reply's files, in job order. Without saveToStorage each result is inlined as a data: URL up to
 * SYNC_INLINE_MAX_BYTES; once one is larger, the results stay stored and from there on carry their
 * storedFileId and a signed URL.
 */
async function syncEntries(deps: GatewayDeps, rows: JobFileWithOutput[], urlFor: UrlFor, save: boolean): Promise<{ files: SyncEntry[]; tooBigToInline: boolean }> {
  let tooBigToInline = false;
  const files: SyncEntry[] = [];
  for (const f of rows) {
    const result = toFileResult(f, urlFor);
    if (f.status !== 'completed' || !f.output) {
      files.push({
        filename: result.filename,
        originalSize: f.originalSize ?? 0,
        finalSize: 0,
        savedPercent: 0,
        mimeType: '',
        downloadUrl: '',
        appliedQuality: null,
        storedFileId: null,
        error: result.error,
      });
      continue;
    }
    let downloadUrl = result.downloadUrl!;
    if (!save) {
      if (f.output.size <= deps.config.SYNC_INLINE_MAX_BYTES) {
        const got = await deps.store.get(f.output.storageKey, deps.config.SYNC_INLINE_MAX_BYTES);
        if (!got) throw new AppError('not_found', `The result of ${f.output.filename} is no longer stored.`);
        const bytes = got.bytes ?? (await readAll(got.stream));
        downloadUrl = `data:${f.output.mimeType};base64,${bytes.toString('base64')}`;
      } else {
        tooBigToInline = true;
      }
    }
    files.push({
      filename: f.output.filename,
      originalSize: f.originalSize ?? 0,
      finalSize: f.output.size,
      savedPercent: result.savedPercent ?? 0,
      mimeType: f.output.mimeType,
      downloadUrl,
      appliedQuality: result.appliedQuality,
      storedFileId: save || tooBigToInline ? f.output.id : null,
      ...fileResultExtras(result),
    });
  }
  return { files, tooBigToInline };
}
