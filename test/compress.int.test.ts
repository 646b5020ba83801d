/**
 * Compress jobs end to end (API.md §2.1, §2.3, §2.6): real gateway and compress worker processes,
 * real Postgres and pg-boss, real sharp. Per-file modes, targets, lossless and stripMetadata arrays
 * reach the worker; results report sizes, quality, target facts; outputs are checked by their bytes.
 */
import sharp from 'sharp';
import { sniff } from '@kiln/formats';
import { download, form, startKiln, waitForJob, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';

let kiln: Kiln;
beforeAll(async () => {
  kiln = await startKiln({ apps: ['gateway', 'compress-worker'] });
}, 90_000);
afterAll(async () => {
  await kiln?.stop();
});

type CompressResultJson = {
  status: string;
  format: string | null;
  originalSize: number;
  finalSize: number | null;
  savedPercent: number | null;
  appliedQuality: number | null;
  width?: number;
  height?: number;
  downloadUrl: string | null;
  notes?: string[];
  targetMet?: boolean;
  targetReason?: string;
  encodes?: number;
};

test('per-file modes, targets, lossless and stripMetadata arrays each apply to their own file', async () => {
  const a = await photo(900, 600, { quality: 95, gps: true });
  const b = await photo(600, 400, { format: 'webp', quality: 95 });
  const c = await photo(400, 200, { orientation: 6, gps: true, quality: 92 });
  const fd = form(
    [
      { data: a, filename: 'a.jpg' },
      { data: b, filename: 'b.webp' },
      { data: c, filename: 'c.jpg' },
    ],
    {
      jobType: 'compress',
      modes: JSON.stringify(['target-size', 'quality', 'quality']),
      targetByteValues: JSON.stringify([40_000, null, null]),
      compressions: JSON.stringify([82, 50, 82]),
      losslessValues: JSON.stringify([false, false, true]),
      stripMetadataValues: JSON.stringify([true, true, true]),
    },
  );
  const r = await kiln.api('/api/jobs', { method: 'POST', body: fd });
  expect(r.status).toBe(200);
  const { jobId } = (await r.json()) as { jobId: string };
  const job = await waitForJob(kiln, jobId, 90_000);
  expect(job.status).toBe('completed');
  const [ra, rb, rc] = job.results as unknown as CompressResultJson[];

  expect(ra).toMatchObject({ status: 'completed', format: 'jpg', originalSize: a.length, targetMet: true });
  expect(ra!.finalSize!).toBeLessThanOrEqual(40_000);
  expect(ra!.finalSize!).toBeGreaterThanOrEqual(36_000);
  expect(ra!.encodes).toBeGreaterThan(0);
  expect(ra!.savedPercent).toBeCloseTo((1 - ra!.finalSize! / a.length) * 100, 0);
  const outA = await download(ra!.downloadUrl!);
  expect(sniff(outA)).toBe('jpg');
  expect(outA.length).toBe(ra!.finalSize);
  expect((await sharp(outA).metadata()).exif).toBeUndefined();

  expect(rb).toMatchObject({ status: 'completed', format: 'webp', appliedQuality: 50 });
  expect(rb!.finalSize!).toBeLessThan(b.length);
  expect(sniff(await download(rb!.downloadUrl!))).toBe('webp');

  expect(rc).toMatchObject({ status: 'completed', format: 'jpg', appliedQuality: 100 });
  const outC = await download(rc!.downloadUrl!);
  const mc = await sharp(outC).metadata();
  expect(mc.orientation).toBe(6);
  expect(outC.includes(Buffer.from('GPS'))).toBe(false);
  expect((await sharp(outC).raw().toBuffer()).equals(await sharp(c).raw().toBuffer())).toBe(true);
}, 120_000);

test('POST /api/compress answers with the smaller file inline and its savings', async () => {
  const png = await photo(500, 350, { format: 'png' });
  const r = await kiln.api('/api/compress', { method: 'POST', body: form([{ data: png, filename: 'shot.png' }], { quality: '70' }) });
  expect(r.status).toBe(200);
  const body = (await r.json()) as {
    files: { filename: string; originalSize: number; finalSize: number; savedPercent: number; mimeType: string; downloadUrl: string; appliedQuality: number | null }[];
  };
  const f = body.files[0]!;
  expect(f).toMatchObject({ filename: 'shot.png', mimeType: 'image/png', originalSize: png.length, appliedQuality: 70 });
  expect(f.finalSize).toBeLessThan(png.length);
  expect(f.savedPercent).toBeGreaterThan(20);
  const bytes = Buffer.from(f.downloadUrl.replace(/^data:image\/png;base64,/, ''), 'base64');
  expect(bytes.length).toBe(f.finalSize);
  expect((await sharp(bytes).metadata()).isPalette).toBe(true);
}, 60_000);

test('POST /api/compress with a target size says whether it was met, at what quality and size', async () => {
  const jpg = await photo(800, 600, { quality: 95 });
  const r = await kiln.api('/api/compress', { method: 'POST', body: form([{ data: jpg, filename: 'p.jpg' }], { mode: 'target-size', targetBytes: '30000' }) });
  expect(r.status).toBe(200);
  const f = ((await r.json()) as { files: (CompressResultJson & { mimeType: string; downloadUrl: string })[] }).files[0]!;
  expect(f).toMatchObject({ mimeType: 'image/jpeg', targetMet: true, width: expect.any(Number), height: expect.any(Number) });
  expect(f.width!).toBeLessThanOrEqual(800);
  expect(f.finalSize!).toBeLessThanOrEqual(30_000);
  expect(f.finalSize!).toBeGreaterThanOrEqual(27_000);
  expect(f.appliedQuality).toEqual(expect.any(Number));
  expect(f.encodes).toBeGreaterThan(0);
  const bytes = Buffer.from(f.downloadUrl.replace(/^data:image\/jpeg;base64,/, ''), 'base64');
  expect(bytes.length).toBe(f.finalSize);
  expect(sniff(bytes)).toBe('jpg');
  const m = await sharp(bytes).metadata();
  expect([m.width, m.height]).toEqual([f.width, f.height]);
}, 60_000);

test('an impossible target completes with targetMet:false and the reason', async () => {
  const jpg = await photo(300, 200, { quality: 90 });
  const fd = form([{ data: jpg }], { jobType: 'compress', mode: 'target-size', targetBytes: '100' });
  const { jobId } = (await (await kiln.api('/api/jobs', { method: 'POST', body: fd })).json()) as { jobId: string };
  const job = await waitForJob(kiln, jobId);
  const res = job.results[0] as unknown as CompressResultJson;
  expect(res).toMatchObject({ status: 'completed', targetMet: false });
  expect(res.targetReason).toMatch(/cannot be that small/);
  expect(res.finalSize!).toBeLessThan(jpg.length);
}, 60_000);

test('mode=target-size without targetBytes is refused before anything is queued', async () => {
  const fd = form([{ data: await photo(100, 100) }], { jobType: 'compress', modes: JSON.stringify(['target-size']) });
  const r = await kiln.api('/api/jobs', { method: 'POST', body: fd });
  expect(r.status).toBe(400);
  expect(await r.json()).toMatchObject({ code: 'invalid_field', error: expect.stringMatching(/mode=target-size needs targetBytes/) });
});
