/**
 * Submitting a job, in steps that take parsed input and narrow dependencies (no Express), so every
 * way into Kiln shares them and a test can call each one:
 *
 *   1. admitSubmission — before any bytes are read: the job an earlier request with this
 *      Idempotency-Key created (the request is then a replay), else the key's admission (concurrent
 *      jobs, monthly quota) and, when the caller knows its queue already, that queue's backpressure,
 *      so a refused request is refused before its upload.
 *   2. The caller gets its files' bytes somewhere (a multipart upload, an already-uploaded file, or
 *      nothing yet: a URL a worker fetches later), and checks what it can (checkPair, for bytes it has).
 *   3. submitJob — the key's allowed formats, the backpressure of each class of work it queues
 *      (429 queue_full while a class's backlog is past its limits, backpressure.ts), then the job and
 *      file rows and one queue message per file (queueFor) in one statement (insertJob with the
 *      queue's insertFragment): they commit together or not at all. That statement is the whole
 *      submission (no transaction) unless something else must commit with it: admission again under
 *      the key's lock (a key with limits), the Idempotency-Key claim, webhook events someone may
 *      hear, a dialect's own rows (`beforeCommit`); then it is one statement of a transaction with them.
 *      A replay, or a lost race for the same Idempotency-Key, creates nothing and answers with the
 *      earlier job.
 *
 * submitJob never reads or deletes bytes: what to do with a replayed request's upload is the caller's.
 */
import {
  AppError,
  queueFor,
  toolOutputFormat,
  type Dialect,
  type FileOptions,
  type FileQueueName,
  type FileTaskPayload,
  type JobType,
  type ToolCall,
  type ToolName,
} from '@kiln/contracts';
import { compressTargetFor, pairRefusal, targetsFor, UNRECOGNISED_INPUT, type InputKind, type OutputFormat } from '@kiln/formats';
import { claimIdempotencyKey, findIdempotentJob, insertJob, withTransaction, type ApiKeyRow, type ExtraSource, type NewJob, type Pool, type Queryable } from '@kiln/db';
import type { KilnMetrics } from '@kiln/metrics';
import type { Queue } from '@kiln/queue';
import type { Backpressure } from './backpressure.ts';
import { recordJobEvents, type EventContext } from '@kiln/webhooks';
import { admitJob, checkAllowedFormats, effectiveLimits, limitsAdmission, type EffectiveLimits, type LimitsConfig } from './key-limits.ts';

export interface SubmitDeps {
  pool: Pool;
  queue: Pick<Queue, 'insertFragment'>;
  config: LimitsConfig;
  /** Counts each job created, by type and dialect (absent in tests that do not look). */
  metrics?: Pick<KilnMetrics, 'jobsCreated'>;
  /** Refuses new work of a class whose queue is past its limits (429 queue_full); absent: never refuses. */
  backpressure?: Backpressure;
  /** Webhook events (file.uploaded) are written in the job's transaction; absent, none are. */
  events?: EventContext;
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

export async function admitSubmission(
  deps: Pick<SubmitDeps, 'pool' | 'config' | 'backpressure'>,
  key: SubmittingKey,
  idempotencyKey?: string,
  opts: {
    /** The queue the request's files will go to, when it is known before they are read (a media tool that takes one class): a full class is refused before the upload. */
    queue?: FileQueueName | undefined;
  } = {},
): Promise<Admission> {
  const limits = effectiveLimits(deps.config, key);
  const replayOf = idempotencyKey ? await findIdempotentJob(deps.pool, key.id, idempotencyKey) : undefined;
  // A replay is not a new job, so it is never refused for the key's limits.
  if (!replayOf) await admitJob(deps.pool, key, limits);
  // Counts nothing yet (0 files): submitJob counts the files it queues.
  if (!replayOf && opts.queue) await deps.backpressure?.check(new Map([[opts.queue, 0]]));
  return { key, limits, idempotencyKey, replayOf };
}

export interface SubmitFile {
  fileId: string;
  /** Where the bytes are, or will be once a worker has fetched them. */
  sourceKey: string;
  filename: string;
  /** What the bytes are, when they are here to sniff; null when they are not yet. */
  kind: InputKind | null;
  /** Bytes as received; null for a URL source, whose row exists before its bytes. */
  size: number | null;
  /** What the worker does with the file: a conversion's FileOptions, or the job's tool options (re-parsed by the worker). */
  options: FileOptions | Record<string, unknown>;
  /** A URL source: the worker fetches it into sourceKey under sourceMaxBytes (the upload limit that applies to the key). */
  sourceUrl?: string;
  sourceMaxBytes?: number;
  /** A tool's further inputs: image-to-pdf's other pages, watermark's overlay image. */
  extraSources?: ExtraSource[];
}

export interface JobSubmission {
  /** Chosen by the caller: an upload is stored under the job's id before the job exists. */
  jobId: string;
  jobType: JobType;
  /** The API the request came in through, recorded on the job and in its metrics; 'convertly' when unset. */
  dialect?: Dialect;
  createArchive: boolean;
  files: SubmitFile[];
  /** The media tool the job runs (`POST /api/media/<tool>`); its options are each file's `options`. */
  tool?: ToolName;
  /** Kiln's per-job webhook, already checked (webhooks.service.ts `jobWebhookUrlOf`): sent every event of the job. */
  webhookUrl?: string;
  /**
   * Runs just before the job can be seen or finished by anyone: before its one statement is sent,
   * or in its transaction just before it commits (not for replays, nor for a request that lost its
   * Idempotency-Key race). The sync routes start listening for the job's end here. `files` is how
   * many the job has. A throw refuses the job: nothing is written (or the transaction rolls back).
   */
  beforeVisible?: (jobId: string, files: number) => void;
  /**
   * Runs inside the job's transaction, just before it commits (not for replays): a dialect writes its
   * own rows with `tx`, and a throw rolls the whole job back. Giving it makes the submission a
   * transaction; without it (and without limits, an Idempotency-Key or events to record) it is one
   * statement.
   */
  beforeCommit?: (jobId: string, tx: Queryable) => void | Promise<void>;
}

export interface Submitted {
  jobId: string;
  /** False when the Idempotency-Key named an earlier job: nothing new was created. */
  created: boolean;
}

/** The format a file will be written in, when it can be known before a worker has the bytes. */
function targetOf(job: JobSubmission, f: SubmitFile): OutputFormat | undefined {
  if (job.tool) return toolOutputFormat({ tool: job.tool, options: f.options } as ToolCall, f.kind);
  const o = f.options as FileOptions;
  return o.format ?? (job.jobType === 'compress' && f.kind ? compressTargetFor(f.kind) : undefined);
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
    job.files.map((f, index) => ({ index, filename: f.filename, format: targetOf(job, f) })),
  );
  if (admission.replayOf) return { jobId: admission.replayOf, created: false };
  const byQueue = new Map<FileQueueName, FileTaskPayload[]>();
  for (const f of job.files) {
    const queue = queueFor(job.jobType, { kind: f.kind, tool: job.tool ?? null });
    byQueue.set(queue, [...(byQueue.get(queue) ?? []), { jobId: job.jobId, fileId: f.fileId, apiKeyId: key.id, jobWebhook: job.webhookUrl !== undefined }]);
  }
  // After the replay check (a replay queues nothing), before anything is written.
  await deps.backpressure?.check(new Map([...byQueue].map(([queue, payloads]) => [queue, payloads.length])));
  const row: NewJob = {
    id: job.jobId,
    apiKeyId: key.id,
    retentionHours: key.limits.retentionHours ?? null,
    jobType: job.jobType,
    dialect: job.dialect ?? 'convertly',
    createArchive: job.createArchive,
    tool: job.tool ?? null,
    webhookUrl: job.webhookUrl ?? null,
    files: job.files.map((f, idx) => ({
      id: f.fileId,
      idx,
      filename: f.filename,
      sourceKey: f.sourceKey,
      sourceKind: f.kind,
      originalSize: f.size,
      options: f.options,
      sourceUrl: f.sourceUrl ?? null,
      sourceMaxBytes: f.sourceMaxBytes ?? null,
      extraSources: f.extraSources ?? null,
    })),
  };
  // The messages are written by the job's own statement: a job is never seen without them, nor they
  // without it, and a worker that takes one finds the job's rows there.
  const messages = byQueue.size ? (firstParam: number) => deps.queue.insertFragment(byQueue, firstParam) : undefined;
  // Nothing is read for an event nobody would receive (the recipient cache is sure, or says maybe).
  const events = deps.events && deps.events.recipients?.mayReceive(key.id, job.webhookUrl !== undefined, 'file.uploaded') !== false ? deps.events : undefined;
  if (!idempotencyKey && !limitsAdmission(limits) && !events && !job.beforeCommit) {
    // Nothing else has to commit with the job: its one statement commits on its own.
    job.beforeVisible?.(job.jobId, job.files.length);
    await insertJob(deps.pool, row, messages);
  } else {
    try {
      await withTransaction(deps.pool, async (tx) => {
        await admitJob(tx, key, limits, { lock: true });
        await insertJob(tx, row, messages);
        if (idempotencyKey) {
          // Waits for a concurrent request holding the same key; if that one committed, ours must not.
          const owner = await claimIdempotencyKey(tx, key.id, idempotencyKey, job.jobId);
          if (owner !== job.jobId) throw new ClaimedElsewhere(owner);
        }
        // The uploads this job stored; a URL source is not stored until a worker fetches it.
        if (events) {
          const uploads = job.files.flatMap((f, index) => (f.size !== null ? [{ index, filename: f.filename }] : []));
          await recordJobEvents(tx, events, job.jobId, { kind: 'submitted', uploads });
        }
        // Before the commit, after the claim: a request that lost its Idempotency-Key race does not get here.
        job.beforeVisible?.(job.jobId, job.files.length);
        await job.beforeCommit?.(job.jobId, tx);
      });
    } catch (err) {
      if (err instanceof ClaimedElsewhere) return { jobId: err.owner, created: false };
      throw err;
    }
  }
  deps.metrics?.jobsCreated.inc({ type: job.jobType, dialect: job.dialect ?? 'convertly' });
  return { jobId: job.jobId, created: true };
}

/**
 * Refuses a file whose bytes are here but cannot be turned into what was asked: empty, not a type
 * Kiln recognises, or a pair the registry does not convert. `index` is the file's place in the request;
 * `label` names the file in the sentence instead, for a dialect that has no `files[i]`.
 */
export function checkPair(
  file: { index: number; filename: string; size: number; kind: InputKind | null | undefined; label?: string },
  format: OutputFormat | undefined,
  jobType: JobType,
): void {
  const where = file.label ?? `files[${file.index}] ("${file.filename}")`;
  checkReadable(file, where);
  const refusal = pairRefusal(where, file.kind!, format, jobType === 'compress');
  if (refusal) {
    throw new AppError('unsupported_format', refusal, {
      detail: { index: file.index, input: file.kind, ...(format ? { output: format, supportedOutputs: targetsFor(file.kind!) } : {}) },
    });
  }
}

/** Refuses an uploaded file that is empty or of no type Kiln recognises; `where` names it in the request. */
export function checkReadable(
  file: { index: number; size: number; kind: InputKind | null | undefined },
  where: string,
  field = 'files',
): asserts file is { index: number; size: number; kind: InputKind } {
  if (file.size === 0) throw new AppError('invalid_field', `${where} is empty; upload the file's contents.`, { detail: { field, index: file.index } });
  if (!file.kind) throw new AppError('unsupported_format', `${where} ${UNRECOGNISED_INPUT}`, { detail: { field, index: file.index } });
}
