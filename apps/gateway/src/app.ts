/**
 * The gateway's Express app, built from its dependencies so tests can run it without a process.
 * Never imports sharp or ffmpeg: conversion happens in the workers.
 */
import express, { type Express } from 'express';
import type { GatewayDeps } from './deps.ts';
import { requireApiKey } from './auth.ts';
import { errorHandler, notFound } from './errors.ts';
import { filesRouter } from './files.routes.ts';
import { formatsRouter } from './formats.routes.ts';
import { healthRouter } from './health.routes.ts';
import { jobsRouter } from './jobs.routes.ts';
import { metricsRouter } from './metrics.routes.ts';
import { requestContext } from './request-context.ts';
import { syncRouter } from './sync.routes.ts';
import { mediaCatalogRouter, mediaRouter } from './media.routes.ts';
import { webhooksRouter } from './webhooks.routes.ts';
import { rateLimitByKey } from './key-limits.ts';
import { docsRouter } from './docs.routes.ts';
import { lazyRouter } from './lazy-router.ts';

export function createApp(deps: GatewayDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');
  app.use(requestContext(deps));
  app.use(healthRouter(deps));
  app.use(metricsRouter(deps));
  app.use(docsRouter());
  app.use('/api', formatsRouter());
  app.use('/api', mediaCatalogRouter());
  app.use('/api', filesRouter(deps));
  const api = express.Router();
  api.use(requireApiKey(deps.pool, deps.keyCache));
  api.use(rateLimitByKey(deps.pool, deps.config));
  api.use(jobsRouter(deps));
  api.use(syncRouter(deps));
  api.use(mediaRouter(deps));
  api.use(webhooksRouter(deps));
  app.use('/api', api);
  // Imported by their first request (lazy-router.ts): an upload never needs them.
  app.use(
    '/v1',
    lazyRouter(async () => (await import('./turbofiles/turbofiles.routes.ts')).turbofilesRouter(deps)),
  );
  app.use(
    '/dashboard',
    lazyRouter(async () => (await import('./dashboard/dashboard.routes.ts')).dashboardRouter(deps)),
  );
  app.use(notFound);
  app.use(errorHandler());
  return app;
}
