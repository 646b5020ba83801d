/**
 * The field validation table (API.md §2.1): every field, singular vs array, wrong lengths, bad JSON,
 * out of range → 400 naming the field; nothing is stored or queued. Runs createApp in-process with
 * real Postgres and pg-boss (no workers needed: nothing may reach the queue).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import request from 'supertest';
import sharp from 'sharp';
import { startTestGateway, type TestGateway } from './helpers.ts';

let gw: TestGateway;
let db: TestGateway['db'];
let app: TestGateway['app'];
let dataDir: string;
let KEY: string;
let png: Buffer;

beforeAll(async () => {
  gw = await startTestGateway('fields');
  ({ db, app, dataDir, key: KEY } = gw);
  png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#00ff00' } })
    .png()
    .toBuffer();
}, 60_000);
afterAll(async () => {
  await gw?.close();
});

function post(fields: Record<string, string>, files = 2) {
  let r = request(app).post('/api/jobs').set('Authorization', `Bearer ${KEY}`);
  for (const [k, v] of Object.entries(fields)) r = r.field(k, v);
  for (let i = 0; i < files; i++) r = r.attach('files', png, `f${i}.png`);
  return r;
}

async function queuedCount(): Promise<{ jobs: number; messages: number }> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const jobs = (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs')).rows[0]!.n;
    const messages = (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pgboss.job')).rows[0]!.n;
    return { jobs, messages };
  } finally {
    await c.end();
  }
}

async function blobCount(): Promise<number> {
  const entries = await fs.readdir(path.join(dataDir, 'blobs'), { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).length;
}

// [what, fields, expected field in detail, message pattern]
const CASES: [string, Record<string, string>, string, RegExp][] = [
  ['format missing', {}, 'format', /format is required/],
  ['format unknown', { format: 'bmp' }, 'format', /format must be one of jpg, png/],
  ['formats not JSON', { formats: '[png,jpg' }, 'formats', /not valid JSON/],
  ['formats not an array', { formats: '"png"' }, 'formats', /must be a JSON array/],
  ['formats wrong length', { formats: '["png"]' }, 'formats', /has 1 entries but 2 file/],
  ['formats bad entry', { formats: '["png","bmp"]' }, 'formats', /formats\[1\] must be one of/],
  ['resize unknown', { format: 'png', resize: 'huge' }, 'resize', /resize must be one of original, website/],
  ['resizes wrong length', { format: 'png', resizes: '["email","email","email"]' }, 'resizes', /has 3 entries/],
  ['resize=width without resizeWidth', { format: 'png', resize: 'width' }, 'resizeWidth', /needs resizeWidth/],
  ['resize=height without resizeHeight', { format: 'png', resize: 'height' }, 'resizeHeight', /needs resizeHeight/],
  ['resizeWidth zero', { format: 'png', resize: 'width', resizeWidth: '0' }, 'resizeWidth', /integer ≥ 1/],
  ['resizeWidths bad entry', { format: 'png', resizeWidths: '[100,"wide"]' }, 'resizeWidths', /resizeWidths\[1\]/],
  ['resizeHeights wrong length', { format: 'png', resizeHeights: '[1]' }, 'resizeHeights', /has 1 entries/],
  ['compression over 100', { format: 'jpg', compression: '101' }, 'compression', /from 1 to 100/],
  ['compression not a number', { format: 'jpg', compression: 'high' }, 'compression', /from 1 to 100/],
  ['compressions bad entry', { format: 'jpg', compressions: '[80,0]' }, 'compressions', /compressions\[1\] must be an integer from 1 to 100/],
  ['quality out of range', { format: 'jpg', quality: '0' }, 'quality', /from 1 to 100/],
  ['autoOrient not a boolean', { format: 'png', autoOrient: 'yes' }, 'autoOrient', /"true" or "false"/],
  ['autoOrients bad entry', { format: 'png', autoOrients: '[true,"maybe"]' }, 'autoOrients', /autoOrients\[1\]/],
  ['mono not a boolean', { format: 'png', mono: '1' }, 'mono', /"true" or "false"/],
  ['monos wrong length', { format: 'png', monos: '[true]' }, 'monos', /has 1 entries/],
  ['jobType unknown', { format: 'png', jobType: 'resize' }, 'jobType', /jobType must be one of convert, compress/],
  ['createArchive not a boolean', { format: 'png', createArchive: 'please' }, 'createArchive', /"true" or "false"/],
  ['saveToStorage not a boolean', { format: 'png', saveToStorage: 'yes' }, 'saveToStorage', /"true" or "false"/],
  ['mode unknown', { jobType: 'compress', mode: 'smallest' }, 'mode', /one of quality, target-size/],
  ['target-size without targetBytes', { jobType: 'compress', mode: 'target-size' }, 'targetBytes', /needs targetBytes/],
  ['targetBytes negative', { jobType: 'compress', mode: 'target-size', targetBytes: '-5' }, 'targetBytes', /integer ≥ 1/],
  ['targetByteValues wrong length', { jobType: 'compress', modes: '["target-size","target-size"]', targetByteValues: '[1000]' }, 'targetByteValues', /has 1 entries/],
  ['losslessValues bad JSON', { jobType: 'compress', losslessValues: '{' }, 'losslessValues', /not valid JSON/],
  ['stripMetadataValues bad entry', { jobType: 'compress', stripMetadataValues: '[true,"no"]' }, 'stripMetadataValues', /stripMetadataValues\[1\]/],
];

describe('invalid fields are refused with 400, naming the field, and nothing is stored or queued', () => {
  test.each(CASES)('%s', async (_what, fields, field, message) => {
    const res = await post(fields);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('invalid_field');
    expect(res.body.detail.field).toBe(field);
    expect(res.body.error).toMatch(message);
    expect(await queuedCount()).toEqual({ jobs: 0, messages: 0 });
    expect(await blobCount()).toBe(0);
  });
});

test('an unsupported pair is 415 naming the pair and what would work, RAR output gets its own sentence', async () => {
  const res = await post({ format: 'mp3' }, 1);
  expect(res.status).toBe(415);
  expect(res.body.error).toMatch(/png, which cannot be converted to mp3; it converts to jpg, png, webp/);
  expect(res.body.detail).toMatchObject({ input: 'png', output: 'mp3' });
  const rar = await post({ format: 'rar' }, 1);
  expect(rar.status).toBe(415);
  expect(rar.body.error).toMatch(/RAR archives cannot be created with free software; choose zip or 7z/);
  expect(await queuedCount()).toEqual({ jobs: 0, messages: 0 });
});

test('valid singular and array forms are accepted: jpeg alias, string booleans, nulls, files[N] fields', async () => {
  let r = request(app)
    .post('/api/jobs')
    .set('Authorization', `Bearer ${KEY}`)
    .field('formats', '["jpeg","webp"]')
    .field('resizes', '["width","original"]')
    .field('resizeWidths', '[4,null]')
    .field('autoOrients', '["false",true]')
    .field('compressions', '["70",90]')
    .field('createArchive', 'true');
  r = r.attach('files[1]', png, 'second.png').attach('files[0]', png, 'first.png');
  const res = await r;
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ jobId: expect.stringMatching(/^[0-9a-f-]{36}$/), status: 'pending' });
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  const files = (await c.query(`SELECT idx, filename, options FROM job_files WHERE job_id = $1 ORDER BY idx`, [res.body.jobId])).rows;
  const msgs = (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'convert.image'`)).rows[0]!.n;
  await c.end();
  expect(files.map((f) => f.filename)).toEqual(['first.png', 'second.png']);
  expect(files[0].options).toMatchObject({ format: 'jpg', resize: 'width', resizeWidth: 4, autoOrient: false, quality: 70 });
  expect(files[1].options).toMatchObject({ format: 'webp', resize: 'original', resizeWidth: null, autoOrient: true, quality: 90 });
  expect(msgs).toBe(2);
});

test('a request that is not multipart is a 400 that says what to send', async () => {
  const res = await request(app).post('/api/jobs').set('Authorization', `Bearer ${KEY}`).send({ format: 'png' });
  expect(res.status).toBe(400);
  expect(res.body.error).toMatch(/multipart\/form-data/);
});

test('a file in an unexpected field is a 400 naming the field', async () => {
  const res = await request(app).post('/api/jobs').set('Authorization', `Bearer ${KEY}`).field('format', 'png').attach('image', png, 'x.png');
  expect(res.status).toBe(400);
  expect(res.body.detail.field).toBe('image');
});

test('no files at all is a 400', async () => {
  const res = await request(app).post('/api/jobs').set('Authorization', `Bearer ${KEY}`).field('format', 'png');
  expect(res.status).toBe(400);
  expect(res.body.error).toMatch(/at least one file/);
});
