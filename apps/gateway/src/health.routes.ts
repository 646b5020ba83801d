import { Router } from 'express';
import type { GatewayDeps } from './deps.ts';

export function healthRouter(deps: GatewayDeps): Router {
  const r = Router();
  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  r.get('/readyz', async (_req, res) => {
    const check = async (fn: () => Promise<unknown>) => {
      const t = Date.now();
      try {
        await Promise.race([fn(), new Promise((_, rej) => setTimeout(() => rej(new Error('timed out after 3 s')), 3000).unref())]);
        return { ok: true, ms: Date.now() - t };
      } catch (err) {
        return { ok: false, error: err instanceof Error ? err.message : String(err) };
      }
    };
    const [database, queue, storage] = await Promise.all([
      check(() => deps.pool.query('SELECT 1')),
      check(() => deps.queue.ping()),
      check(() => deps.store.stat('readyz-probe')),
    ]);
    const ok = database.ok && queue.ok && storage.ok;
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'unavailable', checks: { database, queue, storage } });
  });
  return r;
}
