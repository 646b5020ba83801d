/** API-key authentication: `Authorization: Bearer <key>` or `x-api-key: <key>`. */
import type { NextFunction, Request, Response } from 'express';
import { AppError } from '@kiln/contracts';
import { findActiveKey, touchApiKey, type ApiKeyRow, type Pool } from '@kiln/db';
import type { KeyCache } from './caches.ts';

declare global {
  namespace Express {
    interface Request {
      apiKey?: ApiKeyRow;
      requestId?: string;
    }
  }
}

export function presentedKey(req: Request): string | undefined {
  const auth = req.get('authorization');
  if (auth) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const x = req.get('x-api-key');
  return x?.trim() || undefined;
}

export function requireApiKey(pool: Pool, cache?: KeyCache) {
  // last_used_at is a hint, not an audit log: write it at most every 30 s per key per process.
  const touched = new Map<string, number>();
  return async (req: Request, _res: Response, next: NextFunction) => {
    const key = presentedKey(req);
    if (!key) throw new AppError('unauthorized', 'Missing API key.');
    const lookup = () => findActiveKey(pool, key);
    const row = key.length > 512 ? undefined : cache ? await cache.find(key, lookup) : await lookup();
    if (!row) throw new AppError('unauthorized', 'Invalid API key.');
    req.apiKey = row;
    const now = Date.now();
    if ((touched.get(row.id) ?? 0) < now - 30_000) {
      touched.set(row.id, now);
      void touchApiKey(pool, row.id).catch(() => undefined);
    }
    next();
  };
}

export function apiKeyOf(req: Request): ApiKeyRow {
  if (!req.apiKey) throw new AppError('unauthorized', 'Missing API key.');
  return req.apiKey;
}
