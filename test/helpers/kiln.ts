/**
 * Starts a real Kiln for a test: the gateway and the workers as separate Node processes, exactly as
 * `pnpm start` runs them, against a fresh cloned database and a temporary DATA_DIR.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { freePort } from '../../scripts/lib/free-port.ts';

export { freePort };

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export type App = 'gateway' | 'convert-worker' | 'compress-worker';

export interface Kiln {
  url: string;
  key: string;
  db: TestDatabase;
  dataDir: string;
  procs: Map<App, ChildProcess>;
  logs: () => string;
  api: (p: string, init?: RequestInit & { key?: string | null }) => Promise<Response>;
  startApp: (app: App) => Promise<void>;
  stopApp: (app: App, signal?: NodeJS.Signals) => Promise<number | null>;
  stop: () => Promise<void>;
}

export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      // An error marked final says waiting longer cannot help.
      if ((err as { final?: boolean } | undefined)?.final) throw err;
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
}

/**
 * Runs one app as its own process with `env` and resolves once it says it is ready (or rejects with
 * its last log lines). `onLog` gets its output, each line tagged with the app's name or `label`.
 */
export async function spawnApp(app: App, env: Record<string, string>, onLog: (text: string) => void, label: string = app): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join(ROOT, 'apps', app, 'src', 'main.ts')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let ready = false;
  let own = '';
  const onData = (b: Buffer) => {
    const s = b.toString();
    const tagged = s
      .split('\n')
      .map((l) => (l ? `[${label}] ${l}` : l))
      .join('\n');
    own = (own + tagged).slice(-20_000);
    onLog(tagged);
    if (/"msg":"(worker ready|gateway listening)"/.test(s)) ready = true;
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  try {
    await until(
      `${label} to start`,
      async () => {
        if (child.exitCode !== null) throw new Error(`${label} exited with ${child.exitCode}:\n${own.slice(-3000)}`);
        return ready;
      },
      60_000,
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${own.slice(-3000)}`);
  }
  return child;
}

/** Signals a process (SIGKILL after 40 s) and resolves with its exit code. */
export async function stopProcess(c: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (c.exitCode !== null || c.signalCode !== null) return c.exitCode;
  const exited = new Promise<number | null>((r) => c.once('exit', (code) => r(code)));
  c.kill(signal);
  const t = setTimeout(() => c.kill('SIGKILL'), 40_000);
  const code = await exited;
  clearTimeout(t);
  return code;
}

export async function startKiln(opts: { env?: Record<string, string>; apps?: App[] } = {}): Promise<Kiln> {
  const db = await createTestDatabase();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-test-data-'));
  const port = await freePort();
  const key = `kiln_test_${crypto.randomBytes(24).toString('base64url')}`;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DATABASE_URL: db.url,
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    BOOTSTRAP_API_KEY: key,
    LOG_LEVEL: 'info',
    // Readiness is read from the JSON lines, whatever the developer's own LOG_FORMAT.
    LOG_FORMAT: 'json',
    CONVERT_CONCURRENCY: '2',
    COMPRESS_CONCURRENCY: '2',
    DB_POOL_MAX: '4',
    ...opts.env,
  };
  const procs = new Map<App, ChildProcess>();
  let log = '';
  const url = `http://127.0.0.1:${port}`;

  const startApp = async (app: App) => {
    procs.set(
      app,
      await spawnApp(app, env, (s) => {
        log = (log + s).slice(-200_000);
      }),
    );
  };

  const stopApp = async (app: App, signal: NodeJS.Signals = 'SIGTERM') => {
    const c = procs.get(app);
    if (!c) return null;
    procs.delete(app);
    return stopProcess(c, signal);
  };

  const kiln: Kiln = {
    url,
    key,
    db,
    dataDir,
    procs,
    logs: () => log,
    api: (p, init = {}) => {
      const headers = new Headers(init.headers);
      const k = init.key === undefined ? key : init.key;
      if (k) headers.set('Authorization', `Bearer ${k}`);
      return fetch(url + p, { ...init, headers });
    },
    startApp,
    stopApp,
    stop: async () => {
      await Promise.all([...procs.keys()].map((a) => stopApp(a)));
      await db.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
  try {
    // The gateway migrates and creates the key; workers start after it so they find the schema ready.
    const apps = opts.apps ?? ['gateway', 'convert-worker', 'compress-worker'];
    if (apps.includes('gateway')) await startApp('gateway');
    await Promise.all(apps.filter((a) => a !== 'gateway').map(startApp));
  } catch (err) {
    await kiln.stop();
    throw err;
  }
  return kiln;
}

export interface UploadPart {
  data: Buffer | Uint8Array;
  filename?: string;
  field?: string;
}

export function form(files: UploadPart[], fields: Record<string, string> = {}): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  for (const p of files) f.append(p.field ?? 'files', new Blob([new Uint8Array(p.data)]), p.filename ?? 'upload');
  return f;
}

export type JobDetailJson = {
  jobId: string;
  status: string;
  progress: number;
  totalFiles: number;
  completedFiles: number;
  failedFiles: number;
  errorMessage: string | null;
  results: {
    index: number;
    filename: string;
    status: string;
    mimeType: string | null;
    format: string | null;
    width?: number;
    height?: number;
    downloadUrl: string | null;
    finalSize: number | null;
    originalSize: number;
    savedPercent: number | null;
    appliedQuality: number | null;
    error?: { code: string; message: string };
    notes?: string[];
  }[];
  archive: { filename: string; size: number; downloadUrl: string } | null;
};

export async function waitForJob(kiln: Kiln, jobId: string, timeoutMs = 60_000): Promise<JobDetailJson> {
  return until(
    `job ${jobId} to finish`,
    async () => {
      const r = await kiln.api(`/api/jobs/${jobId}`);
      const j = (await r.json()) as JobDetailJson;
      return j.status === 'completed' || j.status === 'failed' ? j : undefined;
    },
    timeoutMs,
    100,
  );
}

export async function download(url: string): Promise<Buffer> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`download ${url} → ${r.status} ${await r.text()}`);
  return Buffer.from(await r.arrayBuffer());
}
