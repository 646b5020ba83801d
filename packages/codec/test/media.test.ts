/**
 * Codec tier: the media engine against the real ffmpeg/ffprobe on small clips generated at test time.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { majorVersion, resolveFfmpeg, resolveFfprobe, toolOptions } from '../src/media/binaries.ts';
import type { ResolvedBinary } from '../src/media/binaries.ts';
import { DEFAULT_ALLOWED_DEMUXERS, probeMedia } from '../src/media/probe.ts';
import type { MediaInfo } from '../src/media/probe.ts';
import { createProgressParser } from '../src/media/progress.ts';
import { extractPosterFrame, transcodeMedia } from '../src/media/transcode.ts';
import type { MediaFormat } from '@kiln/formats';
import type { MediaLimits, TranscodeOptions } from '../src/media/transcode.ts';
import { x264Crf } from '../src/media/quality.ts';
import { runProcess } from '../src/process/run.ts';
import { makeClip, makeTempDir, rawProbe, startCountingServer } from './helpers/media-fixtures.ts';
import { rejection } from './helpers/rejection.ts';
import { deadline, limitsWith } from './helpers/limits.ts';

const LIMITS: MediaLimits = limitsWith({ durationSeconds: 600, videoPixels: 4096 * 4096, streams: 8 });

let ffmpeg: ResolvedBinary;
let ffprobe: ResolvedBinary;
let dir: string;
let cleanup: () => Promise<void>;
/** 2 s, 320×240 @ 25 fps H.264 + AAC mono 440 Hz. */
let av: string;
/** 2 s, 320×240 H.264, no audio. */
let silent: string;
/** 2 s, 440 Hz tone, WAV. */
let tone: string;
/** 20 s, 640×480 MPEG-4 in Matroska: long enough that converting it takes seconds. */
let slow: string;
/** MPEG-TS segment served by the HTTP server in the playlist tests. */
let segment: string;

beforeAll(async () => {
  [ffmpeg, ffprobe] = await Promise.all([resolveFfmpeg(), resolveFfprobe()]);
  ({ dir, cleanup } = await makeTempDir('media'));
  const f = ffmpeg.path;
  [av, silent, tone, slow] = await Promise.all([
    makeClip(f, join(dir, 'av.mp4'), { seconds: 2, video: { width: 320, height: 240, rate: 25 }, audio: {}, format: 'mp4' }),
    makeClip(f, join(dir, 'silent.mp4'), { seconds: 2, video: { width: 320, height: 240, rate: 25 }, format: 'mp4' }),
    makeClip(f, join(dir, 'tone.wav'), { seconds: 2, audio: { codec: 'pcm_s16le' }, format: 'wav' }),
    makeClip(f, join(dir, 'slow.mkv'), { seconds: 20, video: { width: 640, height: 480, rate: 25, codec: 'mpeg4' }, format: 'matroska' }),
  ]);
  segment = await makeClip(f, join(dir, 'seg.ts'), { seconds: 1, video: { width: 160, height: 120, rate: 25 }, audio: {}, format: 'mpegts' });
}, 60_000);

afterAll(async () => {
  await cleanup?.();
});

function opts(input: string, target: MediaFormat, extra: Partial<TranscodeOptions> = {}): TranscodeOptions {
  return {
    input,
    output: join(dir, `out-${target}-${Math.random().toString(36).slice(2, 8)}.${target}`),
    target,
    ffmpegPath: ffmpeg.path,
    ffprobePath: ffprobe.path,
    deadline: deadline(30),
    quality: 82,
    limits: LIMITS,
    ...extra,
  };
}

describe('binaries', () => {
  test('ffmpeg and ffprobe resolve to executable files and report their versions', async () => {
    for (const b of [ffmpeg, ffprobe]) {
      expect(b.source).not.toBe('configured');
      expect((await stat(b.path)).mode & 0o111).toBe(0o111);
      expect(b.version.length).toBeGreaterThan(0);
      expect(b.banner).toMatch(/^ff(mpeg|probe) version /);
    }
  });

  test('a configured path wins and is cached per path', async () => {
    const configured = await resolveFfmpeg({ configuredPath: ffmpeg.path });
    expect(configured).toMatchObject({ path: ffmpeg.path, source: 'configured', version: ffmpeg.version });
    expect(resolveFfmpeg({ configuredPath: ffmpeg.path })).toBe(resolveFfmpeg({ configuredPath: ffmpeg.path }));
  });

  // The order (FFMPEG_PATH, ffmpeg-static, a system ffmpeg ≥ 5, the bundled 2018 build) is checked with
  // real binaries: Debian's ffmpeg when it is on PATH (.ci/run installs it), the bundled one, and a
  // script that claims to be ffmpeg 4 to stand for an old system build.
  const systemFfmpeg = (name: string) => ['/usr/bin', '/usr/local/bin'].map((d) => join(d, name)).find((p) => existsSync(p));

  test('a system ffmpeg ≥ 5 on PATH is preferred to the bundled 2018 build, and ffprobe matches it', async () => {
    const sys = systemFfmpeg('ffmpeg');
    if (!sys) return void console.warn('no system ffmpeg in /usr/bin or /usr/local/bin: apt-get install ffmpeg to run this test');
    const searchPath = dirname(sys);
    const [f, p] = await Promise.all([resolveFfmpeg({ searchPath }), resolveFfprobe({ searchPath })]);
    expect(f).toMatchObject({ path: sys, source: 'system' });
    expect(majorVersion(f.version)).toBeGreaterThanOrEqual(5);
    expect(f.warning).toBeUndefined();
    expect(p).toMatchObject({ path: join(searchPath, 'ffprobe'), source: 'system', version: f.version });
    // Nothing configured on a machine like this one: the default is the system build too.
    expect(ffmpeg.source).toBe('system');
  });

  test('with nothing current found, the bundled 2018 build is used with a warning that names the fix', async () => {
    const empty = join(dir, 'empty-path');
    await mkdir(empty, { recursive: true });
    const [f, p] = await Promise.all([resolveFfmpeg({ searchPath: empty }), resolveFfprobe({ searchPath: empty })]);
    expect(f.source).toBe('@ffmpeg-installer');
    expect(p.source).toBe('@ffprobe-installer');
    for (const b of [f, p]) {
      expect(b.warning).toMatch(/2018 static build/);
      expect(b.warning).toMatch(/apt-get install ffmpeg/);
      expect(b.warning).toMatch(/FF(MPEG|PROBE)_PATH/);
    }
  });

  test('an old system ffmpeg is passed over, unless FFMPEG_PATH names it', async () => {
    const old = join(dir, 'old-path');
    await mkdir(old, { recursive: true });
    const fake = join(old, 'ffmpeg');
    await writeFile(fake, '#!/bin/sh\necho "ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021 the FFmpeg developers"\n', { mode: 0o755 });
    expect((await resolveFfmpeg({ searchPath: old })).source).toBe('@ffmpeg-installer');
    expect(await resolveFfmpeg({ configuredPath: fake })).toMatchObject({ source: 'configured', version: '4.4.2-0ubuntu0.22.04.1' });
  });

  test('ffprobe is looked for beside a configured FFMPEG_PATH first', async () => {
    const sys = systemFfmpeg('ffmpeg');
    if (!sys) return void console.warn('no system ffmpeg: apt-get install ffmpeg to run this test');
    const empty = join(dir, 'empty-path');
    await mkdir(empty, { recursive: true });
    const p = await resolveFfprobe(toolOptions({ ffmpegPath: sys }).ffprobe);
    expect(p).toMatchObject({ path: join(dirname(sys), 'ffprobe'), source: 'beside-ffmpeg' });
    expect(await resolveFfprobe({ ffmpegPath: sys, searchPath: empty })).toMatchObject({ source: 'beside-ffmpeg' });
  });

  test('version numbers: releases have a major, git snapshots do not', () => {
    expect(majorVersion('5.1.9-0+deb12u1')).toBe(5);
    expect(majorVersion('n7.1')).toBe(7);
    expect(majorVersion('6.1.1')).toBe(6);
    expect(majorVersion('N-47683-g0e8eb07980-static')).toBeUndefined();
  });

  test('a configured path that does not exist is an error naming the setting', async () => {
    const e = await rejection(resolveFfprobe({ configuredPath: join(dir, 'nope'), setting: 'FFPROBE_PATH' }));
    expect(e.kind).toBe('engine_failed');
    expect(e.message).toContain('FFPROBE_PATH');
  });
});

describe('probeMedia', () => {
  test('reports container, duration and stream facts', async () => {
    const info = await probeMedia(av, { ffprobePath: ffprobe.path, deadline: deadline(10) });
    expect(info.formatName).toContain('mp4');
    expect(info.durationSeconds).toBeCloseTo(2, 1);
    expect(info.hasVideo).toBe(true);
    expect(info.hasAudio).toBe(true);
    expect(info.streams).toEqual([
      expect.objectContaining({ type: 'video', codec: 'h264', width: 320, height: 240, frameRate: 25 }),
      expect.objectContaining({ type: 'audio', codec: 'aac', sampleRate: 44100, channels: 1 }),
    ]);
  });

  test('an audio-only file has no video', async () => {
    const info = await probeMedia(tone, { ffprobePath: ffprobe.path, deadline: deadline(10) });
    expect(info).toMatchObject({ formatName: 'wav', hasVideo: false, hasAudio: true });
  });

  test('a file that is not media is invalid_input with a plain message', async () => {
    const text = join(dir, 'notes.mp4');
    await writeFile(text, 'this is not a video\n'.repeat(50));
    const e = await rejection(probeMedia(text, { ffprobePath: ffprobe.path, deadline: deadline(10) }));
    expect(e.kind).toBe('invalid_input');
    expect(e.message).toBe('The file could not be read as audio or video.');
  });
});

describe('progress parser', () => {
  test('reports clamped, increasing fractions from out_time_us and ends at 1', () => {
    const seen: number[] = [];
    const p = createProgressParser({ durationSeconds: 10, onProgress: (f) => seen.push(f) });
    const block = (t: string, end = false): void => {
      for (const l of ['frame=1', `out_time_us=${t}`, `out_time=N/A`, end ? 'progress=end' : 'progress=continue']) p.line(l);
    };
    block('N/A');
    block('-23000');
    block('2500000');
    block('2000000'); // earlier than before: ignored
    block('12000000'); // past the end: clamped
    block('12000000', true);
    expect(seen).toEqual([0, 0.25, 1]);
  });

  test('falls back to out_time and out_time_ms (which is in microseconds)', () => {
    const seen: number[] = [];
    const p = createProgressParser({ durationSeconds: 4, onProgress: (f) => seen.push(f) });
    for (const l of ['out_time=00:00:01.000000', 'progress=continue', 'out_time_ms=3000000', 'progress=continue']) p.line(l);
    expect(seen).toEqual([0.25, 0.75]);
  });
});

describe('transcodeMedia targets', () => {
  const cases: Array<[MediaFormat, { format: RegExp; video?: string; audio?: string; width?: number; height?: number }]> = [
    ['mp4', { format: /mp4/, video: 'h264', audio: 'aac', width: 320, height: 240 }],
    ['mov', { format: /mov/, video: 'h264', audio: 'aac', width: 320, height: 240 }],
    ['webm', { format: /webm/, video: 'vp9', audio: 'opus', width: 320, height: 240 }],
    ['mp3', { format: /^mp3$/, audio: 'mp3' }],
    ['wav', { format: /^wav$/, audio: 'pcm_s16le' }],
    ['ogg', { format: /^ogg$/, audio: 'vorbis' }],
    ['m4a', { format: /m4a/, audio: 'aac' }],
    ['flac', { format: /^flac$/, audio: 'flac' }],
    ['gif', { format: /^gif$/, video: 'gif', width: 320, height: 240 }],
  ];

  test.each(cases)('%s has the right codecs, size and duration', async (target, want) => {
    const o = opts(av, target);
    const r = await transcodeMedia(o);
    const p = await rawProbe(ffprobe.path, o.output);
    expect(p.format.format_name).toMatch(want.format);
    expect(Number(p.format.duration)).toBeCloseTo(2, 0);
    expect(Math.abs(Number(p.format.duration) - 2)).toBeLessThan(0.15);
    const v = p.streams.find((s) => s.codec_type === 'video');
    const a = p.streams.find((s) => s.codec_type === 'audio');
    expect(v?.codec_name).toBe(want.video);
    expect(a?.codec_name).toBe(want.audio);
    if (want.width) expect([v?.width, v?.height]).toEqual([want.width, want.height]);
    expect(r.videoCodec).toBe(want.video);
    expect(r.audioCodec).toBe(want.audio);
    expect(r.size).toBe((await stat(o.output)).size);
    expect(r.durationSeconds).toBeCloseTo(Number(p.format.duration), 2);
  });

  test('mp4 output is yuv420p H.264 with the moov atom first (faststart)', async () => {
    const o = opts(av, 'mp4');
    await transcodeMedia(o);
    const p = await rawProbe(ffprobe.path, o.output);
    expect(p.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', pix_fmt: 'yuv420p' });
    const head = (await readFile(o.output)).subarray(0, 64 * 1024);
    expect(head.indexOf('moov')).toBeGreaterThan(0);
    expect(head.indexOf('moov')).toBeLessThan(head.indexOf('mdat'));
  });

  test('webp is an animated WebP capped at 15 fps', async () => {
    const o = opts(av, 'webp');
    const r = await transcodeMedia(o);
    const head = await readFile(o.output);
    expect(head.toString('latin1', 0, 4)).toBe('RIFF');
    expect(head.toString('latin1', 8, 12)).toBe('WEBP');
    expect(r).toMatchObject({ width: 320, height: 240, videoCodec: 'webp', frames: 30 });
    expect(r.durationSeconds).toBeCloseTo(2, 1);
  });

  test('gif and webp are capped to maxWidth and maxFps', async () => {
    const gif = opts(av, 'gif', { animation: { maxWidth: 160, maxFps: 5 } });
    const g = await transcodeMedia(gif);
    expect(g).toMatchObject({ width: 160, height: 120 });
    const p = await rawProbe(ffprobe.path, gif.output);
    expect(Number(p.streams[0]?.nb_frames)).toBe(10);
    const w = await transcodeMedia(opts(av, 'webp', { animation: { maxWidth: 160, maxFps: 5 } }));
    expect(w).toMatchObject({ width: 160, height: 120, frames: 10 });
  });

  test('resize inside keeps the aspect ratio with even dimensions; cover fills and crops', async () => {
    const inside = await transcodeMedia(opts(av, 'mp4', { resize: { width: 101, height: 101, fit: 'inside' } }));
    expect([inside.width, inside.height]).toEqual([100, 74]);
    const cover = await transcodeMedia(opts(av, 'webm', { resize: { width: 100, height: 100, fit: 'cover' } }));
    expect([cover.width, cover.height]).toEqual([100, 100]);
    const byHeight = await transcodeMedia(opts(av, 'mov', { resize: { height: 120, fit: 'inside' } }));
    expect([byHeight.width, byHeight.height]).toEqual([160, 120]);
  });

  test('a video without audio converts to mp4 without an audio stream', async () => {
    const r = await transcodeMedia(opts(silent, 'mp4'));
    expect(r.videoCodec).toBe('h264');
    expect(r.audioCodec).toBeUndefined();
  });

  test('quality maps to a lower CRF when higher, and 82 to about 23', () => {
    expect(x264Crf(82)).toBe(23);
    expect(x264Crf(100)).toBe(18);
    expect(x264Crf(1)).toBe(40);
    expect(x264Crf(90)).toBeLessThan(x264Crf(50));
  });
});

describe('transcodeMedia progress', () => {
  test('the progress callback increases and ends at 1', async () => {
    const seen: number[] = [];
    // ffmpeg reports every 0.5 s, so the clip must take a few of those: 20 s of 640×480 VP9 does.
    await transcodeMedia(opts(slow, 'webm', { onProgress: (f) => seen.push(f) }));
    expect(seen.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect(seen.some((f) => f > 0 && f < 1)).toBe(true);
    expect(seen.at(-1)).toBe(1);
  });
});

describe('transcodeMedia stops its process', () => {
  let slowInfo: MediaInfo;
  beforeAll(async () => {
    slowInfo = await probeMedia(slow, { ffprobePath: ffprobe.path, deadline: deadline(10) });
  });

  test('a timeout kills ffmpeg and names the setting', async () => {
    const pids: number[] = [];
    const started = Date.now();
    const e = await rejection(
      transcodeMedia(
        // inputInfo skips the probe, so the only child is ffmpeg and the deadline lands mid-encode.
        opts(slow, 'mp4', { deadline: deadline(0.5), threads: 1, inputInfo: slowInfo, onSpawn: (pid) => pids.push(pid) }),
      ),
    );
    expect(e.kind).toBe('timeout');
    expect(e.message).toBe('The conversion did not finish within 0.5 s; raise FILE_TIMEOUT_SECONDS to allow more.');
    expect(Date.now() - started).toBeLessThan(4000);
    expect(pids).toHaveLength(1);
    expect(() => process.kill(pids[0]!, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  });

  test('an abort kills ffmpeg and removes the partial output', async () => {
    const pids: number[] = [];
    const ac = new AbortController();
    const o = opts(slow, 'mp4', {
      threads: 1,
      signal: ac.signal,
      onSpawn: (pid, cmd) => cmd === 'ffmpeg' && pids.push(pid),
      onProgress: (f) => f > 0 && ac.abort(),
    });
    const e = await rejection(transcodeMedia(o));
    expect(e.kind).toBe('cancelled');
    expect(pids).toHaveLength(1);
    expect(() => process.kill(pids[0]!, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    await expect(stat(o.output)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('transcodeMedia refuses playlists', () => {
  const playlist = (segmentUrl: string): string =>
    ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-TARGETDURATION:2', '#EXT-X-MEDIA-SEQUENCE:0', '#EXTINF:1.0,', segmentUrl, '#EXT-X-ENDLIST', ''].join('\n');

  test('an HLS playlist named .mp4 that points at an HTTP server fails and fetches nothing', async () => {
    const server = await startCountingServer(await readFile(segment));
    try {
      const evil = join(dir, 'evil-http.mp4');
      await writeFile(evil, playlist(server.url('/seg.ts')));

      const e = await rejection(transcodeMedia(opts(evil, 'mp4')));
      expect(e.kind).toBe('invalid_input');

      // Even with the hls demuxer allowed and the probe skipped, the protocol whitelist stops the fetch.
      const info: MediaInfo = {
        formatName: 'hls',
        durationSeconds: 1,
        hasVideo: true,
        hasAudio: false,
        streams: [{ index: 0, type: 'video', codec: 'h264', width: 160, height: 120 }],
      };
      const e2 = await rejection(transcodeMedia(opts(evil, 'mp4', { inputInfo: info, allowedDemuxers: [...DEFAULT_ALLOWED_DEMUXERS, 'hls'] })));
      expect(e2.kind).toBe('engine_failed');
      expect(server.requests).toEqual([]);

      // Control: the same file does reach the server when http is whitelisted, so the zero above means something.
      const control = await runProcess(ffmpeg.path, ['-nostdin', '-protocol_whitelist', 'file,http,tcp,crypto', '-i', `file:${evil}`, '-f', 'null', '-'], {
        timeoutMs: 20_000,
      });
      expect(control.code).toBe(0);
      expect(server.requests).toEqual(['GET /seg.ts']);
    } finally {
      await server.close();
    }
  });

  test('a playlist that points at another local file is not followed', async () => {
    const evil = join(dir, 'evil-local.mp4');
    await writeFile(evil, playlist(segment));
    const e = await rejection(transcodeMedia(opts(evil, 'mp4')));
    expect(e.kind).toBe('invalid_input');
    // This ffprobe build already refuses HLS under a non-playlist name; ffmpeg itself must refuse it too,
    // whatever a probe said (older ffprobe builds, such as Debian's 5.1, detect it by content).
    const info: MediaInfo = {
      formatName: 'mov,mp4,m4a,3gp,3g2,mj2',
      durationSeconds: 1,
      hasVideo: true,
      hasAudio: true,
      streams: [
        { index: 0, type: 'video', codec: 'h264', width: 160, height: 120 },
        { index: 1, type: 'audio', codec: 'aac', channels: 1 },
      ],
    };
    const o = opts(evil, 'mp4', { inputInfo: info });
    const e2 = await rejection(transcodeMedia(o));
    expect(e2.kind).toBe('engine_failed');
    expect(e2.internal).toContain('Format not on whitelist');
    await expect(stat(o.output)).rejects.toMatchObject({ code: 'ENOENT' });
    // Why the format whitelist exists: the protocol whitelist alone lets ffmpeg read the other file.
    const protocolOnly = await runProcess(ffmpeg.path, ['-nostdin', '-protocol_whitelist', 'file,pipe', '-i', `file:${evil}`, '-f', 'null', '-'], {
      timeoutMs: 20_000,
    });
    expect(protocolOnly.code).toBe(0);
  });
});

describe('transcodeMedia limits and input checks', () => {
  test('a clip longer than the duration limit is limit_exceeded naming the setting', async () => {
    const e = await rejection(transcodeMedia(opts(av, 'mp4', { limits: { ...LIMITS, durationSeconds: { ...LIMITS.durationSeconds, max: 1 } } })));
    expect(e.kind).toBe('limit_exceeded');
    expect(e.message).toBe('The duration is 2 s, over the limit of 1 s; raise MEDIA_MAX_DURATION_SECONDS to allow it.');
  });

  test('frame size and stream count limits name their settings, custom names included', async () => {
    const px = await rejection(transcodeMedia(opts(av, 'mp4', { limits: { ...LIMITS, videoPixels: { ...LIMITS.videoPixels, max: 320 * 239 } } })));
    expect(px.kind).toBe('limit_exceeded');
    expect(px.message).toContain('MEDIA_MAX_PIXELS');
    const streams = await rejection(transcodeMedia(opts(av, 'mp3', { limits: { ...LIMITS, streams: { max: 1, setting: 'CONVERT_MAX_STREAMS' } } })));
    expect(streams.message).toBe('The number of streams is 2, over the limit of 1; raise CONVERT_MAX_STREAMS to allow it.');
  });

  test('an upscale past the video pixel limit is refused before encoding', async () => {
    const e = await rejection(
      transcodeMedia(opts(av, 'mp4', { resize: { width: 4000, height: 3000, fit: 'cover' }, limits: { ...LIMITS, videoPixels: { ...LIMITS.videoPixels, max: 1_000_000 } } })),
    );
    expect(e.kind).toBe('limit_exceeded');
    expect(e.message).toContain('4000x3000');
  });

  test('an audio target from a silent video is invalid_input', async () => {
    const e = await rejection(transcodeMedia(opts(silent, 'mp3')));
    expect(e.kind).toBe('invalid_input');
    expect(e.message).toBe('The file has no audio track to convert.');
  });

  test('a video target from audio only is unsupported', async () => {
    const e = await rejection(transcodeMedia(opts(tone, 'mp4')));
    expect(e.kind).toBe('unsupported');
  });

  test('audio converts between audio formats', async () => {
    const r = await transcodeMedia(opts(tone, 'mp3'));
    expect(r.audioCodec).toBe('mp3');
    expect(r.durationSeconds).toBeCloseTo(2, 1);
  });
});

describe('extractPosterFrame', () => {
  test('writes one PNG frame of the video', async () => {
    const output = join(dir, 'poster.png');
    const r = await extractPosterFrame({ input: av, output, ffmpegPath: ffmpeg.path, ffprobePath: ffprobe.path, deadline: deadline(10) });
    expect(r).toEqual({ path: output, width: 320, height: 240 });
    const p = await rawProbe(ffprobe.path, output);
    expect(p.streams[0]?.codec_name).toBe('png');
  });

  test('an audio-only file has no frame to take', async () => {
    const e = await rejection(extractPosterFrame({ input: tone, output: join(dir, 'none.png'), ffmpegPath: ffmpeg.path, ffprobePath: ffprobe.path, deadline: deadline(10) }));
    expect(e.kind).toBe('invalid_input');
  });
});
