/**
 * Submitting a job, in steps that take parsed input and narrow dependencies (no Express), so every
 * way into Kiln shares them and a test can call each one:
 *
 *   1. admitSubmission — before any bytes are read: the job an earlier request with this
 *      Idempotency-Key created (the request is then a replay), else the key's admission (concurrent
 *      jobs, monthly quota), so a refused request is refused before its upload.
 *   2. The caller gets its files' bytes somewhere (a multipart upload, an already-uploaded file, or
 *      nothing yet: a URL a worker fetches later), and checks what it can (checkPair, for bytes it has).
 *   3. submitJob — the key's allowed formats, then one transaction: admission again under the key's
 *      lock, the job and file rows, the Idempotency-Key claim, one queue message per file (queueFor).
 *      A replay, or a lost race for the same Idempotency-Key, creates nothing and answers with the
 *      earlier job.
 *
 * submitJob never reads or deletes bytes: what to do with a replayed request's upload is the caller's.
 */
import { AppError, queueFor, type Dialect, type FileOptions, type FileQueueName, type FileTaskPayload, type JobType } from '@kiln/contracts';
import { INPUT_INFO, canConvert, compressTargetFor, refusalFor, targetsFor, type InputKind, type OutputFormat } from '@kiln/formats';
import { claimIdempotencyKey, findIdempotentJob, insertJob, withTransaction, type ApiKeyRow, type Pool } from '@kiln/db';
import type { KilnMetrics } from '@kiln/metrics';
import type { Queue } from '@kiln/queue';
import { admitJob, checkAllowedFormats, effectiveLimits, type EffectiveLimits, type LimitsConfig } from './key-limits.ts';

export interface SubmitDeps {
  pool: Pool;
  queue: Pick<Queue, 'sendMany'>;
  config: LimitsConfig;
  /** Counts each job created, by type and dialect (absent in tests that do not look). */
  metrics?: Pick<KilnMetrics, 'jobsCreated'>;
}

type SubmittingKey = Pick<ApiKeyRow, 'id' | 'limits'>;

/** What step 1 decided, carried to step 3. */
export interface Admission {
  key: SubmittingKey;
  limits: EffectiveLimits;
  idempotencyKey: string | undefined;
  /** The job an earlier request with the same Idempotency-Key created: submitJob then creates nothing. */
  replayOf: string | undefined;
}

export async function admitSubmission(deps: Pick<SubmitDeps, 'pool' | 'config'>, key: SubmittingKey, idempotencyKey?: string): Promise<Admission> {
  const limits = effectiveLimits(deps.config, key);
  const replayOf = idempotencyKey ? await findIdempotentJob(deps.pool, key.id, idempotencyKey) : undefined;
  // A replay is not a new job, so it is never refused for the key's limits.
  if (!replayOf) await admitJob(deps.pool, key, limits);
  return { key, limits, idempotencyKey, replayOf };
}

export interface SubmitFile {
  fileId: string;
  /** Where the bytes are, or will be once a worker has fetched them. */
  sourceKey: string;
  filename: string;
  /** What the bytes are, when they are here to sniff; null when they are not yet. */
  kind: InputKind | null;
  /** Bytes as received. (A URL source's row exists before its bytes: job_files.original_size will have to allow null for it.) */
  size: number;
  /** What the worker does with the file (re-parsed by it with fileOptionsSchema). */
  options: FileOptions;
}

export interface JobSubmission {
  /** Chosen by the caller: an upload is stored under the job's id before the job exists. */
  jobId: string;
  jobType: JobType;
  /** The API the request came in through, recorded on the job and in its metrics; 'convertly' when unset. */
  dialect?: Dialect;
  createArchive: boolean;
  files: SubmitFile[];
  /** Runs inside the job's transaction, just before it commits (not for replays): the sync routes start listening here. */
  beforeCommit?: (jobId: string) => void | Promise<void>;
}

export interface Submitted {
  jobId: string;
  /** False when the Idempotency-Key named an earlier job: nothing new was created. */
  created: boolean;
}

/** The format a file will be written in, when it can be known before a worker has the bytes. */
function targetOf(jobType: JobType, f: SubmitFile): OutputFormat | undefined {
  return f.options.format ?? (jobType === 'compress' && f.kind ? compressTargetFor(f.kind) : undefined);
}

/** Thrown inside the transaction to roll it back when a concurrent request claimed the Idempotency-Key first. */
class ClaimedElsewhere extends Error {
  readonly owner: string;
  constructor(owner: string) {
    super('idempotency key claimed by another job');
    this.owner = owner;
  }
}

export async function submitJob(deps: SubmitDeps, admission: Admission, job: JobSubmission): Promise<Submitted> {
  const { key, limits, idempotencyKey } = admission;
  checkAllowedFormats(
    limits,
    job.files.map((f, index) => ({ index, filename: f.filename, format: targetOf(job.jobType, f) })),
  );
  if (admission.replayOf) return { jobId: admission.replayOf, created: false };
  const byQueue = new Map<FileQueueName, FileTaskPayload[]>();
  for (const f of job.files) {
    const queue = queueFor(job.jobType, f);
    byQueue.set(queue, [...(byQueue.get(queue) ?? []), { jobId: job.jobId, fileId: f.fileId }]);
  }
  try {
    await withTransaction(deps.pool, async (tx) => {
      await admitJob(tx, key, limits, { lock: true });
      await insertJob(tx, {
        id: job.jobId,
        apiKeyId: key.id,
        retentionHours: key.limits.retentionHours ?? null,
        jobType: job.jobType,
        dialect: job.dialect ?? 'convertly',
        createArchive: job.createArchive,
        files: job.files.map((f, idx) => ({
          id: f.fileId,
          idx,
          filename: f.filename,
          sourceKey: f.sourceKey,
          sourceKind: f.kind,
          originalSize: f.size,
          options: f.options,
        })),
      });
      if (idempotencyKey) {
        // Waits for a concurrent request holding the same key; if that one committed, ours must not.
        const owner = await claimIdempotencyKey(tx, key.id, idempotencyKey, job.jobId);
        if (owner !== job.jobId) throw new ClaimedElsewhere(owner);
      }
      for (const [queue, payloads] of byQueue) await deps.queue.sendMany(queue, payloads, tx);
      await job.beforeCommit?.(job.jobId);
    });
  } catch (err) {
    if (err instanceof ClaimedElsewhere) return { jobId: err.owner, created: false };
    throw err;
  }
  deps.metrics?.jobsCreated.inc({ type: job.jobType, dialect: job.dialect ?? 'convertly' });
  return { jobId: job.jobId, created: true };
}

/**
 * Refuses a file whose bytes are here but cannot be turned into what was asked: empty, not a type
 * Kiln recognises, or a pair the registry does not convert. `index` is the file's place in the request.
 */
export function checkPair(file: { index: number; filename: string; size: number; kind: InputKind | null | undefined }, format: OutputFormat | undefined, jobType: JobType): void {
  const where = `files[${file.index}] ("${file.filename}")`;
  if (file.size === 0) throw new AppError('invalid_field', `${where} is empty; upload the file's contents.`, { detail: { field: 'files', index: file.index } });
  if (!file.kind) {
    throw new AppError('unsupported_format', `${where} is not a file type Kiln recognises from its contents; supported inputs are images, SVG, PDF, audio, video and archives.`, {
      detail: { index: file.index },
    });
  }
  if (jobType === 'compress' && !format) {
    if (!compressTargetFor(file.kind))
      throw new AppError('unsupported_format', `${where} is ${file.kind}, which cannot be compressed yet.`, { detail: { index: file.index, input: file.kind } });
    return;
  }
  const refusal = format && refusalFor(format);
  if (refusal) {
    throw new AppError('unsupported_format', `${where}: ${refusal}`, { detail: { index: file.index, input: file.kind, output: format } });
  }
  if (format && !canConvert(file.kind, format)) {
    const targets = targetsFor(file.kind);
    throw new AppError(
      'unsupported_format',
      `${where} is ${file.kind}, which cannot be converted to ${format}; ${targets.length ? `it converts to ${targets.join(', ')}` : `no conversions from ${INPUT_INFO[file.kind].family} files are available yet`}.`,
      {
        detail: { index: file.index, input: file.kind, output: format, supportedOutputs: targets },
      },
    );
  }
}
