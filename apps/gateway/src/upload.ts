/**
 * Multipart intake. Each file part is streamed straight to the BlobStore — never held whole in
 * memory, and with S3 never written to the gateway's disk — while its first bytes are kept to detect
 * what it really is. Names and client MIME types are not
 * trusted: the published SDK uploads every file as `upload` with no extension.
 */
import crypto from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import multer from 'multer';
import { AppError } from '@kiln/contracts';
import type { Config } from '@kiln/config';
import type { ApiKeyRow } from '@kiln/db';
import { SNIFF_BYTES, sniff, type InputKind } from '@kiln/formats';
import { isStorageUnavailable, keys, type BlobStore } from '@kiln/storage';
import { isDiskFull, storageFull } from './errors.ts';
import { countUploadBytes } from './upload-gc.ts';

export interface UploadedFile {
  /** Position among the request's files, after ordering `files[N]` parts by N. */
  index: number;
  fileId: string;
  fieldname: string;
  filename: string;
  key: string;
  size: number;
  kind: InputKind | undefined;
}

const FILE_FIELD = /^files(?:\[(\d+)\]|\.items(?:\[(\d+)\])?|\[\])?$/;

/** Which file parts a route takes: the job routes take `files`; the media tools `file` too, and watermark an overlay. */
export interface FileFields {
  accepts: (fieldname: string) => boolean;
  /** How to name the accepted fields in the refusal of any other. */
  describe: string;
}

export const JOB_FILE_FIELDS: FileFields = { accepts: (f) => FILE_FIELD.test(f), describe: 'the "files" field (or files[0], files[1], …)' };

/**
 * Passes a stream through, keeping its first SNIFF_BYTES for `sniff`. `onHead` is called once with
 * them, as soon as they have passed (or at the end of a shorter stream); a throw there fails the
 * stream, so a store being written from it keeps nothing. Every upload passes through one, so it
 * also counts the bytes for the young-generation collections of upload-gc.ts.
 */
export class HeadCapture extends Transform {
  head = Buffer.alloc(0);
  readonly #onHead: ((head: Buffer) => void) | undefined;
  #told = false;
  constructor(onHead?: (head: Buffer) => void) {
    super();
    this.#onHead = onHead;
  }
  #tell(cb: TransformCallback, chunk?: Buffer): void {
    if (this.#onHead && !this.#told) {
      this.#told = true;
      try {
        this.#onHead(this.head);
      } catch (err) {
        cb(err as Error);
        return;
      }
    }
    cb(null, chunk);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    countUploadBytes(chunk.length);
    if (this.head.length < SNIFF_BYTES) this.head = Buffer.concat([this.head, chunk.subarray(0, SNIFF_BYTES - this.head.length)]);
    if (this.head.length >= SNIFF_BYTES) this.#tell(cb, chunk);
    else cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    this.#tell(cb);
  }
}

interface StoredPart {
  fileId: string;
  key: string;
  size: number;
  kind: InputKind | undefined;
}

/** One request's parts still being written: so a refused request can stop them and wait before it answers. */
class PartsInFlight {
  readonly #parts = new Map<HeadCapture, Promise<unknown>>();
  add(capture: HeadCapture, writing: Promise<unknown>): void {
    this.#parts.set(capture, writing);
    void writing.finally(() => this.#parts.delete(capture)).catch(() => undefined);
  }
  /**
   * Ends every part still being written with `reason` and waits until the store has settled each
   * one (dropped its temporary file or aborted its multipart upload, or finished it). multer does not
   * always wait for its storage engine before reporting an error — a request that broke is reported
   * at once — so without this the job folder could be deleted before a part still being written
   * lands in it, and a part whose stream nobody ends would hold its descriptor and temporary file
   * for as long as the process lives.
   */
  async abort(reason: Error): Promise<void> {
    const pending = [...this.#parts.entries()];
    for (const [capture] of pending) if (!capture.destroyed) capture.destroy(reason);
    await Promise.allSettled(pending.map(([, p]) => p));
  }
}

function blobStorage(store: BlobStore, jobIdOf: (req: Request) => string, fields: FileFields, inFlight: PartsInFlight): multer.StorageEngine {
  return {
    _handleFile(req, file, cb) {
      if (!fields.accepts(file.fieldname)) {
        file.stream.resume();
        cb(
          new AppError('invalid_field', `Unexpected file field "${file.fieldname}": upload files in ${fields.describe}.`, {
            detail: { field: file.fieldname },
          }),
        );
        return;
      }
      const fileId = crypto.randomUUID();
      const key = keys.source(jobIdOf(req as Request), fileId);
      const capture = new HeadCapture();
      // pipeline, not pipe: when the client goes away mid-file the part's stream errors, and that
      // error must reach the store so it drops the partial blob (or aborts its multipart upload)
      // instead of waiting forever for an end that never comes.
      pipeline(file.stream, capture).catch(() => undefined);
      const writing = store.put(key, capture).then(
        ({ size }) => cb(null, { fileId, key, size, kind: sniff(capture.head) } satisfies StoredPart as unknown as Partial<Express.Multer.File>),
        async (err: unknown) => {
          await store.delete([key]).catch(() => undefined);
          cb(err as Error);
        },
      );
      inFlight.add(capture, writing);
    },
    _removeFile(_req, file, cb) {
      const key = (file as unknown as StoredPart).key;
      if (!key) return cb(null);
      store.delete([key]).then(
        () => cb(null),
        (err: Error) => cb(err),
      );
    },
  };
}

export interface UploadLimits {
  maxFileBytes: number;
  maxFiles: number;
  /** True when the API key's own limit (lower than the server's) applies. */
  maxFileBytesByKey?: boolean;
  maxFilesByKey?: boolean;
  maxFieldBytes: number;
}

type UploadConfig = Pick<Config, 'MAX_UPLOAD_BYTES' | 'MAX_FILES_PER_JOB' | 'MAX_FIELD_BYTES'>;

/** The server's upload limits, lowered by the key's own; each remembers which setting decided it, so a 413 names the one to change. */
export function uploadLimitsFor(config: UploadConfig, key: Pick<ApiKeyRow, 'limits'>): UploadLimits {
  const maxUploadBytes = key.limits.maxUploadBytes ?? Infinity;
  const maxFilesPerJob = key.limits.maxFilesPerJob ?? Infinity;
  return {
    maxFileBytes: Math.min(config.MAX_UPLOAD_BYTES, maxUploadBytes),
    maxFiles: Math.min(config.MAX_FILES_PER_JOB, maxFilesPerJob),
    maxFileBytesByKey: maxUploadBytes < config.MAX_UPLOAD_BYTES,
    maxFilesByKey: maxFilesPerJob < config.MAX_FILES_PER_JOB,
    maxFieldBytes: config.MAX_FIELD_BYTES,
  };
}

/** The 413 for a file over the upload limit, naming the setting (the server's or the key's) that decided it. */
export function fileTooLarge(limits: Pick<UploadLimits, 'maxFileBytes' | 'maxFileBytesByKey'>, detail: Record<string, unknown> = {}): AppError {
  return limits.maxFileBytesByKey
    ? new AppError(
        'file_too_large',
        `A file is larger than this API key's upload limit of ${limits.maxFileBytes} bytes; split it, or ask the operator to raise the key's maxUploadBytes.`,
        { detail: { limit: 'maxUploadBytes', maxBytes: limits.maxFileBytes, ...detail } },
      )
    : new AppError('file_too_large', `A file is larger than the upload limit of ${limits.maxFileBytes} bytes; split it or raise MAX_UPLOAD_BYTES.`, {
        detail: { limit: 'MAX_UPLOAD_BYTES', maxBytes: limits.maxFileBytes, ...detail },
      });
}

function multerError(err: multer.MulterError, limits: UploadLimits): AppError {
  switch (err.code) {
    case 'LIMIT_FILE_SIZE':
      return fileTooLarge(limits, { field: err.field });
    case 'LIMIT_FILE_COUNT':
      return limits.maxFilesByKey
        ? new AppError(
            'too_many_files',
            `Too many files: this API key allows at most ${limits.maxFiles} per request; send several requests, or ask the operator to raise the key's maxFilesPerJob.`,
            { detail: { limit: 'maxFilesPerJob', maxFiles: limits.maxFiles } },
          )
        : new AppError('too_many_files', `Too many files: at most ${limits.maxFiles} per request; send several requests or raise MAX_FILES_PER_JOB.`, {
            detail: { limit: 'MAX_FILES_PER_JOB', maxFiles: limits.maxFiles },
          });
    case 'LIMIT_FIELD_VALUE':
      return new AppError('invalid_field', `Field "${err.field}" is longer than ${limits.maxFieldBytes} bytes; raise MAX_FIELD_BYTES if this is intended.`, {
        detail: { field: err.field, limit: 'MAX_FIELD_BYTES' },
      });
    case 'LIMIT_UNEXPECTED_FILE':
      return new AppError('invalid_field', `Unexpected file field "${err.field}": upload files in the "files" field.`, { detail: { field: err.field } });
    default:
      return new AppError('invalid_request', `The multipart body could not be read (${err.code}); send multipart/form-data with files in the "files" field.`, {
        detail: { reason: err.code },
      });
  }
}

/** busboy's own messages, as the reason a client gets (they are stable: busboy 1.x). */
const BODY_REASONS: [RegExp, string, string][] = [
  [/Unexpected end of (form|file)/i, 'body_incomplete', 'the body ended before the closing boundary: send the whole multipart body (its Content-Length must match what is sent)'],
  [/Malformed part header/i, 'malformed_part_header', 'a part has a malformed header: each part needs a Content-Disposition: form-data; name="…" header'],
  [/Boundary not found/i, 'missing_boundary', 'the Content-Type has no boundary: send Content-Type: multipart/form-data; boundary=…'],
  [/Unsupported content type|Missing Content-Type/i, 'unsupported_content_type', 'send Content-Type: multipart/form-data; boundary=…'],
  [/Malformed urlencoded form/i, 'malformed_body', 'the body could not be parsed'],
];

/** The client hung up (or its connection broke) before the body arrived: nobody is left to answer. */
function isClientGone(err: unknown): boolean {
  const e = err as { message?: unknown; code?: unknown } | null;
  return /^(Request (aborted|closed|error)|aborted)$/.test(String(e?.message ?? '')) || e?.code === 'ECONNRESET' || e?.code === 'ERR_STREAM_PREMATURE_CLOSE';
}

/**
 * What a failed multipart read becomes. Ours (AppError), multer's limits and storage's own failures
 * keep their meaning; anything else came from reading the client's body (busboy's parse errors, a
 * connection that broke), which is a 400 naming what was wrong — never a 500.
 */
export function bodyError(err: unknown, limits: UploadLimits): unknown {
  if (err instanceof AppError) return err;
  if (err instanceof multer.MulterError) return multerError(err, limits);
  if (isDiskFull(err)) return storageFull(err);
  if (isStorageUnavailable(err)) return err;
  // A file-system error (EACCES, EIO, EMFILE, …) is the server's: let it be logged as one.
  if (err && typeof err === 'object' && 'syscall' in err && !isClientGone(err)) return err;
  const message = String((err as { message?: unknown } | null)?.message ?? '');
  const known = BODY_REASONS.find(([re]) => re.test(message));
  if (!known && isClientGone(err)) {
    return new AppError('invalid_request', 'The upload was interrupted before its body arrived; send the request again.', { cause: err, detail: { reason: 'client_aborted' } });
  }
  const [reason, why] = known ? [known[1], known[2]] : ['malformed_body', 'it is not valid multipart/form-data'];
  return new AppError('invalid_request', `The multipart body could not be read: ${why}.`, { cause: err, detail: { reason } });
}

/**
 * Runs multer for one request and returns the stored parts in file order. On any error every part
 * still being written is stopped, and everything this request stored (the job's folder: `jobId` is
 * new and owned by this request alone) is removed before the error propagates, so a refused upload
 * leaves nothing — no blob, no temporary file, no open descriptor, no empty folder.
 */
export function receiveUpload(store: BlobStore, req: Request, res: Response, jobId: string, limits: UploadLimits, fields: FileFields = JOB_FILE_FIELDS): Promise<UploadedFile[]> {
  const ct = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(ct)) {
    return Promise.reject(new AppError('invalid_request', 'Send the request as multipart/form-data with the files in the "files" field.', { detail: { contentType: ct || null } }));
  }
  const inFlight = new PartsInFlight();
  const mw = multer({
    storage: blobStorage(store, () => jobId, fields, inFlight),
    limits: { fileSize: limits.maxFileBytes, files: limits.maxFiles, fieldSize: limits.maxFieldBytes, fields: 200, parts: limits.maxFiles + 200 },
  }).any();
  return new Promise((resolve, reject) => {
    const fail = (err: unknown) => {
      const mapped = bodyError(err, limits);
      // Answer only once nothing of this request is left in storage.
      void inFlight
        .abort(mapped instanceof Error ? mapped : new Error(String(mapped)))
        .then(() => store.delete([keys.job(jobId)]))
        .catch(() => undefined)
        .then(() => reject(mapped));
    };
    try {
      mw(req, res, (err?: unknown) => {
        if (err) return fail(err);
        const raw = (req.files as unknown as (Express.Multer.File & StoredPart)[] | undefined) ?? [];
        const withIndex = raw.map((f, arrival) => {
          const m = FILE_FIELD.exec(f.fieldname);
          const explicit = m?.[1] ?? m?.[2];
          return { f, order: explicit !== undefined ? Number(explicit) : arrival, arrival };
        });
        withIndex.sort((a, b) => a.order - b.order || a.arrival - b.arrival);
        resolve(
          withIndex.map(({ f }, index) => ({
            index,
            fileId: f.fileId,
            fieldname: f.fieldname,
            filename: (f.originalname || 'upload').slice(0, 255),
            key: f.key,
            size: f.size,
            kind: f.kind,
          })),
        );
      });
    } catch (err) {
      fail(err);
    }
  });
}
