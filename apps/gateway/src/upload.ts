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
import { keys, type BlobStore } from '@kiln/storage';

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
 * stream, so a store being written from it keeps nothing.
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

function blobStorage(store: BlobStore, jobIdOf: (req: Request) => string, fields: FileFields): multer.StorageEngine {
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
      store.put(key, capture).then(
        ({ size }) => cb(null, { fileId, key, size, kind: sniff(capture.head) } satisfies StoredPart as unknown as Partial<Express.Multer.File>),
        (err: unknown) => {
          void store.delete([key]).catch(() => undefined);
          cb(err as Error);
        },
      );
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

/**
 * Runs multer for one request and returns the stored parts in file order. On any error every blob
 * this request stored is removed before the error propagates, so a refused upload leaves nothing.
 */
export function receiveUpload(store: BlobStore, req: Request, res: Response, jobId: string, limits: UploadLimits, fields: FileFields = JOB_FILE_FIELDS): Promise<UploadedFile[]> {
  const ct = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(ct)) {
    return Promise.reject(new AppError('invalid_request', 'Send the request as multipart/form-data with the files in the "files" field.', { detail: { contentType: ct || null } }));
  }
  const mw = multer({
    storage: blobStorage(store, () => jobId, fields),
    limits: { fileSize: limits.maxFileBytes, files: limits.maxFiles, fieldSize: limits.maxFieldBytes, fields: 200, parts: limits.maxFiles + 200 },
  }).any();
  return new Promise((resolve, reject) => {
    mw(req, res, (err?: unknown) => {
      const raw = (req.files as unknown as (Express.Multer.File & StoredPart)[] | undefined) ?? [];
      if (err) {
        const mapped = (() => {
          if (err instanceof multer.MulterError) return multerError(err, limits);
          if (err instanceof AppError) return err;
          const e = err as { status?: number; message?: string };
          if (e.status && e.status < 500) return new AppError('invalid_request', `The multipart body could not be read: ${e.message ?? 'malformed'}.`);
          return err;
        })();
        // Answer only once nothing of this request is left in storage.
        void store
          .delete(raw.map((f) => f.key).filter(Boolean))
          .catch(() => undefined)
          .then(() => reject(mapped));
        return;
      }
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
  });
}
