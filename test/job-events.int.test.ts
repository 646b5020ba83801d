/**
 * Live progress, GET /api/jobs/:id/events, against real processes: a gateway, a second gateway on the
 * same database (a stream on one follows a job submitted on the other), a convert worker running
 * ffmpeg and sharp. What must hold: the snapshot first, a file's percentage while ffmpeg runs, each
 * file's result once, the final event, then the server closes; Last-Event-ID resumes with exactly what
 * was missed; a cancelled job ends its stream; a gateway's stream limit is refused with its name.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { sniff } from '@kiln/formats';
import { resolveFfmpeg } from '@kiln/codec';
import { parseEventId } from '@kiln/contracts';
import { createApiKey } from '@kiln/db';
import { form, freePort, spawnApp, startKiln, stopProcess, until, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';
import { openSse, type SseEvent, type SseStream } from './helpers/sse.ts';
import { makeClip, makeTempDir } from '../packages/codec/test/helpers/media-fixtures.ts';

let kiln: Kiln;
let gatewayB: ChildProcess;
let urlB: string;
let logB = '';
let media: { dir: string; cleanup: () => Promise<void> };
let clip: Buffer;
const opened: SseStream[] = [];

beforeAll(async () => {
  media = await makeTempDir('job-events');
  const clipPath = path.join(media.dir, 'clip.mp4');
  [kiln] = await Promise.all([
    startKiln({ apps: ['gateway', 'convert-worker'], env: { CONVERT_CONCURRENCY: '1' } }),
    resolveFfmpeg().then((f) => makeClip(f.path, clipPath, { seconds: 12, video: { width: 640, height: 360, rate: 25 }, audio: {}, format: 'mp4' })),
  ]);
  clip = await fs.readFile(clipPath);
  // A second gateway: same database and data folder (so the same signing secret), its own port.
  const port = await freePort();
  urlB = `http://127.0.0.1:${port}`;
  gatewayB = await spawnApp(
    'gateway',
    {
      ...(process.env as Record<string, string>),
      DATABASE_URL: kiln.db.url,
      DATA_DIR: kiln.dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      DB_POOL_MAX: '3',
      EVENTS_MAX_STREAMS: '2',
      EVENTS_MAX_STREAMS_PER_KEY: '1',
    },
    (text) => {
      logB = (logB + text).slice(-50_000);
    },
    'gateway-b',
  );
}, 120_000);

afterAll(async () => {
  if (process.env.KILN_TEST_DUMP_LOGS) await fs.writeFile(process.env.KILN_TEST_DUMP_LOGS, `${kiln?.logs()}\n${logB}`);
  for (const s of opened) s.close();
  if (gatewayB) await stopProcess(gatewayB);
  await kiln?.stop();
  await media?.cleanup();
});

const auth = () => ({ Authorization: `Bearer ${kiln.key}` });
const events = async (base: string, jobId: string, headers: Record<string, string> = {}) => {
  const s = await openSse(`${base}/api/jobs/${jobId}/events`, { ...auth(), ...headers });
  opened.push(s);
  return s;
};
/** A new API key of its own (another client). */
const otherKey = async (): Promise<string> => {
  const c = new pg.Client({ connectionString: kiln.db.url });
  await c.connect();
  try {
    return (await createApiKey(c, 'another client')).key;
  } finally {
    await c.end();
  }
};
const submitAs = async (key: string, files: { data: Buffer; filename: string }[], format: string): Promise<string> => {
  const r = await fetch(`${kiln.url}/api/jobs`, { method: 'POST', headers: { Authorization: `Bearer ${key}` }, body: form(files, { format }) });
  expect(r.status).toBe(200);
  return ((await r.json()) as { jobId: string }).jobId;
};
const submit = async (files: { data: Buffer; filename: string }[], format: string): Promise<string> => {
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form(files, { format }) });
  expect(r.status).toBe(200);
  return ((await r.json()) as { jobId: string }).jobId;
};
const names = (evs: SseEvent[]) => evs.map((e) => e.event);
const versions = (evs: SseEvent[]) => evs.map((e) => parseEventId(e.id)!.version);
const nonDecreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x >= xs[i - 1]!);

describe('while no worker runs', () => {
  beforeAll(async () => {
    await kiln.stopApp('convert-worker');
  }, 60_000);
  afterAll(async () => {
    await kiln.startApp('convert-worker');
  }, 60_000);

  it('a pending job streams its snapshot, and cancelling it sends failed with the reason and closes the stream', async () => {
    const jobId = await submit([{ data: await photo(64, 48, { format: 'png' }), filename: 'a.png' }], 'webp');
    const s = await events(kiln.url, jobId);
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const snap = await s.next('the snapshot', (e) => e.event === 'snapshot');
    expect(snap.data).toMatchObject({ jobId, status: 'pending', totalFiles: 1, results: [{ index: 0, status: 'pending' }] });
    expect((await kiln.api(`/api/jobs/${jobId}`, { method: 'DELETE' })).status).toBe(200);
    const failed = await s.next('the failed event', (e) => e.event === 'failed');
    expect(failed.data).toMatchObject({ jobId, status: 'failed', errorMessage: 'Job was cancelled.' });
    await s.ended;
    expect(names(s.events)).toEqual(['snapshot', 'file', 'progress', 'failed']);
    expect(s.events[1]!.data).toMatchObject({ index: 0, status: 'failed', error: { code: 'cancelled' } });
  });

  it("a change made by any statement reaches the stream, even an operator's own SQL", async () => {
    const jobId = await submit([{ data: await photo(64, 48, { format: 'png' }), filename: 'a.png' }], 'webp');
    const s = await events(kiln.url, jobId);
    await s.next('the snapshot', (e) => e.event === 'snapshot');
    const sql = new pg.Client({ connectionString: kiln.db.url });
    await sql.connect();
    try {
      await sql.query(`UPDATE jobs SET status = 'failed', cancelled = true, completed_at = now() WHERE id = $1`, [jobId]);
    } finally {
      await sql.end();
    }
    const failed = await s.next('the failed event', (e) => e.event === 'failed');
    expect(failed.data).toMatchObject({ jobId, status: 'failed', errorMessage: 'Job was cancelled.' });
    await s.ended;
    expect(names(s.events)).toEqual(['snapshot', 'progress', 'failed']);
  });

  it("refuses a key's stream past EVENTS_MAX_STREAMS_PER_KEY with 429, and any stream past the gateway's EVENTS_MAX_STREAMS with 503, each naming its setting", async () => {
    const jobId = await submit([{ data: await photo(64, 48, { format: 'png' }), filename: 'a.png' }], 'webp');
    const first = await events(urlB, jobId);
    await first.next('the snapshot', (e) => e.event === 'snapshot');
    // The same key's second stream: its own limit (1 here), while the gateway has room for one more.
    const perKey = await fetch(`${urlB}/api/jobs/${jobId}/events`, { headers: auth() });
    expect(perKey.status).toBe(429);
    expect(perKey.headers.get('retry-after')).toBe('5');
    const perKeyBody = (await perKey.json()) as { code: string; error: string; detail: { limit: string } };
    expect(perKeyBody.code).toBe('rate_limited');
    expect(perKeyBody.detail.limit).toBe('EVENTS_MAX_STREAMS_PER_KEY');
    expect(perKeyBody.error).toMatch(/1 live event streams.*EVENTS_MAX_STREAMS_PER_KEY/);
    // Another key's stream takes the gateway's last place; a third key then meets the gateway's limit.
    const other = await otherKey();
    const otherJob = await submitAs(other, [{ data: await photo(64, 48, { format: 'png' }), filename: 'b.png' }], 'webp');
    const second = await openSse(`${urlB}/api/jobs/${otherJob}/events`, { Authorization: `Bearer ${other}` });
    opened.push(second);
    await second.next('the snapshot', (e) => e.event === 'snapshot');
    const third = await otherKey();
    const refused = await fetch(`${urlB}/api/jobs/${jobId}/events`, { headers: { Authorization: `Bearer ${third}` } });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    const body = (await refused.json()) as { code: string; error: string };
    expect(body.code).toBe('unavailable');
    expect(body.error).toMatch(/2 live event streams.*EVENTS_MAX_STREAMS/);
    first.close();
    second.close();
    // The closed streams' places are free again, the key's own included.
    await until('the stream slot to be released', async () => {
      const again = await events(urlB, jobId);
      const ok = again.status === 200;
      again.close();
      return ok;
    });
    await kiln.api(`/api/jobs/${jobId}`, { method: 'DELETE' });
    await fetch(`${kiln.url}/api/jobs/${otherJob}`, { method: 'DELETE', headers: { Authorization: `Bearer ${other}` } });
  });

  it('answers 404 for a job that is not there and 401 without a key, before any stream starts', async () => {
    const missing = await fetch(`${kiln.url}/api/jobs/00000000-0000-4000-8000-000000000000/events`, { headers: auth() });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { code: string }).code).toBe('not_found');
    const anon = await fetch(`${kiln.url}/api/jobs/00000000-0000-4000-8000-000000000000/events`);
    expect(anon.status).toBe(401);
  });
});

describe('resuming with Last-Event-ID', () => {
  let jobId: string;
  let resumed: SseStream;

  it('a client cut off after the snapshot gets every file it missed, then progress and completed, and no second snapshot', async () => {
    await kiln.stopApp('convert-worker');
    jobId = await submit(
      [
        { data: await photo(120, 80, { format: 'png' }), filename: 'one.png' },
        { data: await photo(90, 60, { format: 'png' }), filename: 'two.png' },
      ],
      'webp',
    );
    const s = await events(kiln.url, jobId);
    const snap = await s.next('the snapshot', (e) => e.event === 'snapshot');
    s.close();
    await kiln.startApp('convert-worker');
    await until('the job to complete', async () => ((await (await kiln.api(`/api/jobs/${jobId}`)).json()) as { status: string }).status === 'completed');

    resumed = await events(kiln.url, jobId, { 'Last-Event-ID': snap.id! });
    await resumed.ended;
    expect(names(resumed.events)).toEqual(['file', 'file', 'progress', 'completed']);
    expect(resumed.events.slice(0, 2).map((e) => (e.data as { index: number }).index)).toEqual([0, 1]);
    expect(nonDecreasing([parseEventId(snap.id)!.version, ...versions(resumed.events)])).toBe(true);
    const done = resumed.events[3]!.data as { status: string; results: { downloadUrl: string }[] };
    expect(done.status).toBe('completed');
    const out = Buffer.from(await (await fetch(done.results[1]!.downloadUrl)).arrayBuffer());
    expect(sniff(out)).toBe('webp');
  }, 120_000);

  it('a client cut off after the first file event gets only the second, on another gateway', async () => {
    const afterFirst = resumed.events[0]!.id!;
    const s = await events(urlB, jobId, { 'Last-Event-ID': afterFirst });
    await s.ended;
    expect(names(s.events)).toEqual(['file', 'progress', 'completed']);
    expect((s.events[0]!.data as { index: number }).index).toBe(1);
    // The same ids as the stream it resumes: they are read off the job, not kept by a gateway.
    expect(s.events.map((e) => e.id)).toEqual(resumed.events.slice(1).map((e) => e.id));
  });

  it('without Last-Event-ID a finished job streams its snapshot and completed, and an id that is not ours starts over', async () => {
    for (const headers of [{}, { 'Last-Event-ID': 'not-an-id' }] as Record<string, string>[]) {
      const s = await events(kiln.url, jobId, headers);
      await s.ended;
      expect(names(s.events)).toEqual(['snapshot', 'completed']);
    }
  });
});

it('a stream on one gateway follows a video job submitted on the other: snapshot, ffmpeg percentages, the file, completed', async () => {
  const jobId = await submit([{ data: clip, filename: 'clip.mp4' }], 'webm');
  const s = await events(urlB, jobId);
  const done = await s.next('the completed event', (e) => e.event === 'completed', 180_000);
  await s.ended;
  const evs = s.events;
  expect(evs[0]!.event).toBe('snapshot');
  expect(evs.at(-1)).toBe(done);
  // Only progress events between the snapshot and the file's result, at least one mid-way through ffmpeg.
  const fileAt = evs.findIndex((e) => e.event === 'file');
  expect(names(evs.slice(1, fileAt)).every((n) => n === 'progress')).toBe(true);
  const midway = evs.filter((e) => e.event === 'progress').map((e) => (e.data as { files: { progress: number; status: string }[] }).files[0]!);
  expect(midway.some((f) => f.status === 'processing' && f.progress > 0 && f.progress < 100)).toBe(true);
  const percentages = midway.map((f) => (f.status === 'processing' ? f.progress : 100));
  expect(nonDecreasing(percentages)).toBe(true);
  expect(nonDecreasing(versions(evs))).toBe(true);
  expect(names(evs).filter((n) => n === 'file')).toHaveLength(1);
  const result = (done.data as { results: { downloadUrl: string; format: string }[] }).results[0]!;
  expect(result.format).toBe('webm');
  const out = Buffer.from(await (await fetch(result.downloadUrl)).arrayBuffer());
  expect(out.subarray(0, 4)).toEqual(Buffer.from([0x1a, 0x45, 0xdf, 0xa3])); // EBML: WebM/Matroska
}, 240_000);

it('a job with an archive ends with completed only once the zip is built, its link in the final event', async () => {
  const jobId = await (async () => {
    const r = await kiln.api('/api/jobs', {
      method: 'POST',
      body: form(
        [
          { data: await photo(100, 80, { format: 'png' }), filename: 'p.png' },
          { data: await photo(80, 100, { format: 'png' }), filename: 'q.png' },
        ],
        { format: 'jpg', createArchive: 'true' },
      ),
    });
    return ((await r.json()) as { jobId: string }).jobId;
  })();
  const s = await events(kiln.url, jobId);
  const done = await s.next('the completed event', (e) => e.event === 'completed', 120_000);
  await s.ended;
  // Each file is reported once: in the snapshot if it was final already, else by its own file event.
  expect(s.events[0]!.event).toBe('snapshot');
  const finalInSnapshot = (s.events[0]!.data as { results: { status: string }[] }).results.filter((r) => r.status === 'completed').length;
  expect(names(s.events).filter((n) => n === 'file')).toHaveLength(2 - finalInSnapshot);
  expect(nonDecreasing(versions(s.events))).toBe(true);
  const archive = (done.data as { archive: { downloadUrl: string; filename: string } | null }).archive;
  expect(archive?.filename).toMatch(/\.zip$/);
  const zip = Buffer.from(await (await fetch(archive!.downloadUrl)).arrayBuffer());
  expect(zip.subarray(0, 4)).toEqual(Buffer.from('PK\x03\x04', 'latin1'));
}, 180_000);
