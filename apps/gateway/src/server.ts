/**
 * Builds the gateway's dependencies from config and starts listening. Used by main.ts and by tests
 * that want a real gateway on a real port.
 */
import http from 'node:http';
import { loggerFor, type Config } from '@kiln/config';
import { DIALECTS, JOB_TYPES } from '@kiln/contracts';
import { createPool, findRunningEmbedded, migrate, readJobTotals } from '@kiln/db';
import { createMetrics } from '@kiln/metrics';
import { Queue } from '@kiln/queue';
import { createBlobStore } from '@kiln/storage';
import { createOutbound, outboundSettings } from '@kiln/outbound';
import { createApp } from './app.ts';
import { bootstrapKeys } from './bootstrap-keys.ts';
import type { GatewayDeps } from './deps.ts';
import { KeyCache, StoredFileCache } from './caches.ts';
import { createJobWaiter } from './job-waiter.ts';
import { createSigner, loadSigningSecret } from './signing.ts';

export async function buildDeps(config: Config): Promise<GatewayDeps & { close: () => Promise<void> }> {
  const log = loggerFor('gateway', config);
  const url = config.DATABASE_URL ?? (await findRunningEmbedded(config.dataDir));
  if (!url) throw new Error('No database: set DATABASE_URL, or run `pnpm start` (which starts an embedded Postgres in DATA_DIR).');
  await migrate(url);
  const pool = createPool(url, config.DB_POOL_MAX, { preparedStatements: config.DB_PREPARED_STATEMENTS });
  const queue = await new Queue({
    connectionString: url,
    retryLimit: config.JOB_RETRY_LIMIT,
    expireInSeconds: config.FILE_TIMEOUT_SECONDS + 60,
    supervise: false,
    onError: (err) => log.error('queue error', { err }),
  }).start();
  const store = await createBlobStore(config);
  const signer = createSigner(await loadSigningSecret(config.SIGNING_SECRET, config.dataDir));
  const waiter = await createJobWaiter(url, pool, log);
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
    close: async () => {
      await outbound.close();
      await waiter.close();
      await queue.stop(5000).catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
}

export async function startGateway(config: Config): Promise<{ server: http.Server; url: string; deps: GatewayDeps; stop: () => Promise<void> }> {
  const deps = await buildDeps(config);
  const app = createApp(deps);
  const server = http.createServer(app);
  // Uploads of large files are slow by nature; don't cut them off, but do bound idle sockets.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
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
