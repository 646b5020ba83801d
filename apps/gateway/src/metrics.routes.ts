/**
 * `GET /metrics`: the gateway's Prometheus page — its own HTTP, upload and job counters, plus the
 * whole system's queue depths and job totals read from Postgres (cached for a few seconds, so scrapes
 * cost Postgres one small query per period). With METRICS_TOKEN set it needs that bearer token.
 */
import { Router } from 'express';
import { AppError } from '@kiln/contracts';
import { METRICS_UNAUTHORIZED, bearerAllows } from '@kiln/metrics';
import type { GatewayDeps } from './deps.ts';

export function metricsRouter(deps: Pick<GatewayDeps, 'config' | 'metrics'>): Router {
  const r = Router();
  r.get('/metrics', async (req, res) => {
    if (!bearerAllows(req.get('authorization'), deps.config.METRICS_TOKEN)) {
      throw new AppError('unauthorized', METRICS_UNAUTHORIZED.error, { headers: { 'WWW-Authenticate': 'Bearer realm="kiln-metrics"' } });
    }
    const { registry } = deps.metrics;
    res.set('Content-Type', registry.contentType).send(await registry.metrics());
  });
  return r;
}
