/**
 * What every request carries: its id (the client's X-Request-Id when it is sane, else a new UUID, echoed
 * back), its logger (`req.log`: the gateway's logger with `requestId` bound, so every line a handler
 * writes names its request, however many requests are in flight), and once it ends, its HTTP metrics
 * and a debug-level access line. Metrics cost two in-memory updates per request: no I/O, nothing
 * serialised.
 */
import crypto from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '@kiln/config';
import type { GatewayDeps } from './deps.ts';

declare global {
  namespace Express {
    interface Request {
      /** This request's logger: every line it writes carries `requestId`. */
      log: Logger;
    }
  }
}

/** The route label of a request answered before any route matched (auth refusals, 404s). */
export const NO_ROUTE = '(none)';

export function requestContext(deps: Pick<GatewayDeps, 'log' | 'metrics'>) {
  return (req: Request, res: Response, next: NextFunction) => {
    const given = req.get('x-request-id');
    const requestId = given && /^[\w.-]{1,100}$/.test(given) ? given : crypto.randomUUID();
    req.requestId = requestId;
    res.set('X-Request-Id', requestId);
    // Made on first use: most requests log nothing.
    let log: Logger | undefined;
    Object.defineProperty(req, 'log', { configurable: true, get: () => (log ??= deps.log.child({ requestId })) });

    // The metrics label is the matched route's full pattern (/api/jobs/:id), never the path, which
    // holds ids. Express sets req.route when a route matches, with req.baseUrl then the mount path;
    // but when the handler throws, the router restores baseUrl before the error handler answers. So
    // the pattern is taken at the moment Express assigns req.route.
    let route: string | undefined;
    let matched: unknown;
    Object.defineProperty(req, 'route', {
      configurable: true,
      enumerable: true,
      get: () => matched,
      set: (r: { path?: unknown } | undefined) => {
        matched = r;
        route = r ? `${req.baseUrl}${String(r.path)}` : undefined;
      },
    });

    const started = performance.now();
    res.once('close', () => {
      const seconds = (performance.now() - started) / 1000;
      // A client that left before the answer was sent: nginx's 499, not the status never sent.
      const status = res.headersSent ? String(res.statusCode) : '499';
      const labels = { route: route ?? NO_ROUTE, method: req.method };
      deps.metrics.httpRequests.inc({ ...labels, status });
      deps.metrics.httpDuration.observe(labels, seconds);
      deps.log.debug('request', { requestId, method: req.method, url: req.originalUrl, route: labels.route, status: Number(status), ms: Math.round(seconds * 1000) });
    });
    next();
  };
}
