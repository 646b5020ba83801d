/**
 * A Convertly multipart request (POST /api/jobs, /api/convert, /api/compress, the dashboard's "try
 * it") turned into a submitted job: the HTTP half of jobs.service.ts's steps. Reads the
 * Idempotency-Key header, streams the parts to storage (upload.ts), parses the fields and checks each
 * file, then submits. Whatever this request stored is deleted again unless a new job now owns it.
 */
import crypto from 'node:crypto';
import type { Request, Response } from 'express';
import { AppError, parseJobFields, type JobRequest, type JobType } from '@kiln/contracts';
import type { ApiKeyRow } from '@kiln/db';
import type { GatewayDeps } from './deps.ts';
import { admitSubmission, checkPair, submitJob, type Submitted } from './jobs.service.ts';
import { receiveUpload, uploadLimitsFor } from './upload.ts';

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
  /** Passed to submitJob: runs just before the new job's transaction commits. */
  beforeCommit?: (jobId: string) => void | Promise<void>;
}

export interface SubmittedUpload extends Submitted {
  /** The parsed fields (for a replay: this request's, which the earlier job may not share). */
  request: JobRequest;
}

export async function submitMultipart(deps: GatewayDeps, req: Request, res: Response, key: ApiKeyRow, opts: MultipartOptions = {}): Promise<SubmittedUpload> {
  const admission = await admitSubmission(deps, key, idempotencyKeyOf(req));
  const jobId = crypto.randomUUID();
  const files = await receiveUpload(deps.store, req, res, jobId, uploadLimitsFor(deps.config, key));
  deps.metrics.uploadFiles.inc({ dialect: 'convertly' }, files.length);
  deps.metrics.uploadBytes.inc(
    { dialect: 'convertly' },
    files.reduce((n, f) => n + f.size, 0),
  );
  const stored = files.map((f) => f.key);
  try {
    const fields = (req.body ?? {}) as Record<string, unknown>;
    opts.afterUpload?.(fields);
    if (files.length === 0) throw new AppError('invalid_field', 'Upload at least one file in the "files" field.', { detail: { field: 'files' } });
    const request = parseJobFields(fields, files.length, opts.jobType ? { jobType: opts.jobType } : undefined);
    for (const [i, f] of files.entries()) checkPair(f, request.files[i]!.format, request.jobType);
    const submitted = await submitJob(deps, admission, {
      jobId,
      jobType: request.jobType,
      createArchive: request.createArchive,
      files: files.map((f, i) => ({ fileId: f.fileId, sourceKey: f.key, filename: f.filename, kind: f.kind ?? null, size: f.size, options: request.files[i]! })),
      beforeCommit: opts.beforeCommit,
    });
    // A replay answers with the earlier job, which has its own copy of the files.
    if (!submitted.created) await deps.store.delete(stored);
    return { ...submitted, request };
  } catch (err) {
    await deps.store.delete(stored).catch(() => undefined);
    throw err;
  }
}
