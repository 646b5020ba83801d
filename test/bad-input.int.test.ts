/**
 * Corrupt, empty, truncated, mislabelled, hostile and oversized files: each fails with a code and a
 * sentence (per file, or a 4xx for the request), never a 500, and the worker keeps serving.
 */
import sharp from 'sharp';
import pg from 'pg';
import { sniff } from '@kiln/formats';
import { download, form, startKiln, waitForJob, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';

let kiln: Kiln;
beforeAll(async () => {
  kiln = await startKiln({ env: { MAX_UPLOAD_BYTES: String(2 * 1024 * 1024), IMAGE_MAX_PIXELS: String(40_000_000), MAX_FILES_PER_JOB: '5' } });
}, 90_000);
afterAll(async () => {
  await kiln?.stop();
});

async function post(fd: FormData, p = '/api/jobs') {
  const r = await kiln.api(p, { method: 'POST', body: fd });
  return { status: r.status, body: (await r.json()) as { jobId?: string; error?: string; code?: string; detail?: Record<string, unknown> } };
}

async function countJobs(): Promise<number> {
  const c = new pg.Client({ connectionString: kiln.db.url });
  await c.connect();
  try {
    return (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs')).rows[0]!.n;
  } finally {
    await c.end();
  }
}

test('a truncated JPEG fails that file with invalid_input while its sibling succeeds', async () => {
  const good = await photo(200, 150);
  const truncated = good.subarray(0, Math.floor(good.length / 2));
  const { status, body } = await post(form([{ data: truncated }, { data: good }], { format: 'png' }));
  expect(status).toBe(200);
  const job = await waitForJob(kiln, body.jobId!);
  expect(job.status).toBe('completed');
  expect(job.failedFiles).toBe(1);
  expect(job.results[0]!.status).toBe('failed');
  expect(job.results[0]!.error).toEqual({ code: 'invalid_input', message: expect.stringMatching(/could not be decoded/) });
  expect(job.results[0]!.downloadUrl).toBeNull();
  expect(job.results[1]!.status).toBe('completed');
});

test('a job whose only file is corrupt ends failed with a message, and the sync endpoint answers 400', async () => {
  const garbage = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(2000, 7)]);
  const { body } = await post(form([{ data: garbage }], { format: 'webp' }));
  const job = await waitForJob(kiln, body.jobId!);
  expect(job.status).toBe('failed');
  expect(job.errorMessage).toMatch(/failed to convert/);
  const sync = await post(form([{ data: garbage }], { format: 'webp' }), '/api/convert');
  expect(sync.status).toBe(400);
  expect(sync.body.code).toBe('invalid_request');
  expect(sync.body.error).toMatch(/could not be decoded/);
});

test('an empty file is refused with 400 naming the file, and nothing is queued', async () => {
  const before = await countJobs();
  const { status, body } = await post(form([{ data: Buffer.alloc(0), filename: 'empty.png' }], { format: 'png' }));
  expect(status).toBe(400);
  expect(body.code).toBe('invalid_field');
  expect(body.error).toMatch(/files\[0\] \("empty\.png"\) is empty/);
  expect(await countJobs()).toBe(before);
});

test('bytes that are no known type are refused with 415', async () => {
  const { status, body } = await post(form([{ data: Buffer.from('just some text, not an image at all\n'.repeat(20)) }], { format: 'png' }));
  expect(status).toBe(415);
  expect(body.code).toBe('unsupported_format');
});

test('a mislabelled file is converted by what its bytes are, not its name', async () => {
  const png = await photo(120, 80, { format: 'png' });
  const { body } = await post(form([{ data: png, filename: 'holiday.mp4' }], { format: 'jpg' }));
  const job = await waitForJob(kiln, body.jobId!);
  expect(job.status).toBe('completed');
  expect(sniff(await download(job.results[0]!.downloadUrl!))).toBe('jpg');
});

async function blobFiles(): Promise<string[]> {
  const fs = await import('node:fs/promises');
  const entries = await fs.readdir(`${kiln.dataDir}/blobs`, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => `${e.parentPath}/${e.name}`)
    .sort();
}

test('a file over MAX_UPLOAD_BYTES is refused with 413 naming the limit, and none of its bytes are kept', async () => {
  const before = await blobFiles();
  const big = Buffer.concat([await photo(64, 64), Buffer.alloc(3 * 1024 * 1024, 1)]);
  const small = await photo(32, 32);
  const { status, body } = await post(form([{ data: small }, { data: big }], { format: 'png' }));
  expect(status).toBe(413);
  expect(body.code).toBe('file_too_large');
  expect(body.error).toMatch(/MAX_UPLOAD_BYTES/);
  expect(body.detail).toMatchObject({ limit: 'MAX_UPLOAD_BYTES', maxBytes: 2 * 1024 * 1024 });
  // Neither the partial big file nor its already-stored sibling may be left behind.
  expect(await blobFiles()).toEqual(before);
});

test('more files than MAX_FILES_PER_JOB is refused with 413 naming the limit', async () => {
  const p = await photo(16, 16);
  const { status, body } = await post(
    form(
      Array.from({ length: 6 }, () => ({ data: p })),
      { format: 'png' },
    ),
  );
  expect(status).toBe(413);
  expect(body.code).toBe('too_many_files');
  expect(body.error).toMatch(/MAX_FILES_PER_JOB/);
});

test('a decompression bomb (tiny file, huge dimensions) fails with limit_exceeded naming IMAGE_MAX_PIXELS', async () => {
  const bomb = await sharp({ create: { width: 10000, height: 10000, channels: 3, background: '#000000' } })
    .png({ compressionLevel: 9 })
    .toBuffer();
  expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
  const { body } = await post(form([{ data: bomb }], { format: 'jpg' }));
  const job = await waitForJob(kiln, body.jobId!);
  expect(job.results[0]!.error!.code).toBe('limit_exceeded');
  expect(job.results[0]!.error!.message).toMatch(/IMAGE_MAX_PIXELS/);
});

test('after all of that the workers are still serving', async () => {
  const { body } = await post(form([{ data: await photo(100, 100) }], { format: 'webp' }));
  const job = await waitForJob(kiln, body.jobId!);
  expect(job.status).toBe('completed');
  for (const app of ['gateway', 'convert-worker', 'compress-worker'] as const) expect(kiln.procs.get(app)!.exitCode).toBeNull();
  expect(kiln.logs()).not.toMatch(/\[gateway\] .*"msg":"unhandled error"/);
});
