/**
 * Signed downloads: `GET /api/files/:id?exp&sig`. No API key; the signature is the permission.
 * The gateway streams the blob (a single `Range` is honoured, so players can seek and clients can
 * resume), or with DOWNLOAD_REDIRECT=s3 answers 302 to a short-lived presigned GET so the bytes go
 * from the bucket to the client directly.
 */
import { Router, type Request, type Response } from 'express';
import { pipeline } from 'node:stream/promises';
import { AppError, isUuid } from '@kiln/contracts';
import { getStoredFile } from '@kiln/db';
import type { GatewayDeps } from './deps.ts';

/** What a download serves: a blob, the name it is saved under and its type. */
export interface Downloadable {
  storageKey: string;
  filename: string;
  mimeType: string;
}

export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

export function filesRouter(deps: GatewayDeps): Router {
  const r = Router();
  r.get('/files/:id', async (req, res) => {
    const id = String(req.params.id);
    const verdict = isUuid(id) ? deps.signer.verify(id, req.query.exp as string | undefined, req.query.sig as string | undefined) : 'invalid';
    if (verdict === 'invalid') throw new AppError('not_found', 'This download link is not valid; get a fresh one from GET /api/jobs/:id.');
    if (verdict === 'expired') throw new AppError('not_found', 'This download link has expired; get a fresh one from GET /api/jobs/:id.', { detail: { reason: 'expired' } });
    const stored = deps.storedFiles.get(id) ?? (await getStoredFile(deps.pool, id));
    if (!stored || !(await sendBlob(deps, req, res, stored))) throw new AppError('not_found', 'This file is no longer stored: results are deleted after the retention period.');
  });
  return r;
}

/**
 * Answers a signed download of `blob`: streamed (a single `Range` honoured, so players can seek and
 * clients can resume), or with DOWNLOAD_REDIRECT=s3 a 302 to a short-lived presigned GET. False when
 * the blob is no longer stored (nothing has been sent then). Every signed download route ends here.
 */
/** Whole downloads up to this size are read in one go and sent from memory; larger ones are streamed. */
export const BUFFERED_DOWNLOAD_MAX_BYTES = 256 * 1024;

export async function sendBlob(deps: Pick<GatewayDeps, 'config' | 'store'>, req: Request, res: Response, blob: Downloadable): Promise<boolean> {
  const redirect = deps.config.DOWNLOAD_REDIRECT === 's3' && deps.store.presignGet;
  const whole = !redirect && req.method === 'GET' && !(req.headers.range && !req.headers['if-range']);
  // The common case, the whole file: one call gives its size and, when small, its bytes.
  const got = whole ? await deps.store.get(blob.storageKey, BUFFERED_DOWNLOAD_MAX_BYTES) : undefined;
  const stat = whole ? got : await deps.store.stat(blob.storageKey);
  if (!stat) return false;
  if (redirect) {
    const url = await redirect.call(deps.store, blob.storageKey, {
      expiresInSeconds: deps.config.S3_PRESIGN_TTL_SECONDS,
      contentDisposition: contentDisposition(blob.filename),
      contentType: blob.mimeType,
    });
    // The target expires in minutes: the redirect itself must not be cached past that.
    res.set({ 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' });
    res.redirect(302, url);
    return true;
  }

  res.set({
    'Content-Type': blob.mimeType,
    'Content-Disposition': contentDisposition(blob.filename),
    'Cache-Control': 'private, max-age=3600',
    'X-Content-Type-Options': 'nosniff',
    'Accept-Ranges': 'bytes',
  });
  // One range is served as 206; several (rare, and multipart/byteranges is not worth it) or a
  // malformed header get the whole file, as RFC 9110 allows. We send no validators, so an If-Range
  // can never match: the whole file too.
  const ranges = req.headers.range && !req.headers['if-range'] ? req.range(stat.size, { combine: true }) : undefined;
  if (ranges === -1) {
    res.status(416).set('Content-Range', `bytes */${stat.size}`).end();
    return true;
  }
  const range = Array.isArray(ranges) && ranges.length === 1 && ranges.type === 'bytes' ? ranges[0]! : undefined;
  if (range) {
    res.status(206).set({ 'Content-Range': `bytes ${range.start}-${range.end}/${stat.size}`, 'Content-Length': String(range.end - range.start + 1) });
  } else {
    res.set('Content-Length', String(stat.size));
  }
  if (req.method === 'HEAD') {
    res.end();
    return true;
  }
  if (got?.bytes) {
    res.end(got.bytes);
    return true;
  }
  try {
    await pipeline(got?.stream ?? (await deps.store.open(blob.storageKey, range)), res);
  } catch (err) {
    // The client went away mid-download (or as the last bytes left): nothing failed on our side.
    if ((err as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE' && res.destroyed) return true;
    throw err;
  }
  return true;
}
