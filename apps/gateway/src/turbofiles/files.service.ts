/**
 * TurboFiles files: declared with POST /v1/files (format and size), filled by one PUT of exactly
 * `size` bytes to a signed upload link, then READY for tasks until they expire (TURBOFILES_FILE_TTL_HOURS).
 *
 * The bytes are checked like every upload Kiln takes: their type is sniffed from their first bytes
 * (the declared format is the client's word, compared with what they are), and they stream to the
 * store as they arrive. A PUT of the wrong length or the wrong bytes leaves nothing stored and the
 * file awaiting its upload. With UPLOAD_DIRECT=s3 the link is a presigned S3 PUT instead, the gateway
 * never sees the bytes, and the same checks run on the stored object when the file is next read.
 */
import crypto from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request } from 'express';
import { AppError, isUuid, type CreateFileDocument, type FileAttributes, type Resource, type TurbofilesFileStatus } from '@kiln/contracts';
import { INPUT_INFO, SNIFF_BYTES, inputKindOf, sameContent, sniff, type InputKind } from '@kiln/formats';
import { claimUpload, commitUpload, createTurbofilesFile, releaseUpload, settleDirectUpload, type ApiKeyRow, type TaskOutputRow, type TurbofilesFileRow } from '@kiln/db';
import { keys } from '@kiln/storage';
import type { GatewayDeps } from '../deps.ts';
import { publicBaseUrl, urlBuilder } from '../job-responses.ts';
import { fileTooLarge, HeadCapture, uploadLimitsFor } from '../upload.ts';

type Deps = Pick<GatewayDeps, 'config' | 'pool' | 'store' | 'signer' | 'storedFiles'> & { metrics?: Pick<GatewayDeps['metrics'], 'uploadFiles' | 'uploadBytes'> };

/** What the signer signs for each kind of link, so one link can never be used as the other. */
const SIGNED = { upload: (id: string) => `tf-upload:${id}`, download: (id: string) => `tf-download:${id}` };

/** The attempt key presigned PUTs write: fixed, since the URL must name it before any attempt begins. */
const DIRECT_ATTEMPT = 'direct';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function fileStatus(f: Pick<TurbofilesFileRow, 'readyAt' | 'expiresAt' | 'purgedAt'>, now = Date.now()): TurbofilesFileStatus {
  if (f.purgedAt || f.expiresAt.getTime() <= now) return 'EXPIRED';
  return f.readyAt ? 'READY' : 'AWAITING_UPLOAD';
}

const directUploads = (deps: Pick<Deps, 'config' | 'store'>) => deps.config.UPLOAD_DIRECT === 's3' && !!deps.store.presignPut;

/**
 * The one place an upload link is made. Kiln's own: a signed `PUT /v1/files/:id/upload`, streamed to
 * the store by the gateway. With UPLOAD_DIRECT=s3: a presigned S3 PUT with the declared size signed
 * in, so the bucket itself refuses any other length. Either way it expires after
 * TURBOFILES_UPLOAD_URL_TTL_SECONDS, and never after the file does.
 */
export async function uploadLinkFor(deps: Deps, base: string, f: TurbofilesFileRow): Promise<string> {
  const ttl = Math.max(1, Math.min(deps.config.TURBOFILES_UPLOAD_URL_TTL_SECONDS, Math.floor((f.expiresAt.getTime() - Date.now()) / 1000)));
  if (directUploads(deps)) return deps.store.presignPut!(keys.upload(f.id, DIRECT_ATTEMPT), { expiresInSeconds: ttl, contentLength: f.size });
  const { exp, sig } = deps.signer.sign(SIGNED.upload(f.id), ttl);
  return `${base}/v1/files/${f.id}/upload?exp=${exp}&sig=${sig}`;
}

/** The filename a declared file is saved under: it has none of its own, so its id and kind. */
export const declaredFilename = (f: Pick<TurbofilesFileRow, 'id' | 'kind'>) => `${f.id}.${f.kind}`;

export async function fileResource(deps: Deps, req: Request, f: TurbofilesFileRow): Promise<Resource<FileAttributes>> {
  const base = publicBaseUrl(deps.config, req);
  const status = fileStatus(f);
  const links: Resource['links'] = { self: `${base}/v1/files/${f.id}` };
  if (status === 'AWAITING_UPLOAD') links.upload = await uploadLinkFor(deps, base, f);
  if (status === 'READY') {
    const { exp, sig } = deps.signer.sign(SIGNED.download(f.id), deps.config.DOWNLOAD_URL_TTL_SECONDS);
    links.download = `${base}/v1/files/${f.id}/download?exp=${exp}&sig=${sig}`;
  }
  return {
    type: 'files',
    id: f.id,
    attributes: {
      format: f.format,
      size: f.size,
      status,
      created_at: f.createdAt.toISOString(),
      updated_at: f.updatedAt.toISOString(),
      expires_at: iso(f.expiresAt),
    },
    links,
    ...(status === 'AWAITING_UPLOAD' && f.uploadError ? { meta: { upload_error: f.uploadError } } : {}),
  };
}

/** A task's result as a file: READY until its job's retention ends, downloaded through the Convertly route's signed link. */
export function outputResource(deps: Deps, req: Request, o: TaskOutputRow): Resource<FileAttributes> {
  const base = publicBaseUrl(deps.config, req);
  const expired = !!o.expiresAt && o.expiresAt.getTime() <= Date.now();
  return {
    type: 'files',
    id: o.id,
    attributes: {
      format: o.mimeType,
      size: o.size,
      status: expired ? 'EXPIRED' : 'READY',
      created_at: o.createdAt.toISOString(),
      updated_at: o.createdAt.toISOString(),
      expires_at: iso(o.expiresAt),
    },
    links: { self: `${base}/v1/files/${o.id}`, ...(expired ? {} : { download: urlBuilder(deps, req)(o) }) },
  };
}

/** POST /v1/files: a file that awaits its bytes. Its format must name an input Kiln reads; its size must fit the upload limit. */
export async function declareFile(deps: Deps, key: ApiKeyRow, doc: CreateFileDocument): Promise<TurbofilesFileRow> {
  const { format, size } = doc.data.attributes;
  const kind = inputKindOf(format);
  if (!kind) {
    throw new AppError(
      'unsupported_format',
      `${JSON.stringify(format.slice(0, 100))} is not a file type Kiln reads; declare a MIME type or extension such as image/png, video/mp4 or zip (GET /api/formats lists them all).`,
      { detail: { pointer: '/data/attributes/format' } },
    );
  }
  const limits = uploadLimitsFor(deps.config, key);
  if (size > limits.maxFileBytes) throw fileTooLarge(limits, { pointer: '/data/attributes/size', size });
  return createTurbofilesFile(deps.pool, { id: crypto.randomUUID(), apiKeyId: key.id, format, kind, size, ttlHours: deps.config.TURBOFILES_FILE_TTL_HOURS });
}

/** The sentence for bytes that are not what was declared. */
function mismatch(f: Pick<TurbofilesFileRow, 'format'>, actual: InputKind | undefined): string {
  return actual
    ? `The uploaded bytes are ${INPUT_INFO[actual].mime} (${actual}), not the declared ${f.format}; upload the file that was declared, or declare a new file with its real format.`
    : `The uploaded bytes are not a file type Kiln recognises, not the declared ${f.format}; upload the file that was declared.`;
}

const sizeMismatch = (declared: number, got: string) =>
  `The upload must be exactly ${declared} bytes, the size this file was declared with; ${got}. Send the whole file, or declare a new file with its real size.`;

/**
 * Counts bytes and fails as soon as there are more than `size`, or at the end when there are fewer:
 * the stream errors, so the store keeps nothing.
 */
class ExactLength extends Transform {
  #seen = 0;
  readonly #size: number;
  constructor(size: number) {
    super();
    this.#size = size;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#size) cb(new AppError('size_mismatch', sizeMismatch(this.#size, 'more arrived'), { detail: { size: this.#size } }));
    else cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.#seen < this.#size) cb(new AppError('size_mismatch', sizeMismatch(this.#size, `${this.#seen} arrived`), { detail: { size: this.#size, received: this.#seen } }));
    else cb();
  }
}

/** Verifies a signed upload or download link of a declared file. */
function checkLink(deps: Deps, which: 'upload' | 'download', id: string, req: Request): void {
  const verdict = isUuid(id) ? deps.signer.verify(SIGNED[which](id), req.query.exp as string | undefined, req.query.sig as string | undefined) : 'invalid';
  if (verdict !== 'ok') {
    throw new AppError(
      which === 'upload' ? 'forbidden' : 'not_found',
      `This ${which} link ${verdict === 'expired' ? 'has expired' : 'is not valid'}; GET /v1/files/${isUuid(id) ? id : ':id'} (with your API key) for a fresh one.`,
      { detail: { reason: verdict } },
    );
  }
}

/**
 * PUT /v1/files/:id/upload?exp&sig: the file's bytes, exactly `size` of them, no API key (the
 * signature is the permission). One attempt at a time holds the file's claim and writes its own key;
 * only it can make the file READY. A refused attempt says why, and the file keeps waiting.
 */
export async function receiveUpload(deps: Deps, req: Request, id: string): Promise<TurbofilesFileRow> {
  checkLink(deps, 'upload', id, req);
  const attempt = crypto.randomUUID();
  const claim = await claimUpload(deps.pool, id, attempt, deps.config.TURBOFILES_UPLOAD_URL_TTL_SECONDS);
  if ('refused' in claim) {
    switch (claim.refused) {
      case 'ready':
        throw new AppError('conflict', `File ${id} has already been uploaded; its bytes cannot be replaced. Declare a new file to upload others.`, { detail: { status: 'READY' } });
      case 'busy':
        throw new AppError('conflict', `Another upload of file ${id} is in progress; wait for it to finish, or retry once it has failed.`, {
          detail: { status: 'AWAITING_UPLOAD' },
        });
      case 'expired':
        throw new AppError('not_found', `File ${id} has expired; declare a new file.`, { detail: { status: 'EXPIRED' } });
      default:
        throw new AppError('not_found', `No file ${id}.`);
    }
  }
  const f = claim.claimed;
  const declared = f.kind as InputKind;
  const length = req.get('content-length');
  try {
    if (length !== undefined && Number(length) !== f.size) {
      throw new AppError('size_mismatch', sizeMismatch(f.size, `Content-Length says ${length.slice(0, 20)}`), { detail: { size: f.size, contentLength: length.slice(0, 20) } });
    }
    let actual: InputKind | undefined;
    const head = new HeadCapture((bytes) => {
      actual = sniff(bytes);
      if (!sameContent(declared, actual)) throw new AppError('format_mismatch', mismatch(f, actual), { detail: { declared: f.format, detected: actual ?? null } });
    });
    const key = keys.upload(f.id, attempt);
    const exact = new ExactLength(f.size);
    // The request is piped, not put through pipeline(): a failed check must not destroy it, or the
    // socket would go before the error could be answered. A client that goes away fails the copy.
    const gone = () => {
      if (!req.complete) exact.destroy(new AppError('invalid_request', 'The upload was interrupted before all its bytes arrived; PUT the whole file again.'));
    };
    req.once('close', gone);
    req.once('error', gone);
    req.pipe(exact);
    // A check that fails errors the stream the store reads: it then keeps nothing.
    const checking = pipeline(exact, head).catch(() => undefined);
    try {
      await deps.store.put(key, head);
    } catch (err) {
      head.destroy();
      await checking;
      await deps.store.delete([key]).catch(() => undefined);
      // The check that failed is the answer, whichever stream reported it to the store.
      throw [exact, head].map((s) => s.errored).find((e) => e instanceof AppError) ?? err;
    } finally {
      req.off('close', gone);
      req.off('error', gone);
    }
    if (!(await commitUpload(deps.pool, f.id, attempt, key, actual!))) {
      await deps.store.delete([key]).catch(() => undefined);
      throw new AppError('conflict', `File ${id} was uploaded by another request meanwhile; this upload was discarded.`);
    }
    deps.metrics?.uploadFiles.inc({ dialect: 'turbofiles' });
    deps.metrics?.uploadBytes.inc({ dialect: 'turbofiles' }, f.size);
    return { ...f, kind: actual!, storageKey: key, readyAt: new Date(), updatedAt: new Date(), uploadError: null };
  } catch (err) {
    await releaseUpload(deps.pool, f.id, attempt, err instanceof AppError && err.status < 500 ? err.message : null).catch(() => undefined);
    // The rest of a refused body is not worth reading: say so, and let the connection go.
    if (!req.complete) req.resume();
    throw err;
  }
}

/**
 * UPLOAD_DIRECT=s3: bytes the client PUT to the presigned URL are checked on the stored object when
 * the file is next read (GET /v1/files/:id, POST /v1/tasks). Right size and type: READY. Otherwise
 * the object is deleted and the file keeps waiting, with the reason in its meta.upload_error.
 */
export async function settleIfUploadedDirectly(deps: Deps, f: TurbofilesFileRow): Promise<TurbofilesFileRow> {
  if (!directUploads(deps) || fileStatus(f) !== 'AWAITING_UPLOAD') return f;
  const key = keys.upload(f.id, DIRECT_ATTEMPT);
  const stat = await deps.store.stat(key);
  if (!stat) return f;
  let problem: string | undefined;
  let actual: InputKind | undefined;
  if (stat.size !== f.size) problem = sizeMismatch(f.size, `${stat.size} were stored`);
  else {
    const chunks: Buffer[] = [];
    for await (const c of await deps.store.open(key, { start: 0, end: Math.min(stat.size, SNIFF_BYTES) - 1 })) chunks.push(c as Buffer);
    actual = sniff(Buffer.concat(chunks));
    if (!sameContent(f.kind as InputKind, actual)) problem = mismatch(f, actual);
  }
  if (problem) await deps.store.delete([key]);
  return (await settleDirectUpload(deps.pool, f.id, problem ? { error: problem } : { storageKey: key, kind: actual! })) ?? f;
}

/** GET /v1/files/:id/download?exp&sig: a declared file's own bytes, for whoever holds the link. */
export function checkDownloadLink(deps: Deps, req: Request, id: string): void {
  checkLink(deps, 'download', id, req);
}
