/**
 * Archives, HEIC, SVG and PDF through the real job API: real gateway and workers as processes, real
 * Postgres and pg-boss, real engines. Per-file failures (a `../` entry, a zip bomb) are recorded on
 * their file while the rest of the job goes on.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import yauzl from 'yauzl';
import { sniff } from '@kiln/formats';
import { rawZip } from '../packages/codec/test/helpers/archive-fixtures.ts';
import { download, form, startKiln, waitForJob, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';

const HEIC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../packages/codec/test/fixtures/two-blocks.heic');

let kiln: Kiln;
beforeAll(async () => {
  kiln = await startKiln({ apps: ['gateway', 'convert-worker', 'compress-worker'] });
}, 90_000);
afterAll(async () => {
  await kiln?.stop();
});

async function submit(fd: FormData): Promise<string> {
  const r = await kiln.api('/api/jobs', { method: 'POST', body: fd });
  const body = (await r.json()) as { jobId: string };
  expect(r.status).toBe(200);
  return body.jobId;
}

function zipEntries(buf: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const out = new Map<string, Buffer>();
      zip.on('entry', (e: yauzl.Entry) => {
        zip.openReadStream(e, (e2, s) => {
          if (e2 || !s) return reject(e2);
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c));
          s.on('end', () => {
            out.set(e.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

test('a photo becomes a zip holding it under its uploaded name; a zip of images converts entry by entry into a zip', async () => {
  const png = await photo(120, 80, { format: 'png' });
  const jpg = await photo(90, 60);
  const album = rawZip([
    { name: 'a.png', data: png },
    { name: 'trip/b.jpg', data: jpg },
    { name: 'readme.txt', data: 'hi' },
  ]);
  const fd = form(
    [
      { data: png, filename: 'cover.png' },
      { data: album, filename: 'album.zip' },
    ],
    { formats: JSON.stringify(['zip', 'webp']) },
  );
  const job = await waitForJob(kiln, await submit(fd));
  expect(job.status).toBe('completed');
  const [wrapped, batch] = job.results;
  expect(wrapped).toMatchObject({ status: 'completed', format: 'zip', mimeType: 'application/zip', filename: 'cover.zip' });
  const inWrapped = await zipEntries(await download(wrapped!.downloadUrl!));
  expect([...inWrapped.keys()]).toEqual(['cover.png']);
  expect(inWrapped.get('cover.png')!.equals(png)).toBe(true);

  expect(batch).toMatchObject({ status: 'completed', format: 'zip', mimeType: 'application/zip', filename: 'album.zip' });
  const inBatch = await zipEntries(await download(batch!.downloadUrl!));
  expect([...inBatch.keys()].sort()).toEqual(['a.webp', 'trip/b.webp']);
  expect(sniff(inBatch.get('trip/b.webp')!)).toBe('webp');
  expect(batch!.notes).toEqual(expect.arrayContaining([expect.stringMatching(/^readme\.txt: /)]));
});

test('a zip with a ../ entry and a zip bomb fail on their own with clean codes while a 7z repack in the same job succeeds', async () => {
  const evil = rawZip([
    { name: 'ok.txt', data: 'ok' },
    { name: '../evil.txt', data: 'pwned' },
  ]);
  const bomb = rawZip([{ name: 'zeros.bin', data: Buffer.alloc(30 * 1024 * 1024), deflate: true }]);
  const good = rawZip([{ name: 'docs/a.txt', data: 'hello' }]);
  const fd = form(
    [
      { data: evil, filename: 'evil.zip' },
      { data: bomb, filename: 'bomb.zip' },
      { data: good, filename: 'good.zip' },
    ],
    { format: '7z' },
  );
  const job = await waitForJob(kiln, await submit(fd));
  expect(job.status).toBe('completed');
  const [e, b, g] = job.results;
  expect(e).toMatchObject({ status: 'failed', error: { code: 'invalid_input', message: expect.stringMatching(/outside its folder.*\.\.\/evil\.txt/) } });
  expect(b).toMatchObject({ status: 'failed', error: { code: 'limit_exceeded', message: expect.stringMatching(/ARCHIVE_MAX_EXPANSION_RATIO/) } });
  expect(g).toMatchObject({ status: 'completed', format: '7z', filename: 'good.7z' });
  expect(sniff(await download(g!.downloadUrl!))).toBe('7z');
  await expect(fs.access(path.join(kiln.dataDir, '..', 'evil.txt'))).rejects.toThrow();
});

test('asking for rar is refused at submission with the free-software sentence', async () => {
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: await photo(20, 20) }], { format: 'rar' }) });
  expect(r.status).toBe(415);
  expect(((await r.json()) as { error: string }).error).toMatch(/RAR archives cannot be created with free software; choose zip or 7z\./);
});

test('HEIC converts to JPEG, and a compress job on HEIC returns a JPEG', async () => {
  const heic = await fs.readFile(HEIC);
  const job = await waitForJob(kiln, await submit(form([{ data: heic, filename: 'IMG_0001.HEIC' }], { format: 'jpg' })));
  expect(job.results[0]).toMatchObject({ status: 'completed', format: 'jpg', width: 320, height: 200, filename: 'IMG_0001.jpg' });
  expect(sniff(await download(job.results[0]!.downloadUrl!))).toBe('jpg');
  const c = await waitForJob(kiln, await submit(form([{ data: heic, filename: 'IMG_0002.HEIC' }], { jobType: 'compress' })));
  expect(c.results[0]).toMatchObject({ status: 'completed', format: 'jpg' });
});

test('PNG → SVG (mono), SVG → PNG, JPEG → PDF and PDF → PNG in one job', async () => {
  const png = await sharp(
    Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80"><rect width="120" height="80" fill="#fff"/><rect x="20" y="20" width="40" height="40" fill="#000"/></svg>',
    ),
  )
    .png()
    .toBuffer();
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="32"><rect width="64" height="32" fill="#0a0"/></svg>');
  const jpg = await photo(200, 100);
  const pdfJob = await waitForJob(kiln, await submit(form([{ data: jpg, filename: 'scan.jpg' }], { format: 'pdf' })));
  const pdf = await download(pdfJob.results[0]!.downloadUrl!);
  expect(pdf.includes(jpg)).toBe(true);
  const fd = form(
    [
      { data: png, filename: 'logo.png' },
      { data: svg, filename: 'icon.svg' },
      { data: pdf, filename: 'scan.pdf' },
    ],
    {
      formats: JSON.stringify(['svg', 'png', 'png']),
      monos: JSON.stringify([true, false, false]),
    },
  );
  const job = await waitForJob(kiln, await submit(fd));
  expect(job.status).toBe('completed');
  const [traced, rendered, page] = job.results;
  expect(traced).toMatchObject({ status: 'completed', format: 'svg', mimeType: 'image/svg+xml', filename: 'logo.svg' });
  expect(sniff(await download(traced!.downloadUrl!))).toBe('svg');
  expect(rendered).toMatchObject({ status: 'completed', format: 'png', width: 64, height: 32 });
  expect(page).toMatchObject({ status: 'completed', format: 'png' });
  const pageMeta = await sharp(await download(page!.downloadUrl!)).metadata();
  expect(pageMeta.width).toBeGreaterThan(400);
});

test('GET /api/formats lists archive, SVG and PDF targets for images and image targets for PDF and HEIC', async () => {
  const body = (await (await kiln.api('/api/formats')).json()) as { inputs: { input: string; convertTo: string[] }[] };
  const of = (k: string) => body.inputs.find((i) => i.input === k)!.convertTo;
  expect(of('png')).toEqual(expect.arrayContaining(['svg', 'pdf', 'zip', '7z', 'gz', 'xz']));
  expect(of('png')).not.toContain('rar');
  expect(of('pdf')).toEqual(expect.arrayContaining(['png', 'jpg', 'zip']));
  expect(of('heic')).toEqual(expect.arrayContaining(['jpg', 'png', 'pdf', 'svg']));
  expect(of('rar')).toEqual(expect.arrayContaining(['zip', '7z', 'png']));
});
