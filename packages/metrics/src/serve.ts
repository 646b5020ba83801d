/**
 * Serving a Registry: the bearer check both the gateway's route and the workers' listener use, and the
 * small HTTP server a worker runs on its own port (workers have no HTTP server otherwise).
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type { Registry } from 'prom-client';

// Not `import http from 'node:http'`: an ES import of node:http reads all its exports, and its lazy
// WebSocket/CloseEvent/MessageEvent load Node's bundled undici, about 10 MB of a process's memory
// for nothing (docs/performance.md, "Gateway memory"). require() reads only what is used.
const http = createRequire(import.meta.url)('node:http') as typeof import('node:http');

/** True when no token is configured, or the request's `Authorization: Bearer …` carries it (compared in constant time). */
export function bearerAllows(authorization: string | undefined, token: string | undefined): boolean {
  if (!token) return true;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!m) return false;
  // Hashing first makes both sides the same length, so the comparison leaks neither bytes nor length.
  const digest = (s: string) => crypto.createHash('sha256').update(s).digest();
  return crypto.timingSafeEqual(digest(m[1]!), digest(token));
}

/** The refusal, in the API's error shape, naming what to send. */
export const METRICS_UNAUTHORIZED = {
  error: 'GET /metrics needs the metrics token: send Authorization: Bearer <METRICS_TOKEN>.',
  code: 'unauthorized',
} as const;

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Listens on `host:port` and answers GET /metrics (everything else 404). `setting` names the port's
 * setting, for the error when the port is taken.
 */
export async function startMetricsServer(opts: { registry: Registry; port: number; host: string; token?: string | undefined; setting: string }): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const json = (status: number, body: object) => {
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...(status === 401 ? { 'WWW-Authenticate': 'Bearer realm="kiln-metrics"' } : {}) });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) return json(404, { error: 'Only GET /metrics is served on this port.', code: 'not_found' });
    if (!bearerAllows(req.headers.authorization, opts.token)) return json(401, METRICS_UNAUTHORIZED);
    opts.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': opts.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => json(500, { error: `The metrics could not be collected: ${err instanceof Error ? err.message : String(err)}`, code: 'internal_error' }),
    );
  });
  // A scrape is one short request; never let a stuck client hold a socket.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(
              `${opts.setting}=${opts.port}: the port is already in use on ${opts.host} (another worker of this kind on this host?); give each worker its own port, or 0 to turn its metrics off.`,
            )
          : new Error(`${opts.setting}=${opts.port}: cannot listen for metrics on ${opts.host}: ${err.message}`),
      );
    });
    server.listen(opts.port, opts.host, resolve);
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : opts.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
