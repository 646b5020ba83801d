/**
 * `GET /healthz` (the process answers) and `GET /readyz` (it can take work: Postgres, the queue and
 * storage answer). Both need no key, so both say as little as they can: `/readyz` tells anyone only
 * its `status`; the checks, storage location, worker heartbeats and engine paths and versions — a
 * map of the house for an attacker — go only to a caller holding METRICS_TOKEN, the token
 * monitoring already holds for /metrics.
 */
import { Router, type Request } from 'express';
import { listWorkerHeartbeats } from '@kiln/db';
import { bearerAllows } from '@kiln/metrics';
import type { GatewayDeps } from './deps.ts';

/** Workers refresh their heartbeat every 15 s; three missed beats make one stale. */
const STALE_AFTER_SECONDS = 45;

export function healthRouter(deps: GatewayDeps): Router {
  const r = Router();
  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // Unset METRICS_TOKEN: nobody gets the detail over HTTP (bearerAllows would let everyone in).
  const mayReadDetail = (req: Request) => deps.config.METRICS_TOKEN !== undefined && bearerAllows(req.get('authorization'), deps.config.METRICS_TOKEN);
  r.get('/readyz', async (req, res) => {
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
    res.set('Cache-Control', 'no-store');
    if (!mayReadDetail(req)) {
      res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'unavailable' });
      return;
    }
    // Informational: the gateway can take jobs with no worker running (they wait in the queue), so
    // workers do not decide readiness. Engines are what the freshest worker resolved at start-up.
    const beats = database.ok ? await listWorkerHeartbeats(deps.pool).catch(() => []) : [];
    const workers = beats.map((b) => ({ service: b.service, lastSeenSeconds: Math.round(b.ageSeconds), stale: b.ageSeconds > STALE_AFTER_SECONDS }));
    const freshest = [...beats].sort((a, b) => a.ageSeconds - b.ageSeconds)[0];
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'unavailable', checks: { database, queue, storage: storageReport }, workers, engines: freshest?.engines ?? null });
  });
  return r;
}
