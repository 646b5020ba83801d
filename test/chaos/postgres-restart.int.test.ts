/**
 * Chaos: Postgres restarted under a steady stream of submissions, with a video finishing while it is
 * down. This file runs its own embedded Postgres (the harness's shared server is never touched) so it
 * can stop and start it. The gateway must answer 503 with Retry-After during the gap — never a 500,
 * never a request hanging past DB_CONNECT_TIMEOUT_SECONDS — every job it answered 200 completes
 * within a minute of Postgres returning, the worker keeps the output it finished during the outage
 * and retries the write (no second attempt), and no process restarts.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { startEmbedded, type EmbeddedServer } from '@kiln/db';
import { form, freePort, startKiln, until, type JobDetailJson, type Kiln } from '../helpers/kiln.ts';
import { keepLogs, longVideo, processesOf, sql } from './chaos-helpers.ts';

const CONNECT_TIMEOUT_SECONDS = 5;
/** The client's own bound on a request: the gateway's connect timeout, plus room for a loaded machine. */
const REQUEST_DEADLINE_MS = (CONNECT_TIMEOUT_SECONDS + 15) * 1000;

let pgDir: string;
let pgPort: number;
let server: EmbeddedServer | undefined;
let kiln: Kiln;
let db: ReturnType<typeof sql>;
let video: Awaited<ReturnType<typeof longVideo>>;
let png: Buffer;
/** The submission loop: stopped by the test, or by afterAll when the test failed half-way. */
let submitting = false;
let loop: Promise<void> | undefined;

async function startPostgres(): Promise<EmbeddedServer> {
  const s = await startEmbedded({ dataDir: pgDir, port: pgPort });
  // The apps were given this address: a restart must come back on the same one.
  expect(s.port).toBe(pgPort);
  return s;
}

beforeAll(async () => {
  pgDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-chaos-pg-'));
  pgPort = await freePort();
  server = await startPostgres();
  video = await longVideo(40);
  png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 60, b: 20 } } })
    .png()
    .toBuffer();
  kiln = await startKiln({
    apps: ['gateway', 'convert-worker'],
    env: {
      DATABASE_URL: server.url(),
      DB_CONNECT_TIMEOUT_SECONDS: String(CONNECT_TIMEOUT_SECONDS),
      WORKER_ORPHAN_SECONDS: '20',
      CONVERT_CONCURRENCY: '2',
    },
  });
  db = sql(server.url());
}, 180_000);

afterAll(async () => {
  submitting = false;
  await loop;
  await db?.end();
  if (kiln) await keepLogs('postgres-restart', kiln.logs());
  await kiln?.stop();
  await server?.stop();
  if (pgDir) await fs.rm(pgDir, { recursive: true, force: true });
  await video?.cleanup();
});

interface Answer {
  /** When the answer came. */
  at: number;
  status: number;
  retryAfter: string | null;
  ms: number;
  jobId?: string;
  error?: string;
}

/** Fails at once, with the reason, when the gateway or the worker has died (rather than timing out later). */
function assertAlive(): void {
  for (const app of ['gateway', 'convert-worker'] as const) {
    const p = kiln.procs.get(app);
    if (!p || p.exitCode !== null || p.signalCode !== null) throw new Error(`${app} exited (${p?.exitCode ?? p?.signalCode}) during the outage:\n${kiln.logs().slice(-4000)}`);
  }
}

async function job(jobId: string): Promise<JobDetailJson | undefined> {
  const r = await kiln.api(`/api/jobs/${jobId}`, { signal: AbortSignal.timeout(REQUEST_DEADLINE_MS) });
  return r.status === 200 ? ((await r.json()) as JobDetailJson) : undefined;
}

test('Postgres restarted under load: 503 with Retry-After during the gap, every accepted job completes within a minute, finished outputs kept', async () => {
  const gatewayPid = kiln.procs.get('gateway')!.pid;
  const workerPid = kiln.procs.get('convert-worker')!.pid;

  // A steady stream of small jobs for the whole test, each request bounded.
  const answers: Answer[] = [];
  submitting = true;
  loop = (async () => {
    for (let i = 0; submitting; i++) {
      const started = Date.now();
      try {
        const r = await kiln.api('/api/jobs', {
          method: 'POST',
          body: form([{ data: png, filename: `p${i}.png` }], { format: 'webp' }),
          signal: AbortSignal.timeout(REQUEST_DEADLINE_MS),
        });
        const body = (await r.json().catch(() => ({}))) as { jobId?: string };
        answers.push({ at: Date.now(), status: r.status, retryAfter: r.headers.get('retry-after'), ms: Date.now() - started, ...(body.jobId ? { jobId: body.jobId } : {}) });
      } catch (err) {
        answers.push({ at: Date.now(), status: 0, retryAfter: null, ms: Date.now() - started, error: String(err) });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  // A video mid-conversion when Postgres goes: it finishes during the outage.
  const v = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: video.bytes, filename: 'talk.mp4' }], { format: 'mp4' }) });
  expect(v.status).toBe(200);
  const videoJob = ((await v.json()) as { jobId: string }).jobId;
  await until(
    'the video to be mid-conversion',
    async () => (await processesOf('ffmpeg', kiln.dataDir)).some((p) => p.ppid === workerPid) && ((await job(videoJob))?.progress ?? 0) > 0,
    90_000,
    100,
  );

  // Outage 1: down until the video has finished and its outcome's write has met the outage.
  await server!.stop();
  const down1 = Date.now();
  await until(
    'the worker to retry the video’s outcome',
    async () =>
      kiln.logs().includes(`"jobId":"${videoJob}"`) && new RegExp(`"jobId":"${videoJob}"[^\\n]*database unavailable; retrying recording the file outcome`).test(kiln.logs()),
    120_000,
    100,
  );
  await new Promise((r) => setTimeout(r, 2000)); // a few more submissions meet the gap
  server = await startPostgres();
  let back = Date.now();
  console.log(`chaos figure: outage 1 lasted ${((back - down1) / 1000).toFixed(1)} s`);

  // Outage 2: a plain 3 s restart under the same load.
  const after1 = back;
  await until(
    'a submission accepted after outage 1',
    async () => {
      assertAlive();
      return answers.some((a) => a.status === 200 && a.at > after1);
    },
    60_000,
    100,
  );
  await server.stop();
  await new Promise((r) => setTimeout(r, 3000));
  server = await startPostgres();
  back = Date.now();

  // More load after the last return, then stop submitting.
  const after2 = back;
  await until(
    'a submission accepted after outage 2',
    async () => {
      assertAlive();
      return answers.some((a) => a.status === 200 && a.at > after2);
    },
    60_000,
    100,
  );
  await new Promise((r) => setTimeout(r, 2000));
  submitting = false;
  await loop;

  // What the clients saw: only 200s and 503s that say when to come back, none slower than the bound.
  const statuses = [...new Set(answers.map((a) => a.status))].sort();
  console.log(
    `chaos figure: ${answers.length} submissions: ${statuses.map((s) => `${answers.filter((a) => a.status === s).length}×${s}`).join(', ')}; slowest ${Math.max(...answers.map((a) => a.ms))} ms`,
  );
  expect(answers.filter((a) => a.status !== 200 && a.status !== 503)).toEqual([]);
  expect(answers.filter((a) => a.status === 503).length).toBeGreaterThan(0);
  expect(answers.filter((a) => a.status === 503 && !a.retryAfter)).toEqual([]);
  expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(REQUEST_DEADLINE_MS);

  // Every job answered 200 completes, within a minute of Postgres's last return.
  const accepted = [videoJob, ...answers.filter((a) => a.status === 200).map((a) => a.jobId!)];
  const pending = new Set(accepted);
  await until(
    'every accepted job to complete',
    async () => {
      for (const id of [...pending]) {
        const j = await job(id).catch(() => undefined);
        if (j && (j.status === 'completed' || j.status === 'failed')) {
          expect(j.status).toBe('completed');
          pending.delete(id);
        }
      }
      return pending.size === 0;
    },
    60_000,
    250,
  );
  console.log(`chaos figure: all ${accepted.length} accepted jobs complete ${((Date.now() - back) / 1000).toFixed(1)} s after Postgres's last return`);

  // The video was converted once: its outcome was written late, not its conversion redone.
  const [vf] = await db.files(videoJob);
  expect(vf).toMatchObject({ status: 'completed', attempts: 1 });
  expect(await db.storedFiles(videoJob)).toBe(1);

  // Nobody restarted: the same gateway and worker processes answer, and /readyz is green again.
  expect(kiln.procs.get('gateway')!.pid).toBe(gatewayPid);
  expect(kiln.procs.get('convert-worker')!.pid).toBe(workerPid);
  expect(kiln.procs.get('gateway')!.exitCode).toBeNull();
  expect(kiln.procs.get('convert-worker')!.exitCode).toBeNull();
  await until('/readyz to be green', async () => (await fetch(`${kiln.url}/readyz`)).status === 200, 30_000, 200);
}, 420_000);
