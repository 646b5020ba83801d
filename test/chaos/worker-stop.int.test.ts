/**
 * Chaos: a deploy's SIGTERM reaching a convert worker mid-file, and a worker recycling itself past
 * WORKER_MAX_RSS_MB. Real gateway and worker processes, Postgres and ffmpeg. The worker stops taking
 * work, finishes (or, past WORKER_STOP_GRACE_SECONDS, kills its engines and queues the file again) and
 * exits; no partial output is ever in storage or referenced by a row; the next worker finishes it.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { sniff } from '@kiln/formats';
import { download, form, spawnApp, startKiln, stopProcess, until, type JobDetailJson, type Kiln } from '../helpers/kiln.ts';
import { keepLogs, longVideo, outputBlobs, processesOf, rawProbe, scratchFolders, sql } from './chaos-helpers.ts';

let video: Awaited<ReturnType<typeof longVideo>>;
const kilns: Kiln[] = [];
const dbs: ReturnType<typeof sql>[] = [];

beforeAll(async () => {
  video = await longVideo(40);
}, 120_000);

afterAll(async () => {
  for (const d of dbs) await d.end();
  for (const [i, k] of kilns.entries()) {
    await keepLogs(`worker-stop-${i}`, k.logs());
    await k.stop();
  }
  await video?.cleanup();
});

async function kilnWith(env: Record<string, string>): Promise<{ kiln: Kiln; db: ReturnType<typeof sql> }> {
  const kiln = await startKiln({ apps: ['gateway', 'convert-worker'], env: { CONVERT_CONCURRENCY: '1', ...env } });
  kilns.push(kiln);
  const db = sql(kiln.db.url);
  dbs.push(db);
  return { kiln, db };
}

async function submitVideo(kiln: Kiln): Promise<string> {
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: video.bytes, filename: 'talk.mp4' }], { format: 'mp4' }) });
  expect(r.status).toBe(200);
  return ((await r.json()) as { jobId: string }).jobId;
}

async function job(kiln: Kiln, jobId: string): Promise<JobDetailJson> {
  return (await (await kiln.api(`/api/jobs/${jobId}`)).json()) as JobDetailJson;
}

/** Until the worker's ffmpeg has made progress on the job's file. */
async function midFile(kiln: Kiln, jobId: string): Promise<void> {
  const worker = kiln.procs.get('convert-worker')!;
  await until(
    'the video to be mid-conversion',
    async () => {
      const running = (await processesOf('ffmpeg', kiln.dataDir)).some((p) => p.ppid === worker.pid);
      return running && (await job(kiln, jobId)).progress > 0;
    },
    90_000,
    100,
  );
}

/** Sends SIGTERM and, while the worker stops, checks every few ms that no output appears for the job. */
async function stopWatchingOutputs(kiln: Kiln, jobId: string): Promise<{ code: number | null; seconds: number; outputsSeen: string[] }> {
  const seen = new Set<string>();
  let stopping = true;
  const watcher = (async () => {
    while (stopping) {
      for (const f of await outputBlobs(kiln.dataDir, jobId)) seen.add(f);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const started = Date.now();
  const code = await kiln.stopApp('convert-worker', 'SIGTERM');
  const seconds = (Date.now() - started) / 1000;
  stopping = false;
  await watcher;
  return { code, seconds, outputsSeen: [...seen] };
}

async function checkOneGoodOutput(kiln: Kiln, db: ReturnType<typeof sql>, j: JobDetailJson): Promise<void> {
  expect(j.status).toBe('completed');
  const [row] = await db.files(j.jobId);
  expect(await db.storedFiles(j.jobId)).toBe(1);
  expect(await outputBlobs(kiln.dataDir, j.jobId)).toEqual([`${row!.id}.mp4`]);
  const bytes = await download(j.results[0]!.downloadUrl!);
  expect(sniff(bytes)).toBe('mp4');
  const out = path.join(kiln.dataDir, `check-${j.jobId}.mp4`);
  await fs.writeFile(out, bytes);
  expect(Math.abs(Number((await rawProbe(video.ffprobe, out)).format.duration) - 40)).toBeLessThan(0.5);
}

test('SIGTERM mid-file past WORKER_STOP_GRACE_SECONDS: engines killed, nothing partial stored, the file queued again and finished by the next worker', async () => {
  const GRACE = 2;
  const { kiln, db } = await kilnWith({ WORKER_STOP_GRACE_SECONDS: String(GRACE) });
  const jobId = await submitVideo(kiln);
  await midFile(kiln, jobId);
  const stop = await stopWatchingOutputs(kiln, jobId);
  console.log(`chaos figure: worker exited ${stop.seconds.toFixed(1)} s after SIGTERM (WORKER_STOP_GRACE_SECONDS=${GRACE}, file aborted and re-queued)`);
  expect(stop.code).toBe(0);
  // The grace, then killing the engine (TERM, then KILL after 2 s) and closing pools: bounded.
  expect(stop.seconds).toBeLessThan(GRACE + 20);
  expect(kiln.logs()).toContain('file interrupted by shutdown; queued again');

  // Nothing partial anywhere: no output blob ever appeared, no row points at one, no engine or scratch left.
  expect(stop.outputsSeen).toEqual([]);
  const [row] = await db.files(jobId);
  expect(row).toMatchObject({ status: 'processing', outputFileId: null });
  expect(await db.storedFiles(jobId)).toBe(0);
  expect(await processesOf('ffmpeg', kiln.dataDir)).toEqual([]);
  expect(await scratchFolders(kiln.dataDir)).toEqual([]);
  // A clean stop leaves no registration and no hold behind for the sweep to wait out.
  expect(await db.instances()).toEqual([]);
  expect(await db.holds()).toEqual([]);

  const restarted = Date.now();
  await kiln.startApp('convert-worker');
  const done = await until(
    'the restarted worker to finish the job',
    async () => {
      const j = await job(kiln, jobId);
      return j.status === 'completed' || j.status === 'failed' ? j : undefined;
    },
    180_000,
    200,
  );
  console.log(`chaos figure: restarted worker finished the interrupted file ${((Date.now() - restarted) / 1000).toFixed(1)} s after it started`);
  await checkOneGoodOutput(kiln, db, done);
  expect((await db.files(jobId))[0]!.attempts).toBe(2);
}, 400_000);

test('SIGTERM mid-file within WORKER_STOP_GRACE_SECONDS: the worker takes no new work, finishes the file, then exits', async () => {
  const { kiln, db } = await kilnWith({ WORKER_STOP_GRACE_SECONDS: '120' });
  const first = await submitVideo(kiln);
  await midFile(kiln, first);
  const second = await submitVideo(kiln);
  const stop = await stopWatchingOutputs(kiln, first);
  console.log(`chaos figure: worker drained its running file and exited ${stop.seconds.toFixed(1)} s after SIGTERM`);
  expect(stop.code).toBe(0);
  expect(stop.seconds).toBeLessThan(120);
  // The file it was on is finished, once, with its only attempt; the one queued behind it was not taken.
  const j = await job(kiln, first);
  await checkOneGoodOutput(kiln, db, j);
  expect((await db.files(first))[0]!.attempts).toBe(1);
  expect((await db.files(second))[0]).toMatchObject({ status: 'pending', attempts: 0 });
  await kiln.startApp('convert-worker');
  const later = await until(
    'the next worker to take the queued job',
    async () => {
      const x = await job(kiln, second);
      return x.status === 'completed' || x.status === 'failed' ? x : undefined;
    },
    180_000,
    200,
  );
  await checkOneGoodOutput(kiln, db, later);
}, 400_000);

test('a worker over WORKER_MAX_RSS_MB says why, drains and exits with 75 for its supervisor to start a fresh one', async () => {
  const { kiln } = await kilnWith({});
  await kiln.stopApp('convert-worker');
  let out = '';
  const env = { ...(process.env as Record<string, string>), DATABASE_URL: kiln.db.url, DATA_DIR: kiln.dataDir, LOG_FORMAT: 'json', LOG_LEVEL: 'info', WORKER_MAX_RSS_MB: '1' };
  const child: ChildProcess = await spawnApp('convert-worker', env, (s) => (out += s), 'rss-worker');
  try {
    const code = await until('the worker to recycle itself', async () => (child.exitCode !== null ? { code: child.exitCode } : undefined), 60_000, 100);
    expect(code.code).toBe(75);
    expect(out).toMatch(/"limit":"WORKER_MAX_RSS_MB".*"msg":"recycling worker: draining, then exiting for a fresh process"/);
    expect(out).toContain('"msg":"stopped"');
  } finally {
    await stopProcess(child, 'SIGKILL');
  }
}, 120_000);
