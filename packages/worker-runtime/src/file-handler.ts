/**
 * Processes one uploaded file: claim it, run the codec, store the output, record the outcome and move
 * the job on. Shared by the convert and compress workers. Idempotent: a duplicate or retried message
 * finds the file already final and does nothing; output keys are deterministic.
 */
import path from 'node:path';
import { JOB_DONE_CHANNEL, QUEUES, fileOptionsSchema, fileResultSchema, queueFor, resolveResize, type FileErrorCode, type FileOptions, type PresetTable } from '@kiln/contracts';
import { compressTargetFor, INPUT_KINDS, OUTPUT_INFO, type InputKind, type OutputFormat } from '@kiln/formats';
import { claimFile, finishFile, setFileProgress, withTransaction, type FileClaim, type FileOutcome, type Pool } from '@kiln/db';
import type { JobContext, Queue } from '@kiln/queue';
import { BlobNotFoundError, isStorageUnavailable, keys, type BlobStore } from '@kiln/storage';
import {
  compress,
  convert,
  engineNameFor,
  isCodecError,
  type CodecErrorKind,
  type CompressResult,
  type ConvertRequest,
  type EnginePaths,
  type Limit,
  type Limits,
} from '@kiln/codec';
import type { Logger } from '@kiln/config';
import type { KilnMetrics } from '@kiln/metrics';
import { requeueWhileStorageIsDown } from './storage-outage.ts';

export interface WorkerSettings {
  retentionHours: number;
  /** FILE_TIMEOUT_SECONDS: one deadline for each file's conversion. */
  fileTimeout: Limit;
  limits: Limits;
  engines: EnginePaths;
  animation: { maxFps: number; maxWidth: number };
  avifEffort: number;
  presets: PresetTable;
  /** STORAGE_RETRY_MAX_SECONDS: how long a task is put back while storage is unavailable. */
  storageRetryMaxSeconds: number;
}

export interface WorkerDeps {
  pool: Pool;
  queue: Queue;
  store: BlobStore;
  log: Logger;
  metrics: KilnMetrics;
  settings: WorkerSettings;
  /** Aborted when the worker stops and its grace period is over: running files are interrupted and queued again. */
  stopSignal?: AbortSignal;
}

/** Permanent kinds are recorded on the file; transient ones are retried by pg-boss until the last attempt. */
function classify(kind: CodecErrorKind): { permanent: boolean; code: FileErrorCode } {
  switch (kind) {
    case 'invalid_input':
      return { permanent: true, code: 'invalid_input' };
    case 'unsupported':
      return { permanent: true, code: 'unsupported_format' };
    case 'limit_exceeded':
      return { permanent: true, code: 'limit_exceeded' };
    case 'cancelled':
      return { permanent: true, code: 'cancelled' };
    case 'timeout':
      return { permanent: false, code: 'timeout' };
    case 'engine_failed':
      return { permanent: false, code: 'engine_failed' };
    default: {
      const never: never = kind;
      throw new Error(`unhandled codec error kind ${String(never)}`);
    }
  }
}

export function outputFilename(original: string, ext: string): string {
  const base = path.basename(original).replace(/\.[^.]*$/, '') || 'file';
  return `${base}.${ext}`;
}

export function savedPercent(original: number, final: number): number {
  if (original <= 0) return 0;
  return Math.max(0, Math.round((1 - final / original) * 1000) / 10);
}

export async function notifyJobDone(db: { query: (text: string, values?: unknown[]) => Promise<unknown> }, jobId: string): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [JOB_DONE_CHANNEL, jobId]);
}

export function createFileHandler(deps: WorkerDeps, mode: 'convert' | 'compress') {
  const { pool, store, settings } = deps;

  /**
   * One statement records the outcome, settles the job and notifies waiters. A job with an archive
   * to build needs the archive message in the same transaction, or a crash between the two would leave
   * the job waiting forever.
   */
  async function record(claim: FileClaim, outcome: FileOutcome): Promise<void> {
    const { id: jobId, createArchive } = claim.job;
    const after = !createArchive
      ? await finishFile(pool, jobId, claim.file.id, outcome, settings.retentionHours, JOB_DONE_CHANNEL)
      : await withTransaction(pool, async (tx) => {
          const after = await finishFile(tx, jobId, claim.file.id, outcome, settings.retentionHours, JOB_DONE_CHANNEL);
          if (after?.needsArchive) await deps.queue.send(QUEUES.archiveBuild, { jobId }, tx);
          return after;
        });
    // Counted once, by the statement that settled the job: a duplicate message finds nothing to finish.
    if (after?.jobFinal) (after.status === 'completed' ? deps.metrics.jobsCompleted : deps.metrics.jobsFailed).inc({ type: claim.job.jobType, dialect: claim.job.dialect });
  }

  return async function handle(payload: { jobId: string; fileId: string }, ctx: JobContext): Promise<void> {
    const log = deps.log.child({ jobId: payload.jobId, fileId: payload.fileId, attempt: ctx.retryCount + 1 });
    const claim = await claimFile(pool, payload.fileId);
    if (!claim) {
      log.debug('file already final or job cancelled; nothing to do');
      return;
    }
    const { file } = claim;
    const fail = (code: FileErrorCode, message: string) => record(claim, { ok: false, code, message });

    const parsedOptions = fileOptionsSchema.safeParse(file.options);
    if (!parsedOptions.success) return fail('invalid_input', 'The stored options for this file are invalid; resubmit the job.');
    const o: FileOptions = parsedOptions.data;
    const kind = (INPUT_KINDS as readonly string[]).includes(file.sourceKind ?? '') ? (file.sourceKind as InputKind) : undefined;
    if (!kind) return fail('unsupported_format', 'The file type could not be recognised from its contents.');
    const target: OutputFormat | undefined = o.format ?? (mode === 'compress' ? compressTargetFor(kind) : undefined);
    if (!target) return fail('unsupported_format', `Files of type ${kind} cannot be ${mode === 'compress' ? 'compressed' : 'converted'} yet.`);

    const started = Date.now();
    const engine = engineNameFor(mode, kind, target);
    // Set while the codec runs: its attempt is counted once, as ok or failed, against its engine.
    let codecStarted: number | undefined;
    const countAttempt = (code?: FileErrorCode) => {
      if (codecStarted === undefined) return;
      deps.metrics.conversionDuration.observe({ engine, mode, outcome: code ? 'failed' : 'ok' }, (performance.now() - codecStarted) / 1000);
      if (code) deps.metrics.conversionFailures.inc({ engine, mode, code });
      codecStarted = undefined;
    };
    let lastProgress = 0;
    // Taken inside the try: with remote storage, fetching the source can fail like any other step.
    let scratch: { dir: string; release: () => Promise<void> } | undefined;
    let source: { path: string; release: () => Promise<void> } | undefined;
    try {
      scratch = await store.scratch();
      source = await store.localPath(file.sourceKey);
      const box = resolveResize(o, settings.presets);
      const req: ConvertRequest = {
        input: source.path,
        inputKind: kind,
        outputDir: scratch.dir,
        filename: file.filename,
        format: target,
        quality: o.quality,
        ...(box ? { resize: { ...(box.width ? { width: box.width } : {}), ...(box.height ? { height: box.height } : {}), fit: box.fit } } : {}),
        autoOrient: o.autoOrient,
        stripMetadata: o.stripMetadata,
        lossless: o.lossless,
        mono: o.mono,
        limits: settings.limits,
        engines: settings.engines,
        animation: settings.animation,
        avifEffort: settings.avifEffort,
        timeout: settings.fileTimeout,
        signal: deps.stopSignal ? AbortSignal.any([ctx.signal, deps.stopSignal]) : ctx.signal,
        onProgress: (f) => {
          const pct = Math.floor(f * 100);
          if (pct >= lastProgress + 5) {
            lastProgress = pct;
            void setFileProgress(pool, file.id, pct).catch(() => undefined);
          }
        },
      };
      codecStarted = performance.now();
      const result: CompressResult =
        mode === 'compress'
          ? await compress({ ...req, ...(o.format ? { format: o.format } : { format: undefined }), mode: o.mode, targetBytes: o.targetBytes, originalSize: file.originalSize })
          : await convert(req);
      countAttempt();
      const notes = [...(result.notes ?? [])];
      // An archive converted entry by entry comes back as a zip whatever the target: name it by what it is.
      const ext = OUTPUT_INFO[(result.format in OUTPUT_INFO ? result.format : target) as OutputFormat].extension;
      const storageKey = keys.output(file.jobId, file.id, ext);
      const { size } = await store.putFile(storageKey, result.path);
      await record(claim, {
        ok: true,
        output: { storageKey, filename: outputFilename(file.filename, ext), mimeType: result.mimeType, size },
        // Written through the contract's schema, which the gateway reads it back with.
        result: fileResultSchema.parse({
          format: result.format,
          mimeType: result.mimeType,
          finalSize: size,
          savedPercent: savedPercent(file.originalSize, size),
          appliedQuality: result.appliedQuality,
          width: result.width,
          height: result.height,
          durationSeconds: result.durationSeconds,
          targetMet: result.targetMet,
          targetReason: result.targetReason,
          encodes: result.encodes,
          notes: notes.length ? notes : undefined,
        }),
      });
      log.info('file done', { ms: Date.now() - started, from: kind, to: target, engine, size });
    } catch (err) {
      // An attempt our own shutdown interrupted is not the engine's failure.
      if (!deps.stopSignal?.aborted) countAttempt(isCodecError(err) ? classify(err.kind).code : 'engine_failed');
      if (deps.stopSignal?.aborted) {
        // Interrupted by our own shutdown, not the file's fault: queue it again as a fresh message
        // (no retry spent; claimFile takes a file still 'processing'). If that fails, throwing lets
        // pg-boss retry it instead.
        await deps.queue.send(queueFor(claim.job.jobType, { kind: file.sourceKind }), payload);
        log.info('file interrupted by shutdown; queued again', { ms: Date.now() - started });
        return;
      }
      const queueName = queueFor(claim.job.jobType, { kind: file.sourceKind });
      if (isStorageUnavailable(err) && (await requeueWhileStorageIsDown(deps.queue, queueName, payload, err, settings.storageRetryMaxSeconds, log))) return;
      if (err instanceof BlobNotFoundError && err.key === file.sourceKey) {
        log.warn('source blob is gone', { key: err.key });
        return fail('engine_failed', 'The uploaded file is no longer in storage; submit the job again.');
      }
      if (isCodecError(err)) {
        const c = classify(err.kind);
        log.warn('file failed', { code: c.code, message: err.message, internal: err.internal, permanent: c.permanent });
        if (c.permanent || ctx.retryCount >= ctx.retryLimit) return fail(c.code, err.message);
        throw err;
      }
      log.error('file handler error', { err });
      if (ctx.retryCount >= ctx.retryLimit) return fail('engine_failed', 'The conversion failed after several attempts because of an internal error.');
      throw err;
    } finally {
      await source?.release();
      await scratch?.release();
    }
  };
}
