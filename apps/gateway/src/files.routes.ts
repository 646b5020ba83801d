/** Signed downloads: `GET /api/files/:id?exp&sig`. No API key; the signature is the permission. */
import { Router } from 'express';
import { pipeline } from 'node:stream/promises';
import { AppError, isUuid } from '@kiln/contracts';
import { getStoredFile } from '@kiln/db';
import type { GatewayDeps } from './deps.ts';

function contentDisposition(filename: string): string {
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
    const stat = stored && (await deps.store.stat(stored.storageKey));
    if (!stored || !stat) throw new AppError('not_found', 'This file is no longer stored: results are deleted after the retention period.');
    res.set({
      'Content-Type': stored.mimeType,
      'Content-Length': String(stat.size),
      'Content-Disposition': contentDisposition(stored.filename),
      'Cache-Control': 'private, max-age=3600',
      'X-Content-Type-Options': 'nosniff',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    await pipeline(await deps.store.open(stored.storageKey), res);
  });
  return r;
}
