/**
 * The media tools as the Convertly SDK drives them (test/helpers/convertly-wire.ts sends exactly its
 * requests), through the real gateway, pg-boss and a convert worker with the real sharp/ffmpeg.
 * Every output is checked for what it really is: magic bytes, dimensions by sharp, streams and
 * durations by an independent ffprobe, pixels where the watermark is and is not, inspect's facts
 * against sharp and ffprobe. Bad input per tool is a 4xx naming the field, and a tool's failure
 * leaves the worker converting.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { PDFDocument, rgb } from 'pdf-lib';
import { sniff } from '@kiln/formats';
import { resolveFfmpeg, resolveFfprobe, type ResolvedBinary } from '@kiln/codec';
import { download, startKiln, type Kiln } from './helpers/kiln.ts';
import { convertlyWire, dataUrlBytes, WireError, type SyncAnswer } from './helpers/convertly-wire.ts';
import { makeClip, makeTempDir, rawProbe } from '../packages/codec/test/helpers/media-fixtures.ts';

let kiln: Kiln;
let sdk: ReturnType<typeof convertlyWire>;
let ffprobe: ResolvedBinary;
let dir: string;
let cleanup: () => Promise<void>;
let png: Buffer;
let jpg: Buffer;
let clip: Buffer;
let tone: Buffer;
let pdf: Buffer;
let logo: Buffer;

beforeAll(async () => {
  const [ffmpeg, probe] = await Promise.all([resolveFfmpeg(), resolveFfprobe()]);
  ffprobe = probe;
  ({ dir, cleanup } = await makeTempDir('media-tools-int'));
  await Promise.all([
    makeClip(ffmpeg.path, path.join(dir, 'clip.mp4'), { seconds: 3, video: { width: 320, height: 240, rate: 25 }, audio: {}, format: 'mp4' }),
    makeClip(ffmpeg.path, path.join(dir, 'tone.wav'), { seconds: 2, audio: { codec: 'pcm_s16le' }, format: 'wav' }),
  ]);
  [clip, tone] = await Promise.all([fs.readFile(path.join(dir, 'clip.mp4')), fs.readFile(path.join(dir, 'tone.wav'))]);
  const raw = Buffer.alloc(240 * 160 * 3);
  for (let y = 0; y < 160; y++) for (let x = 0; x < 240; x++) raw.set([x, y, 90], (y * 240 + x) * 3);
  png = await sharp(raw, { raw: { width: 240, height: 160, channels: 3 } })
    .png()
    .toBuffer();
  jpg = await sharp(raw, { raw: { width: 240, height: 160, channels: 3 } })
    .withExif({ IFD0: { Make: 'KilnCam', Model: 'Wire' } })
    .jpeg({ quality: 90 })
    .toBuffer();
  logo = await sharp({ create: { width: 30, height: 30, channels: 4, background: { r: 0, g: 255, b: 0, alpha: 1 } } })
    .png()
    .toBuffer();
  const doc = await PDFDocument.create();
  for (const c of [rgb(1, 0, 0), rgb(0, 0, 1)]) doc.addPage([400, 200]).drawRectangle({ x: 0, y: 0, width: 400, height: 200, color: c });
  pdf = Buffer.from(await doc.save());
  kiln = await startKiln({ apps: ['gateway', 'convert-worker'], env: { JOB_RETRY_LIMIT: '0' } });
  sdk = convertlyWire(kiln.url, kiln.key);
}, 120_000);

afterAll(async () => {
  await kiln?.stop();
  await cleanup?.();
});

const only = (a: SyncAnswer) => {
  expect(a.files).toHaveLength(1);
  return { file: a.files[0]!, bytes: dataUrlBytes(a.files[0]!.downloadUrl) };
};
async function probeBytes(bytes: Buffer, name: string) {
  const p = path.join(dir, name);
  await fs.writeFile(p, bytes);
  return rawProbe(ffprobe.path, p);
}
async function refused(p: Promise<unknown>): Promise<WireError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(WireError);
  return e as WireError;
}

test('GET /api/media lists every tool with its options as JSON Schema and the inputs it takes', async () => {
  const r = await fetch(`${kiln.url}/api/media`);
  const body = (await r.json()) as { tools: { name: string; inputs: unknown; available: boolean; options: { properties: Record<string, { default?: unknown }> } }[] };
  const byName = Object.fromEntries(body.tools.map((t) => [t.name, t]));
  expect(Object.keys(byName)).toEqual(expect.arrayContaining(['thumbnail', 'poster-frame', 'trim', 'watermark', 'inspect', 'convert', 'adjust', 'vectorize', 'remove-background']));
  expect(byName['poster-frame']!.options.properties.timestamp).toMatchObject({ type: 'number', default: 1 });
  expect(byName['poster-frame']!.inputs).toEqual(['video']);
  expect(byName['remove-background']!.available).toBe(false);
});

describe('each tool through the SDK wire format', () => {
  test('thumbnail: an image into a 96×96 webp', async () => {
    const a = await sdk.media.thumbnail({ file: png, width: 96, height: 96, format: 'webp' });
    expect(a.tool).toBe('thumbnail');
    const { bytes } = only(a);
    expect(sniff(bytes)).toBe('webp');
    expect(await sharp(bytes).metadata()).toMatchObject({ width: 96, height: 96 });
  });

  test('poster-frame: the frame at timestamp, as png', async () => {
    const { bytes, file } = only(await sdk.media.posterFrame({ file: clip, timestamp: 1.5, format: 'png' }));
    expect(file.mimeType).toBe('image/png');
    expect(await sharp(bytes).metadata()).toMatchObject({ format: 'png', width: 320, height: 240 });
  });

  test('extract-audio: mp3, audio only, as long as the clip', async () => {
    const { bytes } = only(await sdk.media.extractAudio({ file: clip, format: 'mp3' }));
    expect(sniff(bytes)).toBe('mp3');
    const p = await probeBytes(bytes, 'extracted.mp3');
    expect(p.streams.map((s) => s.codec_type)).toEqual(['audio']);
    expect(Math.abs(Number(p.format.duration) - 3)).toBeLessThan(0.15);
  });

  test('trim: start…end, the same format, within 0.1 s of the length asked', async () => {
    const { bytes, file } = only(await sdk.media.trim({ file: clip, filename: 'clip.mp4', start: 0.5, end: 2 }));
    expect(file.filename).toBe('clip.mp4');
    const p = await probeBytes(bytes, 'trimmed.mp4');
    expect(p.format.format_name).toMatch(/mp4/);
    expect(Math.abs(Number(p.format.duration) - 1.5)).toBeLessThan(0.1);
  });

  test('gif: an animated GIF of the clip at the width asked', async () => {
    const { bytes } = only(await sdk.media.gif({ file: clip, start: 0, duration: 1, fps: 10, width: 160 }));
    expect(sniff(bytes)).toBe('gif');
    const m = await sharp(bytes, { animated: true }).metadata();
    expect(m.width).toBe(160);
    expect(m.pages).toBeGreaterThanOrEqual(9);
  });

  test('storyboard: one sheet of the grid asked, and WebVTT cues into it', async () => {
    const a = await sdk.media.storyboard({ file: clip, filename: 'clip.mp4', frames: 6, columns: 3, width: 80 });
    const { bytes, file } = only(a);
    expect(file.filename).toBe('clip.jpg');
    expect(await sharp(bytes).metadata()).toMatchObject({ format: 'jpeg', width: 240, height: 120 });
    expect(a.storyboard).toMatchObject({ columns: 3, rows: 2, frames: 6, tileWidth: 80, tileHeight: 60 });
    expect(a.storyboard!.vtt).toMatch(/^WEBVTT\n\n00:00:00\.000 --> 00:00:00\.500\nclip\.jpg#xywh=0,0,80,60\n/);
  });

  test('watermark: text changes the pixels inside its box at the anchor, and none outside it', async () => {
    const { bytes, file } = only(await sdk.media.watermark({ file: png, text: 'KILN', position: 'top-left', opacity: 1, margin: 8, watermarkWidth: 80, color: '#ff00ff' }));
    const box = file
      .notes![0]!.match(/mark (\d+)×(\d+) px at top-left \((\d+), (\d+)\)/)!
      .slice(1)
      .map(Number) as [number, number, number, number];
    const [w, h, left, top] = box;
    expect([left, top]).toEqual([8, 8]);
    const a = await sharp(png).raw().toBuffer();
    const b = await sharp(bytes).removeAlpha().raw().toBuffer();
    let inside = 0;
    let outside = 0;
    for (let y = 0; y < 160; y++) {
      for (let x = 0; x < 240; x++) {
        const i = (y * 240 + x) * 3;
        if (a[i] === b[i] && a[i + 1] === b[i + 1] && a[i + 2] === b[i + 2]) continue;
        if (x >= left && x < left + w && y >= top && y < top + h) inside++;
        else outside++;
      }
    }
    expect(outside).toBe(0);
    expect(inside).toBeGreaterThan(100);
  });

  test('watermark with an image part (watermarkFile, as Convertly’s MCP client sends it)', async () => {
    const fd = new FormData();
    fd.append('file', new Blob([new Uint8Array(png)]), 'photo.png');
    fd.append('watermarkFile', new Blob([new Uint8Array(logo)]), 'logo.png');
    fd.append('position', 'bottom-right');
    fd.append('margin', '10');
    fd.append('watermarkWidth', '30');
    fd.append('opacity', '1');
    const a = (await (await kiln.api('/api/media/watermark', { method: 'POST', body: fd })).json()) as SyncAnswer;
    const { data } = await sharp(dataUrlBytes(a.files[0]!.downloadUrl)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) => [...data.subarray((y * 240 + x) * 3, (y * 240 + x) * 3 + 3)];
    expect(at(240 - 10 - 15, 160 - 10 - 15)).toEqual([0, 255, 0]);
    expect(at(20, 20)).not.toEqual([0, 255, 0]);
  });

  test('inspect: facts that agree with sharp and ffprobe, as metadata and as a JSON file', async () => {
    const img = await sdk.media.inspect({ file: jpg });
    const m = await sharp(jpg).metadata();
    expect(img.metadata).toMatchObject({ format: 'jpg', mimeType: 'image/jpeg', width: m.width, height: m.height, colorSpace: m.space, hasExif: true, exif: { Make: 'KilnCam' } });
    expect(JSON.parse(only(img).bytes.toString())).toEqual(img.metadata);
    expect(only(img).file.mimeType).toBe('application/json');
    const vid = await sdk.media.inspect({ file: clip });
    const p = await probeBytes(clip, 'inspected.mp4');
    expect(vid.metadata).toMatchObject({ format: 'mp4', width: 320, height: 240, hasAudio: true });
    expect(vid.metadata!.durationSeconds).toBeCloseTo(Number(p.format.duration), 2);
    expect((vid.metadata!.streams as { type: string }[]).map((s) => s.type).sort()).toEqual(p.streams.map((s) => s.codec_type).sort());
  });

  test('strip-metadata: the same JPEG pixels, no EXIF', async () => {
    const { bytes } = only(await sdk.media.stripMetadata({ file: jpg }));
    expect(sniff(bytes)).toBe('jpg');
    expect((await sharp(bytes).metadata()).exif).toBeUndefined();
    expect((await sharp(bytes).raw().toBuffer()).equals(await sharp(jpg).raw().toBuffer())).toBe(true);
  });

  test('image-to-pdf: several files parts (as Convertly’s MCP client sends them) → one page each on A4', async () => {
    const fd = new FormData();
    fd.append('files', new Blob([new Uint8Array(png)]), 'a.png');
    fd.append('files', new Blob([new Uint8Array(jpg)]), 'b.jpg');
    fd.append('pageSize', 'a4');
    fd.append('saveToStorage', 'false');
    const r = await kiln.api('/api/media/image-to-pdf', { method: 'POST', body: fd });
    expect(r.status).toBe(200);
    const bytes = dataUrlBytes(((await r.json()) as SyncAnswer).files[0]!.downloadUrl);
    const doc = await PDFDocument.load(bytes);
    expect(doc.getPageCount()).toBe(2);
    expect(Math.round(doc.getPage(0).getWidth())).toBe(842);
  });

  test('pdf-preview: the page asked for, at the width asked for', async () => {
    const { bytes } = only(await sdk.media.pdfPreview({ file: pdf, page: 2, width: 400, format: 'png' }));
    const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([400, 200]);
    expect([...data.subarray(0, 3)]).toEqual([0, 0, 255]);
  });

  test('transform: resized, rotated and grey', async () => {
    const { bytes } = only(await sdk.media.transform({ file: png, width: 100, height: 50, fit: 'fill', rotate: 90, grayscale: true, format: 'png' }));
    const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([50, 100]);
    expect(data[0]).toBe(data[1]);
  });

  test('convert, adjust and vectorize (Convertly lists them; its SDK has no method, the wire format is the same)', async () => {
    const webm = only(await sdk.tool('convert')({ file: clip, format: 'webm', quality: 50 }));
    expect(sniff(webm.bytes)).toBe('webm');
    const bright = only(await sdk.tool('adjust')({ file: png, brightness: 1.5 }));
    expect((await sharp(bright.bytes).stats()).channels[0]!.mean).toBeGreaterThan((await sharp(png).stats()).channels[0]!.mean);
    const svg = only(await sdk.tool('vectorize')({ file: logo, mono: true }));
    expect(svg.file.mimeType).toBe('image/svg+xml');
    expect(svg.bytes.toString()).toMatch(/<svg/);
  });

  test('async=true answers {jobId, status, tool} at once; the job is a normal one with its tool', async () => {
    const queued = await sdk.media.posterFrame<{ jobId: string; status: string; tool: string }>({ file: clip, timestamp: 1, async: true });
    expect(queued).toEqual({ jobId: expect.any(String), status: 'pending', tool: 'poster-frame' });
    const job = await sdk.jobs.wait(queued.jobId);
    expect(job).toMatchObject({ status: 'completed', tool: 'poster-frame' });
    const bytes = await download(job.results[0]!.downloadUrl!);
    expect(sniff(bytes)).toBe('jpg');
    const list = await sdk.jobs.list();
    expect(list.jobs.find((j) => j.jobId === queued.jobId)).toMatchObject({ tool: 'poster-frame' });
    // Convertly's alias does the same.
    const bg = await sdk.media.thumbnail<{ status: string; tool: string }>({ file: png, background: true });
    expect(bg).toMatchObject({ status: 'pending', tool: 'thumbnail' });
  });

  test('remove-background answers 501 with the reason', async () => {
    const e = await refused(sdk.media.removeBackground({ file: png }));
    expect(e.status).toBe(501);
    expect(e.body).toMatchObject({ code: 'not_implemented' });
    expect(e.message).toMatch(/no model/);
  });
});

describe('bad input per tool: a 4xx naming the field, and the worker goes on', () => {
  test('audio to poster-frame is 415 naming the file and what the tool takes', async () => {
    const e = await refused(sdk.media.posterFrame({ file: tone, filename: 'tone.wav' }));
    expect(e.status).toBe(415);
    expect(e.body).toMatchObject({ code: 'unsupported_format', detail: { field: 'file', tool: 'poster-frame', input: 'wav' } });
    expect(e.message).toBe('poster-frame takes video; file ("tone.wav") is wav (audio).');
  });

  test('a time past the end of the clip is a 400 naming the option and the real length', async () => {
    const e = await refused(sdk.media.posterFrame({ file: clip, timestamp: 30 }));
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/^timestamp 30 s is past the end of the video \(3(\.\d+)? s long\)/);
    const t = await refused(sdk.media.trim({ file: tone, start: 0.5, duration: 9 }));
    expect(t.status).toBe(400);
    expect(t.message).toMatch(/^start \+ duration \(9\.5 s\) is past the end of the clip/);
  });

  test('wrong types, out-of-range and missing options are 400 invalid_field naming the field', async () => {
    const cases: [() => Promise<unknown>, string, RegExp][] = [
      [() => sdk.media.thumbnail({ file: png, width: 'wide' }), 'width', /^thumbnail: width must be an integer from 1 to 16384 px; got "wide"\.$/],
      [() => sdk.media.watermark({ file: png, opacity: 3, text: 'x' }), 'opacity', /opacity must be a number from 0 to 1/],
      [() => sdk.media.trim({ file: clip, start: 2, end: 1 }), 'end', /end must be after start \(2 s\)/],
      [() => sdk.tool('convert')({ file: clip }), 'format', /^convert: format must be one of mp4, webm, mov, mp3, wav, ogg, m4a, flac; got nothing\.$/],
      [() => sdk.media.watermark({ file: png }), 'text', /watermark needs text=… or an image part watermarkFile/],
      [() => sdk.media.gif({ file: clip, async: 'maybe' }), 'async', /async must be "true" or "false"/],
    ];
    for (const [call, field, message] of cases) {
      const e = await refused(call());
      expect(e.status).toBe(400);
      expect(e.body).toMatchObject({ code: 'invalid_field', detail: { field } });
      expect(e.message).toMatch(message);
    }
    // The SDK refuses to send a request without an input; a plain client gets the 400 naming the field.
    const fd = new FormData();
    fd.append('width', '10');
    const r = await kiln.api('/api/media/thumbnail', { method: 'POST', body: fd });
    expect(r.status).toBe(400);
    expect(await r.json()).toMatchObject({
      code: 'invalid_field',
      detail: { field: 'file' },
      error: expect.stringMatching(/Send the input as a file part named "file", or its URL in sourceUrl/),
    });
  });

  test('after all of that, the worker still converts', async () => {
    const { bytes } = only(await sdk.media.thumbnail({ file: jpg, width: 32, height: 32, format: 'png' }));
    expect(await sharp(bytes).metadata()).toMatchObject({ format: 'png', width: 32, height: 32 });
    expect(kiln.procs.get('convert-worker')?.exitCode).toBeNull();
  });
});
