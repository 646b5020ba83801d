/**
 * Fairness and backpressure through the real pipeline: gateway and convert worker as processes, real
 * Postgres and pg-boss, real ffmpeg and sharp.
 *
 *   - 20 long videos queued in front of one image: the image is converted within seconds, while
 *     nearly every video is still waiting (media and images have queues and worker slots of their own);
 *   - a class whose backlog is at QUEUE_MAX_DEPTH_MEDIA refuses new work of that class with 429
 *     queue_full and Retry-After on every job-creating route of both dialects, other classes are still
 *     accepted, and once a worker drains the backlog the same request is accepted again;
 *   - upgrades and unknown kinds: a message left on the single queue of an older Kiln still runs, and a
 *     URL source (queued as a document, its kind unknown) moves to its own class's queue once fetched.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import sharp from 'sharp';
import { sniff } from '@kiln/formats';
import { resolveFfmpeg } from '@kiln/codec';
import { QUEUES, Queue } from '@kiln/queue';
import { download, form, startKiln, until, waitForJob, type Kiln } from '../helpers/kiln.ts';
import { photo } from '../helpers/images.ts';
import { JSONAPI, turbofiles } from '../helpers/turbofiles.ts';
import { scrape } from '../helpers/prometheus.ts';
import { makeClip, makeTempDir } from '../../packages/codec/test/helpers/media-fixtures.ts';

const exec = promisify(execFile);

let dir: string;
let cleanup: () => Promise<void>;
/** 40 s, 640×360 H.264 + AAC: seconds of WebM encoding each, even on an idle machine. */
let longVideo: Buffer;
/** 1 s, 64×48 H.264: a quick conversion, for the drain. */
let shortVideo: Buffer;
let png: Buffer;

beforeAll(async () => {
  const ffmpeg = (await resolveFfmpeg()).path;
  ({ dir, cleanup } = await makeTempDir('fairness-int'));
  const j = (n: string) => path.join(dir, n);
  const [loop] = await Promise.all([
    makeClip(ffmpeg, j('loop.mp4'), { seconds: 4, video: { width: 640, height: 360, rate: 25 }, audio: {}, format: 'mp4' }),
    makeClip(ffmpeg, j('short.mp4'), { seconds: 1, video: { width: 64, height: 48, rate: 10 }, format: 'mp4' }),
  ]);
  // Ten copies of the 4 s clip back to back, without re-encoding: a long input for the price of a short one.
  await exec(ffmpeg, ['-nostdin', '-v', 'error', '-y', '-stream_loop', '9', '-i', loop, '-c', 'copy', '-f', 'mp4', j('long.mp4')], { timeout: 30_000 });
  [longVideo, shortVideo] = await Promise.all([fs.readFile(j('long.mp4')), fs.readFile(j('short.mp4'))]);
  png = await photo(320, 240);
}, 60_000);

afterAll(async () => {
  await cleanup?.();
});

async function sql<R>(kiln: Kiln, text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: kiln.db.url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as R[];
  } finally {
    await client.end();
  }
}

async function submitJob(kiln: Kiln, fd: FormData): Promise<Response> {
  return kiln.api('/api/jobs', { method: 'POST', body: fd });
}

async function accepted(kiln: Kiln, fd: FormData): Promise<string> {
  const r = await submitJob(kiln, fd);
  const body = (await r.json()) as { jobId: string };
  if (r.status !== 200) throw new Error(`POST /api/jobs → ${r.status} ${JSON.stringify(body)}`);
  return body.jobId;
}

const videoForm = (bytes: Buffer, format = 'webm') => form([{ data: bytes, filename: 'clip.mp4' }], { format });
const imageForm = () => form([{ data: png, filename: 'photo.png' }], { format: 'webp' });

describe('one class of work cannot starve another', () => {
  let kiln: Kiln;
  beforeAll(async () => {
    kiln = await startKiln({
      // The worker starts once the videos are queued: all 20 are waiting when the image arrives.
      apps: ['gateway'],
      // One slot per class: the image has exactly one slot of its own, the videos exactly one of theirs.
      env: { CONVERT_CONCURRENCY: '1', CONVERT_MEDIA_CONCURRENCY: '1', CONVERT_DOCUMENT_CONCURRENCY: '1', WORKER_STOP_GRACE_SECONDS: '1' },
    });
  }, 120_000);
  afterAll(async () => {
    await kiln?.stop();
  });

  const finishedOf = async (ids: string[]) =>
    (await sql<{ n: number }>(kiln, `SELECT count(*)::int AS n FROM jobs WHERE id = ANY($1) AND status IN ('completed', 'failed')`, [ids]))[0]!.n;

  test('with 20 long videos queued, an image job submitted after them completes within seconds, ahead of nearly all of them', async () => {
    const videos = await Promise.all(Array.from({ length: 20 }, () => accepted(kiln, videoForm(longVideo))));
    await kiln.startApp('convert-worker');
    // The media slot is busy with the first video before the image arrives.
    await until('a video to be processing', async () => (await sql(kiln, `SELECT 1 FROM jobs WHERE id = ANY($1) AND status = 'processing'`, [videos])).length > 0, 60_000);

    const finishedBefore = await finishedOf(videos);
    const submitted = Date.now();
    const imageJob = await accepted(kiln, imageForm());
    // Generous for a loaded machine: one small WebP takes well under a second of CPU.
    const done = await waitForJob(kiln, imageJob, 60_000);
    const imageSeconds = (Date.now() - submitted) / 1000;
    const finishedMeanwhile = (await finishedOf(videos)) - finishedBefore;
    console.log(
      `fairness: image job done ${imageSeconds.toFixed(1)} s after submission; ${20 - finishedBefore} of 20 long videos were waiting or running when it was submitted, ${finishedMeanwhile} finished meanwhile`,
    );

    expect(done.status).toBe('completed');
    const out = await download(done.results[0]!.downloadUrl!);
    expect(sniff(out)).toBe('webp');
    expect(await sharp(out).metadata()).toMatchObject({ width: 320, height: 240 });
    // The proof of fairness does not rest on the clock: behind one queue, the image would have waited
    // for every video in front of it (18 or more). With a queue per class, it waits for none: at most
    // the video running when it arrived, and maybe the next one, finish first.
    expect(20 - finishedBefore).toBeGreaterThanOrEqual(18);
    expect(finishedMeanwhile).toBeLessThanOrEqual(2);
  }, 300_000);
});

describe('backpressure: a full class answers 429 queue_full with Retry-After, until it drains', () => {
  let kiln: Kiln;
  beforeAll(async () => {
    // No worker yet: the media backlog only grows until one starts.
    kiln = await startKiln({
      apps: ['gateway'],
      env: { QUEUE_MAX_DEPTH_MEDIA: '3', QUEUE_MAX_WAIT_SECONDS_IMAGE: '3', QUEUE_RETRY_AFTER_SECONDS: '4', WORKER_STOP_GRACE_SECONDS: '1' },
    });
  }, 120_000);
  afterAll(async () => {
    await kiln?.stop();
  });

  test('past QUEUE_MAX_DEPTH_MEDIA every route refuses new video work with 429 and Retry-After, images are still accepted, and video is accepted again once drained', async () => {
    const videos: string[] = [];
    for (let i = 0; i < 3; i++) videos.push(await accepted(kiln, videoForm(shortVideo, 'mp4')));
    // This gateway counts what it let in on top of the backlog it read: the fourth is refused at once.
    const r = await submitJob(kiln, videoForm(shortVideo, 'mp4'));
    const refused = { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.json() };
    expect(refused).toEqual({
      status: 429,
      retryAfter: '4',
      body: {
        code: 'queue_full',
        error: `Kiln already has 3 video/audio files waiting for a worker (convert.media), its limit (QUEUE_MAX_DEPTH_MEDIA=3); retry in 4 s (Retry-After), or ask the operator to add workers or raise QUEUE_MAX_DEPTH_MEDIA.`,
        detail: { limit: 'QUEUE_MAX_DEPTH_MEDIA', max: 3, waiting: 3, queue: 'convert.media', class: 'media', retryAfterSeconds: 4 },
      },
    });
    // Nothing of the refused request was kept: no job row beyond the accepted ones, no stored upload.
    expect(await sql(kiln, `SELECT count(*)::int AS n FROM jobs`)).toEqual([{ n: 3 }]);

    // The other routes that create video work are refused the same way.
    const sync = await kiln.api('/api/convert', { method: 'POST', body: videoForm(shortVideo, 'mp4') });
    expect(sync.status).toBe(429);
    expect(sync.headers.get('retry-after')).toBe('4');
    expect(await sync.json()).toMatchObject({ code: 'queue_full', detail: { limit: 'QUEUE_MAX_DEPTH_MEDIA' } });
    const toolForm = new FormData();
    toolForm.append('file', new Blob([new Uint8Array(shortVideo)]), 'clip.mp4');
    // poster-frame takes only video: it is refused before its upload is read, so nothing reaches storage.
    const jobFolders = async () => (await fs.readdir(path.join(kiln.dataDir, 'blobs', 'jobs')).catch(() => [])).sort();
    const foldersBefore = await jobFolders();
    const tool = await kiln.api('/api/media/poster-frame', { method: 'POST', body: toolForm });
    expect(tool.status).toBe(429);
    expect(await tool.json()).toMatchObject({ code: 'queue_full', detail: { queue: 'convert.media' } });
    expect(await jobFolders()).toEqual(foldersBefore);
    const tf = turbofiles(kiln);
    const file = await tf.declare('mp4', shortVideo.length);
    expect((await tf.put(file.links.upload!, shortVideo)).status).toBeLessThan(300);
    const task = await kiln.api('/v1/tasks', {
      method: 'POST',
      headers: { 'Content-Type': JSONAPI, Accept: JSONAPI },
      body: JSON.stringify({
        data: { type: 'tasks', attributes: { format: { input: 'video/mp4', output: 'video/webm' } }, relationships: { input: { data: { type: 'files', id: file.id } } } },
      }),
    });
    expect(task.status).toBe(429);
    expect(task.headers.get('retry-after')).toBe('4');
    expect(((await task.json()) as { errors: { status: string; code: string; detail: string }[] }).errors[0]).toMatchObject({
      status: '429',
      code: 'queue_full',
      detail: expect.stringContaining('QUEUE_MAX_DEPTH_MEDIA=3'),
    });

    // Every refusal so far (jobs, convert, poster-frame, tasks) is counted on the gateway's /metrics.
    expect((await scrape(`${kiln.url}/metrics`)).value('kiln_queue_full_refusals_total', { queue: 'convert.media', limit: 'QUEUE_MAX_DEPTH_MEDIA' })).toBe(4);

    // Another class is not held back by a full one.
    const imageJob = await accepted(kiln, imageForm());
    // The compress queue of the class is drained by other workers and has a depth of its own: filled
    // to the limit too, it refuses POST /api/compress.
    for (let i = 0; i < 3; i++) await accepted(kiln, form([{ data: shortVideo, filename: 'clip.mp4' }], { jobType: 'compress' }));
    const compress = await kiln.api('/api/compress', { method: 'POST', body: form([{ data: shortVideo, filename: 'clip.mp4' }]) });
    expect(compress.status).toBe(429);
    expect(compress.headers.get('retry-after')).toBe('4');
    expect(await compress.json()).toMatchObject({ code: 'queue_full', detail: { limit: 'QUEUE_MAX_DEPTH_MEDIA', queue: 'compress.media', waiting: 3 } });

    // With no worker, the first image waits; once it has waited QUEUE_MAX_WAIT_SECONDS_IMAGE, new images are refused too.
    const images = [imageJob];
    const tooOld = await until(
      'an image to be refused for the age of the image backlog',
      async () => {
        const r = await submitJob(kiln, imageForm());
        const body = (await r.json()) as { jobId?: string; code?: string; error?: string; detail?: Record<string, unknown> };
        if (r.status === 200) {
          images.push(body.jobId!);
          return undefined;
        }
        return { status: r.status, retryAfter: r.headers.get('retry-after'), body };
      },
      30_000,
      500,
    );
    expect(tooOld).toMatchObject({
      status: 429,
      retryAfter: '4',
      body: { code: 'queue_full', detail: { limit: 'QUEUE_MAX_WAIT_SECONDS_IMAGE', max: 3, queue: 'convert.image', class: 'image' } },
    });
    expect(tooOld.body.error).toMatch(
      /^The oldest of the images waiting for a worker \(convert\.image\) has waited \d+ s, past its limit \(QUEUE_MAX_WAIT_SECONDS_IMAGE=3\); retry in 4 s/,
    );

    // A worker drains the backlog; the same request is then accepted and completes.
    await kiln.startApp('convert-worker');
    for (const id of [...videos, ...images]) expect((await waitForJob(kiln, id, 120_000)).status).toBe('completed');
    const again = await until(
      'a video submission to be accepted again',
      async () => {
        const r = await submitJob(kiln, videoForm(shortVideo, 'mp4'));
        const body = (await r.json()) as { jobId?: string; code?: string };
        if (r.status === 429 && body.code === 'queue_full') return undefined;
        return { status: r.status, jobId: body.jobId };
      },
      20_000,
      200,
    );
    expect(again.status).toBe(200);
    const done = await waitForJob(kiln, again.jobId!, 120_000);
    expect(done.status).toBe('completed');
    expect(sniff(await download(done.results[0]!.downloadUrl!))).toBe('mp4');
  }, 300_000);
});

describe('upgrades and files whose kind is known only later', () => {
  let kiln: Kiln;
  let server: http.Server;
  let port: number;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/clip.mp4') res.writeHead(200, { 'Content-Type': 'video/mp4' }).end(shortVideo);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    // The gateway alone first: messages wait where the gateway (or an older Kiln) put them.
    kiln = await startKiln({ apps: ['gateway'], env: { URL_IMPORT_ALLOWED_HOSTS: 'localhost', WORKER_STOP_GRACE_SECONDS: '1' } });
  }, 120_000);
  afterAll(async () => {
    await kiln?.stop();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  test('a message on the legacy convert.file queue still runs, and a URL source of video is fetched as a document and converted as media', async () => {
    // A job as an older Kiln queued it: its message on convert.file instead of its class's queue.
    const legacyJob = await accepted(kiln, imageForm());
    const [file] = await sql<{ id: string }>(kiln, `SELECT id FROM job_files WHERE job_id = $1`, [legacyJob]);
    expect(await sql(kiln, `DELETE FROM pgboss.job WHERE data->>'jobId' = $1 RETURNING name`, [legacyJob])).toEqual([{ name: 'convert.image' }]);
    const queue = await new Queue({ connectionString: kiln.db.url, retryLimit: 1, expireInSeconds: 120, supervise: false }).start();
    try {
      await queue.send(QUEUES.convertFile, { jobId: legacyJob, fileId: file!.id });
    } finally {
      await queue.stop();
    }

    const urlJob = await accepted(kiln, form([], { format: 'webm', sourceUrl: `http://localhost:${port}/clip.mp4` }));
    expect(await sql(kiln, `SELECT name FROM pgboss.job WHERE data->>'jobId' = $1`, [urlJob])).toEqual([{ name: 'convert.document' }]);

    await kiln.startApp('convert-worker');
    const legacy = await waitForJob(kiln, legacyJob, 60_000);
    expect(legacy.status).toBe('completed');
    expect(sniff(await download(legacy.results[0]!.downloadUrl!))).toBe('webp');
    const fromUrl = await waitForJob(kiln, urlJob, 120_000);
    expect(fromUrl.status).toBe('completed');
    expect(sniff(await download(fromUrl.results[0]!.downloadUrl!))).toBe('webm');
    // Fetched in the document slot, then converted in the media slot: the move is in the worker's log.
    const moves = kiln
      .logs()
      .split('\n')
      .filter((l) => l.includes('"msg":"URL source fetched; moved to the queue of its class"'));
    expect(moves).toHaveLength(1);
    expect(moves[0]).toContain('"from":"convert.document"');
    expect(moves[0]).toContain('"kind":"mp4"');
    const names = await sql<{ name: string }>(kiln, `SELECT name FROM pgboss.job WHERE data->>'jobId' = $1 ORDER BY created_on`, [urlJob]);
    expect(names.map((n) => n.name)).toEqual(['convert.document', 'convert.media']);
  }, 240_000);
});
