/**
 * Starts Kiln for the benchmark exactly as `pnpm start` does — `node scripts/start.ts` as a child
 * (embedded Postgres unless DATABASE_URL, then gateway + convert-worker + compress-worker) — on a
 * free port, in a temporary DATA_DIR unless one is given, with a BOOTSTRAP_API_KEY. Also reads the
 * CPU time and memory of every process of that tree from /proc.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../lib/free-port.ts';
import { streamUpload } from './client.ts';

export type Role = 'supervisor' | 'gateway' | 'convert-worker' | 'compress-worker' | 'postgres' | 'other';
export const ROLES: Role[] = ['supervisor', 'gateway', 'convert-worker', 'compress-worker', 'postgres', 'other'];

export interface RunningKiln {
  url: string;
  key: string;
  dataDir: string;
  env: Record<string, string>;
  supervisorPid: number;
  /** Postgres is one of our processes (embedded), so its CPU is counted. */
  embeddedPostgres: boolean;
  pidOf: (role: Role) => number | undefined;
  logs: () => string;
  stop: () => Promise<void>;
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  ticks: number;
}

function readProc(pid: number): ProcInfo | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = s.lastIndexOf(')');
    const comm = s.slice(s.indexOf('(') + 1, close);
    const f = s.slice(close + 2).split(' ');
    // Fields after comm: state ppid … utime(11) stime(12) cutime(13) cstime(14). cutime/cstime hold
    // children that exited and were reaped (Postgres backends, ffmpeg), so nothing that ends
    // between two samples is lost.
    const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    return { pid, ppid: Number(f[1]), comm, ticks };
  } catch {
    return undefined;
  }
}

function allProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const p = readProc(Number(d));
    if (p) out.push(p);
  }
  return out;
}

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** Every process in the tree under `rootPid`, with its role. */
export function kilnTree(rootPid: number): { pid: number; role: Role; ticks: number }[] {
  const procs = allProcs();
  const children = new Map<number, ProcInfo[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const root = procs.find((p) => p.pid === rootPid);
  if (!root) return [];
  const out: { pid: number; role: Role; ticks: number }[] = [];
  const walk = (p: ProcInfo, inherited: Role | undefined) => {
    let role: Role = inherited ?? 'other';
    if (!inherited) {
      const cmd = cmdline(p.pid);
      if (p.pid === rootPid) role = 'supervisor';
      else if (cmd.includes('apps/gateway/')) role = 'gateway';
      else if (cmd.includes('apps/convert-worker/')) role = 'convert-worker';
      else if (cmd.includes('apps/compress-worker/')) role = 'compress-worker';
      else if (p.comm === 'postgres' || cmd.includes('postgres')) role = 'postgres';
    }
    out.push({ pid: p.pid, role, ticks: p.ticks });
    // Children of a worker (ffmpeg) count as that worker; every postgres backend as postgres.
    for (const c of children.get(p.pid) ?? []) walk(c, role === 'supervisor' || role === 'other' ? undefined : role);
  };
  walk(root, undefined);
  return out;
}

/** CPU milliseconds used so far by each role of the tree. */
export function cpuByRole(rootPid: number): Record<Role, number> {
  const out = Object.fromEntries(ROLES.map((r) => [r, 0])) as Record<Role, number>;
  for (const p of kilnTree(rootPid)) out[p.role] += (p.ticks * 1000) / CLK_TCK;
  return out;
}

export function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Streams one upload of `bytes` (client.ts streamUpload, field format=webp) while sampling `pid`'s
 * RSS every 50 ms, until 200 ms after the answer: its RSS before and its peak, in MB.
 */
export async function uploadSamplingRss(
  base: string,
  key: string,
  pid: number,
  bytes: number,
  onProgress?: (sentBytes: number, peakRssMb: number) => void,
): Promise<{ upload: Awaited<ReturnType<typeof streamUpload>>; baselineRss: number; peakRss: number }> {
  const baselineRss = rssMb(pid) ?? NaN;
  let peakRss = baselineRss;
  const sampler = setInterval(() => {
    const v = rssMb(pid);
    if (v !== undefined && v > peakRss) peakRss = v;
  }, 50);
  try {
    const upload = await streamUpload(base, key, bytes, { format: 'webp' }, onProgress && ((sent) => onProgress(sent, peakRss)));
    await new Promise((r) => setTimeout(r, 200));
    return { upload, baselineRss, peakRss };
  } finally {
    clearInterval(sampler);
  }
}

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

/** `workers`: how many "worker ready" lines to wait for (2 with the default KILN_ROLES). */
export async function startKiln(opts: { dataDir?: string; env?: Record<string, string>; onLog?: (line: string) => void; workers?: number }): Promise<RunningKiln> {
  const ownDir = !opts.dataDir;
  const dataDir = opts.dataDir ? path.resolve(opts.dataDir) : await fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-bench-data-'));
  const port = await freePort();
  const key = process.env.BOOTSTRAP_API_KEY ?? `kiln_bench_${crypto.randomBytes(24).toString('base64url')}`;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    BOOTSTRAP_API_KEY: key,
    // Readiness is read from the JSON lines, whatever the caller's own LOG_FORMAT.
    LOG_FORMAT: 'json',
    // A free port for the embedded server so a running `pnpm start` on this machine is left alone.
    EMBEDDED_PG_PORT: String(await freePort()),
    ...opts.env,
  };
  const child: ChildProcess = spawn(process.execPath, [path.join(ROOT, 'scripts', 'start.ts')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: false });
  let log = '';
  const ready = { gateway: false, workers: 0 };
  const onData = (b: Buffer) => {
    const s = b.toString();
    log = (log + s).slice(-300_000);
    for (const line of s.split('\n')) {
      if (!line) continue;
      opts.onLog?.(line);
      if (line.includes('"msg":"gateway listening"')) ready.gateway = true;
      if (line.includes('"msg":"worker ready"')) ready.workers++;
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (!exited) {
        const done = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
        await done;
        clearTimeout(t);
      }
      if (ownDir) await fsp.rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
    })());

  const deadline = Date.now() + 120_000;
  while (!(ready.gateway && ready.workers >= (opts.workers ?? 2))) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`Kiln did not start (${exited ? `exit ${child.exitCode}` : 'timed out after 120 s'}):\n${log.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const supervisorPid = child.pid!;
  const pidOf = (role: Role) => kilnTree(supervisorPid).find((p) => p.role === role)?.pid;
  return {
    url: `http://127.0.0.1:${port}`,
    key,
    dataDir,
    env,
    supervisorPid,
    embeddedPostgres: !process.env.DATABASE_URL,
    pidOf,
    logs: () => log,
    stop,
  };
}
