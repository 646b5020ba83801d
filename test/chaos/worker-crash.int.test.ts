/**
 * Chaos: a convert worker killed with SIGKILL in the middle of several video files. Real gateway and
 * worker processes, real Postgres and ffmpeg. Nothing may be lost or done twice: every accepted job
 * completes, each file has one output, the dead worker's engines die with it, its files are picked
 * up again within about WORKER_ORPHAN_SECONDS (not the queue's expiry, FILE_TIMEOUT_SECONDS + …) and
 * its scratch folders are swept.
 */
import path from 'node:path';
import { sniff } from '@kiln/formats';
import { download, form, startKiln, until, type JobDetailJson, type Kiln } from '../helpers/kiln.ts';
import { exists, hasEnded, keepLogs, longVideo, outputBlobs, processesOf, rawProbe, scratchFolders, sql } from './chaos-helpers.ts';
import fs from 'node:fs/promises';

const ORPHAN_SECONDS = 20;
let kiln: Kiln;
let video: Awaited<ReturnType<typeof longVideo>>;
let db: ReturnType<typeof sql>;

beforeAll(async () => {
  video = await longVideo(40);
  kiln = await startKiln({
    apps: ['gateway', 'convert-worker'],
    env: { WORKER_ORPHAN_SECONDS: String(ORPHAN_SECONDS), CONVERT_CONCURRENCY: '2', CONVERT_MEDIA_CONCURRENCY: '2', JOB_RETRY_LIMIT: '2' },
  });
  db = sql(kiln.db.url);
}, 180_000);

afterAll(async () => {
  await db?.end();
  if (kiln) await keepLogs('worker-crash', kiln.logs());
  await kiln?.stop();
  await video?.cleanup();
});

async function job(jobId: string): Promise<JobDetailJson> {
  return (await (await kiln.api(`/api/jobs/${jobId}`)).json()) as JobDetailJson;
}

test('kill -9 of a worker mid-file: every job completes once, its engines die with it, its files come back within WORKER_ORPHAN_SECONDS, its scratch is swept', async () => {
  const jobIds: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: video.bytes, filename: `v${i}.mp4` }], { format: 'mp4' }) });
    expect(r.status).toBe(200);
    jobIds.push(((await r.json()) as { jobId: string }).jobId);
  }
  const worker = kiln.procs.get('convert-worker')!;
  // Mid-file: two ffmpegs of this worker running (CONVERT_MEDIA_CONCURRENCY=2), and their scratch recorded.
  const engines = await until(
    'two ffmpeg conversions to be running',
    async () => {
      const p = (await processesOf('ffmpeg', kiln.dataDir)).filter((x) => x.ppid === worker.pid);
      const holds = await db.holds();
      return p.length >= 2 && holds.filter((h) => h.scratchDir).length >= 2 ? p : undefined;
    },
    90_000,
    100,
  );
  const [dead] = (await db.instances()).filter((i) => i.pid === worker.pid);
  expect(dead).toBeDefined();
  const heldBefore = (await db.holds()).filter((h) => h.instanceId === dead!.id);
  const scratchBefore = heldBefore.map((h) => h.scratchDir!).filter(Boolean);
  expect(scratchBefore.length).toBeGreaterThanOrEqual(2);
  for (const s of scratchBefore) expect(await exists(s)).toBe(true);

  await kiln.stopApp('convert-worker', 'SIGKILL');
  const killedAt = Date.now();

  // The engines die with their worker (setpriv --pdeathsig), not minutes later or never.
  // Each one ended (a dying process leaves processesOf's list, its memory released, a moment before it is a zombie).
  await until(
    'the dead worker’s ffmpeg processes to be gone',
    async () => (await processesOf('ffmpeg', kiln.dataDir)).length === 0 && (await Promise.all(engines.map(hasEnded))).every(Boolean),
    15_000,
    100,
  );

  // As a supervisor would: a fresh worker in its place.
  await kiln.startApp('convert-worker');
  // Picked up again: each file the dead worker held is held by a live worker (or already done).
  const heldFiles = heldBefore.map((h) => h.fileId);
  await until(
    'the orphaned files to be picked up again',
    async () => {
      const holds = await db.holds();
      const rows = (await Promise.all(jobIds.map((j) => db.files(j)))).flat();
      return heldFiles.every((f) => holds.some((h) => h.fileId === f && h.instanceId !== dead!.id) || rows.find((r) => r.id === f)?.status === 'completed');
    },
    (ORPHAN_SECONDS + 60) * 1000,
    200,
  );
  const pickupSeconds = (Date.now() - killedAt) / 1000;
  console.log(`chaos figure: orphaned files picked up ${pickupSeconds.toFixed(1)} s after kill -9 (WORKER_ORPHAN_SECONDS=${ORPHAN_SECONDS})`);
  // Bounded by the orphan window, with room for a loaded machine — not by the queue's 11-minute expiry.
  expect(pickupSeconds).toBeLessThan(ORPHAN_SECONDS * 2 + 30);

  const done = await until(
    'every job to complete',
    async () => {
      const all = await Promise.all(jobIds.map(job));
      return all.every((j) => j.status === 'completed' || j.status === 'failed') ? all : undefined;
    },
    240_000,
    250,
  );
  console.log(`chaos figure: all 3 jobs complete ${((Date.now() - killedAt) / 1000).toFixed(1)} s after kill -9`);
  for (const [i, j] of done.entries()) {
    expect(j.status).toBe('completed');
    const rows = await db.files(j.jobId);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.status).toBe('completed');
    // One output per file, whatever happened: one row, one blob under the job's output folder.
    expect(await db.storedFiles(j.jobId)).toBe(1);
    expect(await outputBlobs(kiln.dataDir, j.jobId)).toEqual([path.basename(`${rows[0]!.id}.mp4`)]);
    const bytes = await download(j.results[0]!.downloadUrl!);
    expect(sniff(bytes)).toBe('mp4');
    const out = path.join(kiln.dataDir, `check-${i}.mp4`);
    await fs.writeFile(out, bytes);
    const probe = await rawProbe(video.ffprobe, out);
    expect(Math.abs(Number(probe.format.duration) - 40)).toBeLessThan(0.5);
  }
  // The files that were mid-file when the worker died were done a second time, by the new worker.
  const attempts = (await Promise.all(jobIds.map((j) => db.files(j)))).flat().filter((r) => heldFiles.includes(r.id));
  expect(attempts.every((r) => r.attempts >= 2)).toBe(true);

  // The sweep removed the dead worker's scratch folders and its registration.
  await until(
    'the dead worker’s scratch folders to be swept',
    async () => {
      for (const s of scratchBefore) if (await exists(s)) return false;
      return true;
    },
    (ORPHAN_SECONDS + 60) * 1000,
    250,
  );
  expect((await db.instances()).some((i) => i.id === dead!.id)).toBe(false);
  expect(await scratchFolders(kiln.dataDir)).toEqual([]);
  expect(kiln.logs()).toContain('worker presumed dead: released its files');
}, 420_000);
