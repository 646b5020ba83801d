/**
 * A Convertly multipart request (POST /api/jobs, /api/convert, /api/compress, the dashboard's "try
 * it") turned into a submitted job: the HTTP half of jobs.service.ts's steps. Reads the
 * Idempotency-Key header, streams the parts to storage (upload.ts), reads the URL sources
 * (url-sources.ts: they come after the uploaded files, and a worker fetches them), parses the fields
 * and checks each uploaded file, then submits. Whatever this request stored is deleted again unless
 * a new job now owns it.
 */
import crypto from 'node:crypto';
import type { Request, Response } from 'express';
import { AppError, parseJobFields, type JobRequest, type JobType } from '@kiln/contracts';
import type { ApiKeyRow } from '@kiln/db';
import type { GatewayDeps } from './deps.ts';
import { admitSubmission, checkPair, submitJob, type Submitted } from './jobs.service.ts';
import { JOB_FILE_FIELDS, receiveUpload, uploadLimitsFor, type FileFields } from './upload.ts';
import { urlSourcesOf } from './url-sources.ts';
import { jobWebhookUrlOf } from './webhooks.service.ts';
import { keys } from '@kiln/storage';

/** The job routes' file fields, and Convertly's single-file name `file` (see submitMultipart). */
const JOB_AND_FILE_FIELDS: FileFields = { accepts: (f) => f === 'file' || JOB_FILE_FIELDS.accepts(f), describe: JOB_FILE_FIELDS.describe };

export function idempotencyKeyOf(req: Request): string | undefined {
  const v = req.get('idempotency-key');
  if (v === undefined) return undefined;
  if (!v.trim() || v.length > 255) throw new AppError('invalid_field', 'The Idempotency-Key header must be 1 to 255 characters.', { detail: { field: 'Idempotency-Key' } });
  return v;
}

export interface MultipartOptions {
  /** Set by the route (/api/convert, /api/compress); otherwise the jobType field decides. */
  jobType?: JobType;
  /** Runs once the body (fields included) is read, before anything is validated or created; a throw discards the upload. */
  afterUpload?: (fields: Record<string, unknown>) => void;
  /** Passed to submitJob: runs just before the new job can be seen (its insert is sent, or its transaction commits). */
  beforeVisible?: (jobId: string, files: number) => void;
}

export interface SubmittedUpload extends Submitted {
  /** The parsed fields (for a replay: this request's, which the earlier job may not share). */
  request: JobRequest;
}

export async function submitMultipart(deps: GatewayDeps, req: Request, res: Response, key: ApiKeyRow, opts: MultipartOptions = {}): Promise<SubmittedUpload> {
  const admission = await admitSubmission(deps, key, idempotencyKeyOf(req));
  const jobId = crypto.randomUUID();
  const limits = uploadLimitsFor(deps.config, key);
  const parts = await receiveUpload(deps.store, req, res, jobId, limits, JOB_AND_FILE_FIELDS);
  deps.metrics.uploadFiles.inc({ dialect: 'convertly' }, parts.length);
  deps.metrics.uploadBytes.inc(
    { dialect: 'convertly' },
    parts.reduce((n, f) => n + f.size, 0),
  );
  try {
    // Convertly's own MCP client sends every file twice, as `files` and as `file` ("each route reads
    // whichever it expects"): the job routes read `files`, and `file` only when no `files` came.
    const batch = parts.filter((p) => p.fieldname !== 'file');
    const files = (batch.length ? batch : parts).map((f, index) => ({ ...f, index }));
    const dropped = parts.filter((p) => !files.some((f) => f.key === p.key)).map((p) => p.key);
    if (dropped.length) await deps.store.delete(dropped);
    const fields = (req.body ?? {}) as Record<string, unknown>;
    opts.afterUpload?.(fields);
    const urls = await urlSourcesOf(deps, fields);
    const webhookUrl = await jobWebhookUrlOf(deps, key.id, fields.webhookUrl);
    const total = files.length + urls.length;
    if (total === 0) throw new AppError('invalid_field', 'Upload at least one file in the "files" field, or name one with sourceUrl.', { detail: { field: 'files' } });
    if (total > limits.maxFiles) {
      throw new AppError('too_many_files', `Too many files: ${total} (uploads and URLs together), at most ${limits.maxFiles} per request.`, {
        detail: { limit: limits.maxFilesByKey ? 'maxFilesPerJob' : 'MAX_FILES_PER_JOB', maxFiles: limits.maxFiles },
      });
    }
    // Uploaded files first, then URL sources: per-file arrays (formats, …) are indexed in that order.
    const request = parseJobFields(fields, total, opts.jobType ? { jobType: opts.jobType } : undefined);
    for (const [i, f] of files.entries()) checkPair(f, request.files[i]!.format, request.jobType);
    const fromUrls = urls.map((u, i) => {
      const fileId = crypto.randomUUID();
      return {
        fileId,
        sourceKey: keys.source(jobId, fileId),
        filename: u.filename,
        kind: null,
        size: null,
        options: request.files[files.length + i]!,
        sourceUrl: u.url,
        sourceMaxBytes: limits.maxFileBytes,
      };
    });
    const submitted = await submitJob(deps, admission, {
      jobId,
      jobType: request.jobType,
      createArchive: request.createArchive,
      files: [...files.map((f, i) => ({ fileId: f.fileId, sourceKey: f.key, filename: f.filename, kind: f.kind ?? null, size: f.size, options: request.files[i]! })), ...fromUrls],
      ...(opts.beforeVisible ? { beforeVisible: opts.beforeVisible } : {}),
      ...(webhookUrl ? { webhookUrl } : {}),
    });
    // A replay answers with the earlier job, which has its own copy of the files.
    // jobId is new and this request's alone: when no job took it, its whole folder goes (not only
    // the parts, which would leave an empty jobs/<id>/src behind).
    if (!submitted.created) await deps.store.delete([keys.job(jobId)]);
    return { ...submitted, request };
  } catch (err) {
    await deps.store.delete([keys.job(jobId)]).catch(() => undefined);
    throw err;
  }
}
