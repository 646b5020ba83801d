/**
 * @kiln/config — composes small zod fragments into one typed config. `loadConfig(env)` is pure: it
 * reads only the object it is given, is called once in each `main.ts`, and reports every bad variable
 * at once with its name and how to fix it. Depends on zod only.
 */
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

const int = (dflt: number, min = 0) => z.coerce.number().int().min(min).default(dflt);
const optStr = z.string().trim().min(1).optional().catch(undefined);
const flag = (dflt: boolean) => z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1').default(dflt);
const cores = Math.max(1, os.availableParallelism());

/**
 * A comma list of hostnames, IPs and CIDRs. Checked for shape here so a typo is reported with the rest at
 * start-up; @kiln/outbound parses the entries for matching.
 */
const hostList = z.string().optional().transform((v, ctx) => {
  const entries = (v ?? '').split(',').map((e) => e.trim()).filter(Boolean);
  for (const e of entries) {
    const [addr = '', bits, extra] = e.replace(/^\[(.*)\]$/, '$1').split('/');
    const ipOk = net.isIP(addr) !== 0 && extra === undefined && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (net.isIPv4(addr) ? 32 : 128)));
    const nameOk = bits === undefined && /^(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?$/i.test(e);
    if (!ipOk && !nameOk) ctx.addIssue({ code: 'custom', message: `"${e}" is neither a hostname, an IP address nor a CIDR range (e.g. files.intranet, 10.0.0.5, 10.1.0.0/16, fd00::/8)` });
  }
  return entries;
});

/** Each fragment owns one area; the docs table in README.md is generated from these descriptions. */
export const fragments = {
  core: z.object({
    DATA_DIR: z.string().default('./data').describe('Where blobs, the embedded Postgres cluster and the signing secret live.'),
    DATABASE_URL: z.string().url().optional().describe('External Postgres. When unset, `pnpm start` runs an embedded server in DATA_DIR/postgres.'),
    DB_POOL_MAX: int(10, 1).describe('Connections per process in our own pool (pg-boss keeps its own).'),
    DB_PREPARED_STATEMENTS: flag(true).describe('Name Kiln\'s frequent queries so Postgres plans each once per connection (about half their Postgres CPU). Set false behind a pooler that cannot keep prepared statements (PgBouncer in transaction mode before 1.21).'),
    LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('Log verbosity.'),
    RETENTION_HOURS: z.coerce.number().positive().default(24).describe('Results and sources are deleted this long after a job ends.'),
    EMBEDDED_PG_PORT: int(54329, 1).describe('Port of the embedded Postgres server (127.0.0.1; Kiln itself connects through a unix socket in DATA_DIR/postgres).'),
  }),
  gateway: z.object({
    PORT: int(8080, 0).describe('Port the gateway listens on.'),
    HOST: z.string().default('0.0.0.0').describe('Address the gateway binds to.'),
    PUBLIC_URL: z.string().url().optional().describe('Base of absolute download URLs; else taken from the request Host.'),
    SIGNING_SECRET: z.string().min(16).optional().describe('HMAC key for download URLs; generated once into DATA_DIR/signing-secret when unset.'),
    MAX_UPLOAD_BYTES: int(1024 ** 3, 1).describe('Largest single uploaded file, in bytes (413 above it).'),
    MAX_FILES_PER_JOB: int(50, 1).describe('Most files in one request.'),
    MAX_FIELD_BYTES: int(1024 * 1024, 1024).describe('Largest non-file form field, in bytes.'),
    SYNC_TIMEOUT_SECONDS: int(60, 1).describe('How long POST /api/convert and /api/compress wait before answering 202 with the job id.'),
    SYNC_INLINE_MAX_BYTES: int(25 * 1024 * 1024, 1).describe('Largest result returned inline as a data: URL by the sync endpoints.'),
    DOWNLOAD_URL_TTL_SECONDS: int(3600, 60).describe('Lifetime of signed download URLs.'),
    BOOTSTRAP_API_KEY: optStr.describe('Makes sure this API key exists at start-up (for automation).'),
  }),
  worker: z.object({
    CONVERT_CONCURRENCY: int(cores, 1).describe('Files the convert worker processes at once.'),
    COMPRESS_CONCURRENCY: int(cores, 1).describe('Files the compress worker processes at once.'),
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
    FFMPEG_PATH: optStr.describe('ffmpeg binary to use; else ffmpeg-static when its binary exists, else @ffmpeg-installer.'),
    FFPROBE_PATH: optStr.describe('ffprobe binary to use; else @ffprobe-installer.'),
    SEVENZIP_PATH: optStr.describe("7-Zip binary to use; else 7zip-bin's 7za."),
    HEIF_ENC_PATH: optStr.describe("libheif's heif-enc, for real HEVC HEIC output (else HEIF is AV1-coded)."),
    RESIZE_PRESETS: z.string().optional().describe('JSON overriding resize presets, e.g. {"email":{"width":640,"fit":"inside"}}.'),
    SHARP_CONCURRENCY: int(0, 0).describe('libvips threads per image (0 = sharp default, one per core).'),
  }),
  /** Defaults for API keys that set no limit of their own (MAX_UPLOAD_BYTES, MAX_FILES_PER_JOB and RETENTION_HOURS double as the others). */
  keys: z.object({
    KEY_DEFAULT_RPM: int(0, 0).describe('Requests per minute per API key when the key sets none (0 = unlimited); counted in Postgres, so all gateways agree.'),
    KEY_DEFAULT_MAX_CONCURRENT_JOBS: int(0, 0).describe('Jobs one key may have pending or processing at once when the key sets none (0 = unlimited).'),
    KEY_DEFAULT_MONTHLY_JOB_QUOTA: int(0, 0).describe('Jobs one key may create per calendar month when the key sets none (0 = unlimited).'),
    KEY_DEFAULT_ALLOWED_FORMATS: z.string().trim().regex(/^[a-z0-9.]+(\s*,\s*[a-z0-9.]+)*$/i, 'must be a comma-separated list of output formats, e.g. png,webp,jpg').optional()
      .describe('Output formats a key may request when the key sets none, comma-separated (unset = all).'),
  }),
  /** URL sources (`sourceUrl`) and every other outbound request (webhooks): see docs/outbound-requests.md. */
  urlImport: z.object({
    URL_IMPORT: flag(true).describe('Lets requests name an input by URL (`sourceUrl`), fetched by the workers. false refuses such requests.'),
    URL_IMPORT_ALLOWED_HOSTS: hostList.describe('Comma-separated hostnames (`files.intranet`, `*.intranet`), IPs and CIDRs (`10.1.0.0/16`, `fd00::/8`) that URL sources and webhooks may reach even though they are private. Unset = public addresses only.'),
    URL_IMPORT_CONNECT_TIMEOUT_SECONDS: int(10, 1).describe('Longest wait to resolve a URL\'s host and connect to it (per address tried).'),
    URL_IMPORT_IDLE_TIMEOUT_SECONDS: int(30, 1).describe('Longest wait for a response to start, or for the next chunk of its body.'),
    URL_IMPORT_TIMEOUT_SECONDS: int(300, 1).describe('Longest a whole URL fetch may take, redirects and body included.'),
    URL_IMPORT_MAX_REDIRECTS: int(5, 0).describe('Redirects followed when fetching a URL source; each target is checked again.'),
  }),
  dashboard: z.object({
    ADMIN_PASSWORD: z.string().min(8, 'must be at least 8 characters').optional().describe('Turns on the operator dashboard at /dashboard; sign in with this password. Unset = dashboard off.'),
    DASHBOARD_SESSION_HOURS: z.coerce.number().positive().max(24 * 30).default(12).describe('How long a dashboard sign-in lasts.'),
    DASHBOARD_LOGIN_ATTEMPTS_PER_MINUTE: int(5, 1).describe('Dashboard sign-in attempts allowed per client IP per minute (429 above it).'),
  }),
};

export const configSchema = fragments.core.and(fragments.gateway).and(fragments.worker).and(fragments.keys).and(fragments.urlImport).and(fragments.dashboard);
export type RawConfig = z.infer<typeof configSchema>;
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
  const parsed = configSchema.safeParse(clean(env));
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  return { ...parsed.data, dataDir: path.resolve(cwd, parsed.data.DATA_DIR) };
}

/** Rows for the README configuration table: name, default, meaning. */
export function describeConfig(): { name: string; default: string; meaning: string }[] {
  const rows: { name: string; default: string; meaning: string }[] = [];
  for (const frag of Object.values(fragments)) {
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
