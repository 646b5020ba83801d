/**
 * TurboFiles uploads straight to the bucket (STORAGE=s3, UPLOAD_DIRECT=s3) against the test S3 server:
 * links.upload is a presigned PUT with the declared length signed in, the gateway never sees the
 * bytes, and the file turns READY when it is next read, after the stored object's size and type are
 * checked. The test server checks no signatures, so it stores a wrong length or wrong bytes that
 * real S3 would refuse for the length: those objects are deleted and the file keeps awaiting its upload.
 */
import sharp from 'sharp';
import { sniff } from '@kiln/formats';
import { download, startKiln, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';
import { seedTask, turbofiles } from './helpers/turbofiles.ts';
import { startS3Server, type S3Server } from '../scripts/s3-server.ts';

let s3: S3Server;
let kiln: Kiln;
let tf: ReturnType<typeof turbofiles>;
let png: Buffer;

beforeAll(async () => {
  s3 = await startS3Server();
  kiln = await startKiln({ apps: ['gateway', 'convert-worker'], env: { ...s3.env, UPLOAD_DIRECT: 's3' } });
  tf = turbofiles(kiln);
  png = await photo(800, 600, { format: 'png' });
}, 180_000);
afterAll(async () => {
  await kiln?.stop();
  await s3?.stop();
});

const objectOf = async (fileId: string) => (await s3.objects()).filter((k) => k.includes(`uploads/${fileId}/`));

test('a presigned PUT straight to the bucket: READY on the next read, then converted like any file', async () => {
  const file = await tf.declare('image/png', png.length);
  const link = new URL(file.links.upload!);
  expect(link.origin).toBe(s3.endpoint);
  expect(link.pathname).toBe(`/${s3.bucket}/uploads/${file.id}/direct`);
  expect(link.searchParams.get('X-Amz-Signature')).toBeTruthy();
  // The declared length is part of what is signed.
  expect(link.searchParams.get('X-Amz-SignedHeaders')).toContain('content-length');
  expect(Number(link.searchParams.get('X-Amz-Expires'))).toBe(3600);

  // Until the bytes are there, the file awaits them (and a task on it is refused).
  expect((await tf.file(file.id)).attributes.status).toBe('AWAITING_UPLOAD');
  expect((await tf.put(link.toString(), png)).status).toBe(200);
  expect((await s3.storedBytes((await objectOf(file.id))[0]!)).equals(png)).toBe(true);
  const ready = await tf.file(file.id);
  expect(ready.attributes.status).toBe('READY');
  expect(ready.links.upload).toBeUndefined();
  expect(sniff(await download(ready.links.download!))).toBe('png');

  const created = await tf.task(seedTask(file.id));
  expect(created.status).toBe(201);
  const done = await tf.waitForTask(created.doc.data.id);
  expect(done.data.attributes.status).toBe('COMPLETED');
  const output = done.included!.find((f) => f.id === done.data.relationships!.output!.data!.id)!;
  const bytes = await download(output.links.download!);
  expect(await sharp(bytes).metadata()).toMatchObject({ format: 'webp', width: 640, height: 480 });
}, 90_000);

test('bytes of the wrong length or the wrong type are deleted from the bucket on the next read, and the file keeps awaiting its upload', async () => {
  const jobCount = async () => ((await (await kiln.api('/api/jobs')).json()) as { pagination: { total: number } }).pagination.total;
  const jobsBefore = await jobCount();
  const short = await tf.declare('image/png', png.length);
  expect((await tf.put(short.links.upload!, png.subarray(0, png.length - 100))).status).toBe(200);
  const afterShort = await tf.file(short.id);
  expect(afterShort.attributes.status).toBe('AWAITING_UPLOAD');
  expect(afterShort.meta?.upload_error).toMatch(new RegExp(`exactly ${png.length} bytes.*${png.length - 100} were stored`));
  expect(await objectOf(short.id)).toEqual([]);

  const jpeg = await sharp(png).jpeg().toBuffer();
  const wrong = await tf.declare('image/png', jpeg.length);
  expect((await tf.put(wrong.links.upload!, jpeg)).status).toBe(200);
  // A task is where a client usually finds out: it settles the file first, and is refused.
  const refused = await tf.task(seedTask(wrong.id));
  expect(refused.status).toBe(409);
  expect(refused.doc.errors![0]).toMatchObject({ code: 'file_not_ready', detail: expect.stringMatching(/image\/jpeg.*not the declared image\/png/) });
  expect(await objectOf(wrong.id)).toEqual([]);
  expect((await tf.file(wrong.id)).attributes.status).toBe('AWAITING_UPLOAD');

  // The same link still takes the right bytes afterwards.
  expect((await tf.put(short.links.upload!, png)).status).toBe(200);
  expect((await tf.file(short.id)).attributes.status).toBe('READY');
  expect(await jobCount()).toBe(jobsBefore);
}, 90_000);
