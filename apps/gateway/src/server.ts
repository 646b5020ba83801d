/**
 * Builds the gateway's dependencies from config and starts listening. Used by main.ts and by tests
 * that want a real gateway on a real port.
 */
import type { Server } from 'node:http';
import { loggerFor, type Config } from '@kiln/config';
import { DIALECTS, JOB_TYPES } from '@kiln/contracts';
import { createPool, findRunningEmbedded, migrate, readJobTotals } from '@kiln/db';
import { createMetrics } from '@kiln/metrics';
import { Queue, fileQueueTimings } from '@kiln/queue';
import { createBlobStore } from '@kiln/storage';
import { createOutbound, outboundSettings } from '@kiln/outbound';
import { createRecipientCache, eventContext } from '@kiln/webhooks';
import { createApp } from './app.ts';
import { backpressureLimits, createBackpressure } from './backpressure.ts';
import { bootstrapKeys } from './bootstrap-keys.ts';
import type { GatewayDeps } from './deps.ts';
import { KeyCache, StoredFileCache } from './caches.ts';
import { createJobWaiter } from './job-waiter.ts';
import { createSigner, loadSigningSecret } from './signing.ts';
import { http } from './node-http.ts';

export async function buildDeps(config: Config): Promise<GatewayDeps & { close: () => Promise<void> }> {
  const log = loggerFor('gateway', config);
  const url = config.DATABASE_URL ?? (await findRunningEmbedded(config.dataDir));
  if (!url) throw new Error('No database: set DATABASE_URL, or run `pnpm start` (which starts an embedded Postgres in DATA_DIR).');
  await migrate(url);
  const pool = createPool(url, config.DB_POOL_MAX, { preparedStatements: config.DB_PREPARED_STATEMENTS, connectTimeoutSeconds: config.DB_CONNECT_TIMEOUT_SECONDS });
  const queue = await new Queue({
    connectionString: url,
    retryLimit: config.JOB_RETRY_LIMIT,
    ...fileQueueTimings({ fileTimeoutSeconds: config.FILE_TIMEOUT_SECONDS, recordRetrySeconds: config.WORKER_RECORD_RETRY_SECONDS, orphanSeconds: config.WORKER_ORPHAN_SECONDS }),
    deleteAfterSeconds: config.QUEUE_HISTORY_SECONDS,
    supervise: false,
    onError: (err) => log.error('queue error', { err }),
  }).start();
  const store = await createBlobStore(config);
  const signer = createSigner(await loadSigningSecret(config.SIGNING_SECRET, config.dataDir));
  const waiter = await createJobWaiter(url, pool, log);
  const recipients = await createRecipientCache(pool, url, log);
  await bootstrapKeys(pool, config.BOOTSTRAP_API_KEY, log);
  const outbound = createOutbound(outboundSettings(config));
  const metrics = createMetrics();
  metrics.watchPool(pool);
  metrics.watchQueues(() => queue.depths());
  metrics.watchJobTotals(() => readJobTotals(pool));
  metrics.initJobSeries(JOB_TYPES, DIALECTS);
  return {
    config,
    pool,
    queue,
    store,
    log,
    metrics,
    signer,
    waiter,
    keyCache: new KeyCache(waiter),
    storedFiles: new StoredFileCache(),
    outbound,
    backpressure: createBackpressure({
      read: () => queue.depths(),
      limits: backpressureLimits(config),
      onRefuse: (q, limit) => metrics.queueFullRefusals.inc({ queue: q, limit }),
    }),
    events: eventContext({
      signer,
      publicUrl: config.PUBLIC_URL,
      port: config.PORT,
      ttlSeconds: config.DOWNLOAD_URL_TTL_SECONDS,
      progressIntervalMs: config.WEBHOOK_PROGRESS_INTERVAL_MS,
      recipients,
    }),
    close: async () => {
      await outbound.close();
      await waiter.close();
      await recipients.close();
      await queue.stop(5000).catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.');

/**
 * A request Node's HTTP parser refuses before Express sees it (a header with bytes no header may
 * hold, a malformed request line, headers past the size limit): answered in the house's error shape
 * instead of Node's bare "400 Bad Request", so even this refusal carries a code and a sentence.
 */
export function answerClientError(err: NodeJS.ErrnoException & { code?: string }, socket: import('node:stream').Duplex): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [status, reason, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'The request headers are too large; send fewer or shorter headers.']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'The request headers did not arrive in time; send the request again.']
        : [400, 'Bad Request', 'The request is not valid HTTP/1.1 (a malformed request line or header); check its headers for characters headers may not hold.'];
  const body = JSON.stringify({ error: message, code: 'invalid_request', detail: { reason: String(err.code ?? 'malformed_http').toLowerCase() } });
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export async function startGateway(config: Config): Promise<{ server: Server; url: string; deps: GatewayDeps; stop: () => Promise<void> }> {
  const deps = await buildDeps(config);
  const app = createApp(deps);
  const server = http.createServer(app);
  // Uploads of large files are slow by nature; don't cut them off, but do bound idle sockets.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  server.on('clientError', answerClientError);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(config.PORT, config.HOST, resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.PORT;
  const url = `http://127.0.0.1:${port}`;
  deps.log.info('gateway listening', {
    url,
    dataDir: config.dataDir,
    storage: { driver: deps.store.kind, ...deps.store.location },
    downloads: config.DOWNLOAD_REDIRECT === 's3' ? 'redirect to presigned S3 GET' : 'streamed by the gateway',
  });
  if (!config.METRICS_TOKEN && !isLoopback(config.HOST)) {
    deps.log.warn(
      `METRICS_TOKEN is unset, so GET /metrics (queue depths, job totals, the Node.js version) is open to anyone who can reach ${config.HOST}:${port}: set METRICS_TOKEN, or bind HOST=127.0.0.1 behind a proxy.`,
      { setting: 'METRICS_TOKEN' },
    );
  }
  let stopping: Promise<void> | undefined;
  return {
    server,
    url,
    deps,
    stop: () =>
      (stopping ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Live event streams never end by themselves: close them, and their clients resume elsewhere.
          deps.waiter.endJobEvents();
          server.closeIdleConnections();
        });
        await deps.close();
      })()),
  };
}
