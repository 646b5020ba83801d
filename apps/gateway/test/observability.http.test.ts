/**
 * Logs and metrics at the gateway, through createApp on real Postgres and pg-boss (no workers): every
 * line written while handling a request names that request, no line shows a key or a signature,
 * /metrics labels requests by route pattern and needs METRICS_TOKEN when one is set, and the job
 * totals and queue depths come from Postgres.
 */
import crypto from 'node:crypto';
import { Writable } from 'node:stream';
import request from 'supertest';
import sharp from 'sharp';
import { createLogger } from '@kiln/config';
import { createMetrics } from '@kiln/metrics';
import { createApp } from '../src/app.ts';
import { until } from '../../../test/helpers/kiln.ts';
import { labelsWithIds, parseMetricsPage } from '../../../test/helpers/prometheus.ts';
import { startTestGateway, type TestGateway } from './helpers.ts';

const PASSWORD = 'correct horse battery staple';
const TOKEN = crypto.randomBytes(24).toString('hex');
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway('obs', { ADMIN_PASSWORD: PASSWORD });
}, 60_000);
afterAll(async () => {
  await gw?.close();
});

/** An app whose log lines (at debug: access lines too) land in memory, with metrics of its own. */
function appWithLog(over: Partial<TestGateway['deps']> = {}) {
  let text = '';
  const destination = new Writable({
    write(chunk, _enc, cb) {
      text += String(chunk);
      cb();
    },
  });
  const metrics = over.metrics ?? createMetrics();
  const app = createApp({ ...gw.deps, log: createLogger('gateway', 'debug', { destination, format: 'json' }), metrics, ...over });
  const lines = () =>
    text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { app, metrics, text: () => text, lines };
}

const png = () =>
  sharp({ create: { width: 32, height: 24, channels: 3, background: '#36c' } })
    .png()
    .toBuffer();

test("two requests in flight at once each log under their own request id, handlers' lines included", async () => {
  const { app, lines } = appWithLog();
  const failSignIn = async (ip: string, requestId: string) => {
    const form = await request(app).get('/dashboard/login').set('X-Forwarded-For', ip);
    const cookie = ([] as string[])
      .concat(form.headers['set-cookie'] ?? [])
      .find((c) => c.startsWith('kiln_login='))!
      .split(';')[0]!;
    const csrf = /name="_csrf" value="([^"]+)"/.exec(form.text)![1]!;
    const res = await request(app)
      .post('/dashboard/login')
      .set('X-Forwarded-For', ip)
      .set('X-Request-Id', requestId)
      .set('Cookie', cookie)
      .type('form')
      .send({ _csrf: csrf, password: 'wrong' });
    expect(res.status).toBe(401);
    expect(res.headers['x-request-id']).toBe(requestId);
  };
  // Both wait on Postgres (the sign-in attempt counter) before they log, so their lines interleave.
  await Promise.all([failSignIn('198.51.100.21', 'req-alpha'), failSignIn('198.51.100.22', 'req-beta')]);

  const warnings = lines().filter((l) => l.msg === 'dashboard sign-in failed');
  expect(warnings.map((l) => [l.ip, l.requestId]).sort()).toEqual([
    ['198.51.100.21', 'req-alpha'],
    ['198.51.100.22', 'req-beta'],
  ]);
  const access = lines().filter((l) => l.msg === 'request' && l.url === '/dashboard/login' && l.status === 401);
  expect(access.map((l) => l.requestId).sort()).toEqual(['req-alpha', 'req-beta']);
  // A client's id that could forge log fields is replaced by one of ours.
  const forged = await request(app).get('/healthz').set('X-Request-Id', 'evil","level":"error');
  expect(forged.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
});

test('requests carrying the API key and a signed download URL leave neither in any log line', async () => {
  const { app, text, lines } = appWithLog();
  const fileId = crypto.randomUUID();
  const { exp, sig } = gw.deps.signer.sign(fileId, 600);
  const signed = `/api/files/${fileId}?exp=${exp}&sig=${encodeURIComponent(sig)}`;
  expect((await request(app).get(signed).set('Authorization', `Bearer ${gw.key}`).set('X-Request-Id', 'req-download')).status).toBe(404);
  expect((await request(app).get('/api/jobs').set('x-api-key', gw.key)).status).toBe(200);
  // A refused key is logged as little as an accepted one.
  expect((await request(app).get(`/api/jobs?token=${gw.key}`).set('Authorization', `Bearer ${gw.key}x`)).status).toBe(401);

  const out = text();
  expect(lines().length).toBeGreaterThanOrEqual(3);
  expect(out).not.toContain(gw.key);
  expect(out).not.toContain(sig);
  expect(out).not.toContain(encodeURIComponent(sig));
  const download = lines().find((l) => l.requestId === 'req-download')!;
  expect(download).toEqual(expect.objectContaining({ msg: 'request', status: 404, route: '/api/files/:id', url: `/api/files/${fileId}?exp=${exp}&sig=[redacted]` }));
});

test('/metrics labels requests by route pattern, never by path, errors included', async () => {
  const { app } = appWithLog();
  const missing = crypto.randomUUID();
  expect((await request(app).get(`/api/jobs/${missing}`).set('Authorization', `Bearer ${gw.key}`)).status).toBe(404);
  expect((await request(app).delete(`/api/jobs/${missing}`).set('Authorization', `Bearer ${gw.key}`)).status).toBe(404);
  expect((await request(app).get('/api/jobs/not-a-uuid').set('Authorization', `Bearer ${gw.key}`)).status).toBe(404);
  expect((await request(app).get(`/api/jobs/${missing}`)).status).toBe(401);
  expect((await request(app).get(`/no/such/${missing}`)).status).toBe(404);
  expect((await request(app).get('/api/formats')).status).toBe(200);

  const res = await request(app).get('/metrics');
  expect(res.status).toBe(200);
  const page = parseMetricsPage(res.text);
  // The handler threw (not_found) after Express left its router; the route is still the full pattern.
  expect(page.value('kiln_http_requests_total', { route: '/api/jobs/:id', method: 'GET', status: '404' })).toBe(2);
  expect(page.value('kiln_http_requests_total', { route: '/api/jobs/:id', method: 'DELETE', status: '404' })).toBe(1);
  expect(page.value('kiln_http_requests_total', { route: '/api/formats', method: 'GET', status: '200' })).toBe(1);
  // Answered before any route matched: the 401 and the unknown path.
  expect(page.value('kiln_http_requests_total', { route: '(none)', method: 'GET', status: '401' })).toBe(1);
  expect(page.value('kiln_http_requests_total', { route: '(none)', method: 'GET', status: '404' })).toBe(1);
  expect(page.value('kiln_http_request_duration_seconds_count', { route: '/api/jobs/:id', method: 'GET' })).toBe(2);
  expect(labelsWithIds(page, [missing, 'not-a-uuid', '/no/such'])).toEqual([]);
});

test('with METRICS_TOKEN set, /metrics wants exactly that bearer token', async () => {
  const { app } = appWithLog({ config: { ...gw.deps.config, METRICS_TOKEN: TOKEN } });
  const none = await request(app).get('/metrics');
  expect(none.status).toBe(401);
  expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
  expect(none.body).toEqual({ code: 'unauthorized', error: 'GET /metrics needs the metrics token: send Authorization: Bearer <METRICS_TOKEN>.' });
  // The API key is not the metrics token.
  expect((await request(app).get('/metrics').set('Authorization', `Bearer ${gw.key}`)).status).toBe(401);
  expect((await request(app).get('/metrics').set('Authorization', `Bearer ${TOKEN}0`)).status).toBe(401);
  const ok = await request(app).get('/metrics').set('Authorization', `Bearer ${TOKEN}`);
  expect(ok.status).toBe(200);
  expect(ok.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  expect(parseMetricsPage(ok.text).value('kiln_http_requests_total', { route: '/metrics', status: '401' })).toBe(3);
});

test('job totals and queue depths come from Postgres; uploads and creations are counted here', async () => {
  // The gateway's own metrics, with the Postgres-backed gauges buildDeps registered on them.
  const { app } = appWithLog({ metrics: gw.deps.metrics });
  const auth = { Authorization: `Bearer ${gw.key}` };
  const image = await png();
  const created: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await request(app).post('/api/jobs').set(auth).field('format', 'webp').attach('files', image, 'a.png');
    expect(r.status).toBe(200);
    created.push(r.body.jobId);
  }
  expect((await request(app).delete(`/api/jobs/${created[0]}`).set(auth)).status).toBe(200);

  // The Postgres-backed gauges are cached for a few seconds: wait for a scrape that sees these jobs.
  const page = await until(
    'the job totals to count the new jobs',
    async () => {
      const p = parseMetricsPage((await request(app).get('/metrics')).text);
      // The job totals and the queue depths are read and cached separately: wait for a page with both.
      return p.value('kiln_jobs', { type: 'convert', dialect: 'convertly', status: 'pending' }) === 2 &&
        p.value('kiln_queue_jobs', { queue: 'convert.image', state: 'ready' }) === 3
        ? p
        : undefined;
    },
    20_000,
    250,
  );
  expect(page.value('kiln_jobs', { type: 'convert', dialect: 'convertly', status: 'failed' })).toBe(1);
  // No worker runs here: the two live jobs' messages wait, the cancelled one's too (its handler will skip it).
  expect(page.value('kiln_queue_jobs', { queue: 'convert.image', state: 'ready' })).toBe(3);
  expect(page.value('kiln_queue_jobs', { queue: 'compress.image', state: 'ready' })).toBe(0);
  expect(page.value('kiln_queue_oldest_ready_seconds', { queue: 'convert.image' })).toBeGreaterThanOrEqual(0);
  expect(page.value('kiln_metrics_source_up', { source: 'jobs' })).toBe(1);
  expect(page.value('kiln_metrics_source_up', { source: 'queues' })).toBe(1);
  expect(page.value('kiln_jobs_created_total', { type: 'convert', dialect: 'convertly' })).toBe(3);
  expect(page.value('kiln_jobs_failed_total', { type: 'convert', dialect: 'convertly' })).toBe(1);
  expect(page.value('kiln_upload_files_total', { dialect: 'convertly' })).toBe(3);
  expect(page.value('kiln_upload_bytes_total', { dialect: 'convertly' })).toBe(3 * image.length);
  expect(page.value('kiln_db_pool_connections', { state: 'total' })).toBeGreaterThanOrEqual(1);
  expect(labelsWithIds(page, created)).toEqual([]);
});
