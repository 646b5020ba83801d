/**
 * Kiln on S3 storage end to end (real gateway and convert worker processes, a real S3-protocol
 * server on 127.0.0.1): downloads streamed from the bucket with Range support, DOWNLOAD_REDIRECT=s3
 * answering 302 to a presigned GET, /readyz reporting the bucket, and the S3 server killed in the
 * middle of a job — 503 with Retry-After at the gateway, the file retried once it is back, nothing lost.
 */
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { sniff } from '@kiln/formats';
import { resolveFfmpeg } from '@kiln/codec';
import { download, form, freePort, spawnApp, startKiln, stopProcess, until, waitForJob, type JobDetailJson, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';
import { makeClip, makeTempDir } from '../packages/codec/test/helpers/media-fixtures.ts';
import { startS3Server, type S3Server } from '../scripts/s3-server.ts';

let s3: S3Server;
let kiln: Kiln;
/** /readyz shows its detail only to a caller holding this. */
const METRICS_TOKEN = 's3-test-metrics-token-0123456789';
let redirecting: { url: string; child: ChildProcess };
let media: { dir: string; cleanup: () => Promise<void> };
let clip: Buffer;
let result: { url: string; bytes: Buffer; filename: string };

beforeAll(async () => {
  s3 = await startS3Server();
  const env = { ...s3.env, METRICS_TOKEN };
  kiln = await startKiln({ apps: ['gateway', 'convert-worker'], env });
  // A second gateway on the same database, bucket and DATA_DIR (so the same signing secret) whose
  // downloads redirect to the bucket instead of streaming.
  const port = await freePort();
  const child = await spawnApp(
    'gateway',
    {
      ...(process.env as Record<string, string>),
      ...env,
      DATABASE_URL: kiln.db.url,
      DATA_DIR: kiln.dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      DOWNLOAD_REDIRECT: 's3',
    },
    () => undefined,
    'gateway-redirect',
  );
  redirecting = { url: `http://127.0.0.1:${port}`, child };
  media = await makeTempDir('storage-s3');
  const ffmpeg = await resolveFfmpeg();
  clip = await fs.readFile(await makeClip(ffmpeg.path, path.join(media.dir, 'clip.mp4'), { seconds: 4, video: { width: 640, height: 360, rate: 25 }, audio: {}, format: 'mp4' }));

  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: await photo(400, 300, { format: 'png' }), filename: 'photo.png' }], { format: 'webp' }) });
  const job = await waitForJob(kiln, ((await r.json()) as { jobId: string }).jobId);
  const res = job.results[0]!;
  result = { url: res.downloadUrl!, bytes: await download(res.downloadUrl!), filename: res.filename };
}, 180_000);

afterAll(async () => {
  if (redirecting) await stopProcess(redirecting.child);
  await kiln?.stop();
  await s3?.stop();
  await media?.cleanup();
});

test('a result streams from the bucket: exactly what the worker stored, with single ranges honoured', async () => {
  const { bytes, url } = result;
  expect(sniff(bytes)).toBe('webp');
  const objects = await s3.objects();
  const out = objects.find((k) => k.includes('/out/'));
  expect(out).toBeDefined();
  expect((await s3.storedBytes(out!)).equals(bytes)).toBe(true);

  const size = bytes.length;
  const ranged = async (range: string) => {
    const r = await fetch(url, { headers: { Range: range } });
    return { status: r.status, contentRange: r.headers.get('content-range'), length: r.headers.get('content-length'), body: Buffer.from(await r.arrayBuffer()) };
  };
  const first = await ranged('bytes=0-99');
  expect(first).toMatchObject({ status: 206, contentRange: `bytes 0-99/${size}`, length: '100' });
  expect(first.body.equals(bytes.subarray(0, 100))).toBe(true);
  const tail = await ranged('bytes=-10');
  expect(tail).toMatchObject({ status: 206, contentRange: `bytes ${size - 10}-${size - 1}/${size}` });
  expect(tail.body.equals(bytes.subarray(size - 10))).toBe(true);
  const open = await ranged('bytes=100-');
  expect(open.body.equals(bytes.subarray(100))).toBe(true);
  expect(await ranged(`bytes=${size + 10}-`)).toMatchObject({ status: 416, contentRange: `bytes */${size}` });
  // Several ranges: the whole file rather than multipart/byteranges.
  const several = await ranged('bytes=0-1,10-20');
  expect(several.status).toBe(200);
  expect(several.body.equals(bytes)).toBe(true);

  const head = await fetch(url, { method: 'HEAD' });
  expect({ status: head.status, length: head.headers.get('content-length'), ranges: head.headers.get('accept-ranges') }).toEqual({
    status: 200,
    length: String(size),
    ranges: 'bytes',
  });
});

test('DOWNLOAD_REDIRECT=s3: the signed link answers 302 to a short-lived presigned GET of the same bytes', async () => {
  const u = new URL(result.url);
  const r = await fetch(`${redirecting.url}${u.pathname}${u.search}`, { redirect: 'manual' });
  expect(r.status).toBe(302);
  expect(r.headers.get('cache-control')).toBe('no-store');
  const target = new URL(r.headers.get('location')!);
  expect(target.origin).toBe(s3.endpoint);
  expect(target.searchParams.get('X-Amz-Expires')).toBe('300');
  expect(target.searchParams.get('response-content-disposition')).toContain(`filename="${result.filename}"`);
  expect(target.searchParams.get('response-content-type')).toBe('image/webp');
  expect(Buffer.from(await (await fetch(target)).arrayBuffer()).equals(result.bytes)).toBe(true);
  // The Kiln signature still decides: a tampered link is a 404 here, never a redirect.
  const bad = await fetch(`${redirecting.url}${u.pathname}?exp=${u.searchParams.get('exp')}&sig=AAAA${u.searchParams.get('sig')!.slice(4)}`, { redirect: 'manual' });
  expect(bad.status).toBe(404);
});

test('an upload streams into a multipart upload as it arrives, and a client that goes away aborts it', async () => {
  const objectsBefore = await s3.objects();
  const boundary = `----kiln${crypto.randomBytes(8).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="format"\r\n\r\nwebp\r\n--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const req = http.request(`${kiln.url}/api/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${kiln.key}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + 64 * 1024 * 1024) },
  });
  req.on('error', () => undefined);
  req.write(head);
  const chunk = crypto.randomBytes(1024 * 1024);
  for (let i = 0; i < 14; i++) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
  // Parts reach the bucket while the body is still arriving: nothing waits for the whole file.
  await until('a multipart upload to have begun', async () => (await s3.unfinishedUploads()).length > 0, 30_000, 50);
  req.destroy();
  await until('the multipart upload to be aborted', async () => (await s3.unfinishedUploads()).length === 0, 30_000, 100);
  expect(await s3.objects()).toEqual(objectsBefore);
  expect(await fs.readdir(path.join(kiln.dataDir, 'scratch')).catch(() => [])).toEqual([]);
}, 60_000);

test("a file's local source copy is made inside the scratch folder its hold names, so a crash's sweep removes it too; nothing is left after", async () => {
  const submitted = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: clip, filename: 'clip.mp4' }], { format: 'webm' }) });
  expect(submitted.status).toBe(200);
  const { jobId } = (await submitted.json()) as { jobId: string };
  const scratchRoot = path.join(kiln.dataDir, 'scratch');
  // While ffmpeg runs: the copy of the source, inside a w- folder.
  const copy = await until(
    'the source copy to be in a scratch folder',
    async () => {
      for (const dir of await fs.readdir(scratchRoot).catch(() => [] as string[])) {
        const names = await fs.readdir(path.join(scratchRoot, dir)).catch(() => [] as string[]);
        if (names.some((n) => n.startsWith('src-'))) return path.join(scratchRoot, dir);
      }
      return undefined;
    },
    60_000,
    20,
  );
  const db = new pg.Client({ connectionString: kiln.db.url });
  await db.connect();
  try {
    const holds = (await db.query<{ scratch_dir: string }>('SELECT scratch_dir FROM worker_holds WHERE file_id IN (SELECT id FROM job_files WHERE job_id = $1)', [jobId])).rows;
    expect(holds.map((h) => h.scratch_dir)).toEqual([copy]);
    // Nothing else under the scratch root that no hold names.
    const all = (await db.query<{ scratch_dir: string }>('SELECT scratch_dir FROM worker_holds')).rows.map((h) => h.scratch_dir);
    for (const entry of await fs.readdir(scratchRoot)) expect(all).toContain(path.join(scratchRoot, entry));
  } finally {
    await db.end();
  }
  expect((await waitForJob(kiln, jobId, 120_000)).status).toBe('completed');
  expect(await fs.readdir(scratchRoot)).toEqual([]);
}, 180_000);

test('/readyz names the storage driver and bucket, and says whether the bucket answers', async () => {
  const r = await fetch(`${kiln.url}/readyz`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(r.status).toBe(200);
  const body = (await r.json()) as { checks: { storage: Record<string, unknown> } };
  expect(body.checks.storage).toMatchObject({ driver: 's3', bucket: s3.bucket, endpoint: s3.endpoint, ok: true });
});

test('the S3 server killed mid-job: 503 with Retry-After meanwhile, the file retried when it is back, nothing lost', async () => {
  const submitted = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: clip, filename: 'clip.mp4' }], { format: 'webm' }) });
  expect(submitted.status).toBe(200);
  const { jobId } = (await submitted.json()) as { jobId: string };
  // Killed at once: a 4 s transcode cannot have fetched, converted and stored by now, so the
  // worker meets the outage fetching its source or storing its output.
  await s3.kill();
  const before = (await (await kiln.api('/api/jobs?limit=100')).json()) as { pagination: { total: number } };
  try {
    const upload = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: await photo(64, 64, { format: 'png' }), filename: 'during.png' }], { format: 'webp' }) });
    expect({ status: upload.status, retryAfter: upload.headers.get('retry-after') }).toEqual({ status: 503, retryAfter: '5' });
    expect(await upload.json()).toMatchObject({ code: 'unavailable', error: expect.stringMatching(/cannot reach its file storage/), detail: { reason: 'storage_unavailable' } });

    const dl = await fetch(result.url);
    expect({ status: dl.status, retryAfter: dl.headers.get('retry-after') }).toEqual({ status: 503, retryAfter: '5' });
    const ready = await fetch(`${kiln.url}/readyz`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: { storage: { ok: boolean; driver: string } } }).checks.storage).toMatchObject({ ok: false, driver: 's3' });

    // The refused upload left no job behind, and the job in flight is waiting, not failed.
    const after = (await (await kiln.api('/api/jobs?limit=100')).json()) as { pagination: { total: number } };
    expect(after.pagination.total).toBe(before.pagination.total);
    await until('the worker to put the file back in the queue', async () => /"msg":"storage unavailable; queued again"/.test(kiln.logs()), 60_000, 100);
    const waiting = (await (await kiln.api(`/api/jobs/${jobId}`)).json()) as JobDetailJson;
    expect(waiting.status === 'pending' || waiting.status === 'processing').toBe(true);
  } finally {
    await s3.restart();
  }

  const job = await waitForJob(kiln, jobId, 120_000);
  expect({ status: job.status, files: job.results.map((r) => r.status) }).toEqual({ status: 'completed', files: ['completed'] });
  const out = await download(job.results[0]!.downloadUrl!);
  expect(sniff(out)).toBe('webm');
  expect(out.length).toBe(job.results[0]!.finalSize);
  // What was stored before the outage is all still there.
  expect((await download(result.url)).equals(result.bytes)).toBe(true);
  // The client retries after Retry-After, and that works too.
  const again = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: await photo(64, 64, { format: 'png' }), filename: 'during.png' }], { format: 'webp' }) });
  expect(again.status).toBe(200);
  expect((await waitForJob(kiln, ((await again.json()) as { jobId: string }).jobId)).status).toBe('completed');
  expect(await s3.unfinishedUploads()).toEqual([]);
}, 240_000);
