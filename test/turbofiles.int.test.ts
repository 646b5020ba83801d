/**
 * The TurboFiles dialect end to end through real gateway and convert-worker processes: the seed
 * page's exact request on generated PNGs (landscape, portrait, smaller than the box), polled to
 * COMPLETED, the output downloaded and checked as WebP by its magic bytes with its dimensions against
 * the resize rules; a corrupt input ends FAILED with the worker's reason; and the task is the same job
 * the Convertly dialect shows.
 */
import sharp from 'sharp';
import { FILE_ERROR_CODES } from '@kiln/contracts';
import { sniff } from '@kiln/formats';
import { download, startKiln, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';
import { seedTask, turbofiles, type TfResource } from './helpers/turbofiles.ts';

let kiln: Kiln;
let tf: ReturnType<typeof turbofiles>;

beforeAll(async () => {
  // No retries: the corrupt input below fails once rather than after backoff.
  kiln = await startKiln({ apps: ['gateway', 'convert-worker'], env: { JOB_RETRY_LIMIT: '0' } });
  tf = turbofiles(kiln);
}, 120_000);
afterAll(async () => {
  await kiln?.stop();
});

/** Declares, uploads and converts one PNG with the seed's body; returns the finished task and its output file. */
async function seedRun(png: Buffer) {
  const file = await tf.declare('image/png', png.length);
  expect(file.attributes.status).toBe('AWAITING_UPLOAD');
  const put = await tf.put(file.links.upload!, png);
  expect(put.status).toBe(200);
  const created = await tf.task(seedTask(file.id));
  expect(created.status).toBe(201);
  expect(created.doc.data.attributes.status).toBe('PENDING');
  expect(created.doc.included?.map((f) => f.id)).toEqual([file.id]);
  const done = await tf.waitForTask(created.doc.data.id);
  const outputId = done.data.relationships!.output!.data!.id;
  const output = done.included!.find((f) => f.id === outputId) as TfResource;
  return { file, task: done.data, output, bytes: await download(output.links.download!) };
}

test("the seed's request: a 1600×900 PNG becomes a WebP fitted inside 640×640 (640×360), downloaded by its signed link", async () => {
  const png = await photo(1600, 900, { format: 'png' });
  const { task, output, bytes } = await seedRun(png);
  expect(task.attributes).toMatchObject({ status: 'COMPLETED', format: { input: 'image/png', output: 'image/webp' } });
  expect(Date.parse(task.attributes.started_at)).toBeLessThanOrEqual(Date.parse(task.attributes.processed_at));
  expect(sniff(bytes)).toBe('webp');
  expect(bytes.subarray(0, 4).toString('latin1')).toBe('RIFF');
  expect(bytes.subarray(8, 12).toString('latin1')).toBe('WEBP');
  const meta = await sharp(bytes).metadata();
  expect({ width: meta.width, height: meta.height }).toEqual({ width: 640, height: 360 });
  expect(task.attributes.processing_metadata).toMatchObject({ engine: 'sharp', width: 640, height: 360, input_size: png.length, output_size: bytes.length });
  expect(output.attributes).toMatchObject({ format: 'image/webp', size: bytes.length, status: 'READY' });
  // The output is a file of its own, and the task is the job the Convertly dialect shows.
  expect((await tf.file(output.id)).attributes.status).toBe('READY');
  const job = (await (await kiln.api(`/api/jobs/${task.id}`)).json()) as { status: string; results: { width: number; height: number }[] };
  expect(job.status).toBe('completed');
  expect(job.results[0]).toMatchObject({ width: 640, height: 360 });
}, 90_000);

test('both sides set fit inside the box whatever the orientation, and nothing is ever upscaled', async () => {
  const portrait = await seedRun(await photo(900, 1600, { format: 'png' }));
  expect(await sharp(portrait.bytes).metadata()).toMatchObject({ format: 'webp', width: 360, height: 640 });
  const small = await seedRun(await photo(300, 200, { format: 'png' }));
  expect(await sharp(small.bytes).metadata()).toMatchObject({ format: 'webp', width: 300, height: 200 });
}, 90_000);

test('an input that is a PNG only by its first bytes ends FAILED with the reason in processing_metadata, and no output', async () => {
  const real = await photo(64, 64, { format: 'png' });
  const broken = Buffer.concat([real.subarray(0, 64), Buffer.alloc(4096, 0x41)]);
  const file = await tf.declare('png', broken.length);
  expect((await tf.put(file.links.upload!, broken)).status).toBe(200);
  const created = await tf.task(seedTask(file.id));
  expect(created.status).toBe(201);
  const done = await tf.waitForTask(created.doc.data.id);
  expect(done.data.attributes.status).toBe('FAILED');
  const { error } = done.data.attributes.processing_metadata as { error: { code: string; message: string } };
  expect(FILE_ERROR_CODES).toContain(error.code);
  expect(error.message.length).toBeGreaterThan(10);
  expect(done.data.relationships!.output!.data).toBeNull();
}, 90_000);
