/**
 * URL sources at the API, before any worker: hostile URLs are refused at submission with
 * `400 url_not_allowed` naming the field and the reason, and nothing is created or queued; a URL
 * that passes becomes a file row with no bytes yet (kind and size unknown) queued like an upload;
 * URL_IMPORT=false refuses every URL with a sentence naming the setting. The full hostile table is
 * @kiln/outbound's own (packages/outbound/test/hostile-urls.test.ts); these are representatives of
 * each way in. No request leaves the machine: every refused URL is an IP literal or fails on its
 * spelling, and the accepted one is never fetched (no workers run here).
 */
import request from 'supertest';
import { startTestGateway, type TestGateway } from './helpers.ts';

let gw: TestGateway;
let off: TestGateway;

beforeAll(async () => {
  [gw, off] = await Promise.all([startTestGateway('urls'), startTestGateway('urls-off', { URL_IMPORT: 'false' })]);
}, 60_000);
afterAll(async () => {
  await Promise.all([gw?.close(), off?.close()]);
});

const count = async (sql: string) => (await gw.client.query<{ n: number }>(sql)).rows[0]!.n;

const HOSTILE: [string, RegExp][] = [
  ['http://127.0.0.1:9/x.png', /127\.0\.0\.1 is a loopback address/],
  ['HTTP://0x7f.1/x.png', /127\.0\.0\.1 is a loopback address/],
  ['http://2130706433/x.png', /127\.0\.0\.1 is a loopback address/],
  ['http://[::1]/x.png', /::1 is a loopback address/],
  ['http://[::ffff:127.0.0.1]/x.png', /loopback/],
  ['http://10.1.2.3/x.png', /private/],
  ['http://169.254.169.254/latest/meta-data/', /metadata/],
  ['http://[64:ff9b::a9fe:a9fe]/', /metadata/],
  ['http://user:secret@example.com/x.png', /credentials in URLs are not allowed/],
  ['file:///etc/passwd', /scheme file is not allowed|file/],
  ['gopher://example.com/', /scheme/],
];

test.each(HOSTILE)('%s is refused at submission (url_not_allowed, the reason named, nothing created)', async (url, reason) => {
  const jobsBefore = await count('SELECT count(*)::int AS n FROM jobs');
  for (const path of ['/api/jobs', '/api/convert']) {
    const res = await request(gw.app).post(path).set('Authorization', `Bearer ${gw.key}`).field('format', 'webp').field('sourceUrl', url);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'url_not_allowed', detail: { field: 'sourceUrl' } });
    expect(res.body.error).toMatch(/^sourceUrl: URL not allowed: /);
    expect(res.body.error).toMatch(reason);
  }
  const tool = await request(gw.app).post('/api/media/thumbnail').set('Authorization', `Bearer ${gw.key}`).field('sourceUrl', url);
  expect(tool.status).toBe(400);
  expect(tool.body.code).toBe('url_not_allowed');
  expect(await count('SELECT count(*)::int AS n FROM jobs')).toBe(jobsBefore);
});

test('a refused entry of sourceUrls is named by its index', async () => {
  const res = await request(gw.app)
    .post('/api/jobs')
    .set('Authorization', `Bearer ${gw.key}`)
    .field('format', 'webp')
    .field('sourceUrls', JSON.stringify(['https://93.184.215.14/a.png', 'http://192.168.1.1/b.png']));
  expect(res.status).toBe(400);
  expect(res.body).toMatchObject({ code: 'url_not_allowed', detail: { field: 'sourceUrls[1]' } });
  const bad = await request(gw.app).post('/api/jobs').set('Authorization', `Bearer ${gw.key}`).field('format', 'webp').field('sourceUrls', 'not json');
  expect(bad.status).toBe(400);
  expect(bad.body).toMatchObject({ code: 'invalid_field', detail: { field: 'sourceUrls' } });
});

test('a URL that passes is queued as a file with no bytes yet, after the uploaded files, named by its last path segment', async () => {
  // 203.0.113.0/24 is documentation space and refused, so the check must not hide a public address: use a public literal.
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d2a0c80000000049454e44ae426082', 'hex');
  const res = await request(gw.app)
    .post('/api/jobs')
    .set('Authorization', `Bearer ${gw.key}`)
    .field('formats', JSON.stringify(['png', 'webp']))
    .field('sourceUrl', 'HTTPS://93.184.215.14/photos/My%20Photo.png?token=abc')
    .attach('files', png, 'upload');
  expect(res.status).toBe(200);
  const files = await gw.client.query<{
    idx: number;
    filename: string;
    source_kind: string | null;
    original_size: number | null;
    source_url: string | null;
    options: { format: string };
  }>('SELECT idx, filename, source_kind, original_size::float8 AS original_size, source_url, options FROM job_files WHERE job_id = $1 ORDER BY idx', [res.body.jobId]);
  expect(files.rows).toEqual([
    expect.objectContaining({ idx: 0, filename: 'upload', source_kind: 'png', source_url: null, options: expect.objectContaining({ format: 'png' }) }),
    expect.objectContaining({
      idx: 1,
      filename: 'My Photo.png',
      source_kind: null,
      original_size: null,
      source_url: 'https://93.184.215.14/photos/My%20Photo.png?token=abc',
      options: expect.objectContaining({ format: 'webp' }),
    }),
  ]);
  const detail = await request(gw.app).get(`/api/jobs/${res.body.jobId}`).set('Authorization', `Bearer ${gw.key}`);
  expect(detail.body.results[1]).toMatchObject({ filename: 'My Photo.png', status: 'pending', originalSize: 0 });
});

test('URL_IMPORT=false refuses any URL with a sentence naming the setting', async () => {
  const res = await request(off.app).post('/api/convert').set('Authorization', `Bearer ${off.key}`).field('format', 'webp').field('sourceUrl', 'https://example.com/a.png');
  expect(res.status).toBe(400);
  expect(res.body).toMatchObject({ code: 'url_not_allowed', detail: { field: 'sourceUrl', setting: 'URL_IMPORT' } });
  expect(res.body.error).toMatch(/URL sources are turned off on this server \(URL_IMPORT=false\)/);
});

test('no file and no URL: the 400 says both ways in', async () => {
  const res = await request(gw.app).post('/api/jobs').set('Authorization', `Bearer ${gw.key}`).field('format', 'webp');
  expect(res.status).toBe(400);
  expect(res.body.error).toMatch(/Upload at least one file in the "files" field, or name one with sourceUrl/);
});

test('a file sent twice, as `files` and `file` (Convertly’s MCP client does), counts once; `file` alone works too', async () => {
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d2a0c80000000049454e44ae426082', 'hex');
  const both = await request(gw.app).post('/api/jobs').set('Authorization', `Bearer ${gw.key}`).field('format', 'webp').attach('files', png, 'a.png').attach('file', png, 'a.png');
  expect(both.status).toBe(200);
  const alone = await request(gw.app).post('/api/jobs').set('Authorization', `Bearer ${gw.key}`).field('format', 'webp').attach('file', png, 'b.png');
  expect(alone.status).toBe(200);
  const rows = await gw.client.query<{ job_id: string; filename: string }>('SELECT job_id, filename FROM job_files WHERE job_id = ANY($1) ORDER BY filename', [
    [both.body.jobId, alone.body.jobId],
  ]);
  expect(rows.rows.map((r) => r.filename)).toEqual(['a.png', 'b.png']);
});
