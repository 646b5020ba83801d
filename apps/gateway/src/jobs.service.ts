/**
 * Creating jobs and shaping them for clients. Routes stay thin: they call these with what they parsed.
 */
import crypto from 'node:crypto';
import type { Request, Response } from 'express';
import { AppError, QUEUES, parseJobFields, type FileResult, type JobDetail, type JobRequest, type JobSummary, type JobType } from '@kiln/contracts';
import { INPUT_INFO, canConvert, compressTargetFor, targetsFor, type OutputFormat } from '@kiln/formats';
import { claimIdempotencyKey, findIdempotentJob, getJobFiles, getStoredFile, insertJob, withTransaction, type JobFileRow, type JobFileWithOutput, type JobRow, type StoredFileRow } from '@kiln/db';
import type { ApiKeyRow } from '@kiln/db';
import type { GatewayDeps } from './deps.ts';
import { receiveUpload, type UploadedFile } from './upload.ts';
import { admitJob, checkAllowedFormats, effectiveLimits } from './key-limits.ts';

export interface CreatedJob {
  jobId: string;
  /** False when an Idempotency-Key matched an earlier job and nothing new was created. */
  created: boolean;
  request: JobRequest;
}

function checkPair(file: UploadedFile, format: OutputFormat | undefined, jobType: JobType): void {
  const where = `files[${file.index}] ("${file.filename}")`;
  if (file.size === 0) throw new AppError('invalid_field', `${where} is empty; upload the file's contents.`, { detail: { field: 'files', index: file.index } });
  if (!file.kind) {
    throw new AppError('unsupported_format', `${where} is not a file type Kiln recognises from its contents; supported inputs are images, SVG, PDF, audio, video and archives.`, { detail: { index: file.index } });
  }
  if (jobType === 'compress' && !format) {
    if (!compressTargetFor(file.kind))
      throw new AppError('unsupported_format', `${where} is ${file.kind}, which cannot be compressed yet.`, { detail: { index: file.index, input: file.kind } });
    return;
  }
  if (format === 'rar') {
    throw new AppError('unsupported_format', `${where}: RAR archives cannot be created with free software; choose zip or 7z.`, { detail: { index: file.index, input: file.kind, output: 'rar' } });
  }
  if (format && !canConvert(file.kind, format)) {
    const targets = targetsFor(file.kind);
    throw new AppError('unsupported_format', `${where} is ${file.kind}, which cannot be converted to ${format}; ${targets.length ? `it converts to ${targets.join(', ')}` : `no conversions from ${INPUT_INFO[file.kind].family} files are available yet`}.`, {
      detail: { index: file.index, input: file.kind, output: format, supportedOutputs: targets },
    });
  }
}

export function idempotencyKeyOf(req: Request): string | undefined {
  const v = req.get('idempotency-key');
  if (v === undefined) return undefined;
  if (!v.trim() || v.length > 255) throw new AppError('invalid_field', 'The Idempotency-Key header must be 1 to 255 characters.', { detail: { field: 'Idempotency-Key' } });
  return v;
}

export interface CreateJobOptions {
  /** Runs once the multipart body (fields included) is read, before anything is validated or created; a throw discards the upload. */
  afterUpload?: (req: Request) => void;
  /** Runs with the new job's id just before its transaction commits (not for idempotent replays). */
  beforeCommit?: (jobId: string) => void;
}

export async function createJobFromUpload(deps: GatewayDeps, req: Request, res: Response, key: ApiKeyRow, forcedType?: JobType, opts: CreateJobOptions = {}): Promise<CreatedJob> {
  const idemKey = idempotencyKeyOf(req);
  const jobId = crypto.randomUUID();
  const keyLimits = effectiveLimits(deps.config, key);
  // Refuse before reading a possibly large upload; checked again under a lock when the job is inserted.
  if (!(idemKey && (await findIdempotentJob(deps.pool, key.id, idemKey)))) await admitJob(deps.pool, key, keyLimits);
  const limits = {
    maxFileBytes: Math.min(deps.config.MAX_UPLOAD_BYTES, key.limits.maxUploadBytes ?? Infinity),
    maxFiles: Math.min(deps.config.MAX_FILES_PER_JOB, key.limits.maxFilesPerJob ?? Infinity),
    // Which setting decided each limit, so the 413 names the one to change.
    maxFileBytesByKey: (key.limits.maxUploadBytes ?? Infinity) < deps.config.MAX_UPLOAD_BYTES,
    maxFilesByKey: (key.limits.maxFilesPerJob ?? Infinity) < deps.config.MAX_FILES_PER_JOB,
    maxFieldBytes: deps.config.MAX_FIELD_BYTES,
  };
  const files = await receiveUpload(deps.store, req, res, jobId, limits);
  const blobKeys = files.map((f) => f.key);
  try {
    opts.afterUpload?.(req);
    if (files.length === 0) throw new AppError('invalid_field', 'Upload at least one file in the "files" field.', { detail: { field: 'files' } });
    const request = parseJobFields(req.body ?? {}, files.length, forcedType ? { jobType: forcedType } : undefined);
    for (const [i, f] of files.entries()) checkPair(f, request.files[i]!.format, request.jobType);
    checkAllowedFormats(keyLimits, files.map((f, i) => ({
      index: f.index, filename: f.filename,
      format: request.files[i]!.format ?? (request.jobType === 'compress' && f.kind ? compressTargetFor(f.kind) : undefined),
    })));

    if (idemKey) {
      const existing = await findIdempotentJob(deps.pool, key.id, idemKey);
      if (existing) {
        await deps.store.delete(blobKeys);
        return { jobId: existing, created: false, request };
      }
    }
    const owner = await withTransaction(deps.pool, async (tx) => {
      await admitJob(tx, key, keyLimits, { lock: true });
      await insertJob(tx, {
        id: jobId,
        apiKeyId: key.id,
        retentionHours: key.limits.retentionHours ?? null,
        jobType: request.jobType,
        createArchive: request.createArchive,
        files: files.map((f, i) => ({
          id: f.fileId, idx: i, filename: f.filename, sourceKey: f.key, sourceKind: f.kind ?? null, originalSize: f.size,
          options: request.files[i]! as unknown as Record<string, unknown>,
        })),
      });
      if (idemKey) {
        const ownerId = await claimIdempotencyKey(tx, key.id, idemKey, jobId);
        if (ownerId !== jobId) return ownerId;
      }
      const queue = request.jobType === 'compress' ? QUEUES.compressFile : QUEUES.convertFile;
      await deps.queue.sendMany(queue, files.map((f) => ({ jobId, fileId: f.fileId })), tx);
      opts.beforeCommit?.(jobId);
      return jobId;
    });
    if (owner !== jobId) {
      // Lost a race with a concurrent request carrying the same Idempotency-Key: ours was rolled back.
      await deps.store.delete(blobKeys);
      return { jobId: owner, created: false, request };
    }
    return { jobId, created: true, request };
  } catch (err) {
    await deps.store.delete(blobKeys).catch(() => undefined);
    throw err;
  }
}

// ---- shaping ------------------------------------------------------------------------------------

export type UrlFor = (stored: StoredFileRow) => string;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toSummary(job: JobRow): JobSummary {
  return {
    jobId: job.id,
    jobType: job.jobType,
    status: job.status,
    totalFiles: job.totalFiles,
    completedFiles: job.completedFiles,
    failedFiles: job.failedFiles,
    progress: job.progress,
    errorMessage: job.errorMessage,
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    completedAt: iso(job.completedAt),
    expiresAt: iso(job.expiresAt),
  };
}

export function toFileResult(f: JobFileWithOutput, urlFor: UrlFor): FileResult {
  const r = (f.result ?? {}) as Record<string, unknown>;
  const num = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : undefined);
  const out: FileResult = {
    index: f.idx,
    filename: f.output?.filename ?? f.filename,
    status: f.status,
    mimeType: (r.mimeType as string | undefined) ?? null,
    format: (r.format as string | undefined) ?? null,
    originalSize: f.originalSize,
    finalSize: f.output?.size ?? null,
    savedPercent: num('savedPercent') ?? null,
    appliedQuality: num('appliedQuality') ?? null,
    storedFileId: f.output?.id ?? null,
    downloadUrl: f.output ? urlFor(f.output) : null,
    progress: f.status === 'completed' || f.status === 'failed' ? 100 : f.progress,
  };
  for (const k of ['width', 'height', 'durationSeconds'] as const) {
    const v = num(k);
    if (v !== undefined) out[k] = v;
  }
  if (Array.isArray(r.notes)) out.notes = r.notes as string[];
  // Compress results (target-size): whether the target was met, why not, and how many encodes it took.
  if (typeof r.targetMet === 'boolean') out.targetMet = r.targetMet;
  if (typeof r.targetReason === 'string') out.targetReason = r.targetReason;
  if (typeof r.encodes === 'number') out.encodes = r.encodes;
  if (f.status === 'failed' && f.errorCode) out.error = { code: f.errorCode as NonNullable<FileResult['error']>['code'], message: f.errorMessage ?? '' };
  return out;
}

/** `files` when the caller already has them (getJobWithFiles); else they are read here. */
export async function toJobDetail(deps: GatewayDeps, job: JobRow, urlFor: UrlFor, files?: JobFileWithOutput[]): Promise<JobDetail> {
  files ??= await getJobFiles(deps.pool, job.id);
  let archive: JobDetail['archive'] = null;
  if (job.archiveFileId) {
    const a = await getStoredFile(deps.pool, job.archiveFileId);
    if (a) archive = { filename: a.filename, size: a.size, downloadUrl: urlFor(a) };
  }
  return { ...toSummary(job), results: files.map((f) => toFileResult(f, urlFor)), archive };
}

export function urlBuilder(deps: GatewayDeps, req: Request): UrlFor {
  const base = (deps.config.PUBLIC_URL ?? `${req.protocol}://${req.get('host') ?? `localhost:${deps.config.PORT}`}`).replace(/\/+$/, '');
  return (stored) => {
    // The download that usually follows this answer then needs no query (caches.ts).
    deps.storedFiles.remember(stored);
    const { exp, sig } = deps.signer.sign(stored.id, deps.config.DOWNLOAD_URL_TTL_SECONDS);
    return `${base}/api/files/${stored.id}?exp=${exp}&sig=${sig}`;
  };
}
