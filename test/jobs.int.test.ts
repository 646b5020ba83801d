/**
 * The README's curl flow, end to end: real gateway and workers as processes, real Postgres and
 * pg-boss, real sharp. Outputs are checked by magic bytes, dimensions, orientation and pixels.
 */
import crypto from 'node:crypto';
import sharp from 'sharp';
import yauzl from 'yauzl';
import { sniff } from '@kiln/formats';
import { download, form, startKiln, waitForJob, type Kiln } from './helpers/kiln.ts';
import { animatedGif, photo, pixelDiff, regionColour } from './helpers/images.ts';

let kiln: Kiln;
beforeAll(async () => {
  kiln = await startKiln();
}, 90_000);
afterAll(async () => {
  await kiln?.stop();
});

async function submit(fd: FormData, headers: Record<string, string> = {}): Promise<string> {
  const r = await kiln.api('/api/jobs', { method: 'POST', body: fd, headers });
  const body = (await r.json()) as { jobId: string; status: string };
  expect(r.status).toBe(200);
  expect(body.status).toBe('pending');
  return body.jobId;
}

function zipNames(buf: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const names: string[] = [];
      zip.on('entry', (e: yauzl.Entry) => {
        names.push(e.fileName);
        zip.readEntry();
      });
      zip.on('end', () => resolve(names));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

test('a PNG uploaded as `upload` converts to WebP at the email preset and downloads without a key', async () => {
  const png = await photo(1600, 1000, { format: 'png' });
  const jobId = await submit(form([{ data: png }], { format: 'webp', resize: 'email' }));
  const job = await waitForJob(kiln, jobId);
  expect(job.status).toBe('completed');
  expect(job.progress).toBe(100);
  const r = job.results[0]!;
  expect(r).toMatchObject({ status: 'completed', format: 'webp', mimeType: 'image/webp', width: 600, height: 375, appliedQuality: 82, filename: 'upload.webp' });
  expect(r.downloadUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/files\/[0-9a-f-]+\?exp=\d+&sig=/);
  const out = await download(r.downloadUrl!);
  expect(sniff(out)).toBe('webp');
  expect(out.length).toBe(r.finalSize);
  const meta = await sharp(out).metadata();
  expect([meta.width, meta.height]).toEqual([600, 375]);
  expect(await pixelDiff(png, out)).toBeLessThan(12);
});

test('per-file arrays: each file gets its own format, resize and quality, and EXIF orientation is applied', async () => {
  // Stored landscape 400×200 with a red block top-left, tagged "rotate 90° clockwise" (6).
  const rotated = await photo(400, 200, { orientation: 6, marker: true });
  const plain = await photo(300, 300, { format: 'png' });
  const fd = form(
    [
      { data: rotated, filename: 'phone.jpg' },
      { data: plain, filename: 'art.png' },
    ],
    {
      formats: JSON.stringify(['png', 'jpeg']),
      resizes: JSON.stringify(['original', 'width']),
      resizeWidths: JSON.stringify([null, 120]),
      compressions: JSON.stringify([90, 40]),
    },
  );
  const job = await waitForJob(kiln, await submit(fd));
  expect(job.status).toBe('completed');
  const [a, b] = job.results;
  expect(a).toMatchObject({ filename: 'phone.png', format: 'png', width: 200, height: 400 });
  expect(b).toMatchObject({ filename: 'art.jpg', format: 'jpg', width: 120, height: 120, appliedQuality: 40 });
  const outA = await download(a!.downloadUrl!);
  expect(sniff(outA)).toBe('png');
  // After a 90° clockwise turn the stored top-left block shows at the top-right.
  const topRight = await regionColour(outA, 0.85, 0.02, 0.1, 0.1);
  const topLeft = await regionColour(outA, 0.02, 0.02, 0.1, 0.1);
  expect(topRight.r).toBeGreaterThan(200);
  expect(topRight.g).toBeLessThan(80);
  expect(topLeft.g).toBeGreaterThan(80);
  expect(sniff(await download(b!.downloadUrl!))).toBe('jpg');
});

test('autoOrient=false keeps the stored pixel orientation', async () => {
  const rotated = await photo(400, 200, { orientation: 6, marker: true });
  const job = await waitForJob(kiln, await submit(form([{ data: rotated }], { format: 'png', autoOrient: 'false' })));
  expect(job.results[0]).toMatchObject({ width: 400, height: 200 });
});

test('an animated GIF stays animated as WebP', async () => {
  const gif = await animatedGif(64, 48, 4);
  expect((await sharp(gif, { animated: true }).metadata()).pages).toBe(4);
  const job = await waitForJob(kiln, await submit(form([{ data: gif }], { format: 'webp' })));
  const out = await download(job.results[0]!.downloadUrl!);
  expect(sniff(out)).toBe('webp');
  const meta = await sharp(out, { animated: true }).metadata();
  expect(meta.pages).toBe(4);
  expect(meta.pageHeight ?? meta.height).toBe(48);
});

test('every raster target produces its real format', async () => {
  const src = await photo(320, 240);
  const targets = ['jpg', 'png', 'webp', 'avif', 'tiff', 'gif', 'heif'] as const;
  const fd = form(
    targets.map(() => ({ data: src })),
    { formats: JSON.stringify(targets) },
  );
  const job = await waitForJob(kiln, await submit(fd));
  expect(job.status).toBe('completed');
  for (const [i, t] of targets.entries()) {
    const out = await download(job.results[i]!.downloadUrl!);
    // AV1-coded HEIF carries an `avif` brand; the result names it image/heif.
    expect(sniff(out)).toBe(t === 'heif' ? 'avif' : t);
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height]).toEqual([320, 240]);
  }
});

test('createArchive adds one zip of all outputs to the job', async () => {
  const src = await photo(200, 100);
  const job = await waitForJob(
    kiln,
    await submit(
      form(
        [
          { data: src, filename: 'a.jpg' },
          { data: src, filename: 'a.jpg' },
        ],
        { format: 'png', createArchive: 'true' },
      ),
    ),
  );
  expect(job.status).toBe('completed');
  expect(job.archive).not.toBeNull();
  const zip = await download(job.archive!.downloadUrl);
  expect(sniff(zip)).toBe('zip');
  expect(zip.length).toBe(job.archive!.size);
  expect((await zipNames(zip)).sort()).toEqual(['a (1).png', 'a.png']);
});

test('the sync endpoint answers with the result inline and keeps nothing by default', async () => {
  const src = await photo(300, 200);
  const r = await kiln.api('/api/convert', { method: 'POST', body: form([{ data: src }], { format: 'png', resize: 'square', resizeWidth: '100' }) });
  expect(r.status).toBe(200);
  const body = (await r.json()) as { files: { downloadUrl: string; mimeType: string; finalSize: number }[]; storage: { saved: boolean } };
  expect(body.storage.saved).toBe(false);
  const [f] = body.files;
  expect(f!.downloadUrl.startsWith('data:image/png;base64,')).toBe(true);
  const bytes = Buffer.from(f!.downloadUrl.split(',')[1]!, 'base64');
  expect(bytes.length).toBe(f!.finalSize);
  const meta = await sharp(bytes).metadata();
  expect([meta.width, meta.height]).toEqual([100, 100]);
});

test('the sync endpoint with saveToStorage=true returns a signed URL', async () => {
  const src = await photo(300, 200);
  const r = await kiln.api('/api/convert', { method: 'POST', body: form([{ data: src }], { format: 'webp', saveToStorage: 'true' }) });
  const body = (await r.json()) as { files: { downloadUrl: string }[]; storage: { saved: boolean } };
  expect(body.storage.saved).toBe(true);
  expect(sniff(await download(body.files[0]!.downloadUrl))).toBe('webp');
});

test('the sync endpoint returns the file itself with download=1 or Accept: application/octet-stream', async () => {
  const src = await photo(300, 200);
  const r = await kiln.api('/api/convert?download=1', { method: 'POST', body: form([{ data: src }], { format: 'webp', resize: 'width', resizeWidth: '120' }) });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toBe('image/webp');
  expect(r.headers.get('content-disposition')).toContain('.webp');
  const jobId = r.headers.get('kiln-job-id')!;
  const bytes = Buffer.from(await r.arrayBuffer());
  expect(bytes.length).toBe(Number(r.headers.get('content-length')));
  expect(sniff(bytes)).toBe('webp');
  expect((await sharp(bytes).metadata()).width).toBe(120);
  // Without saveToStorage nothing is kept, as for the inline answer.
  const job = (await (await kiln.api(`/api/jobs/${jobId}`)).json()) as { status: string; results: { downloadUrl: string | null }[] };
  expect(job.status).toBe('completed');
  expect(job.results[0]!.downloadUrl).toBeNull();

  const saved = await kiln.api('/api/convert', {
    method: 'POST',
    headers: { accept: 'application/octet-stream' },
    body: form([{ data: src }], { format: 'png', saveToStorage: 'true' }),
  });
  expect(saved.status).toBe(200);
  expect(sniff(Buffer.from(await saved.arrayBuffer()))).toBe('png');
  expect(saved.headers.get('kiln-stored-file-id')).toMatch(/^[0-9a-f-]{36}$/);
  const kept = (await (await kiln.api(`/api/jobs/${saved.headers.get('kiln-job-id')}`)).json()) as { results: { downloadUrl: string | null }[] };
  expect(sniff(await download(kept.results[0]!.downloadUrl!))).toBe('png');

  // A bad input gets the usual JSON error, not bytes.
  const bad = await kiln.api('/api/convert?download=1', { method: 'POST', body: form([{ data: Buffer.from('not an image at all'), filename: 'x.png' }], { format: 'webp' }) });
  expect(bad.status).toBeGreaterThanOrEqual(400);
  expect(bad.headers.get('content-type')).toContain('application/json');
});

test('download=1 with several files, or a bad download value, is refused before any job exists', async () => {
  const before = ((await (await kiln.api('/api/jobs?limit=1')).json()) as { pagination: { total: number } }).pagination.total;
  const many = await kiln.api('/api/convert?download=1', { method: 'POST', body: form([{ data: await photo(20, 20) }, { data: await photo(20, 20) }], { format: 'png' }) });
  expect(many.status).toBe(400);
  const body = (await many.json()) as { code: string; error: string };
  expect(body.code).toBe('invalid_field');
  expect(body.error).toContain('has 2');
  const odd = await kiln.api('/api/convert?download=yes', { method: 'POST', body: form([{ data: await photo(20, 20) }], { format: 'png' }) });
  expect(odd.status).toBe(400);
  const after = ((await (await kiln.api('/api/jobs?limit=1')).json()) as { pagination: { total: number } }).pagination.total;
  expect(after).toBe(before);
});

test('a tampered or expired download signature is refused', async () => {
  const job = await waitForJob(kiln, await submit(form([{ data: await photo(50, 50) }], { format: 'png' })));
  const url = new URL(job.results[0]!.downloadUrl!);
  // Always a different first character: a fixed replacement would equal it one time in 64.
  const sig = url.searchParams.get('sig')!;
  url.searchParams.set('sig', (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1));
  expect((await fetch(url)).status).toBe(404);
  url.searchParams.set('exp', '1000');
  expect((await fetch(url)).status).toBe(404);
});

test('jobs are listed newest first with pagination', async () => {
  const r = await kiln.api('/api/jobs?limit=2&offset=0');
  const body = (await r.json()) as { jobs: { jobId: string; status: string }[]; pagination: { limit: number; offset: number; total: number; hasMore: boolean } };
  expect(r.status).toBe(200);
  expect(body.jobs).toHaveLength(2);
  expect(body.pagination.total).toBeGreaterThanOrEqual(6);
  expect(body.pagination.hasMore).toBe(true);
  const completed = (await (await kiln.api('/api/jobs?status=completed&limit=100')).json()) as { jobs: { status: string }[] };
  expect(completed.jobs.every((j) => j.status === 'completed')).toBe(true);
  expect((await kiln.api('/api/jobs?limit=500')).status).toBe(400);
});

test('keyset paging: nextAfter leads through every job once; a bad or foreign cursor is a 400 naming after', async () => {
  type Page = { jobs: { jobId: string }[]; pagination: { hasMore: boolean; nextAfter: string | null; after?: string; total: number } };
  for (let i = 0; i < 5; i++) await submit(form([{ data: await photo(8, 8) }], { format: 'png' }));
  const everything = (await (await kiln.api('/api/jobs?limit=100')).json()) as Page;
  const walked: string[] = [];
  let next: string | null = null;
  for (let i = 0; i < 100; i++) {
    const r = await kiln.api(`/api/jobs?limit=2${next ? `&after=${next}` : ''}`);
    expect(r.status).toBe(200);
    const page = (await r.json()) as Page;
    if (next) expect(page.pagination.after).toBe(next);
    walked.push(...page.jobs.map((j) => j.jobId));
    expect(page.pagination.nextAfter).toBe(page.pagination.hasMore ? page.jobs.at(-1)!.jobId : null);
    next = page.pagination.nextAfter;
    if (!next) break;
  }
  expect(walked).toEqual(everything.jobs.map((j) => j.jobId));
  expect(walked.length).toBeGreaterThanOrEqual(5);
  for (const bad of ['nope', crypto.randomUUID()]) {
    const r = await kiln.api(`/api/jobs?after=${bad}`);
    expect(r.status).toBe(400);
    const body = (await r.json()) as { code: string; error: string };
    expect(body.code).toBe('invalid_field');
    expect(body.error).toMatch(/^after: /);
  }
});
