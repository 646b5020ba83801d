/**
 * Processes one file of a job: claim it, fetch its source first when it was given by URL, check what
 * the bytes are, run the codec (a conversion, or a media tool), store the output, record the outcome
 * and move the job on. Shared by the convert and compress workers. Idempotent: a duplicate or retried
 * message finds the file already final and does nothing; output keys are deterministic.
 */
import path from 'node:path';
import {
  JOB_DONE_CHANNEL,
  QUEUES,
  fileOptionsSchema,
  fileResultSchema,
  isToolName,
  parseToolOptions,
  queueFor,
  resolveResize,
  toolInputRefusal,
  type FileErrorCode,
  type FileOptions,
  type PresetTable,
  type ToolName,
  type ToolOptionsMap,
} from '@kiln/contracts';
import { compressTargetFor, INPUT_INFO, INPUT_KINDS, OUTPUT_INFO, pairRefusal, UNRECOGNISED_INPUT, type InputKind, type OutputFormat } from '@kiln/formats';
import { finishFile, recordFetchedSource, setFileProgress, withTransaction, type ExtraSource, type FileClaim, type FileOutcome, type JobFileRow, type Pool } from '@kiln/db';
import type { JobContext, Queue } from '@kiln/queue';
import { BlobNotFoundError, isStorageUnavailable, keys, type BlobStore } from '@kiln/storage';
import {
  CODEC_TOOLS,
  compress,
  convert,
  convertToFile,
  engineNameFor,
  isCodecError,
  runTool,
  type CodecErrorKind,
  type CodecToolName,
  type CodecToolOptions,
  type CompressResult,
  type FileConvertRequest,
  type EnginePaths,
  type Limit,
  type Limits,
  type ToolInput,
  type ToolResult,
  writesOnlyOutput,
} from '@kiln/codec';
import type { Logger } from '@kiln/config';
import type { Outbound } from '@kiln/outbound';
import type { KilnMetrics } from '@kiln/metrics';
import { belongsElsewhere } from './class-queue-move.ts';
import type { CodecGate } from './lifecycle/codec-gate.ts';
import { recordJobEvents, type EventContext } from '@kiln/webhooks';
import { requeueWhileStorageIsDown } from './storage-outage.ts';
import { SourceFetchError, fetchExtraSources, fetchUrlSource, type UrlFetchSettings } from './url-source.ts';
import { retryWhileDatabaseIsDown } from './lifecycle/db-retry.ts';
import { fileHolds, type HoldingClaim } from './lifecycle/holds.ts';
import type { WorkerInstanceHandle } from './lifecycle/instance.ts';

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
  /** URL_IMPORT and MAX_UPLOAD_BYTES, for fetching URL sources. */
  urlFetch: UrlFetchSettings;
  /** WORKER_RECORD_RETRY_SECONDS: how long a finished file's outcome is retried while Postgres is down (0 or unset: not). */
  recordRetrySeconds?: number;
}

export interface WorkerDeps {
  pool: Pool;
  queue: Queue;
  store: BlobStore;
  log: Logger;
  metrics: KilnMetrics;
  settings: WorkerSettings;
  /** The SSRF-guarded client URL sources are fetched with. */
  outbound: Pick<Outbound, 'fetchToStream'>;
  /** Aborted when the worker stops and its grace period is over: running files are interrupted and queued again. */
  stopSignal?: AbortSignal;
  /** This process's registration: files are held in its name (lifecycle/instance.ts). */
  instance?: WorkerInstanceHandle;
  /** Webhook events, recorded in the same transaction as each change (absent: none are recorded). */
  events?: EventContext;
  /**
   * Codec slots of the queues that take more messages than they convert at once (lifecycle/codec-gate.ts),
   * by queue name; a queue without one runs the codec in every message slot.
   */
  codecGates?: ReadonlyMap<string, CodecGate>;
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

/** The least time between two progress writes of one file. */
export const PROGRESS_MIN_INTERVAL_MS = 500;

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
  const holds = fileHolds(pool, deps.instance, deps.log);

  /**
   * One statement records the outcome, settles the job and notifies waiters. A job with an archive
   * to build needs the archive message in the same transaction, or a crash between the two would leave
   * the job waiting forever; the webhook events of the change are written in that transaction too.
   */
  async function record(claim: FileClaim, outcome: FileOutcome, hearing: Hearing, ctx: JobContext): Promise<void> {
    // The output is already in storage (its key is the file's own): while Postgres is briefly down,
    // retrying this write costs nothing, and finishFile is a no-op when an earlier try did commit.
    await retryWhileDatabaseIsDown('recording the file outcome', () => recordOnce(claim, outcome, hearing, ctx), {
      maxSeconds: settings.recordRetrySeconds ?? 0,
      log: deps.log.child({ jobId: claim.job.id, fileId: claim.file.id }),
    });
  }

  async function recordOnce(claim: FileClaim, outcome: FileOutcome, hearing: Hearing, ctx: JobContext): Promise<void> {
    const { id: jobId } = claim.job;
    // Nobody to tell and no archive to queue: the finishing statement alone, no transaction.
    const alone = !claim.job.createArchive && !mayBeHeard(hearing);
    // The same statement deletes this attempt's hold (holds.ts): once it has committed, the file is
    // nobody's; and it completes the queue message, so the consumer has no completion left to write.
    const also = ctx.completion;
    const after = alone
      ? await finishFile(pool, jobId, claim.file.id, outcome, settings.retentionHours, JOB_DONE_CHANNEL, holds.holder, also)
      : await withTransaction(pool, async (tx) => {
          const after = await finishFile(tx, jobId, claim.file.id, outcome, settings.retentionHours, JOB_DONE_CHANNEL, holds.holder, also);
          if (after?.needsArchive) await deps.queue.send(QUEUES.archiveBuild, { jobId }, tx);
          if (after && deps.events) {
            await recordJobEvents(tx, deps.events, jobId, {
              kind: 'file_finished',
              file: { index: claim.file.idx, filename: claim.file.filename },
              output: outcome.ok ? outcome.output.filename : null,
              jobFinal: after.jobFinal,
            });
          }
          return after;
        });
    ctx.settled?.();
    // Counted once, by the statement that settled the job: a duplicate message finds nothing to finish.
    if (after?.jobFinal) (after.status === 'completed' ? deps.metrics.jobsCompleted : deps.metrics.jobsFailed).inc({ type: claim.job.jobType, dialect: claim.job.dialect });
  }

  /**
   * Takes the hold and claims the file (one statement); the claim that starts the job records
   * conversion.started in the same transaction.
   */
  async function claimAndStart(fileId: string, scratchDir: string | null, hearing: Hearing): Promise<HoldingClaim> {
    if (!deps.events || !mayBeHeard(hearing, 'conversion.started')) return holds.claim(pool, fileId, scratchDir);
    const events = deps.events;
    return withTransaction(pool, async (tx) => {
      const c = await holds.claim(tx, fileId, scratchDir);
      if (c.outcome === 'claimed' && c.claim.jobStarted) await recordJobEvents(tx, events, c.claim.job.id, { kind: 'started' });
      return c;
    });
  }

  /** Whether a webhook event about this job could have a recipient (the recipient cache, else maybe). */
  function mayBeHeard(h: Hearing, type?: string): boolean {
    if (!deps.events) return false;
    return deps.events.recipients?.mayReceive(h.apiKeyId, h.jobWebhook, type) ?? true;
  }

  return async function handle(payload: FilePayload, ctx: JobContext): Promise<void> {
    // At most one live worker works on a file: a duplicate message (a retry pg-boss made while the
    // first attempt still runs, a reconcile re-queue) is dropped here or by the claim's hold, before
    // anything is claimed.
    if (!holds.enter(payload.fileId)) return;
    const attempt: Attempt = {
      // Until the claim has answered, its statement may have written a hold (it may have committed
      // and then lost its connection): release it unless the answer says otherwise.
      holdRow: true,
      released: false,
      release: async () => {
        if (attempt.released) return;
        attempt.released = true;
        await holds.leave(payload.fileId, attempt.holdRow);
      },
    };
    try {
      await handleHeld(payload, ctx, attempt);
    } finally {
      await attempt.release();
    }
  };

  async function handleHeld(payload: FilePayload, ctx: JobContext, attempt: Attempt): Promise<void> {
    const { release } = attempt;
    const log = deps.log.child({ jobId: payload.jobId, fileId: payload.fileId, attempt: ctx.retryCount + 1 });
    // Chosen before the claim so that the claim's statement records it with the hold (the sweep
    // removes it if this process dies; a path not created yet is simply not there).
    const plannedScratch = holds.holder ? store.scratchPath() : null;
    const claimed = await claimAndStart(payload.fileId, plannedScratch, payload);
    if (claimed.outcome !== 'claimed') {
      attempt.holdRow = claimed.outcome === 'nothing' && claimed.holdTaken;
      if (claimed.outcome === 'nothing') log.debug('file already final or job cancelled; nothing to do');
      return;
    }
    const { claim } = claimed;
    const { file } = claim;
    // Taken inside the try below: with remote storage, fetching the source can fail like any other step.
    // A folder for the engine to write in, or (a conversion that writes nothing but its output) the
    // path of that one file, which putFile then moves into place.
    let scratch: Scratch | undefined;
    // The scratch folder (or file) goes before the outcome is written: that statement releases the hold
    // that points the sweep at it, so a crash right after it must not leave it behind.
    const dropScratch = async () => {
      const s = scratch;
      scratch = undefined;
      await s?.release().catch((err: unknown) => log.warn('could not remove scratch folder', { err: (err as Error).message }));
    };
    const finish = async (outcome: FileOutcome) => {
      await dropScratch();
      await record(claim, outcome, payload, ctx);
      attempt.holdRow = false;
    };
    const fail = (code: FileErrorCode, message: string) => finish({ ok: false, code, message });

    // What to do: a media tool with its options, or a conversion with the file's options.
    const tool = claim.job.tool;
    let work: Work;
    if (tool) {
      if (!isToolName(tool) || !isCodecTool(tool)) return fail('unsupported_format', `There is no media tool ${tool} on this worker.`);
      try {
        work = { tool, options: parseToolOptions(tool, file.options) } as ToolWork;
      } catch {
        return fail('invalid_input', 'The stored options for this tool are invalid; submit the request again.');
      }
    } else {
      const parsedOptions = fileOptionsSchema.safeParse(file.options);
      if (!parsedOptions.success) return fail('invalid_input', 'The stored options for this file are invalid; resubmit the job.');
      work = { options: parsedOptions.data };
    }

    const started = Date.now();
    // Named once the input's kind is known (after a URL source is fetched); a tool is its own engine.
    let engine = work.tool ? `tool:${work.tool}` : 'unknown';
    // Set while the codec runs: its attempt is counted once, as ok or failed, against its engine.
    let codecStarted: number | undefined;
    const countAttempt = (code?: FileErrorCode) => {
      if (codecStarted === undefined) return;
      deps.metrics.conversionDuration.observe({ engine, mode, outcome: code ? 'failed' : 'ok' }, (performance.now() - codecStarted) / 1000);
      if (code) deps.metrics.conversionFailures.inc({ engine, mode, code });
      codecStarted = undefined;
    };
    let lastProgress = 0;
    let lastProgressAt = -Infinity;
    // With holds, pg-boss's signal is left out: it fires when the message's heartbeat was missed (a
    // Postgres outage longer than the heartbeat), and the file is still ours to finish: the hold keeps
    // the retried message off it. The codec's own deadline (FILE_TIMEOUT_SECONDS) bounds the work.
    const pgBossSignal = deps.instance ? undefined : ctx.signal;
    const signals = [pgBossSignal, deps.stopSignal].filter((x): x is AbortSignal => x !== undefined);
    const signal = signals.length === 1 ? signals[0]! : AbortSignal.any(signals);
    const held: { path: string; release: () => Promise<void> }[] = [];
    let sourceHanded = false;
    try {
      const src = await fetchSourcesOnce(file, signal);
      const subject = file.sourceUrl ? `The fetched file ("${file.filename}")` : `The file ("${file.filename}")`;
      const kind = asKind(src.kind);
      if (!kind) return fail('unsupported_format', `${subject} ${UNRECOGNISED_INPUT}`);
      // The gateway checked the pair for uploads; a URL source's kind is known only now.
      const refusal = work.tool
        ? toolInputRefusal(work.tool, subject.charAt(0).toLowerCase() + subject.slice(1), kind)
        : pairRefusal(subject, kind, work.options.format, mode === 'compress');
      if (refusal) return fail('unsupported_format', refusal);
      // A URL source is queued before its kind is known; once fetched, it runs in its own class's slots.
      // The hold goes first, so whoever takes the new message (this worker's other slots too) may start.
      const home = queueFor(claim.job.jobType, { kind, tool });
      if (belongsElsewhere(ctx.queue, home)) {
        await release();
        await deps.queue.send(home, { jobId: payload.jobId, fileId: payload.fileId });
        log.info('URL source fetched; moved to the queue of its class', { kind, from: ctx.queue, to: home });
        return;
      }
      if (!work.tool) engine = engineNameFor(mode, kind, work.options.format ?? compressTargetFor(kind));
      const extraKinds: InputKind[] = [];
      for (const e of src.extras) {
        const ekind = asKind(e.kind ?? null);
        const esubject = `${e.role === 'overlay' ? 'The watermark image' : 'A page'} ("${e.filename}")`;
        if (!ekind) return fail('unsupported_format', `${esubject} ${UNRECOGNISED_INPUT}`);
        if (!['image', 'vector'].includes(INPUT_INFO[ekind].family)) return fail('unsupported_format', `${esubject} is ${ekind}; it must be an image.`);
        extraKinds.push(ekind);
      }

      // One sharp encode writes only its output: no folder for it (a mkdir and an rmdir fewer per
      // file); it is written at the planned path itself, so the hold names it all the same. A remote
      // store copies the sources to local disk: those copies go in the attempt's scratch folder, which
      // the hold names (so the sweep after a crash removes them with it), and so it needs one.
      const target = work.tool ? undefined : (work.options.format ?? compressTargetFor(kind));
      const direct = store.kind === 'local' && mode === 'convert' && target !== undefined && writesOnlyOutput(kind, target);
      let into: Scratch;
      if (direct) {
        const f = await store.scratchFile(plannedScratch ?? undefined);
        into = { file: f.path, release: f.release };
      } else {
        into = await store.scratch(plannedScratch ?? undefined);
        if (plannedScratch && into.dir !== plannedScratch) await holds.scratch(file.id, into.dir);
      }
      scratch = into;
      const extras: ToolInput[] = [];
      for (const [i, e] of src.extras.entries()) {
        const local = await store.localPath(e.key, { under: into.dir });
        held.push(local);
        extras.push({ path: local.path, kind: extraKinds[i]!, filename: e.filename, role: e.role } as ToolInput & { role: string });
      }
      // Unchecked: the engine opens it at once; should that fail, the catch below asks whether the
      // blob is gone (an access per file fewer on local disk).
      const source = await store.localPath(file.sourceKey, { unchecked: true, under: into.dir });
      held.push(source);
      sourceHanded = true;
      // Each write wakes every gateway's live streams (a trigger NOTIFYs, migrations/0013_job_events_notify.sql): at most
      // one per PROGRESS_MIN_INTERVAL_MS per file, and only when the percentage moved.
      const onProgress = (f: number) => {
        const pct = Math.floor(f * 100);
        const now = performance.now();
        if (pct > lastProgress && now - lastProgressAt >= PROGRESS_MIN_INTERVAL_MS) {
          lastProgress = pct;
          lastProgressAt = now;
          void setFileProgress(pool, file.id, pct).catch(() => undefined);
        }
      };
      const common = {
        limits: settings.limits,
        engines: settings.engines,
        animation: settings.animation,
        avifEffort: settings.avifEffort,
        timeout: settings.fileTimeout,
        signal,
        onProgress,
      };
      // Everything up to here and after the codec is round trips; only the codec waits for a core's slot.
      const gate = deps.codecGates?.get(ctx.queue);
      const leaveGate = gate ? await gate.enter(signal) : undefined;
      let result: Produced;
      const codecStart = performance.now();
      try {
        codecStarted = codecStart;
        result = work.tool
          ? await runToolFor(work, { path: source.path, kind, filename: file.filename }, extras as (ToolInput & { role: string })[], folderOf(into), file.filename, common)
          : await runConversion(work.options, kind, source.path, into, file.filename, src.size, common);
      } finally {
        leaveGate?.();
      }
      // The engine's own time, apart from the file's whole handling (`ms`: source, a codec slot, output, record).
      const codecMs = Math.round(performance.now() - codecStart);
      countAttempt();
      const storageKey = keys.output(file.jobId, file.id, result.extension);
      // sharp's size is the file's own (it stats what it wrote): the store need not look again.
      const { size } = await store.putFile(storageKey, result.path, into.file !== undefined ? { size: result.size } : {});
      // The scratch file was the output, moved into place now: nothing is left to remove.
      if (into.file !== undefined) scratch = undefined;
      await finish({
        ok: true,
        output: { storageKey, filename: outputFilename(file.filename, result.extension), mimeType: result.mimeType, size },
        // Written through the contract's schema, which the gateway reads it back with.
        result: fileResultSchema.parse({
          format: result.format,
          mimeType: result.mimeType,
          finalSize: size,
          savedPercent: savedPercent(src.size, size),
          appliedQuality: result.appliedQuality,
          width: result.width,
          height: result.height,
          durationSeconds: result.durationSeconds,
          targetMet: result.targetMet,
          targetReason: result.targetReason,
          encodes: result.encodes,
          notes: result.notes?.length ? result.notes : undefined,
          engine: result.engine,
          metadata: result.metadata,
          storyboard: result.storyboard,
        }),
      });
      log.info('file done', { ms: Date.now() - started, codecMs, from: kind, to: result.format, engine, ...(work.tool ? { tool: work.tool } : {}), size });
    } catch (caught) {
      let err = caught;
      // The engine was handed the source unchecked: failing on a blob that is no longer there is not
      // the engine's failure, nor the file's.
      if (sourceHanded && isCodecError(err) && (await store.stat(file.sourceKey).catch(() => ({ size: -1 }))) === undefined) {
        codecStarted = undefined;
        err = new BlobNotFoundError(file.sourceKey);
      }
      // An attempt our own shutdown interrupted is not the engine's failure.
      if (!deps.stopSignal?.aborted) countAttempt(isCodecError(err) ? classify(err.kind).code : 'engine_failed');
      const queueName = queueFor(claim.job.jobType, { kind: file.sourceKind, tool });
      if (deps.stopSignal?.aborted) {
        // Interrupted by our own shutdown, not the file's fault: queue it again as a fresh message
        // (no retry spent; claimFile takes a file still 'processing'). If that fails, throwing lets
        // pg-boss retry it instead. The hold goes first, so whoever takes the new message may start.
        await release();
        await deps.queue.send(queueName, payload);
        log.info('file interrupted by shutdown; queued again', { ms: Date.now() - started });
        return;
      }
      if (isStorageUnavailable(err) && (await requeueWhileStorageIsDown(deps.queue, queueName, payload, err, settings.storageRetryMaxSeconds, log))) return;
      if (err instanceof BlobNotFoundError && err.key === file.sourceKey) {
        log.warn('source blob is gone', { key: err.key });
        return fail('engine_failed', 'The uploaded file is no longer in storage; submit the job again.');
      }
      if (err instanceof SourceFetchError) {
        log.warn('URL source not fetched', { code: err.code, message: err.message, permanent: err.permanent });
        if (err.permanent || ctx.retryCount >= ctx.retryLimit) return fail(err.code, err.message);
        throw err;
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
      for (const h of held) await h.release();
      await scratch?.release();
    }
  }

  /**
   * A conversion or compression of one file, as before tools existed: into a folder (`dir`), or
   * written at `file` (a conversion that writes nothing but its output: writesOnlyOutput).
   */
  async function runConversion(o: FileOptions, kind: InputKind, input: string, into: Scratch, filename: string, originalSize: number, common: Common): Promise<Produced> {
    // The refusal check above made sure a compress job without a format has a target.
    const target = (o.format ?? compressTargetFor(kind))!;
    const box = resolveResize(o, settings.presets);
    const req: FileConvertRequest = {
      input,
      inputKind: kind,
      filename,
      format: target,
      quality: o.quality,
      ...(box ? { resize: { ...(box.width ? { width: box.width } : {}), ...(box.height ? { height: box.height } : {}), fit: box.fit } } : {}),
      autoOrient: o.autoOrient,
      stripMetadata: o.stripMetadata,
      lossless: o.lossless,
      mono: o.mono,
      ...common,
    };
    const result: CompressResult =
      into.file !== undefined
        ? await convertToFile(req, into.file)
        : mode === 'compress'
          ? await compress({ ...req, outputDir: into.dir, ...(o.format ? { format: o.format } : { format: undefined }), mode: o.mode, targetBytes: o.targetBytes, originalSize })
          : await convert({ ...req, outputDir: into.dir });
    // An archive converted entry by entry comes back as a zip whatever the target: name it by what it is.
    const extension = OUTPUT_INFO[(result.format in OUTPUT_INFO ? result.format : target) as OutputFormat].extension;
    return { ...result, extension };
  }

  /**
   * The file's bytes as stored: a URL source (and any extra source given by URL) is fetched into
   * storage first, once; the row then holds its kind and size, so a retry goes straight on.
   */
  async function fetchSourcesOnce(file: JobFileRow, signal: AbortSignal): Promise<{ kind: string | null; size: number; extras: ExtraSource[] }> {
    let kind = file.sourceKind;
    let size = file.originalSize;
    let extras = file.extraSources ?? [];
    let fetched = false;
    const fetchDeps = { store, outbound: deps.outbound, settings: settings.urlFetch };
    if (file.sourceUrl && size === null) {
      const got = await fetchUrlSource(fetchDeps, { url: file.sourceUrl, key: file.sourceKey, maxBytes: file.sourceMaxBytes }, signal);
      kind = got.kind ?? null;
      size = got.size;
      fetched = true;
    }
    if (extras.some((e) => e.url && (e.size === undefined || e.size === null))) {
      extras = await fetchExtraSources(fetchDeps, extras, file.sourceMaxBytes, signal);
      fetched = true;
    }
    if (fetched) {
      const facts = { kind, size: size ?? 0, extraSources: extras.length ? extras : null };
      const events = deps.events;
      if (!events) await recordFetchedSource(pool, file.id, facts);
      else {
        // The fetched file is stored now: file.uploaded, with the row that says so.
        await withTransaction(pool, async (tx) => {
          await recordFetchedSource(tx, file.id, facts);
          await recordJobEvents(tx, events, file.jobId, { kind: 'source_fetched', file: { index: file.idx, filename: file.filename } });
        });
      }
    }
    return { kind, size: size ?? 0, extras };
  }
}

/** A conversion (the file's options) or a media tool (its parsed options). */
/** A file message: its ids, and what the gateway knew of who hears of the job (contracts fileTaskPayload). */
type FilePayload = { jobId: string; fileId: string } & Hearing;
/** One message's attempt at its file: whether its hold row may still exist, and its one release. */
interface Attempt {
  holdRow: boolean;
  released: boolean;
  release: () => Promise<void>;
}
type Hearing = { apiKeyId?: string | undefined; jobWebhook?: boolean | undefined };
/** Where an attempt's engine writes: a folder of its own, or the one path of a conversion that writes nothing but its output. */
type Scratch = ({ dir: string; file?: undefined } | { file: string; dir?: undefined }) & { release: () => Promise<void> };

type Work = { tool?: undefined; options: FileOptions } | ToolWork;
type ToolWork = { [T in CodecToolName]: { tool: T; options: ToolOptionsMap[T] } }[CodecToolName];

/**
 * The contract's parsed options must be what the codec's tools take. Checked here, at compile time:
 * a tool whose shapes drift apart turns `true` below into a type error naming the tool.
 */
type Misfits = { [T in CodecToolName]: ToolOptionsMap[T] extends CodecToolOptions<T> ? never : T }[CodecToolName];
const contractFitsCodec: [Misfits] extends [never] ? true : Misfits = true;
void contractFitsCodec;

/** A media tool always gets a folder (only a plain conversion may write straight into a file). */
function folderOf(s: Scratch): string {
  if (s.dir === undefined) throw new Error('A media tool was given a scratch file instead of a folder.');
  return s.dir;
}

const isCodecTool = (name: ToolName): name is CodecToolName => name in CODEC_TOOLS;

function asKind(k: string | null): InputKind | undefined {
  return (INPUT_KINDS as readonly string[]).includes(k ?? '') ? (k as InputKind) : undefined;
}

/** What either path produced, as the handler stores it. */
type Produced = Omit<ToolResult, 'notes'> & Partial<Pick<CompressResult, 'targetMet' | 'targetReason' | 'encodes'>> & { notes?: string[] | undefined };

interface Common {
  limits: Limits;
  engines: EnginePaths;
  animation: { maxFps: number; maxWidth: number };
  avifEffort: number;
  timeout: Limit;
  signal: AbortSignal;
  onProgress: (f: number) => void;
}

async function runToolFor(work: ToolWork, input: ToolInput, extras: (ToolInput & { role: string })[], outputDir: string, filename: string, common: Common): Promise<Produced> {
  const pages = extras.filter((e) => e.role === 'page');
  const overlay = extras.find((e) => e.role === 'overlay');
  const outputName = work.tool === 'storyboard' ? outputFilename(filename, OUTPUT_INFO[work.options.format].extension) : undefined;
  return runTool(work.tool, {
    input,
    outputDir,
    options: work.options as never,
    ...(pages.length ? { pages } : {}),
    ...(overlay ? { overlay } : {}),
    ...(outputName ? { outputName } : {}),
    ...common,
  });
}
