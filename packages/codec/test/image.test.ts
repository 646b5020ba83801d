/** The image engine on real sharp: formats by magic bytes, sizes, never upscaling, metadata, limits. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { sniff } from '@kiln/formats';
import { convertImage, convertToFile, targetSize, CodecError, writesOnlyOutput } from '../src/index.ts';
import { limitsWith } from './helpers/limits.ts';
import { request } from './helpers/request.ts';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-codec-img-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function fixture(name: string, width: number, height: number, extra: (s: Sharp) => Sharp = (s) => s.jpeg()): Promise<string> {
  const p = path.join(dir, name);
  await extra(sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 120, sigma: 30 } } })).toFile(p);
  return p;
}
const base = { quality: 82, autoOrient: true, stripMetadata: true, limits: limitsWith({ pixels: 50_000_000 }), avifEffort: 2 };

test('targetSize never upscales and cover boxes shrink to fit small sources', () => {
  expect(targetSize(4000, 3000, { width: 1920, fit: 'inside' })).toEqual({ width: 1920, height: 1440, crop: false });
  expect(targetSize(800, 600, { width: 1920, fit: 'inside' })).toEqual({ width: 800, height: 600, crop: false });
  expect(targetSize(4000, 3000, { width: 1080, height: 1080, fit: 'cover' })).toEqual({ width: 1080, height: 1080, crop: true });
  expect(targetSize(500, 400, { width: 1080, height: 1080, fit: 'cover' })).toEqual({ width: 400, height: 400, crop: true });
  expect(targetSize(3000, 2000, { height: 500, fit: 'inside' })).toEqual({ width: 750, height: 500, crop: false });
});

test('GPS/EXIF are stripped by default and kept with stripMetadata=false', async () => {
  const src = await fixture('gps.jpg', 200, 100, (s) => s.withExif({ IFD0: { Copyright: 'Kiln test' }, IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '51/1 30/1 0/1' } }).jpeg());
  expect((await sharp(src).metadata()).exif).toBeDefined();
  const stripped = path.join(dir, 'stripped.jpg');
  await convertImage({ ...base, input: src, output: stripped, format: 'jpg' });
  expect((await sharp(stripped).metadata()).exif).toBeUndefined();
  const kept = path.join(dir, 'kept.jpg');
  await convertImage({ ...base, input: src, output: kept, format: 'jpg', stripMetadata: false });
  expect((await sharp(kept).metadata()).exif).toBeDefined();
});

test('transparent PNG to JPEG is flattened on white, not black', async () => {
  const src = path.join(dir, 'alpha.png');
  await sharp({ create: { width: 20, height: 20, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
    .png()
    .toFile(src);
  const out = path.join(dir, 'alpha.jpg');
  await convertImage({ ...base, input: src, output: out, format: 'jpg' });
  const { data } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
  expect(data[0]).toBeGreaterThan(240);
});

test('quality changes the output size and is reported back', async () => {
  const src = await fixture('q.jpg', 400, 300);
  const hi = await convertImage({ ...base, input: src, output: path.join(dir, 'hi.webp'), format: 'webp', quality: 95 });
  const lo = await convertImage({ ...base, input: src, output: path.join(dir, 'lo.webp'), format: 'webp', quality: 20 });
  expect(lo.size).toBeLessThan(hi.size);
  expect([hi.appliedQuality, lo.appliedQuality]).toEqual([95, 20]);
  expect(sniff(await fs.readFile(path.join(dir, 'lo.webp')))).toBe('webp');
});

test('an image over the pixel limit fails with limit_exceeded naming the setting', async () => {
  const src = await fixture('big.png', 3000, 2000, (s) => s.png());
  await expect(convertImage({ ...base, input: src, output: path.join(dir, 'x.jpg'), format: 'jpg', limits: limitsWith({ pixels: 1_000_000 }) })).rejects.toMatchObject({
    kind: 'limit_exceeded',
    message: expect.stringMatching(/IMAGE_MAX_PIXELS/),
  });
});

test('garbage fails with invalid_input and leaves no output behind', async () => {
  const src = path.join(dir, 'garbage.jpg');
  await fs.writeFile(src, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(500, 3)]));
  const out = path.join(dir, 'garbage.png');
  const err = await convertImage({ ...base, input: src, output: out, format: 'png' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CodecError);
  expect((err as CodecError).kind).toBe('invalid_input');
  await expect(fs.stat(out)).rejects.toThrow();
});

describe('convertToFile: a conversion that writes nothing but its output', () => {
  // The worker's defaults (helpers/request.ts), without the folder convertToFile does not take.
  const req = (input: string, format: 'webp' | 'pdf') => {
    const { outputDir: _none, ...r } = request(input, 'png', format, dir);
    return r;
  };

  test('one sharp encode qualifies; a PDF page (intermediates) and an archive do not', () => {
    expect(writesOnlyOutput('png', 'webp')).toBe(true);
    expect(writesOnlyOutput('jpg', 'avif')).toBe(true);
    expect(writesOnlyOutput('png', 'pdf')).toBe(false);
    expect(writesOnlyOutput('zip', 'webp')).toBe(false);
  });

  test('the output is written at the given path, without an extension, in the asked format; nothing else is written', async () => {
    const src = await fixture('direct.png', 120, 80, (s) => s.png());
    const out = await fs.mkdtemp(path.join(dir, 'direct-'));
    const target = path.join(out, 'w-0123456789abcdef');
    const r = await convertToFile(req(src, 'webp'), target);
    expect(r).toMatchObject({ path: target, format: 'webp', engine: 'sharp', width: 120, height: 80 });
    expect(sniff(await fs.readFile(target))).toBe('webp');
    expect(r.size).toBe((await fs.stat(target)).size);
    expect(await fs.readdir(out)).toEqual(['w-0123456789abcdef']);
  });

  test('any other conversion is refused before it starts', async () => {
    const src = await fixture('direct-pdf.png', 20, 20, (s) => s.png());
    const target = path.join(dir, 'w-fedcba9876543210');
    await expect(convertToFile(req(src, 'pdf'), target)).rejects.toThrow(/writes more than its output/);
    await expect(fs.stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
