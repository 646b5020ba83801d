/**
 * Audio and video through the real job pipeline: gateway, pg-boss, the convert worker and the real
 * ffmpeg/ffprobe. Clips are generated at test time with lavfi (testsrc2 + a sine tone); outputs are
 * checked with an independent ffprobe call, sharp and byte sniffing.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { sniff } from '@kiln/formats';
import { resolveFfmpeg, resolveFfprobe, type ResolvedBinary } from '@kiln/codec';
import { download, form, startKiln, until, waitForJob, type JobDetailJson, type Kiln } from './helpers/kiln.ts';
import { animatedGif } from './helpers/images.ts';
import { makeClip, makeTempDir, rawProbe, startCountingServer } from '../packages/codec/test/helpers/media-fixtures.ts';

const exec = promisify(execFile);
const ANIMATION_MAX_WIDTH = 160;

let kiln: Kiln;
/** /readyz shows its detail only to a caller holding this. */
const METRICS_TOKEN = 'media-test-metrics-token-0123456789';
let ffmpeg: ResolvedBinary;
let ffprobe: ResolvedBinary;
let dir: string;
let cleanup: () => Promise<void>;
/** 40 s, 640×360 H.264 + AAC: a few seconds of transcoding on two cores. */
let long: Buffer;
/** 3 s, 320×240 H.264 + AAC. */
let av: Buffer;
/** 2 s, 320×240 H.264, no audio track. */
let silent: Buffer;
/** 55 s of 64×64 at 2 fps, over the MEDIA_MAX_DURATION_SECONDS=50 this Kiln runs with. */
let tooLong: Buffer;
/** 1 s WAV tone. */
let tone: Buffer;

beforeAll(async () => {
  [ffmpeg, ffprobe] = await Promise.all([resolveFfmpeg(), resolveFfprobe()]);
  ({ dir, cleanup } = await makeTempDir('media-int'));
  const f = ffmpeg.path;
  const j = (n: string) => path.join(dir, n);
  const [loop] = await Promise.all([
    makeClip(f, j('loop.mp4'), { seconds: 4, video: { width: 640, height: 360, rate: 25 }, audio: {}, format: 'mp4' }),
    makeClip(f, j('av.mp4'), { seconds: 3, video: { width: 320, height: 240, rate: 25 }, audio: {}, format: 'mp4' }),
    makeClip(f, j('silent.mp4'), { seconds: 2, video: { width: 320, height: 240, rate: 25 }, format: 'mp4' }),
    makeClip(f, j('too-long.mp4'), { seconds: 55, video: { width: 64, height: 64, rate: 2 }, format: 'mp4' }),
    makeClip(f, j('tone.wav'), { seconds: 1, audio: { codec: 'pcm_s16le' }, format: 'wav' }),
  ]);
  // Ten copies of the 4 s clip back to back, without re-encoding: a long input for the price of a short one.
  await exec(f, ['-nostdin', '-v', 'error', '-y', '-stream_loop', '9', '-i', loop, '-c', 'copy', '-f', 'mp4', j('long.mp4')], { timeout: 30_000 });
  [long, av, silent, tooLong, tone] = (await Promise.all([j('long.mp4'), j('av.mp4'), j('silent.mp4'), j('too-long.mp4'), j('tone.wav')].map((p) => fs.readFile(p)))) as [
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
  ];
  kiln = await startKiln({
    apps: ['gateway', 'convert-worker'],
    env: { METRICS_TOKEN, MEDIA_MAX_DURATION_SECONDS: '50', WORKER_STOP_GRACE_SECONDS: '1', ANIMATION_MAX_WIDTH: String(ANIMATION_MAX_WIDTH) },
  });
}, 120_000);

afterAll(async () => {
  await kiln?.stop();
  await cleanup?.();
});

type Result = JobDetailJson['results'][number] & { durationSeconds?: number };

async function submit(fd: FormData): Promise<string> {
  const r = await kiln.api('/api/jobs', { method: 'POST', body: fd });
  const body = (await r.json()) as { jobId: string };
  expect(r.status).toBe(200);
  return body.jobId;
}

async function getJob(jobId: string): Promise<JobDetailJson> {
  return (await (await kiln.api(`/api/jobs/${jobId}`)).json()) as JobDetailJson;
}

/** Downloads a result to a file, for ffprobe. */
async function fetchTo(r: Result, name: string): Promise<{ file: string; bytes: Buffer }> {
  const bytes = await download(r.downloadUrl!);
  const file = path.join(dir, name);
  await fs.writeFile(file, bytes);
  return { file, bytes };
}

/** ffmpeg processes whose command line mentions `needle` (this Kiln's DATA_DIR: inputs and scratch live there). */
async function ffmpegProcesses(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').then(
      (s) => s.split('\0'),
      () => [],
    );
    if (argv[0] && path.basename(argv[0]) === 'ffmpeg' && argv.some((a) => a.includes(needle))) pids.push(Number(entry));
  }
  return pids;
}

test('a 40 s video converts to MP4 (H.264 + AAC) and the job progress moves before the end', async () => {
  const jobId = await submit(form([{ data: long, filename: 'long.mp4' }], { format: 'mp4' }));
  const seen: number[] = [];
  const job = await until(
    'the long video to finish',
    async () => {
      const j = await getJob(jobId);
      seen.push(j.progress);
      return j.status === 'completed' || j.status === 'failed' ? j : undefined;
    },
    90_000,
    100,
  );
  expect(job.status).toBe('completed');
  expect(seen.some((p) => p > 0 && p < 100)).toBe(true);
  const r = job.results[0] as Result;
  expect(r).toMatchObject({ status: 'completed', format: 'mp4', mimeType: 'video/mp4', width: 640, height: 360, filename: 'long.mp4' });
  expect(Math.abs(r.durationSeconds! - 40)).toBeLessThan(0.5);
  const { file, bytes } = await fetchTo(r, 'long-out.mp4');
  expect(sniff(bytes)).toBe('mp4');
  const p = await rawProbe(ffprobe.path, file);
  const v = p.streams.find((s) => s.codec_type === 'video')!;
  const a = p.streams.find((s) => s.codec_type === 'audio')!;
  expect(v.codec_name).toBe('h264');
  expect(a.codec_name).toBe('aac');
  expect(v.width! % 2).toBe(0);
  expect(v.height! % 2).toBe(0);
  expect(Math.abs(Number(p.format.duration) - 40)).toBeLessThan(0.5);
}, 120_000);

test('one job turns an MP4 into MP3 and into a resized WebM (VP9 + Opus) with even dimensions', async () => {
  const jobId = await submit(
    form(
      [
        { data: av, filename: 'clip.mp4' },
        { data: av, filename: 'clip.mp4' },
      ],
      {
        formats: JSON.stringify(['mp3', 'webm']),
        resizes: JSON.stringify(['original', 'width']),
        resizeWidths: JSON.stringify([null, 201]),
      },
    ),
  );
  const job = await waitForJob(kiln, jobId);
  expect(job.status).toBe('completed');
  const [mp3, webm] = job.results as Result[];
  expect(mp3).toMatchObject({ status: 'completed', format: 'mp3', mimeType: 'audio/mpeg', filename: 'clip.mp3', appliedQuality: 82 });
  const a = await fetchTo(mp3!, 'clip.mp3');
  expect(sniff(a.bytes)).toBe('mp3');
  const pa = await rawProbe(ffprobe.path, a.file);
  expect(pa.streams.map((s) => s.codec_name)).toEqual(['mp3']);
  expect(Math.abs(Number(pa.format.duration) - 3)).toBeLessThan(0.5);

  expect(webm).toMatchObject({ status: 'completed', format: 'webm', mimeType: 'video/webm', width: 200, height: 150 });
  const w = await fetchTo(webm!, 'clip.webm');
  expect(sniff(w.bytes)).toBe('webm');
  const pw = await rawProbe(ffprobe.path, w.file);
  expect(pw.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'vp9', width: 200, height: 150 });
  expect(pw.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'opus' });
});

test('a video becomes an animated GIF within the width cap, and a JPEG poster frame at full size', async () => {
  const jobId = await submit(form([{ data: av }, { data: av }], { formats: JSON.stringify(['gif', 'jpg']) }));
  const job = await waitForJob(kiln, jobId);
  expect(job.status).toBe('completed');
  const [gif, jpg] = job.results as Result[];
  const g = await download(gif!.downloadUrl!);
  expect(sniff(g)).toBe('gif');
  const gm = await sharp(g, { animated: true }).metadata();
  expect(gm.pages).toBeGreaterThan(1);
  expect(gm.width).toBeLessThanOrEqual(ANIMATION_MAX_WIDTH);
  expect(gif).toMatchObject({ format: 'gif', mimeType: 'image/gif', width: gm.width });

  const j = await download(jpg!.downloadUrl!);
  expect(sniff(j)).toBe('jpg');
  const jm = await sharp(j).metadata();
  expect([jm.width, jm.height]).toEqual([320, 240]);
  expect(jpg).toMatchObject({ format: 'jpg', mimeType: 'image/jpeg', width: 320, height: 240 });
});

test('an animated GIF converts to an MP4 with even dimensions', async () => {
  const gif = await animatedGif(65, 47, 6);
  const job = await waitForJob(kiln, await submit(form([{ data: gif, filename: 'anim.gif' }], { format: 'mp4' })));
  expect(job.status).toBe('completed');
  const { file, bytes } = await fetchTo(job.results[0] as Result, 'anim.mp4');
  expect(sniff(bytes)).toBe('mp4');
  const v = (await rawProbe(ffprobe.path, file)).streams.find((s) => s.codec_type === 'video')!;
  expect(v).toMatchObject({ codec_name: 'h264', width: 64, height: 46 });
});

test('a video over MEDIA_MAX_DURATION_SECONDS and a silent video asked for MP3 fail per file with sentences', async () => {
  const jobId = await submit(form([{ data: tooLong }, { data: silent }], { formats: JSON.stringify(['mp4', 'mp3']) }));
  const job = await waitForJob(kiln, jobId);
  expect(job.failedFiles).toBe(2);
  expect(job.results[0]!.error).toEqual({ code: 'limit_exceeded', message: expect.stringMatching(/duration is 55 s, over the limit of 50 s; raise MEDIA_MAX_DURATION_SECONDS/) });
  expect(job.results[1]!.error).toEqual({ code: 'invalid_input', message: 'The file has no audio track to convert.' });
});

test('an HLS playlist named .mp4 is refused, and one hidden behind an ID3 tag fails per file without a single request leaving', async () => {
  const server = await startCountingServer(Buffer.alloc(188, 0x47));
  try {
    const playlist = `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n${server.url('/seg.ts')}\n#EXT-X-ENDLIST\n`;
    // Plain: not audio or video by its bytes, whatever the name says.
    const plain = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: Buffer.from(playlist), filename: 'movie.mp4' }], { format: 'mp4' }) });
    expect(plain.status).toBe(415);
    // An empty ID3v2 tag in front makes the bytes sniff as MP3 — and ffmpeg skips ID3 tags before
    // probing, so without the demuxer whitelist the worker would open it as HLS and fetch the segment.
    const id3 = Buffer.from([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 0]);
    const job = await waitForJob(kiln, await submit(form([{ data: Buffer.concat([id3, Buffer.from(playlist)]), filename: 'movie.mp4' }], { format: 'wav' })));
    expect(job.status).toBe('failed');
    expect(['invalid_input', 'unsupported_format']).toContain(job.results[0]!.error?.code);
    expect(server.requests).toEqual([]);
  } finally {
    await server.close();
  }
});

test('audio to PNG is refused with 415 naming the pair and the formats that would work', async () => {
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: tone, filename: 'tone.wav' }], { format: 'png' }) });
  expect(r.status).toBe(415);
  const body = (await r.json()) as { error: string; code: string; detail: { input: string; output: string; supportedOutputs: string[] } };
  expect(body.code).toBe('unsupported_format');
  expect(body.error).toMatch(/^files\[0\] \("tone\.wav"\) is wav, which cannot be converted to png; it converts to mp3, wav, ogg, m4a, flac\b/);
  expect(body.detail).toMatchObject({ input: 'wav', output: 'png' });
  expect(body.detail.supportedOutputs).toEqual(expect.arrayContaining(['mp3', 'wav', 'ogg', 'm4a', 'flac']));
  expect(body.detail.supportedOutputs).not.toContain('png');
});

test('the worker logs its ffmpeg at start-up and /readyz reports engines and worker heartbeats', async () => {
  expect(kiln.logs()).toMatch(/\[convert-worker\] .*"ffmpeg":\{"path":"[^"]+","source":"[^"]+","version":"[^"]+"(,"warning":"[^"]+")?\}.*"msg":"engines"/);
  // Strangers learn only that it is ready; the engines and heartbeats are for the metrics token.
  const open = await kiln.api('/readyz', { key: null });
  expect({ status: open.status, body: await open.json() }).toEqual({ status: 200, body: { status: 'ready' } });
  const r = await kiln.api('/readyz', { key: METRICS_TOKEN });
  expect(r.status).toBe(200);
  const body = (await r.json()) as {
    workers: { service: string; lastSeenSeconds: number; stale: boolean }[];
    engines: { ffmpeg: { path: string; version: string }; ffprobe: { path: string } };
  };
  expect(body.workers).toEqual([{ service: 'convert-worker', lastSeenSeconds: expect.any(Number), stale: false }]);
  expect(body.workers[0]!.lastSeenSeconds).toBeLessThan(30);
  expect(body.engines.ffmpeg).toMatchObject({ path: ffmpeg.path, version: ffmpeg.version });
  expect(body.engines.ffprobe.path).toBe(ffprobe.path);
});

// Last: it stops and restarts the worker.
test('SIGTERM during a long transcode kills ffmpeg, the worker exits promptly and the file is converted after a restart', async () => {
  const jobId = await submit(form([{ data: long }], { format: 'mp4' }));
  const running = await until(
    'ffmpeg to start on the long video',
    async () => {
      const pids = await ffmpegProcesses(kiln.dataDir);
      return pids.length > 0 ? pids : undefined;
    },
    30_000,
    25,
  );
  expect(running.length).toBeGreaterThan(0);

  const t0 = Date.now();
  const code = await kiln.stopApp('convert-worker');
  const stopMs = Date.now() - t0;
  expect(code).toBe(0);
  // WORKER_STOP_GRACE_SECONDS=1, then ffmpeg gets TERM (KILL 2 s later at worst).
  expect(stopMs).toBeLessThan(10_000);
  expect(await ffmpegProcesses(kiln.dataDir)).toEqual([]);

  const mid = await getJob(jobId);
  expect(mid.status).toBe('processing');
  expect(mid.results[0]!.status).toBe('processing');
  expect(mid.results[0]!.error).toBeUndefined();

  await kiln.startApp('convert-worker');
  const job = await waitForJob(kiln, jobId, 90_000);
  expect(job.status).toBe('completed');
  expect(job.results[0]).toMatchObject({ status: 'completed', format: 'mp4', width: 640, height: 360 });
}, 150_000);
