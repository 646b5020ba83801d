/**
 * Codec tier: every media tool on real inputs made at test time (sharp pictures, lavfi clips, a
 * pdf-lib PDF), checking what was really written — magic bytes, dimensions by sharp, durations and
 * streams by an independent ffprobe, pixels where the watermark should and should not be — and that
 * bad options fail with the codec's kinds and a sentence naming the option.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { PDFDocument, rgb } from 'pdf-lib';
import { sniff, type InputKind } from '@kiln/formats';
import { resolveFfmpeg, resolveFfprobe, runTool, type CodecToolName, type CodecToolOptions, type ResolvedBinary, type ToolInput, type ToolRequest } from '../src/index.ts';
import { anchorAt, storyboardVtt } from '../src/tools/index.ts';
import { LIMITS, timeout } from './helpers/limits.ts';
import { makeClip, makeTempDir, rawProbe } from './helpers/media-fixtures.ts';
import { rejection } from './helpers/rejection.ts';

let ffmpeg: ResolvedBinary;
let ffprobe: ResolvedBinary;
let dir: string;
let cleanup: () => Promise<void>;
let n = 0;
const f: Record<string, string> = {};

beforeAll(async () => {
  [ffmpeg, ffprobe] = await Promise.all([resolveFfmpeg(), resolveFfprobe()]);
  ({ dir, cleanup } = await makeTempDir('tools'));
  const j = (name: string) => path.join(dir, name);
  await Promise.all([
    makeClip(ffmpeg.path, j('av.mp4'), { seconds: 3, video: { width: 320, height: 240, rate: 25 }, audio: {}, format: 'mp4' }),
    makeClip(ffmpeg.path, j('tone.wav'), { seconds: 2, audio: { codec: 'pcm_s16le' }, format: 'wav' }),
    makeClip(ffmpeg.path, j('silent.mp4'), { seconds: 2, video: { width: 160, height: 120, rate: 25 }, format: 'mp4' }),
  ]);
  f.av = j('av.mp4');
  f.tone = j('tone.wav');
  f.silent = j('silent.mp4');
  // A mid-grey photo-like picture with EXIF (camera make, GPS) and a gradient to see changes in.
  const gradient = Buffer.alloc(200 * 100 * 3);
  for (let y = 0; y < 100; y++) for (let x = 0; x < 200; x++) gradient.set([x, y * 2, 128], (y * 200 + x) * 3);
  f.png = j('gradient.png');
  await sharp(gradient, { raw: { width: 200, height: 100, channels: 3 } })
    .png()
    .toFile(f.png);
  f.jpg = j('photo.jpg');
  await sharp(gradient, { raw: { width: 200, height: 100, channels: 3 } })
    .withExif({ IFD0: { Make: 'KilnCam', Model: 'Test 1' }, IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '48/1 51/1 24/1' } })
    .jpeg({ quality: 90 })
    .toFile(f.jpg);
  f.logo = j('logo.png');
  await sharp({ create: { width: 40, height: 20, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 1 } } })
    .png()
    .toFile(f.logo);
  const doc = await PDFDocument.create();
  for (const [i, c] of [rgb(1, 0, 0), rgb(0, 0, 1), rgb(0, 1, 0)].entries()) {
    const page = doc.addPage([300, 200]);
    page.drawRectangle({ x: 0, y: 0, width: 300, height: 200, color: c });
    page.drawText(`Page ${i + 1}`, { x: 20, y: 100, size: 30 });
  }
  f.pdf = j('three.pdf');
  await fs.writeFile(f.pdf, await doc.save());
}, 60_000);

afterAll(async () => {
  await cleanup?.();
});

const input = (p: string, kind: InputKind): ToolInput => ({ path: p, kind, filename: path.basename(p) });

async function run<T extends CodecToolName>(tool: T, src: ToolInput, options: CodecToolOptions<T>, extra: Partial<ToolRequest<CodecToolOptions<T>>> = {}) {
  const outputDir = path.join(dir, `out-${n++}`);
  await fs.mkdir(outputDir);
  return runTool(tool, {
    input: src,
    outputDir,
    options,
    limits: LIMITS,
    engines: {},
    animation: { maxFps: 15, maxWidth: 480 },
    avifEffort: 2,
    timeout: timeout(60),
    ...extra,
  });
}

const bytes = (p: string) => fs.readFile(p);
const probe = (p: string) => rawProbe(ffprobe.path, p);
const duration = async (p: string) => Number((await probe(p)).format.duration);

describe('stills', () => {
  test('thumbnail of an image fills the box (cover) in the requested format', async () => {
    const r = await run('thumbnail', input(f.png!, 'png'), { width: 64, height: 64, fit: 'cover', format: 'webp', quality: 80 });
    expect(sniff(await bytes(r.path))).toBe('webp');
    const m = await sharp(r.path).metadata();
    expect([m.width, m.height]).toEqual([64, 64]);
  });

  test('thumbnail of a video takes a frame at timestamp; of a PDF its first page', async () => {
    const v = await run('thumbnail', input(f.av!, 'mp4'), { width: 100, height: 100, fit: 'inside', format: 'jpg', quality: 80, timestamp: 2 });
    expect(sniff(await bytes(v.path))).toBe('jpg');
    expect(await sharp(v.path).metadata()).toMatchObject({ width: 100, height: 75 });
    const p = await run('thumbnail', input(f.pdf!, 'pdf'), { width: 90, height: 90, fit: 'contain', format: 'png', quality: 80 });
    expect(await sharp(p.path).metadata()).toMatchObject({ width: 90, height: 90, format: 'png' });
  });

  test('poster-frame past the end of the video names timestamp and the real length', async () => {
    const e = await rejection(run('poster-frame', input(f.av!, 'mp4'), { timestamp: 12, format: 'jpg', quality: 86 }));
    expect(e).toMatchObject({ kind: 'invalid_input', message: expect.stringMatching(/^timestamp 12 s is past the end of the video \(3(\.\d+)? s long\)/) });
  });

  test('poster-frame writes the frame at the time asked, scaled down to width', async () => {
    const r = await run('poster-frame', input(f.av!, 'mp4'), { timestamp: 1.5, format: 'png', width: 160, quality: 86 });
    expect(await sharp(r.path).metadata()).toMatchObject({ format: 'png', width: 160, height: 120 });
  });

  test('pdf-preview renders the page asked for, at the width asked for', async () => {
    const r = await run('pdf-preview', input(f.pdf!, 'pdf'), { page: 2, width: 600, format: 'png', quality: 86 });
    const { data, info } = await sharp(r.path).raw().toBuffer({ resolveWithObject: true });
    expect(info.width).toBe(600);
    expect(info.height).toBe(400);
    // Page 2 is blue: the pixel in its corner.
    expect([...data.subarray(0, 3)]).toEqual([0, 0, 255]);
    const e = await rejection(run('pdf-preview', input(f.pdf!, 'pdf'), { page: 5, width: 600, format: 'png', quality: 86 }));
    expect(e).toMatchObject({ kind: 'invalid_input', message: expect.stringMatching(/^page 5 is past the last page of the PDF \(it has 3\)/) });
  });
});

describe('audio and video', () => {
  test('trim (accurate) cuts the clip to within 0.1 s of start…end, same format', async () => {
    const r = await run('trim', input(f.av!, 'mp4'), { start: 0.5, end: 2, mode: 'accurate', quality: 82 });
    expect(r.format).toBe('mp4');
    expect(Math.abs((await duration(r.path)) - 1.5)).toBeLessThan(0.1);
    const streams = (await probe(r.path)).streams.map((s) => s.codec_type).sort();
    expect(streams).toEqual(['audio', 'video']);
  });

  test('trim of audio with duration; fast mode copies the streams', async () => {
    const a = await run('trim', input(f.tone!, 'wav'), { start: 0.25, duration: 1, mode: 'accurate', quality: 82 });
    expect(a.format).toBe('wav');
    expect(Math.abs((await duration(a.path)) - 1)).toBeLessThan(0.1);
    const fast = await run('trim', input(f.av!, 'mp4'), { start: 0, duration: 2, mode: 'fast', quality: 82 });
    expect(fast.notes?.join(' ')).toMatch(/copied and cut on keyframes/);
    expect((await probe(fast.path)).streams.find((s) => s.codec_type === 'video')?.codec_name).toBe('h264');
  });

  test('trim refuses times past the end, naming the option', async () => {
    const e = await rejection(run('trim', input(f.av!, 'mp4'), { start: 1, end: 9, mode: 'accurate', quality: 82 }));
    expect(e).toMatchObject({ kind: 'invalid_input', message: expect.stringMatching(/^end 9 s is past the end of the clip/) });
    const d = await rejection(run('trim', input(f.av!, 'mp4'), { start: 2, duration: 5, mode: 'accurate', quality: 82 }));
    expect(d.message).toMatch(/^start \+ duration \(7 s\) is past the end/);
  });

  test('extract-audio writes the audio track at the bitrate asked; a silent video is invalid_input', async () => {
    const r = await run('extract-audio', input(f.av!, 'mp4'), { format: 'mp3', bitrateKbps: 96, quality: 82 });
    expect(sniff(await bytes(r.path))).toBe('mp3');
    const p = await probe(r.path);
    expect(p.streams.map((s) => s.codec_type)).toEqual(['audio']);
    expect(Math.abs(Number(p.format.duration) - 3)).toBeLessThan(0.15);
    const e = await rejection(run('extract-audio', input(f.silent!, 'mp4'), { format: 'mp3', quality: 82 }));
    expect(e).toMatchObject({ kind: 'invalid_input', message: 'The video has no audio track to extract.' });
  });

  test('gif: an animation of the clip, fps and width within the caps', async () => {
    const r = await run('gif', input(f.av!, 'mp4'), { start: 1, duration: 1, fps: 30, width: 200, format: 'gif', quality: 82 }, { animation: { maxFps: 10, maxWidth: 160 } });
    expect(sniff(await bytes(r.path))).toBe('gif');
    const m = await sharp(r.path, { animated: true }).metadata();
    expect(m.width).toBe(160);
    expect(m.pages).toBeGreaterThanOrEqual(9);
    expect(m.pages).toBeLessThanOrEqual(11);
    expect(r.notes?.join(' ')).toMatch(/fps capped at 10 \(ANIMATION_MAX_FPS\)/);
  });

  test('storyboard: one sheet of the requested grid and WebVTT cues pointing into it', async () => {
    const r = await run('storyboard', input(f.av!, 'mp4'), { frames: 6, columns: 3, width: 80, format: 'jpg', quality: 80 }, { outputName: 'av.jpg' });
    expect(await sharp(r.path).metadata()).toMatchObject({ format: 'jpeg', width: 240, height: 120 });
    expect(r.storyboard).toMatchObject({ columns: 3, rows: 2, tileWidth: 80, tileHeight: 60, frames: 6, intervalSeconds: 0.5 });
    expect(r.storyboard!.vtt).toMatch(/^WEBVTT\n\n00:00:00\.000 --> 00:00:00\.500\nav\.jpg#xywh=0,0,80,60\n/);
    expect(r.storyboard!.vtt).toMatch(/00:00:02\.500 --> 00:00:03\.000\nav\.jpg#xywh=160,60,80,60\n/);
  });

  test('convert re-encodes video to webm; audio cannot become video', async () => {
    const r = await run('convert', input(f.av!, 'mp4'), { format: 'webm', quality: 60, width: 160 });
    expect(sniff(await bytes(r.path))).toBe('webm');
    expect((await probe(r.path)).streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'vp9', width: 160 });
    const e = await rejection(run('convert', input(f.tone!, 'wav'), { format: 'mp4', quality: 82 }));
    expect(e.kind).toBe('unsupported');
  });

  test('adjust: volume on audio, grayscale on video', async () => {
    const loud = await run('adjust', input(f.tone!, 'wav'), { ...ADJUST, volume: 0.25 });
    expect(loud.format).toBe('wav');
    const grey = await run('adjust', input(f.av!, 'mp4'), { ...ADJUST, grayscale: true });
    const frame = path.join(dir, 'grey-frame.png');
    const { execFile } = await import('node:child_process');
    await new Promise<void>((res, rej) => execFile(ffmpeg.path, ['-v', 'error', '-y', '-ss', '1', '-i', grey.path, '-frames:v', '1', frame], (e) => (e ? rej(e) : res())));
    const s = await sharp(frame).stats();
    // Grey frames: the three channels agree (up to chroma rounding).
    expect(Math.abs(s.channels[0]!.mean - s.channels[2]!.mean)).toBeLessThan(3);
  });
});

const ADJUST = {
  brightness: 1,
  saturation: 1,
  hue: 0,
  contrast: 1,
  grayscale: false,
  invert: false,
  sharpen: false,
  volume: 1,
  normalize: false,
  fadeIn: 0,
  fadeOut: 0,
  quality: 86,
} as const;

describe('images', () => {
  test('transform crops, resizes, rotates and flips', async () => {
    const r = await run('transform', input(f.png!, 'png'), {
      fit: 'fill',
      width: 50,
      height: 30,
      rotate: 90,
      flip: false,
      flop: false,
      cropLeft: 0,
      cropTop: 0,
      cropWidth: 100,
      cropHeight: 60,
      sharpen: false,
      grayscale: true,
      format: 'png',
      quality: 86,
    });
    const { data, info } = await sharp(r.path).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([30, 50]);
    expect(data[0]).toBe(data[1]);
    const e = await rejection(
      run('transform', input(f.png!, 'png'), {
        fit: 'cover',
        rotate: 0,
        flip: false,
        flop: false,
        cropLeft: 150,
        cropTop: 0,
        cropWidth: 100,
        cropHeight: 10,
        sharpen: false,
        grayscale: false,
        format: 'png',
        quality: 86,
      }),
    );
    expect(e).toMatchObject({ kind: 'invalid_input', message: expect.stringMatching(/^cropLeft \+ cropWidth \(250\) is past the image's width \(200 px\)/) });
  });

  test('adjust an image: brightness up makes it brighter, invert negates', async () => {
    const before = (await sharp(f.png!).stats()).channels[0]!.mean;
    const bright = await run('adjust', input(f.png!, 'png'), { ...ADJUST, brightness: 1.5 });
    expect(bright.format).toBe('png');
    expect((await sharp(bright.path).stats()).channels[0]!.mean).toBeGreaterThan(before * 1.2);
    const inv = await run('adjust', input(f.png!, 'png'), { ...ADJUST, invert: true });
    const a = await sharp(f.png!).raw().toBuffer();
    const b = await sharp(inv.path).removeAlpha().raw().toBuffer();
    expect(b[0]).toBe(255 - a[0]!);
  });

  test('watermark changes pixels where it says, and not elsewhere (PNG, lossless)', async () => {
    const r = await run('watermark', input(f.png!, 'png'), { text: 'KILN', position: 'bottom-right', opacity: 1, margin: 10, watermarkWidth: 60, color: '#ff00ff', quality: 86 });
    const a = await sharp(f.png!).raw().toBuffer({ resolveWithObject: true });
    const b = await sharp(r.path).removeAlpha().raw().toBuffer();
    const mark = r
      .notes![0]!.match(/mark (\d+)×(\d+) px at bottom-right \((\d+), (\d+)\)/)!
      .slice(1)
      .map(Number) as [number, number, number, number];
    const [mw, mh, left, top] = mark;
    expect(left + mw).toBe(190);
    expect(top + mh).toBe(90);
    let inside = 0;
    let outside = 0;
    for (let y = 0; y < 100; y++) {
      for (let x = 0; x < 200; x++) {
        const i = (y * 200 + x) * 3;
        const changed = a.data[i] !== b[i] || a.data[i + 1] !== b[i + 1] || a.data[i + 2] !== b[i + 2];
        if (!changed) continue;
        if (x >= left && x < left + mw && y >= top && y < top + mh) inside++;
        else outside++;
      }
    }
    expect(outside).toBe(0);
    expect(inside).toBeGreaterThan(50);
  });

  test('watermark with an image mark at the top-left, and on a video', async () => {
    const r = await run(
      'watermark',
      input(f.png!, 'png'),
      { position: 'top-left', opacity: 1, margin: 5, watermarkWidth: 40, color: '#ffffff', quality: 86 },
      { overlay: input(f.logo!, 'png') },
    );
    const { data } = await sharp(r.path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) => [...data.subarray((y * 200 + x) * 3, (y * 200 + x) * 3 + 3)];
    expect(at(10, 10)).toEqual([255, 0, 0]);
    expect(at(100, 50)).not.toEqual([255, 0, 0]);
    const v = await run('watermark', input(f.av!, 'mp4'), { text: 'KILN', position: 'center', opacity: 0.8, margin: 0, scale: 0.5, color: '#ffffff', quality: 80 });
    expect(v.format).toBe('mp4');
    expect((await probe(v.path)).streams.map((s) => s.codec_type).sort()).toEqual(['audio', 'video']);
  });

  test('watermark needs text or an image', async () => {
    const e = await rejection(run('watermark', input(f.png!, 'png'), { position: 'center', opacity: 1, margin: 0, color: '#ffffff', quality: 86 }));
    expect(e).toMatchObject({ kind: 'invalid_input', message: expect.stringMatching(/needs text=… or an image part watermarkFile/) });
  });

  test('strip-metadata keeps a JPEG’s image data and drops its EXIF', async () => {
    const r = await run('strip-metadata', input(f.jpg!, 'jpg'), {});
    expect(r.format).toBe('jpg');
    const m = await sharp(r.path).metadata();
    expect(m.exif).toBeUndefined();
    const [a, b] = await Promise.all([sharp(f.jpg!).raw().toBuffer(), sharp(r.path).raw().toBuffer()]);
    expect(b.equals(a)).toBe(true);
  });

  test('image-to-pdf: one page per image, a4 pages with the image inside the margin', async () => {
    const r = await run('image-to-pdf', input(f.png!, 'png'), { pageSize: 'a4', margin: 36, quality: 86 }, { pages: [input(f.jpg!, 'jpg'), input(f.logo!, 'png')] });
    expect((await bytes(r.path)).subarray(0, 5).toString()).toBe('%PDF-');
    const doc = await PDFDocument.load(await bytes(r.path));
    expect(doc.getPageCount()).toBe(3);
    // Landscape images turn the page: 841.89 × 595.28.
    expect(Math.round(doc.getPage(0).getWidth())).toBe(842);
  });

  test('vectorize traces to SVG', async () => {
    const r = await run('vectorize', input(f.logo!, 'png'), { mono: true, detail: 50 });
    expect(r.format).toBe('svg');
    expect((await bytes(r.path)).toString()).toMatch(/<svg[\s\S]*<path/);
  });
});

describe('inspect', () => {
  test('image facts agree with sharp, with an EXIF summary that says GPS is present', async () => {
    const r = await run('inspect', input(f.jpg!, 'jpg'), {});
    const m = await sharp(f.jpg!).metadata();
    expect(r.metadata).toMatchObject({ format: 'jpg', mimeType: 'image/jpeg', width: m.width, height: m.height, colorSpace: m.space, animated: false, hasExif: true });
    expect(r.metadata!.exif).toMatchObject({ Make: 'KilnCam', Model: 'Test 1', hasGps: true });
    expect(JSON.parse((await bytes(r.path)).toString())).toEqual(r.metadata);
  });

  test('video facts agree with ffprobe; PDF pages are counted', async () => {
    const r = await run('inspect', input(f.av!, 'mp4'), {});
    const p = await probe(f.av!);
    expect(r.metadata).toMatchObject({ format: 'mp4', width: 320, height: 240, hasAudio: true, hasVideo: true });
    expect(r.metadata!.durationSeconds).toBeCloseTo(Number(p.format.duration), 2);
    expect((r.metadata!.streams as unknown[]).length).toBe(p.streams.length);
    const d = await run('inspect', input(f.pdf!, 'pdf'), {});
    expect(d.metadata).toMatchObject({ format: 'pdf', pages: 3, pageWidthPt: 300, pageHeightPt: 200 });
  });
});

test('the geometry helpers: nine anchors inside the margins; cues cover the clip', () => {
  expect(anchorAt('top-left', 200, 100, 20, 10, 5)).toEqual({ left: 5, top: 5 });
  expect(anchorAt('bottom-right', 200, 100, 20, 10, 5)).toEqual({ left: 175, top: 85 });
  expect(anchorAt('center', 200, 100, 20, 10, 5)).toEqual({ left: 90, top: 45 });
  expect(anchorAt('top', 200, 100, 20, 10, 5)).toEqual({ left: 90, top: 5 });
  const vtt = storyboardVtt('s.jpg', { columns: 2, rows: 1, tileWidth: 10, tileHeight: 5, frames: 2, intervalSeconds: 1.5 }, 2.9);
  expect(vtt).toBe('WEBVTT\n\n00:00:00.000 --> 00:00:01.500\ns.jpg#xywh=0,0,10,5\n\n00:00:01.500 --> 00:00:02.900\ns.jpg#xywh=10,0,10,5\n');
});

test('inspect reads an SVG’s size, sanitised first as conversions read it', async () => {
  const svg = path.join(dir, 'hostile.svg');
  await fs.writeFile(
    svg,
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="30"><image xlink:href="file://${f.png}" width="40" height="30"/></svg>`,
  );
  const r = await run('inspect', input(svg, 'svg'), {});
  expect(r.metadata).toMatchObject({ format: 'svg', mimeType: 'image/svg+xml', width: 40, height: 30 });
});
