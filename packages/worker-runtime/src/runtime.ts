/**
 * Wiring shared by the worker processes: config, database, queue, storage, handlers, graceful stop.
 * SIGTERM stops taking work, lets running files finish (bounded), closes pools and exits.
 */
import { DEFAULT_RESIZE_PRESETS, DIALECTS, JOB_TYPES, presetOverridesSchema, type PresetTable } from '@kiln/contracts';
import { loadConfig, loggerFor, type Config, type Logger } from '@kiln/config';
import { createMetrics, startMetricsServer, type MetricsServer } from '@kiln/metrics';
import { resolveFfmpeg, resolveFfprobe, toolOptions, type Limit, type Limits, type ResolvedBinary } from '@kiln/codec';
import { createPool, findRunningEmbedded, migrate, upsertWorkerHeartbeat, type Pool } from '@kiln/db';
import { Queue, fileQueueTimings } from '@kiln/queue';
import { createBlobStore, createSigner, loadSigningSecret } from '@kiln/storage';
import { createRecipientCache, deliverySettings, eventContext, startWebhookDelivery, type DeliveryLoop } from '@kiln/webhooks';
import { createOutbound, outboundSettings } from '@kiln/outbound';
import sharp from 'sharp';
import type { WorkerDeps, WorkerSettings } from './file-handler.ts';
import { configureEngineLimits } from './lifecycle/engine-limits.ts';
import { startWorkerInstance } from './lifecycle/instance.ts';
import { RECYCLE_EXIT_CODE, watchRss } from './lifecycle/rss-recycle.ts';

export function presetsFrom(config: Config): PresetTable {
  if (!config.RESIZE_PRESETS) return DEFAULT_RESIZE_PRESETS;
  const parsed = presetOverridesSchema.safeParse(JSON.parse(config.RESIZE_PRESETS));
  if (!parsed.success) throw new Error(`RESIZE_PRESETS is not valid: ${parsed.error.message}`);
  return { ...DEFAULT_RESIZE_PRESETS, ...parsed.data };
}

/** The settings whose values are numbers: the ones a Limit can be made from. */
type NumericSetting = { [K in keyof Config]-?: Config[K] extends number ? K : never }[keyof Config];

/** One limit from config: the setting is named once, and its name travels with its value into messages. */
export function limitFrom(config: Config, setting: NumericSetting): Limit {
  return { max: config[setting], setting };
}

/** Every limit the codec enforces, from config. */
export function codecLimits(config: Config): Limits {
  const limit = (setting: NumericSetting) => limitFrom(config, setting);
  return {
    pixels: limit('IMAGE_MAX_PIXELS'),
    durationSeconds: limit('MEDIA_MAX_DURATION_SECONDS'),
    videoPixels: limit('MEDIA_MAX_PIXELS'),
    streams: limit('MEDIA_MAX_STREAMS'),
    archiveEntries: limit('ARCHIVE_MAX_ENTRIES'),
    expandedBytes: limit('ARCHIVE_MAX_EXPANDED_BYTES'),
    expansionRatio: limit('ARCHIVE_MAX_EXPANSION_RATIO'),
    tracePixels: limit('TRACE_MAX_PIXELS'),
    pdfPages: limit('PDF_MAX_PAGES'),
    svgDensity: limit('SVG_MAX_DENSITY'),
  };
}

export function settingsFrom(config: Config): WorkerSettings {
  return {
    retentionHours: config.RETENTION_HOURS,
    fileTimeout: limitFrom(config, 'FILE_TIMEOUT_SECONDS'),
    limits: codecLimits(config),
    engines: {
      ...(config.FFMPEG_PATH ? { ffmpegPath: config.FFMPEG_PATH } : {}),
      ...(config.FFPROBE_PATH ? { ffprobePath: config.FFPROBE_PATH } : {}),
      ...(config.SEVENZIP_PATH ? { sevenZipPath: config.SEVENZIP_PATH } : {}),
      ...(config.HEIF_ENC_PATH ? { heifEncPath: config.HEIF_ENC_PATH } : {}),
    },
    animation: { maxFps: config.ANIMATION_MAX_FPS, maxWidth: config.ANIMATION_MAX_WIDTH },
    avifEffort: config.AVIF_EFFORT,
    presets: presetsFrom(config),
    storageRetryMaxSeconds: config.STORAGE_RETRY_MAX_SECONDS,
    urlFetch: { enabled: config.URL_IMPORT, maxUploadBytes: config.MAX_UPLOAD_BYTES },
    recordRetrySeconds: config.WORKER_RECORD_RETRY_SECONDS,
  };
}

/** What this worker converts with, for the start-up log and /readyz (via worker_heartbeats). */
export async function engineReport(settings: WorkerSettings): Promise<Record<string, unknown>> {
  const describe = (p: Promise<ResolvedBinary>) =>
    p.then(
      (b) => ({ path: b.path, source: b.source, version: b.version, ...(b.warning ? { warning: b.warning } : {}) }),
      (err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }),
    );
  const o = toolOptions(settings.engines);
  const [ffmpeg, ffprobe] = await Promise.all([describe(resolveFfmpeg(o.ffmpeg)), describe(resolveFfprobe(o.ffprobe))]);
  return { ffmpeg, ffprobe, sharp: { version: sharp.versions.sharp ?? null, libvips: sharp.versions.vips } };
}

const HEARTBEAT_MS = 15_000;

/** DATABASE_URL, or the embedded server a running `pnpm start` left its address for in DATA_DIR. */
export async function resolveDatabaseUrl(config: Config): Promise<string> {
  if (config.DATABASE_URL) return config.DATABASE_URL;
  const url = await findRunningEmbedded(config.dataDir);
  if (url) return url;
  throw new Error('No database: set DATABASE_URL, or run `pnpm start` (which starts an embedded Postgres in DATA_DIR).');
}

export interface RunningWorker {
  deps: WorkerDeps;
  stop: () => Promise<void>;
}

export async function startWorker(opts: {
  service: string;
  /** The setting that holds this worker's metrics port (0 = no listener). */
  metricsPort: 'CONVERT_METRICS_PORT' | 'COMPRESS_METRICS_PORT';
  register: (deps: WorkerDeps, config: Config) => Promise<void>;
  env?: Record<string, string | undefined>;
}): Promise<RunningWorker> {
  const config = loadConfig(opts.env ?? process.env);
  const log: Logger = loggerFor(opts.service, config);
  if (config.SHARP_CONCURRENCY) sharp.concurrency(config.SHARP_CONCURRENCY);
  // libvips' operation cache only helps when the same image is processed twice; a service never does.
  sharp.cache(false);
  const url = await resolveDatabaseUrl(config);
  await migrate(url);
  const pool: Pool = createPool(url, config.DB_POOL_MAX, { preparedStatements: config.DB_PREPARED_STATEMENTS, connectTimeoutSeconds: config.DB_CONNECT_TIMEOUT_SECONDS });
  const queue = new Queue({
    connectionString: url,
    retryLimit: config.JOB_RETRY_LIMIT,
    ...fileQueueTimings({ fileTimeoutSeconds: config.FILE_TIMEOUT_SECONDS, recordRetrySeconds: config.WORKER_RECORD_RETRY_SECONDS, orphanSeconds: config.WORKER_ORPHAN_SECONDS }),
    deleteAfterSeconds: config.QUEUE_HISTORY_SECONDS,
    preparedStatements: config.DB_PREPARED_STATEMENTS,
    onError: (err) => log.error('queue error', { err }),
  });
  await queue.start();
  /** A start that fails after this point closes what it opened. */
  let closeRecipients = async (): Promise<void> => undefined;
  const abandon = async (err: unknown): Promise<never> => {
    await closeRecipients();
    await queue.stop(1000).catch(() => undefined);
    await pool.end().catch(() => undefined);
    throw err;
  };
  // Checked before any work is taken: a worker that cannot reach storage would only fail files.
  const store = await createBlobStore(config).catch(abandon);
  // Aborted when a stop's grace period runs out: running conversions are killed and queued again.
  const stopController = new AbortController();
  // Without a metrics port nobody can read this registry: its counters stay, Node's own metrics are skipped.
  const metrics = createMetrics({ processMetrics: config[opts.metricsPort] !== 0 });
  metrics.watchPool(pool);
  metrics.initJobSeries(JOB_TYPES, DIALECTS);
  const outbound = createOutbound(outboundSettings(config));
  // Webhook payloads carry signed download links, signed like the gateway's (SIGNING_SECRET).
  // Its LISTEN connection also wakes this worker's delivery loop when deliveries are queued anywhere.
  let wakeDeliveries: (() => void) | undefined;
  const recipients = await createRecipientCache(pool, url, log, { deliveries: () => wakeDeliveries?.() }).catch(abandon);
  closeRecipients = () => recipients.close();
  const events = eventContext({
    recipients,
    signer: createSigner(await loadSigningSecret(config.SIGNING_SECRET, config.dataDir).catch(abandon)),
    publicUrl: config.PUBLIC_URL,
    port: config.PORT,
    ttlSeconds: config.DOWNLOAD_URL_TTL_SECONDS,
    progressIntervalMs: config.WEBHOOK_PROGRESS_INTERVAL_MS,
  });
  const engineLimits = configureEngineLimits(config);
  const instance = await startWorkerInstance({
    pool,
    queue,
    log,
    service: opts.service,
    settings: { orphanSeconds: config.WORKER_ORPHAN_SECONDS, retryLimit: config.JOB_RETRY_LIMIT, retentionHours: config.RETENTION_HOURS },
    events,
  }).catch(abandon);
  const deps: WorkerDeps = { pool, queue, store, log, metrics, settings: settingsFrom(config), outbound, stopSignal: stopController.signal, instance, events };
  // Before any work is taken: a port that is already in use stops the start with the setting's name.
  let metricsServer: MetricsServer | undefined;
  if (config[opts.metricsPort]) {
    metricsServer = await startMetricsServer({
      registry: metrics.registry,
      port: config[opts.metricsPort],
      host: config.HOST,
      token: config.METRICS_TOKEN,
      setting: opts.metricsPort,
    }).catch(abandon);
  }
  await opts.register(deps, config);
  // Both workers deliver webhooks from the outbox (docs/webhooks.md).
  const webhooks: DeliveryLoop = startWebhookDelivery({ pool, outbound, log: log.child({ component: 'webhooks' }), metrics, settings: deliverySettings(config) });
  wakeDeliveries = webhooks.wake;
  log.info('worker ready', {
    storage: { driver: store.kind, ...store.location },
    metrics: metricsServer ? `http://${config.HOST}:${metricsServer.port}/metrics` : `off (${opts.metricsPort}=0)`,
  });
  const engines: Record<string, unknown> = { ...(await engineReport(deps.settings)), engineLimits };
  log.info('engines', engines);
  // The bundled 2018 ffmpeg parses hostile uploads with years of known bugs: say so, loudly, with the fix.
  for (const tool of ['ffmpeg', 'ffprobe'] as const) {
    const warning = (engines[tool] as { warning?: string } | undefined)?.warning;
    if (warning) log.warn(`outdated ${tool}: ${warning}`, { engine: tool });
  }
  if (engineLimits.warning) log.warn(`engine limits: ${engineLimits.warning}`, { engineLimits });
  const beat = () => upsertWorkerHeartbeat(pool, opts.service, engines).catch((err) => log.warn('heartbeat failed', { err }));
  await beat();
  const heartbeat = setInterval(beat, HEARTBEAT_MS);
  heartbeat.unref();
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const graceMs = config.WORKER_STOP_GRACE_SECONDS * 1000;
      log.info('stopping: no new work, waiting for running files', { graceSeconds: config.WORKER_STOP_GRACE_SECONDS });
      clearInterval(heartbeat);
      const abortTimer = setTimeout(() => {
        log.warn('stop grace period over: aborting running files; they go back to the queue', { graceSeconds: config.WORKER_STOP_GRACE_SECONDS });
        stopController.abort(new Error('worker stopping'));
      }, graceMs);
      // The queue's own deadline is a backstop past ours (messages still running then are failed, so
      // pg-boss retries them): handlers abort at graceMs and need a moment to kill their engines and
      // re-queue their files.
      await queue.stop(graceMs + 15_000).catch((err) => log.error('queue stop failed', { err }));
      clearTimeout(abortTimer);
      await instance.stop();
      await webhooks.stop().catch((err) => log.error('webhook delivery stop failed', { err }));
      await metricsServer?.close();
      await recipients.close();
      await pool.end().catch(() => undefined);
      await outbound.close().catch(() => undefined);
      log.info('stopped');
    })());
  return { deps, stop };
}

/** For `main.ts`: start, and stop cleanly on SIGTERM/SIGINT. */
export async function runWorkerProcess(opts: Parameters<typeof startWorker>[0]): Promise<void> {
  let worker: RunningWorker;
  try {
    worker = await startWorker(opts);
  } catch (err) {
    console.error(`${opts.service} failed to start: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
  const onSignal = () => void worker.stop().then(() => process.exit(0));
  const config = loadConfig(opts.env ?? process.env);
  watchRss({
    maxMb: config.WORKER_MAX_RSS_MB,
    log: worker.deps.log,
    onOver: () => void worker.stop().then(() => process.exit(RECYCLE_EXIT_CODE)),
  });
  // `on`, not `once`: the codec's process runner re-raises a signal nobody else listens for (killing
  // its engines at once), and a `once` listener has already removed itself when that check runs.
  // stop() is idempotent, so a second signal changes nothing.
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
