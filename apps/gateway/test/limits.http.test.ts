/**
 * Per-key limits through createApp with real Postgres and pg-boss (no workers, so jobs stay pending):
 * each limit's status, headers and message; server-wide defaults; isolation between keys.
 */
import type pg from 'pg';
import request from 'supertest';
import sharp from 'sharp';
import type { KeyLimits } from '@kiln/contracts';
import { createApiKey } from '@kiln/db';
import { createApp } from '../src/app.ts';
import { startTestGateway, type TestGateway } from './helpers.ts';
import { until } from '../../../test/helpers/kiln.ts';

let gw: TestGateway;
let deps: TestGateway['deps'];
let app: TestGateway['app'];
let client: pg.Client;
let png: Buffer;

beforeAll(async () => {
  gw = await startTestGateway('limits');
  ({ deps, app, client } = gw);
  png = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#3366ff' } })
    .png()
    .toBuffer();
}, 60_000);
afterAll(async () => {
  await gw?.close();
});

const newKey = async (limits: KeyLimits = {}) => (await createApiKey(client, `test ${Object.keys(limits).join(',') || 'plain'}`, limits)).key;

function postJob(key: string, fields: Record<string, string> = { format: 'webp' }, files = 1, target = app) {
  let r = request(target).post('/api/jobs').set('Authorization', `Bearer ${key}`);
  for (const [k, v] of Object.entries(fields)) r = r.field(k, v);
  for (let i = 0; i < files; i++) r = r.attach('files', png, `f${i}.png`);
  return r;
}

/** Fixed windows are per calendar minute: don't start a burst in the last seconds of one. */
async function awayFromMinuteEdge(): Promise<void> {
  await until('a fresh minute window', async () => new Date().getSeconds() < 50, 15_000, 250);
}

test('a key over its requests per minute gets 429 with Retry-After and X-RateLimit headers; the window is shared by every request of the key', async () => {
  const key = await newKey({ requestsPerMinute: 3 });
  await awayFromMinuteEdge();
  const remaining: string[] = [];
  for (let i = 0; i < 3; i++) {
    const ok = await request(app).get('/api/jobs').set('Authorization', `Bearer ${key}`);
    expect(ok.status).toBe(200);
    expect(ok.headers['x-ratelimit-limit']).toBe('3');
    const reset = Number(ok.headers['x-ratelimit-reset']);
    expect(reset * 1000).toBeGreaterThan(Date.now() - 2000);
    expect(reset * 1000).toBeLessThanOrEqual(Date.now() + 61_000);
    remaining.push(ok.headers['x-ratelimit-remaining']!);
  }
  expect(remaining).toEqual(['2', '1', '0']);
  // POST counts too, and is refused before any upload is looked at.
  const over = await postJob(key);
  expect(over.status).toBe(429);
  expect(over.body.code).toBe('rate_limited');
  expect(over.body.error).toMatch(/This key may make 3 requests per minute and has used them; retry in \d+ s \(Retry-After\)/);
  expect(over.body.detail).toMatchObject({ limit: 'requestsPerMinute', max: 3 });
  const retryAfter = Number(over.headers['retry-after']);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(over.headers['x-ratelimit-remaining']).toBe('0');
  // A second gateway on the same database sees the same window.
  const other = createApp(deps);
  expect((await request(other).get('/api/jobs').set('Authorization', `Bearer ${key}`)).status).toBe(429);
});

test('a key with no rate limit gets no rate-limit headers, and a server-wide KEY_DEFAULT_RPM applies to it while a key’s own limit wins', async () => {
  const plain = await newKey();
  const r = await request(app).get('/api/jobs').set('Authorization', `Bearer ${plain}`);
  expect(r.status).toBe(200);
  expect(r.headers['x-ratelimit-limit']).toBeUndefined();

  const strict = createApp({ ...deps, config: { ...deps.config, KEY_DEFAULT_RPM: 1 } });
  const own = await newKey({ requestsPerMinute: 100 });
  await awayFromMinuteEdge();
  const fresh = await newKey();
  expect((await request(strict).get('/api/jobs').set('Authorization', `Bearer ${fresh}`)).headers['x-ratelimit-limit']).toBe('1');
  expect((await request(strict).get('/api/jobs').set('Authorization', `Bearer ${fresh}`)).status).toBe(429);
  const mine = await request(strict).get('/api/jobs').set('Authorization', `Bearer ${own}`);
  expect(mine.status).toBe(200);
  expect(mine.headers['x-ratelimit-limit']).toBe('100');
});

test("an upload over the key's maxUploadBytes is 413 naming the limit", async () => {
  const key = await newKey({ maxUploadBytes: 64 });
  const r = await postJob(key);
  expect(r.status).toBe(413);
  expect(r.body.code).toBe('file_too_large');
  expect(r.body.error).toMatch(/larger than this API key's upload limit of 64 bytes.*maxUploadBytes/);
  expect(r.body.detail).toMatchObject({ limit: 'maxUploadBytes', maxBytes: 64 });
});

test("more files than the key's maxFilesPerJob is 413 naming the limit", async () => {
  const key = await newKey({ maxFilesPerJob: 1 });
  expect((await postJob(key, { format: 'webp' }, 1)).status).toBe(200);
  const r = await postJob(key, { format: 'webp' }, 2);
  expect(r.status).toBe(413);
  expect(r.body.code).toBe('too_many_files');
  expect(r.body.error).toMatch(/this API key allows at most 1 per request.*maxFilesPerJob/);
  expect(r.body.detail.limit).toBe('maxFilesPerJob');
});

test('a key at its maxConcurrentJobs gets 429 with Retry-After until one of its jobs ends', async () => {
  const key = await newKey({ maxConcurrentJobs: 1 });
  const first = await postJob(key);
  expect(first.status).toBe(200);
  const second = await postJob(key);
  expect(second.status).toBe(429);
  expect(second.body).toMatchObject({ code: 'rate_limited', detail: { limit: 'maxConcurrentJobs', max: 1, active: 1 } });
  expect(second.body.error).toBe('This key already has 1 jobs pending or processing, its limit (maxConcurrentJobs 1); wait for one to finish, then retry.');
  expect(second.headers['retry-after']).toBe('5');
  // Cancelling the pending job frees the slot.
  expect((await request(app).delete(`/api/jobs/${first.body.jobId}`).set('Authorization', `Bearer ${key}`)).status).toBe(200);
  expect((await postJob(key)).status).toBe(200);
});

test('concurrent requests cannot overshoot maxConcurrentJobs: exactly one of two simultaneous uploads is accepted', async () => {
  const key = await newKey({ maxConcurrentJobs: 1 });
  const [a, b] = await Promise.all([postJob(key), postJob(key)]);
  expect([a.status, b.status].sort()).toEqual([200, 429]);
  const n = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs j JOIN api_keys k ON k.id = j.api_key_id WHERE k.prefix = $1`, [key.slice(0, 11)]);
  expect(n.rows[0]!.n).toBe(1);
});

test('an output format outside allowedFormats is 403 naming the format and what is allowed; allowed ones and compress targets are checked too', async () => {
  const key = await newKey({ allowedFormats: ['webp', 'jpg'] });
  const r = await postJob(key, { format: 'png' });
  expect(r.status).toBe(403);
  expect(r.body.code).toBe('format_not_allowed');
  expect(r.body.error).toBe('files[0] ("f0.png") asks for png, which this key may not create; it may create webp, jpg (allowedFormats).');
  expect(r.body.detail).toMatchObject({ limit: 'allowedFormats', format: 'png', allowedFormats: ['webp', 'jpg'] });
  expect((await postJob(key, { format: 'jpeg' })).status).toBe(200);
  // Compressing a PNG keeps it PNG, which this key may not create.
  const c = await postJob(key, { jobType: 'compress' });
  expect(c.status).toBe(403);
  expect(c.body.detail.format).toBe('png');
  // Nothing of the refused uploads stays in storage or the database.
  const jobs = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs j JOIN api_keys k ON k.id = j.api_key_id WHERE k.prefix = $1`, [key.slice(0, 11)]);
  expect(jobs.rows[0]!.n).toBe(1);
});

test('KEY_DEFAULT_ALLOWED_FORMATS applies to keys that set none', async () => {
  const strict = createApp({ ...deps, config: { ...deps.config, KEY_DEFAULT_ALLOWED_FORMATS: 'avif' } });
  const key = await newKey();
  const r = await postJob(key, { format: 'webp' }, 1, strict);
  expect(r.status).toBe(403);
  expect(r.body.error).toMatch(/it may create avif/);
});

test('a key past its monthly job quota gets 402 saying when it resets; an idempotent replay is not a new job', async () => {
  const key = await newKey({ monthlyJobQuota: 2 });
  const a = await postJob(key).set('Idempotency-Key', 'q-1');
  expect(a.status).toBe(200);
  expect((await postJob(key)).status).toBe(200);
  const over = await postJob(key);
  expect(over.status).toBe(402);
  expect(over.body.code).toBe('quota_exceeded');
  expect(over.body.error).toMatch(/^This key has used its monthly quota of 2 jobs \(monthlyJobQuota\); it starts again at \d{4}-\d\d-01T/);
  expect(over.body.detail).toMatchObject({ limit: 'monthlyJobQuota', max: 2, used: 2 });
  expect(new Date(over.body.detail.resetsAt).getTime()).toBeGreaterThan(Date.now());
  const replay = await postJob(key).set('Idempotency-Key', 'q-1');
  expect(replay.status).toBe(200);
  expect(replay.body.jobId).toBe(a.body.jobId);
});

test("a key's retentionHours is stored on its jobs and decides when they expire", async () => {
  const key = await newKey({ retentionHours: 0.5 });
  const { body } = await postJob(key);
  const row = await client.query<{ retention_hours: number }>(`SELECT retention_hours FROM jobs WHERE id = $1`, [body.jobId]);
  expect(row.rows[0]!.retention_hours).toBe(0.5);
  const del = await request(app).delete(`/api/jobs/${body.jobId}`).set('Authorization', `Bearer ${key}`);
  const ttl = new Date(del.body.expiresAt).getTime() - Date.now();
  expect(ttl).toBeGreaterThan(25 * 60_000);
  expect(ttl).toBeLessThan(31 * 60_000);
  // A key without one keeps the server's RETENTION_HOURS (24 h).
  const plain = await newKey();
  const p = await postJob(plain);
  const d2 = await request(app).delete(`/api/jobs/${p.body.jobId}`).set('Authorization', `Bearer ${plain}`);
  expect(new Date(d2.body.expiresAt).getTime() - Date.now()).toBeGreaterThan(23 * 3600_000);
});

test("one key never sees another's jobs: reading, cancelling and listing are 404 or empty", async () => {
  const a = await newKey();
  const b = await newKey();
  const { body } = await postJob(a);
  const asB = (r: request.Test) => r.set('Authorization', `Bearer ${b}`);
  const get = await asB(request(app).get(`/api/jobs/${body.jobId}`));
  expect(get.status).toBe(404);
  expect(get.body).toEqual({ error: `No job ${body.jobId}.`, code: 'not_found' });
  expect((await asB(request(app).delete(`/api/jobs/${body.jobId}`))).status).toBe(404);
  expect((await asB(request(app).get('/api/jobs'))).body.jobs).toEqual([]);
  const own = await request(app).get(`/api/jobs/${body.jobId}`).set('Authorization', `Bearer ${a}`);
  expect(own.status).toBe(200);
});

test('a revoked key is refused with 401 like an unknown one', async () => {
  const key = await newKey();
  expect((await request(app).get('/api/jobs').set('x-api-key', key)).status).toBe(200);
  await client.query(`UPDATE api_keys SET revoked_at = now() WHERE prefix = $1`, [key.slice(0, 11)]);
  // The gateway hears of the change through NOTIFY (caches.ts): within moments, not necessarily before
  // this very next request.
  const r = await until(
    'the revoked key to be refused',
    async () => {
      const res = await request(app).get('/api/jobs').set('x-api-key', key);
      return res.status === 401 && res;
    },
    5000,
    10,
  );
  expect(r.status).toBe(401);
  expect(r.body).toEqual({ error: 'Invalid API key.', code: 'unauthorized' });
});
