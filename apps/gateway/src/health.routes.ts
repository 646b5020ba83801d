import { Router } from 'express';
import { listWorkerHeartbeats } from '@kiln/db';
import type { GatewayDeps } from './deps.ts';

/** Workers refresh their heartbeat every 15 s; three missed beats make one stale. */
const STALE_AFTER_SECONDS = 45;

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
    const [database, queue, storage] = await Promise.all([check(() => deps.pool.query('SELECT 1')), check(() => deps.queue.ping()), check(() => deps.store.ping())]);
    // Which driver, and for S3 which bucket answered (or did not): the first thing to look at when
    // hosts disagree about where blobs are.
    const storageReport = { driver: deps.store.kind, ...deps.store.location, ...storage };
    const ok = database.ok && queue.ok && storage.ok;
    // Informational: the gateway can take jobs with no worker running (they wait in the queue), so
    // workers do not decide readiness. Engines are what the freshest worker resolved at start-up.
    const beats = database.ok ? await listWorkerHeartbeats(deps.pool).catch(() => []) : [];
    const workers = beats.map((b) => ({ service: b.service, lastSeenSeconds: Math.round(b.ageSeconds), stale: b.ageSeconds > STALE_AFTER_SECONDS }));
    const freshest = [...beats].sort((a, b) => a.ageSeconds - b.ageSeconds)[0];
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'unavailable', checks: { database, queue, storage: storageReport }, workers, engines: freshest?.engines ?? null });
  });
  return r;
}
