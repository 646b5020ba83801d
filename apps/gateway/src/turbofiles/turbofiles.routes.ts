/**
 * The TurboFiles dialect, mounted at `/v1` (docs/api.md, "TurboFiles dialect"): JSON:API 1.1 over
 * the same keys, limits, job tables, queue and workers as the Convertly dialect. Order matters: the
 * signed upload and download links need no key and read their own bodies; everything else is
 * negotiated, authenticated, rate-limited and parsed within TURBOFILES_MAX_BODY_BYTES, and every
 * failure, a 401 or a 404 included, is answered as a JSON:API error document.
 */
import { Router } from 'express';
import type { GatewayDeps } from '../deps.ts';
import { requireApiKey } from '../auth.ts';
import { rateLimitByKey } from '../key-limits.ts';
import { filesRoutes, signedFileLinks } from './files.routes.ts';
import { jsonApiErrors, jsonApiNotFound, jsonBody, negotiate } from './jsonapi.ts';
import { tasksRoutes } from './tasks.routes.ts';
import { usersRoutes } from './users.routes.ts';

export function turbofilesRouter(deps: GatewayDeps): Router {
  const r = Router();
  r.use(signedFileLinks(deps));
  r.use(negotiate());
  r.use(requireApiKey(deps.pool, deps.keyCache));
  r.use(rateLimitByKey(deps.pool, deps.config));
  r.use(jsonBody(deps.config));
  r.use(filesRoutes(deps));
  r.use(tasksRoutes(deps));
  r.use(usersRoutes(deps));
  r.use(jsonApiNotFound);
  r.use(jsonApiErrors(deps.config));
  return r;
}
