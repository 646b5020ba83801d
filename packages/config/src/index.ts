/**
 * @kiln/config — composes small zod fragments into one typed config. `loadConfig(env)` is pure: it
 * reads only the object it is given, is called once in each `main.ts`, and reports every bad variable
 * at once with its name and how to fix it. Depends on zod only.
 */
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { createLogger, type Logger, type LoggerOptions } from './logger.ts';

const int = (dflt: number, min = 0) => z.coerce.number().int().min(min).default(dflt);
const optStr = z.string().trim().min(1).optional().catch(undefined);
const flag = (dflt: boolean) =>
  z
    .enum(['true', 'false', '1', '0'])
    .transform((v) => v === 'true' || v === '1')
    .default(dflt);
const cores = Math.max(1, os.availableParallelism());
/** What one host can run (`KILN_ROLES`): the API, and either kind of worker. */
export const ALL_ROLES = ['gateway', 'convert', 'compress'] as const;
export type Role = (typeof ALL_ROLES)[number];

/**
 * A comma list of hostnames, IPs and CIDRs. Checked for shape here so a typo is reported with the rest at
 * start-up; @kiln/outbound parses the entries for matching.
 */
const hostList = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const entries = (v ?? '')
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean);
    for (const e of entries) {
      const [addr = '', bits, extra] = e.replace(/^\[(.*)\]$/, '$1').split('/');
      const ipOk = net.isIP(addr) !== 0 && extra === undefined && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (net.isIPv4(addr) ? 32 : 128)));
      const nameOk = bits === undefined && /^(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?$/i.test(e);
      if (!ipOk && !nameOk)
        ctx.addIssue({ code: 'custom', message: `"${e}" is neither a hostname, an IP address nor a CIDR range (e.g. files.intranet, 10.0.0.5, 10.1.0.0/16, fd00::/8)` });
    }
    return entries;
  });

/**
 * Each fragment owns one area; the docs table in README.md is generated from these descriptions.
 * Built when asked for, not at import: some 150 settings' zod schemas are about 4 MB of a process's
 * heap, needed once in `loadConfig` and then never again (docs/performance.md, "Gateway memory").
 */
const buildFragments = () => ({
  core: z.object({
    DATA_DIR: z
      .string()
      .default('./data')
      .describe("This host's own files: blobs (STORAGE=local), scratch copies (STORAGE=s3), the embedded Postgres cluster and a generated signing secret."),
    DATABASE_URL: z.string().url().optional().describe('External Postgres. When unset, `pnpm start` runs an embedded server in DATA_DIR/postgres.'),
    DB_POOL_MAX: int(10, 1).describe('Connections per process in our own pool (pg-boss keeps its own).'),
    DB_CONNECT_TIMEOUT_SECONDS: int(10, 1).describe(
      'Longest a request waits for a database connection (a new one, or a free one from the pool) before it is answered 503 with Retry-After.',
    ),
    DB_PREPARED_STATEMENTS: flag(true).describe(
      "Name Kiln's frequent queries, and the workers' pg-boss fetch, so Postgres plans each once per connection (about half their Postgres CPU). Set false behind a pooler that cannot keep prepared statements (PgBouncer in transaction mode before 1.21).",
    ),
    LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('Log verbosity; `debug` adds one access line per HTTP request.'),
    RETENTION_HOURS: z.coerce.number().positive().default(24).describe('Results and sources are deleted this long after a job ends.'),
    QUEUE_HISTORY_SECONDS: int(3600, 60).describe(
      "How long pg-boss keeps a finished queue message before its maintenance deletes it (Kiln's own tables are the record of every job; this only bounds pg-boss's table).",
    ),
    EMBEDDED_PG_PORT: int(54329, 1).describe('Port of the embedded Postgres server (127.0.0.1; Kiln itself connects through a unix socket in DATA_DIR/postgres).'),
    KILN_ROLES: z
      .string()
      .trim()
      .default(ALL_ROLES.join(','))
      .transform((v, ctx) => {
        const roles = [
          ...new Set(
            v
              .split(',')
              .map((r) => r.trim().toLowerCase())
              .filter(Boolean),
          ),
        ];
        const bad = roles.filter((r) => !(ALL_ROLES as readonly string[]).includes(r));
        if (bad.length || roles.length === 0)
          ctx.addIssue({
            code: 'custom',
            message: `unknown role ${bad.length ? bad.map((b) => JSON.stringify(b)).join(', ') : '(none)'}: use a comma list of ${ALL_ROLES.join(', ')}`,
          });
        return ALL_ROLES.filter((r) => roles.includes(r));
      })
      .describe('What `pnpm start` runs on this host: a comma list of gateway, convert, compress. Anything but all three needs DATABASE_URL (and STORAGE=s3 across machines).'),
  }),
  /** Where blobs live. `local` keeps them under DATA_DIR/blobs; `s3` in a bucket every host can reach. */
  storage: z.object({
    STORAGE: z
      .enum(['local', 's3'])
      .default('local')
      .describe('Blob storage driver: `local` (DATA_DIR/blobs, one machine) or `s3` (any S3-compatible bucket, shared by every host).'),
    S3_BUCKET: optStr.describe('Bucket for sources, results and archives (STORAGE=s3). Kiln does not create it.'),
    S3_REGION: z.string().trim().min(1).default('us-east-1').describe("The bucket's region."),
    S3_ENDPOINT: z.string().url().optional().describe('S3-compatible endpoint (MinIO, R2, Ceph, …), e.g. https://minio.internal:9000; unset = AWS S3 for S3_REGION.'),
    S3_FORCE_PATH_STYLE: flag(false).describe('Address the bucket as ENDPOINT/BUCKET/key instead of BUCKET.ENDPOINT/key (MinIO and most self-hosted servers need true).'),
    S3_ACCESS_KEY_ID: optStr.describe("Access key; with S3_SECRET_ACCESS_KEY. Both unset = the AWS SDK's default credential chain (AWS_* variables, profile, instance role)."),
    S3_SECRET_ACCESS_KEY: optStr.describe('Secret for S3_ACCESS_KEY_ID.'),
    S3_PREFIX: z
      .string()
      .trim()
      .regex(/^([A-Za-z0-9][A-Za-z0-9._-]*\/)*[A-Za-z0-9][A-Za-z0-9._-]*\/?$/, 'must be a relative path such as kiln/ or tenants/a (letters, digits, . _ - and /)')
      .optional()
      .describe('Key prefix inside the bucket, so Kiln can share a bucket (e.g. kiln/).'),
    S3_PART_SIZE_MB: int(5, 5).describe(
      "Multipart upload part size in MiB (min 5, S3's own minimum). Each upload in flight holds three parts in memory; files above 10,000 parts are refused.",
    ),
    S3_REQUEST_CHECKSUM: z
      .enum(['when_supported', 'when_required'])
      .default('when_supported')
      .describe("AWS SDK requestChecksumCalculation: `when_required` for older S3-compatible servers that reject or store the SDK's default CRC32 checksums."),
    S3_RESPONSE_CHECKSUM: z
      .enum(['when_supported', 'when_required'])
      .default('when_supported')
      .describe('AWS SDK responseChecksumValidation: `when_required` skips checking downloads against stored checksums (for servers that send none or wrong ones).'),
    DOWNLOAD_REDIRECT: z
      .enum(['none', 's3'])
      .default('none')
      .describe(
        '`s3`: signed download links answer 302 to a short-lived presigned S3 GET, so bytes never pass through the gateway (needs STORAGE=s3 and a bucket clients can reach).',
      ),
    S3_PRESIGN_TTL_SECONDS: z.coerce
      .number()
      .int()
      .min(10)
      .max(7 * 24 * 3600)
      .default(300)
      .describe('Lifetime of presigned S3 URLs (DOWNLOAD_REDIRECT=s3).'),
    UPLOAD_DIRECT: z
      .enum(['none', 's3'])
      .default('none')
      .describe(
        "`s3`: a TurboFiles file's upload link is a presigned S3 PUT (its size signed in), so bytes go straight to the bucket; Kiln checks size and type when the file is next read. Needs STORAGE=s3 and a bucket clients can reach.",
      ),
  }),
  gateway: z.object({
    PORT: int(8080, 0).describe('Port the gateway listens on.'),
    HOST: z.string().default('0.0.0.0').describe("Address the gateway binds to (and the workers' metrics listeners, when on)."),
    PUBLIC_URL: z.string().url().optional().describe('Base of absolute download URLs; else taken from the request Host.'),
    SIGNING_SECRET: z.string().min(16).optional().describe('HMAC key for download URLs; generated once into DATA_DIR/signing-secret when unset.'),
    MAX_UPLOAD_BYTES: int(1024 ** 3, 1).describe('Largest single uploaded file, in bytes (413 above it).'),
    MAX_FILES_PER_JOB: int(50, 1).describe('Most files in one request.'),
    MAX_FIELD_BYTES: int(1024 * 1024, 1024).describe('Largest non-file form field, in bytes.'),
    SYNC_TIMEOUT_SECONDS: int(60, 1).describe('How long POST /api/convert and /api/compress wait before answering 202 with the job id.'),
    SYNC_INLINE_MAX_BYTES: int(25 * 1024 * 1024, 1).describe('Largest result returned inline as a data: URL by the sync endpoints.'),
    DOWNLOAD_URL_TTL_SECONDS: int(3600, 60).describe('Lifetime of signed download URLs.'),
    BOOTSTRAP_API_KEY: optStr.describe('Makes sure this API key exists at start-up (for automation).'),
    GATEWAY_IDLE_GC_SECONDS: int(1, 0).describe(
      "After this many seconds of an idle event loop, following 16 MB or more of growth of the gateway's RSS, one memory-reducing garbage collection gives the memory of a burst of requests back to the system (0 = leave it to V8, which does so 8–16 s after the burst).",
    ),
  }),
  worker: z.object({
    CONVERT_CONCURRENCY: int(cores, 1).describe(
      'Image files (raster and SVG) the convert worker processes at once; video/audio and documents/archives have slots of their own (CONVERT_MEDIA_CONCURRENCY, CONVERT_DOCUMENT_CONCURRENCY).',
    ),
    COMPRESS_CONCURRENCY: int(cores, 1).describe(
      'Image files the compress worker processes at once; video/audio and documents/archives have slots of their own (COMPRESS_MEDIA_CONCURRENCY, COMPRESS_DOCUMENT_CONCURRENCY).',
    ),
    IMAGE_OVERLAP_SLOTS: int(2, 0).describe(
      'Image files each worker takes beyond CONVERT_CONCURRENCY / COMPRESS_CONCURRENCY, which stay the most it converts at once: the extra ones claim, fetch, store and record while the others convert, so no core waits for those round trips. 0 = each slot does both in turn.',
    ),
    FILE_TIMEOUT_SECONDS: int(600, 1).describe('Longest a single file conversion may run.'),
    WORKER_STOP_GRACE_SECONDS: int(25, 0).describe('On SIGTERM, how long running files may finish before they are aborted (their engines killed) and queued again.'),
    JOB_RETRY_LIMIT: int(2, 0).describe('Retries (with backoff) for engine failures and timeouts; bad input is never retried.'),
    IMAGE_MAX_PIXELS: int(100_000_000, 1).describe('Largest decoded image, in pixels (width × height × frames).'),
    AVIF_EFFORT: int(2, 0).describe('AVIF/HEIF encoder effort 0–9: 2 is service-friendly, higher is smaller but much slower.'),
    MEDIA_MAX_DURATION_SECONDS: int(3600, 1).describe('Longest audio/video input, in seconds.'),
    MEDIA_MAX_PIXELS: int(3840 * 2160, 1).describe('Largest video frame (width × height), input and output.'),
    MEDIA_MAX_STREAMS: int(16, 1).describe('Most streams (video, audio, subtitle…) one media file may carry.'),
    ANIMATION_MAX_FPS: int(15, 1).describe('Frame-rate cap for GIF / animated WebP made from video.'),
    ANIMATION_MAX_WIDTH: int(480, 16).describe('Width cap for GIF / animated WebP made from video.'),
    ARCHIVE_MAX_ENTRIES: int(10_000, 1).describe('Most entries one archive may hold.'),
    ARCHIVE_MAX_EXPANDED_BYTES: int(4 * 1024 ** 3, 1).describe("Largest total size of an archive's contents once expanded."),
    ARCHIVE_MAX_EXPANSION_RATIO: int(200, 1).describe('Largest expanded-size / archive-size ratio (zip-bomb guard).'),
    TRACE_MAX_PIXELS: int(2_000_000, 1).describe('Largest image traced to SVG, in pixels (larger ones are downscaled to it first).'),
    PDF_MAX_PAGES: int(50, 1).describe('Most pages read from a PDF.'),
    SVG_MAX_DENSITY: int(600, 1).describe('Highest density (DPI) used to rasterise SVG input.'),
    FFMPEG_PATH: optStr.describe(
      'ffmpeg binary to use; else ffmpeg-static when its binary exists, else a system ffmpeg ≥ 5 on PATH, else the 2018 build in @ffmpeg-installer (with a start-up warning).',
    ),
    FFPROBE_PATH: optStr.describe('ffprobe binary to use; else the ffprobe beside FFMPEG_PATH, else a system ffprobe ≥ 5 on PATH, else @ffprobe-installer (with a warning).'),
    SEVENZIP_PATH: optStr.describe("7-Zip binary to use; else 7zip-bin's 7za."),
    HEIF_ENC_PATH: optStr.describe("libheif's heif-enc, for real HEVC HEIC output (else HEIF is AV1-coded)."),
    RESIZE_PRESETS: z.string().optional().describe('JSON overriding resize presets, e.g. {"email":{"width":640,"fit":"inside"}}.'),
    SHARP_CONCURRENCY: int(0, 0).describe('libvips threads per image (0 = sharp default, one per core).'),
    RETENTION_SWEEP_SECONDS: int(60, 1).describe('How often the convert worker deletes the blobs of expired jobs.'),
    RETENTION_SWEEP_BATCH: int(200, 1).describe(
      'Expired jobs purged per batch; a sweep runs batches (each its own short statements, no long lock) until none is left or RETENTION_SWEEP_SECONDS have passed.',
    ),
    STORAGE_RETRY_MAX_SECONDS: int(3600, 0).describe(
      'While storage is unavailable a worker puts its file back in the queue (no retry spent) for at most this long before counting failures.',
    ),
  }),
  /** Defaults for API keys that set no limit of their own (MAX_UPLOAD_BYTES, MAX_FILES_PER_JOB and RETENTION_HOURS double as the others). */
  keys: z.object({
    KEY_DEFAULT_RPM: int(0, 0).describe('Requests per minute per API key when the key sets none (0 = unlimited); counted in Postgres, so all gateways agree.'),
    KEY_DEFAULT_MAX_CONCURRENT_JOBS: int(0, 0).describe('Jobs one key may have pending or processing at once when the key sets none (0 = unlimited).'),
    KEY_DEFAULT_MONTHLY_JOB_QUOTA: int(0, 0).describe('Jobs one key may create per calendar month when the key sets none (0 = unlimited).'),
    KEY_DEFAULT_ALLOWED_FORMATS: z
      .string()
      .trim()
      .regex(/^[a-z0-9.]+(\s*,\s*[a-z0-9.]+)*$/i, 'must be a comma-separated list of output formats, e.g. png,webp,jpg')
      .optional()
      .describe('Output formats a key may request when the key sets none, comma-separated (unset = all).'),
  }),
  /** The TurboFiles dialect (`/v1/*`): see docs/api.md. */
  turbofiles: z.object({
    TURBOFILES_FILE_TTL_HOURS: z.coerce
      .number()
      .positive()
      .max(24 * 366)
      .default(48)
      .describe('How long a file declared with POST /v1/files lives (its expires_at); its bytes are deleted then, unless a task still pending or processing reads them.'),
    TURBOFILES_UPLOAD_URL_TTL_SECONDS: z.coerce
      .number()
      .int()
      .min(60)
      .max(7 * 24 * 3600)
      .default(3600)
      .describe("Lifetime of a file's upload link (never past the file's own expiry); GET /v1/files/:id hands out a fresh one while the file awaits its bytes."),
    TURBOFILES_MAX_BODY_BYTES: int(64 * 1024, 1024).describe('Largest JSON:API request body under /v1, in bytes (413 above it). Uploads go to the upload link, not here.'),
  }),
  /** URL sources (`sourceUrl`) and every other outbound request (webhooks): see docs/outbound-requests.md. */
  /**
   * Fairness and backpressure: each class of work (media, image, document) has its own queues and its
   * own worker slots, and new work of a class is refused with 429 while its backlog is past a limit.
   */
  fairness: z.object({
    CONVERT_MEDIA_CONCURRENCY: int(1, 1).describe('Video and audio files (ffmpeg) the convert worker processes at once, in slots images never wait behind.'),
    CONVERT_DOCUMENT_CONCURRENCY: int(1, 1).describe(
      'PDFs, archives and compressed files (and URL sources until their type is known) the convert worker processes at once, in slots of their own.',
    ),
    COMPRESS_MEDIA_CONCURRENCY: int(1, 1).describe('Video and audio files the compress worker processes at once, in slots images never wait behind.'),
    COMPRESS_DOCUMENT_CONCURRENCY: int(1, 1).describe('PDFs, archives and compressed files the compress worker processes at once, in slots of their own.'),
    QUEUE_MAX_DEPTH_MEDIA: int(100, 0).describe(
      'Video/audio files waiting in a queue (convert or compress) above which new video/audio work is refused with 429 queue_full and Retry-After (0 = no limit).',
    ),
    QUEUE_MAX_DEPTH_IMAGE: int(5000, 0).describe('Image files waiting in a queue above which new image work is refused with 429 queue_full (0 = no limit).'),
    QUEUE_MAX_DEPTH_DOCUMENT: int(500, 0).describe('Documents/archives waiting in a queue above which new work of that class is refused with 429 queue_full (0 = no limit).'),
    QUEUE_MAX_WAIT_SECONDS_MEDIA: int(1800, 0).describe(
      'Seconds the oldest waiting video/audio file may have waited for a worker before new video/audio work is refused with 429 queue_full (0 = no limit).',
    ),
    QUEUE_MAX_WAIT_SECONDS_IMAGE: int(300, 0).describe('Seconds the oldest waiting image may have waited before new image work is refused with 429 queue_full (0 = no limit).'),
    QUEUE_MAX_WAIT_SECONDS_DOCUMENT: int(900, 0).describe(
      'Seconds the oldest waiting document/archive may have waited before new work of that class is refused with 429 queue_full (0 = no limit).',
    ),
    QUEUE_RETRY_AFTER_SECONDS: int(15, 1).describe('The Retry-After a 429 queue_full answers with.'),
  }),
  urlImport: z.object({
    URL_IMPORT: flag(true).describe('Lets requests name an input by URL (`sourceUrl`), fetched by the workers. false refuses such requests.'),
    URL_IMPORT_ALLOWED_HOSTS: hostList.describe(
      'Comma-separated hostnames (`files.intranet`, `*.intranet`), IPs and CIDRs (`10.1.0.0/16`, `fd00::/8`) that URL sources and webhooks may reach even though they are private. Unset = public addresses only.',
    ),
    URL_IMPORT_CONNECT_TIMEOUT_SECONDS: int(10, 1).describe("Longest wait to resolve a URL's host and connect to it (per address tried)."),
    URL_IMPORT_IDLE_TIMEOUT_SECONDS: int(30, 1).describe('Longest wait for a response to start, or for the next chunk of its body.'),
    URL_IMPORT_TIMEOUT_SECONDS: int(300, 1).describe('Longest a whole URL fetch may take, redirects and body included.'),
    URL_IMPORT_MAX_REDIRECTS: int(5, 0).describe('Redirects followed when fetching a URL source; each target is checked again.'),
  }),
  /** Webhook deliveries (docs/webhooks.md); they go out through @kiln/outbound like URL sources. */
  webhooks: z.object({
    WEBHOOK_RETRY_BASE_MS: int(5000, 10).describe(
      'Wait before the first retry of a failed webhook delivery; each later retry waits twice as long (plus up to 20 % random jitter).',
    ),
    WEBHOOK_RETRY_HOURS: z.coerce
      .number()
      .positive()
      .default(24)
      .describe('A webhook delivery still failing this long after its event is marked failed (retry it by hand with POST /api/webhooks/deliveries/:id/retry).'),
    WEBHOOK_TIMEOUT_SECONDS: int(10, 1).describe('Longest a webhook receiver may take to answer one delivery; a slower answer counts as a failed attempt.'),
    WEBHOOK_CONCURRENCY: int(4, 0).describe('Webhook deliveries each worker process sends at once; 0 = this worker sends none.'),
    WEBHOOK_POLL_MS: int(5000, 50).describe(
      'The longest an idle worker waits before looking for webhook deliveries that are due: a backstop, as new deliveries wake it (NOTIFY) and it wakes itself when the next retry is due.',
    ),
    WEBHOOK_PROGRESS_INTERVAL_MS: int(1000, 0).describe(
      'At most one conversion.progress event per job in this interval (a file finishing within it sends none; the final event still follows).',
    ),
    WEBHOOK_SECRET_OVERLAP_HOURS: z.coerce
      .number()
      .min(0)
      .default(24)
      .describe('After POST /api/webhooks/:id/rotate, the old secret keeps signing alongside the new one this long.'),
    WEBHOOK_HISTORY_DAYS: z.coerce
      .number()
      .positive()
      .default(30)
      .describe('Webhook events and their delivery history are deleted this long after the event, once none of its deliveries is still pending.'),
    WEBHOOK_MAX_ENDPOINTS: int(10, 1).describe('Webhook endpoints one API key may register (400 above it).'),
  }),
  /** Logs and metrics: docs in README.md, "Metrics and logs". */
  observability: z.object({
    LOG_FORMAT: z
      .enum(['auto', 'json', 'pretty'])
      .default('auto')
      .describe('Log lines as `json` (one object per line, for collectors) or `pretty` (pino-pretty, for people); `auto` is pretty when stdout is a terminal, JSON otherwise.'),
    METRICS_TOKEN: z
      .string()
      .min(16, 'must be at least 16 characters (e.g. the output of `openssl rand -hex 32`)')
      .optional()
      .describe(
        'Bearer token GET /metrics requires, on the gateway and the workers (`Authorization: Bearer <token>`), and that GET /readyz wants before it shows its checks, workers and engines. Unset = /metrics is open to anyone who can reach it, and /readyz shows only its status.',
      ),
    CONVERT_METRICS_PORT: int(0, 0).describe('Port the convert worker serves GET /metrics on (Prometheus text format); 0 = off. Two convert workers on one host need two ports.'),
    COMPRESS_METRICS_PORT: int(0, 0).describe('Port the compress worker serves GET /metrics on; 0 = off.'),
  }),
  dashboard: z.object({
    ADMIN_PASSWORD: z
      .string()
      .min(8, 'must be at least 8 characters')
      .optional()
      .describe('Turns on the operator dashboard at /dashboard; sign in with this password. Unset = dashboard off.'),
    DASHBOARD_SESSION_HOURS: z.coerce
      .number()
      .positive()
      .max(24 * 30)
      .default(12)
      .describe('How long a dashboard sign-in lasts.'),
    DASHBOARD_LOGIN_ATTEMPTS_PER_MINUTE: int(5, 1).describe('Dashboard sign-in attempts allowed per client IP per minute (429 above it).'),
  }),
  events: z.object({
    EVENTS_MAX_STREAMS: int(1000, 1).describe(
      'Most live event streams (GET /api/jobs/:id/events and the dashboard job page) one gateway holds open at once; one more is answered 503 with Retry-After.',
    ),
    EVENTS_MAX_STREAMS_PER_KEY: int(100, 1).describe(
      'Most live event streams (GET /api/jobs/:id/events) one API key holds open on one gateway at once, so one client cannot take every EVENTS_MAX_STREAMS place; one more is answered 429 with Retry-After.',
    ),
    EVENTS_HEARTBEAT_SECONDS: int(15, 1).describe('How often an idle live event stream gets a comment line, so proxies and load balancers keep it open.'),
  }),
  /** Worker processes' lifecycle: crash recovery, recycling, and the resource limits of engine child processes (docs/reliability.md). */
  workerLifecycle: z.object({
    WORKER_ORPHAN_SECONDS: int(30, 20).describe(
      'A worker not heard from for this long is taken for dead: the files it held go back to the queue and its scratch folders are removed (pg-boss heartbeats at half this; at least 20).',
    ),
    WORKER_RECORD_RETRY_SECONDS: int(120, 0).describe(
      "How long a worker keeps retrying (with backoff) the write of a finished file's outcome while Postgres is unreachable, before it releases the file to be done again.",
    ),
    WORKER_MAX_RSS_MB: int(2048, 0).describe(
      'A worker whose resident memory passes this drains (finishes its running files, takes no more) and exits so its supervisor restarts it fresh (0 = never).',
    ),
    ENGINE_MAX_CPU_SECONDS: int(3600, 0).describe('CPU seconds one engine child process (ffmpeg, 7-Zip, …) may use, set with prlimit where available (0 = no limit).'),
    ENGINE_MAX_MEMORY_MB: int(8192, 0).describe('Address space of one engine child process, in MiB, set with prlimit where available (0 = no limit).'),
    ENGINE_MAX_FILE_MB: int(16384, 0).describe('Largest file one engine child process may write, in MiB, set with prlimit where available (0 = no limit).'),
  }),
});

function buildConfigSchema() {
  const fragments = buildFragments();
  return fragments.core
    .and(fragments.storage)
    .and(fragments.gateway)
    .and(fragments.worker)
    .and(fragments.keys)
    .and(fragments.turbofiles)
    .and(fragments.fairness)
    .and(fragments.urlImport)
    .and(fragments.webhooks)
    .and(fragments.observability)
    .and(fragments.dashboard)
    .and(fragments.events)
    .and(fragments.workerLifecycle);
}
export type RawConfig = z.infer<ReturnType<typeof buildConfigSchema>>;
export interface Config extends RawConfig {
  /** DATA_DIR resolved to an absolute path. */
  dataDir: string;
}

export class ConfigError extends Error {
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`Invalid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** Treats empty strings as unset, so `FOO= pnpm start` means "default". */
function clean(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') out[k] = v;
  return out;
}

export function loadConfig(env: Record<string, string | undefined>, cwd = process.cwd()): Config {
  const parsed = buildConfigSchema().safeParse(clean(env));
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  const related = relatedIssues(parsed.data);
  if (related.length) throw new ConfigError(related);
  return { ...parsed.data, dataDir: path.resolve(cwd, parsed.data.DATA_DIR) };
}

/** Settings that only make sense together: reported all at once, like single-variable errors. */
function relatedIssues(c: RawConfig): string[] {
  const issues: string[] = [];
  if (c.STORAGE === 's3' && !c.S3_BUCKET) issues.push('S3_BUCKET: required with STORAGE=s3 (the bucket Kiln keeps sources and results in)');
  if (!c.S3_ACCESS_KEY_ID !== !c.S3_SECRET_ACCESS_KEY) {
    issues.push(
      `${c.S3_ACCESS_KEY_ID ? 'S3_SECRET_ACCESS_KEY' : 'S3_ACCESS_KEY_ID'}: set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY together, or neither (the AWS default credential chain)`,
    );
  }
  const maxObject = 10_000 * c.S3_PART_SIZE_MB * 1024 * 1024;
  if (c.STORAGE === 's3' && c.MAX_UPLOAD_BYTES > maxObject) {
    issues.push(
      `S3_PART_SIZE_MB: ${c.S3_PART_SIZE_MB} MiB parts store at most ${maxObject} bytes (S3 allows 10,000 parts), less than MAX_UPLOAD_BYTES=${c.MAX_UPLOAD_BYTES}; raise S3_PART_SIZE_MB to at least ${Math.ceil(c.MAX_UPLOAD_BYTES / 10_000 / 1024 / 1024)}`,
    );
  }
  const ports = [
    ['PORT', c.PORT],
    ['CONVERT_METRICS_PORT', c.CONVERT_METRICS_PORT],
    ['COMPRESS_METRICS_PORT', c.COMPRESS_METRICS_PORT],
  ] as const;
  for (const [i, [name, port]] of ports.entries()) {
    const clash = ports.slice(0, i).find(([, other]) => port !== 0 && other === port);
    if (clash) issues.push(`${name}: ${port} is also ${clash[0]}; each listener on a host needs its own port (0 turns a worker's metrics off)`);
  }
  if (c.DOWNLOAD_REDIRECT === 's3' && c.STORAGE !== 's3') issues.push('DOWNLOAD_REDIRECT: `s3` needs STORAGE=s3 (local blobs have no presigned URLs)');
  if (c.UPLOAD_DIRECT === 's3' && c.STORAGE !== 's3') issues.push('UPLOAD_DIRECT: `s3` needs STORAGE=s3 (local blobs have no presigned URLs)');
  return issues;
}

/** The configured values that are secrets: the logger masks them wherever they would appear. */
export function secretsOf(c: Config): (string | undefined)[] {
  return [c.S3_SECRET_ACCESS_KEY, c.SIGNING_SECRET, c.ADMIN_PASSWORD, c.METRICS_TOKEN, c.BOOTSTRAP_API_KEY];
}

/** A process's logger, as its config asks: LOG_LEVEL, LOG_FORMAT, and its secrets masked. */
export function loggerFor(name: string, c: Config, opts: Pick<LoggerOptions, 'destination'> = {}): Logger {
  return createLogger(name, c.LOG_LEVEL, { ...opts, format: c.LOG_FORMAT, secrets: secretsOf(c) });
}

/** Rows for the README configuration table: name, default, meaning. */
export function describeConfig(): { name: string; default: string; meaning: string }[] {
  const rows: { name: string; default: string; meaning: string }[] = [];
  for (const frag of Object.values(buildFragments())) {
    for (const [name, schema] of Object.entries(frag.shape)) {
      const s = schema as z.ZodType;
      let dflt = '—';
      const r = s.safeParse(undefined);
      if (r.success && r.data !== undefined && !(Array.isArray(r.data) && r.data.length === 0)) dflt = String(r.data);
      if (/^(CONVERT|COMPRESS)_CONCURRENCY$/.test(name)) dflt = 'CPU cores';
      rows.push({ name, default: dflt, meaning: s.description ?? '' });
    }
  }
  return rows;
}
export * from './logger.ts';
export * from './redact.ts';
