/**
 * HEIC, SVG and PDF on real engines (heic-decode, heif-enc when installed, vtracer, librsvg,
 * pdf-lib, pdf.js): output formats by magic bytes, sizes, colours where they should be, safety of
 * SVG input, and clean errors for damaged files.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { PDFDocument } from 'pdf-lib';
import { sniff } from '@kiln/formats';
import { compress, sanitizeSvg } from '../src/index.ts';
import { request, useScratch } from './helpers/request.ts';
import { limitsWith, timeout } from './helpers/limits.ts';

const HEIC = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'two-blocks.heic');
const heifEnc = (() => {
  try {
    execFileSync('heif-enc', ['--list-encoders'], { stdio: 'pipe' });
    return 'heif-enc';
  } catch {
    return undefined;
  }
})();

const scratch = useScratch('kiln-codec-pic-');
const { file, run } = scratch;
async function pixel(p: string | Buffer, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(p).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}
const near = (a: number[], b: number[], tol = 40) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);

// ------------------------------------------------------------------ HEIC

test('HEIC (HEVC) input converts to jpg, png and webp with its pixels intact', async () => {
  for (const format of ['jpg', 'png', 'webp'] as const) {
    const r = await run(HEIC, 'heic', format);
    expect(sniff(await fs.readFile(r.path))).toBe(format);
    expect([r.width, r.height]).toEqual([320, 200]);
    expect(near(await pixel(r.path, 60, 60), [0x20, 0xa0, 0x40])).toBe(true);
    expect(near(await pixel(r.path, 250, 150), [0xc0, 0x30, 0x20])).toBe(true);
    expect(r.notes).toContain('HEIC decoded with libheif (heic-decode).');
  }
});

test('compressing a HEIC goes through convert and returns a JPEG', async () => {
  const out = scratch.name('out');
  await fs.mkdir(out);
  const r = await compress({ ...request(HEIC, 'heic', 'jpg', out), format: undefined, mode: 'quality', targetBytes: null, originalSize: (await fs.stat(HEIC)).size });
  expect(r.format).toBe('jpg');
  expect(sniff(await fs.readFile(r.path))).toBe('jpg');
});

test('a HEIC over the pixel limit is refused before decoding, naming IMAGE_MAX_PIXELS', async () => {
  await expect(run(HEIC, 'heic', 'png', { limits: limitsWith({ pixels: 10_000 }) })).rejects.toMatchObject({
    kind: 'limit_exceeded',
    message: expect.stringMatching(/320×200.*IMAGE_MAX_PIXELS/),
  });
});

test('a truncated HEIC fails as invalid_input', async () => {
  const bytes = await fs.readFile(HEIC);
  await expect(run(await file('cut.heic', bytes.subarray(0, 300)), 'heic', 'png')).rejects.toMatchObject({ kind: 'invalid_input' });
});

test('heif output is AV1-coded by sharp by default and says so', async () => {
  const src = await file(
    'a.png',
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#3366cc' } })
      .png()
      .toBuffer(),
  );
  const r = await run(src, 'png', 'heif');
  const bytes = await fs.readFile(r.path);
  expect(bytes.subarray(8, 12).toString('latin1')).toBe('avif');
  expect(r.notes?.join(' ')).toMatch(/AV1/);
});

(heifEnc ? test : test.skip)('with heif-enc configured, heif output is real HEVC HEIC and round-trips through heic-decode', async () => {
  const src = await file(
    'b.png',
    await sharp({ create: { width: 96, height: 64, channels: 3, background: '#20a040' } })
      .png()
      .toBuffer(),
  );
  const r = await run(src, 'png', 'heif', { engines: { heifEncPath: heifEnc! } });
  const bytes = await fs.readFile(r.path);
  expect(bytes.subarray(8, 12).toString('latin1')).toBe('heic');
  expect(r.mimeType).toBe('image/heic');
  expect(r.notes).toContain('HEIC written with HEVC by heif-enc (HEIF_ENC_PATH).');
  const back = await run(r.path, 'heic', 'png');
  expect([back.width, back.height]).toEqual([96, 64]);
  expect(near(await pixel(back.path, 40, 30), [0x20, 0xa0, 0x40])).toBe(true);
});

// ------------------------------------------------------------------ raster → SVG

async function logo(): Promise<string> {
  // White canvas, a blue square and a red disc: easy shapes for the tracer.
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="120"><rect width="200" height="120" fill="#fff"/><rect x="10" y="10" width="80" height="80" fill="#1040c0"/><circle cx="150" cy="60" r="40" fill="#d02020"/></svg>`;
  return file('logo.png', await sharp(Buffer.from(svg)).png().toBuffer());
}

test('a PNG traces to a colour SVG that renders back close to the original', async () => {
  const src = await logo();
  const r = await run(src, 'png', 'svg');
  const svg = await fs.readFile(r.path, 'utf8');
  expect(sniff(Buffer.from(svg))).toBe('svg');
  expect(r.mimeType).toBe('image/svg+xml');
  const back = await sharp(Buffer.from(svg)).resize(200, 120).png().toBuffer();
  expect(near(await pixel(back, 50, 50), [0x10, 0x40, 0xc0])).toBe(true);
  expect(near(await pixel(back, 150, 60), [0xd0, 0x20, 0x20])).toBe(true);
  expect(near(await pixel(back, 195, 5), [255, 255, 255])).toBe(true);
  expect(r.notes).toContain('Traced in colour.');
});

test('mono traces a single colour, and quality changes the detail', async () => {
  const src = await logo();
  const mono = await run(src, 'png', 'svg', { mono: true });
  const fills = new Set((await fs.readFile(mono.path, 'utf8')).match(/fill="[^"]+"/g));
  expect(fills.size).toBeLessThanOrEqual(2);
  expect(mono.notes).toContain('Traced in one colour (mono).');
  const photo = await file(
    'noise.png',
    await sharp({ create: { width: 160, height: 120, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 60 } } })
      .png()
      .toBuffer(),
  );
  const lo = await run(photo, 'png', 'svg', { quality: 5 });
  const hi = await run(photo, 'png', 'svg', { quality: 95 });
  expect(hi.size).toBeGreaterThan(lo.size);
});

test('large images are downscaled to maxTracePixels before tracing', async () => {
  const src = await logo();
  const r = await run(src, 'png', 'svg', { limits: limitsWith({ tracePixels: 6000 }) });
  expect((r.width ?? 0) * (r.height ?? 0)).toBeLessThanOrEqual(6000);
  expect(r.notes?.join(' ')).toMatch(/Downscaled to \d+×\d+ before tracing \(TRACE_MAX_PIXELS is 6000\)/);
});

// ------------------------------------------------------------------ SVG → raster

test('SVG renders to PNG at its own size, and at higher density for a larger resize box', async () => {
  const svg = await file('s.svg', '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 50" width="100" height="50"><rect width="100" height="50" fill="#00ff00"/></svg>');
  const r = await run(svg, 'svg', 'png');
  expect([r.width, r.height]).toEqual([100, 50]);
  expect(near(await pixel(r.path, 50, 25), [0, 255, 0], 10)).toBe(true);
  const big = await run(svg, 'svg', 'webp', { resize: { width: 400, fit: 'inside' } });
  expect([big.width, big.height]).toEqual([400, 200]);
  const capped = await run(svg, 'svg', 'png', { resize: { width: 4000, fit: 'inside' }, limits: limitsWith({ svgDensity: 144 }) });
  expect(capped.width).toBe(200);
  expect(capped.notes).toContain('SVG rendered at 144 DPI.');
});

test('SVG external references are removed: local files and URLs are never loaded', async () => {
  const secret = await file(
    'secret.png',
    await sharp({ create: { width: 10, height: 10, channels: 3, background: '#ff0000' } })
      .png()
      .toBuffer(),
  );
  const svg = `<?xml version="1.0"?><?xml-stylesheet href="http://127.0.0.1:9/x.css"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="40">
  <style>@import url(http://127.0.0.1:9/a.css); rect { fill: url(#g) }</style>
  <defs><linearGradient id="g"><stop offset="0" stop-color="#fff"/></linearGradient></defs>
  <rect width="40" height="40" fill="#ffffff"/>
  <image x="0" y="0" width="40" height="40" xlink:href="file://${secret}"/>
  <image x="0" y="0" width="40" height="40" href="${secret}"/>
</svg>`;
  const s = sanitizeSvg(svg);
  expect(s.svg).not.toContain(secret);
  expect(s.svg).not.toContain('127.0.0.1');
  expect(s.svg).toContain('url(#g)');
  const r = await run(await file('ext.svg', svg), 'svg', 'png');
  // The red secret image would cover the canvas if it had been loaded.
  expect(near(await pixel(r.path, 20, 20), [255, 255, 255], 10)).toBe(true);
  expect(r.notes?.join(' ')).toMatch(/external references were removed/);
});

test('an SVG with entity declarations or broken XML fails as invalid_input', async () => {
  const xxe = `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&x;</text></svg>`;
  await expect(run(await file('xxe.svg', xxe), 'svg', 'png')).rejects.toMatchObject({ kind: 'invalid_input' });
  await expect(run(await file('broken.svg', '<svg xmlns="http://www.w3.org/2000/svg" width="10"><rect'), 'svg', 'png')).rejects.toMatchObject({ kind: 'invalid_input' });
});

// ------------------------------------------------------------------ images → PDF, PDF → images

test('a JPEG becomes a one-page PDF with its bytes embedded verbatim', async () => {
  const jpeg = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#2050a0', noise: { type: 'gaussian', mean: 100, sigma: 20 } } })
    .jpeg({ quality: 80 })
    .toBuffer();
  const src = await file('p.jpg', jpeg);
  const r = await run(src, 'jpg', 'pdf');
  const pdfBytes = await fs.readFile(r.path);
  expect(sniff(pdfBytes)).toBe('pdf');
  expect(pdfBytes.includes(jpeg)).toBe(true);
  const doc = await PDFDocument.load(pdfBytes);
  expect(doc.getPageCount()).toBe(1);
  expect(doc.getPage(0).getSize()).toEqual({ width: 300, height: 200 });
  expect(r.notes).toContain('The JPEG was embedded without re-encoding.');
});

test('a transparent PNG and a HEIC become PDFs too', async () => {
  const png = await file(
    't.png',
    await sharp({ create: { width: 50, height: 40, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 0.5 } } })
      .png()
      .toBuffer(),
  );
  const a = await run(png, 'png', 'pdf');
  expect(sniff(await fs.readFile(a.path))).toBe('pdf');
  expect(a.notes).toContain('The image was embedded losslessly (PNG).');
  const h = await run(HEIC, 'heic', 'pdf');
  expect((await PDFDocument.load(await fs.readFile(h.path))).getPage(0).getSize()).toEqual({ width: 320, height: 200 });
});

async function makePdf(pages: number): Promise<string> {
  const doc = await PDFDocument.create();
  for (let i = 0; i < pages; i++) {
    const page = doc.addPage([200, 100]);
    page.drawRectangle({ x: 0, y: 0, width: 100, height: 100, color: { type: 'RGB', red: 1, green: 0, blue: 0 } as never });
  }
  return file(`${pages}p.pdf`, Buffer.from(await doc.save()));
}

test('a PDF renders its first page to PNG at 150 DPI, with the page count in the notes', async () => {
  const src = await makePdf(3);
  const r = await run(src, 'pdf', 'png');
  expect(sniff(await fs.readFile(r.path))).toBe('png');
  expect(r.width).toBeGreaterThanOrEqual(415);
  expect(r.width).toBeLessThanOrEqual(418);
  expect(near(await pixel(r.path, 50, 100), [255, 0, 0], 10)).toBe(true);
  expect(near(await pixel(r.path, 350, 100), [255, 255, 255], 10)).toBe(true);
  expect(r.notes).toContain('Only the first of 3 pages was converted.');
});

test('a PDF over PDF_MAX_PAGES is refused, and a damaged PDF fails as invalid_input', async () => {
  const src = await makePdf(3);
  await expect(run(src, 'pdf', 'png', { limits: limitsWith({ pdfPages: 2 }) })).rejects.toMatchObject({
    kind: 'limit_exceeded',
    message: expect.stringMatching(/3 pages.*PDF_MAX_PAGES/),
  });
  await expect(run(await file('bad.pdf', '%PDF-1.7\nthis is not a pdf at all\n'), 'pdf', 'png')).rejects.toMatchObject({ kind: 'invalid_input' });
});

test('tracing that runs past the deadline fails as timeout naming the setting', async () => {
  const noise = await file(
    'slow.png',
    await sharp({ create: { width: 600, height: 400, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 60 } } })
      .png()
      .toBuffer(),
  );
  const started = Date.now();
  await expect(run(noise, 'png', 'svg', { quality: 100, timeout: timeout(0.3) })).rejects.toMatchObject({
    kind: 'timeout',
    message: expect.stringMatching(/FILE_TIMEOUT_SECONDS/),
  });
  expect(Date.now() - started).toBeLessThan(3000);
  // The trace ran in a child process that was killed with its group: nothing is left tracing.
  const fsp = await import('node:fs/promises');
  const tracing: string[] = [];
  for (const pid of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const state = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (cmd.includes('trace-child.ts') && cmd.includes(scratch.dir) && !/\) Z /.test(state)) tracing.push(pid);
  }
  expect(tracing).toEqual([]);
});
