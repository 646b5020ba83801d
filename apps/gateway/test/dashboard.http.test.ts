/**
 * The operator dashboard through createApp: turned off without ADMIN_PASSWORD, sign-in (cookie flags,
 * CSRF, wrong password, rate limit), keys shown once and never in a URL, revocation, and the "try it"
 * upload running as a chosen key. Real Postgres and pg-boss, no workers.
 */
import type pg from 'pg';
import request from 'supertest';
import sharp from 'sharp';
import { createApp } from '../src/app.ts';
import { until } from '../../../test/helpers/kiln.ts';
import { startTestGateway, type TestGateway } from './helpers.ts';

const PASSWORD = 'correct horse battery staple';
let gw: TestGateway;
let deps: TestGateway['deps'];
let app: TestGateway['app'];
let client: pg.Client;

beforeAll(async () => {
  gw = await startTestGateway('dash', { ADMIN_PASSWORD: PASSWORD });
  ({ deps, app, client } = gw);
}, 60_000);
afterAll(async () => {
  await gw?.close();
});

const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
const cookieOf = (res: request.Response, name: string) => {
  const all = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
  const line = all.find((c) => c.startsWith(`${name}=`));
  return line ? { pair: line.split(';')[0]!, line } : undefined;
};

let signIns = 0;
/** Signs in like a browser: fetch the form (and its cookie), post the password with the token. Each from its own address, so the sign-in rate limit stays out of the way. */
async function signIn(ip = `198.51.100.${++signIns}`): Promise<{ cookie: string; csrf: string }> {
  const form = await request(app).get('/dashboard/login').set('X-Forwarded-For', ip);
  const login = cookieOf(form, 'kiln_login')!;
  const res = await request(app)
    .post('/dashboard/login')
    .set('X-Forwarded-For', ip)
    .set('Cookie', login.pair)
    .type('form')
    .send({ _csrf: csrfOf(form.text), password: PASSWORD });
  expect(res.status).toBe(303);
  const cookie = cookieOf(res, 'kiln_session')!.pair;
  const keys = await request(app).get('/dashboard/keys').set('Cookie', cookie);
  return { cookie, csrf: csrfOf(keys.text) };
}

test('without ADMIN_PASSWORD the dashboard says how to turn it on, and accepts no form posts', async () => {
  const off = createApp({ ...deps, config: { ...deps.config, ADMIN_PASSWORD: undefined } });
  const r = await request(off).get('/dashboard');
  expect(r.status).toBe(200);
  expect(r.text).toMatch(/The dashboard is turned off/);
  expect(r.text).toMatch(/ADMIN_PASSWORD/);
  expect((await request(off).post('/dashboard/keys').type('form').send({ name: 'x' })).status).toBe(403);
});

test('pages need a session: they redirect to sign-in, and the JSON endpoint answers 401', async () => {
  const r = await request(app).get('/dashboard/keys');
  expect(r.status).toBe(303);
  expect(r.headers.location).toBe('/dashboard/login');
  expect((await request(app).get('/dashboard/api/jobs?ids=')).status).toBe(401);
  const forged = await request(app).get('/dashboard/keys').set('Cookie', 'kiln_session=v1.99999999999.aaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
  expect(forged.status).toBe(303);
});

test('sign-in sets an HttpOnly, SameSite=Strict, expiring session cookie; a wrong password or a missing token is refused', async () => {
  const form = await request(app).get('/dashboard/login').set('X-Forwarded-For', '198.51.100.200');
  expect(form.text).toMatch(/<label for="password">/);
  const login = cookieOf(form, 'kiln_login')!;
  expect(login.line).toMatch(/HttpOnly/);
  expect(login.line).toMatch(/SameSite=Strict/);

  const wrong = await request(app)
    .post('/dashboard/login')
    .set('X-Forwarded-For', '198.51.100.200')
    .set('Cookie', login.pair)
    .type('form')
    .send({ _csrf: csrfOf(form.text), password: 'not it at all' });
  expect(wrong.status).toBe(401);
  expect(wrong.text).toMatch(/That is not the admin password/);
  expect(cookieOf(wrong, 'kiln_session')).toBeUndefined();

  const noToken = await request(app).post('/dashboard/login').set('X-Forwarded-For', '198.51.100.200').set('Cookie', login.pair).type('form').send({ password: PASSWORD });
  expect(noToken.status).toBe(403);
  expect(cookieOf(noToken, 'kiln_session')).toBeUndefined();

  const ok = await request(app)
    .post('/dashboard/login')
    .set('X-Forwarded-For', '198.51.100.200')
    .set('Cookie', login.pair)
    .type('form')
    .send({ _csrf: csrfOf(form.text), password: PASSWORD });
  expect(ok.status).toBe(303);
  expect(ok.headers.location).toBe('/dashboard/keys');
  const session = cookieOf(ok, 'kiln_session')!;
  expect(session.line).toMatch(/; Path=\/dashboard; Max-Age=43200; HttpOnly; SameSite=Strict/);
  expect(session.line).not.toMatch(/Secure/);
});

test('sign-in attempts are limited per address: the sixth in a minute is 429 with Retry-After', async () => {
  const ip = '203.0.113.9';
  // Windows are calendar minutes: don't start the burst in the last seconds of one.
  await until('a fresh minute window', async () => new Date().getSeconds() < 50, 15_000, 250);
  const statuses: number[] = [];
  let last: request.Response | undefined;
  for (let i = 0; i < 6; i++) {
    last = await request(app).post('/dashboard/login').set('X-Forwarded-For', ip).type('form').send({ password: 'guess' });
    statuses.push(last.status);
  }
  expect(statuses.slice(0, 5).every((s) => s === 403)).toBe(true);
  expect(statuses[5]).toBe(429);
  expect(last!.text).toMatch(/Too many sign-in attempts from this address; wait \d+ s/);
  expect(Number(last!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  // Another address is not affected.
  expect((await request(app).post('/dashboard/login').set('X-Forwarded-For', '203.0.113.10').type('form').send({ password: 'guess' })).status).toBe(403);
});

test('creating a key shows it once in the POST response (no redirect, no-store), with its limits; it works, and the list never shows it again', async () => {
  const { cookie, csrf } = await signIn();
  const res = await request(app)
    .post('/dashboard/keys')
    .set('Cookie', cookie)
    .type('form')
    .send({ _csrf: csrf, name: 'from the dashboard', requestsPerMinute: '30', allowedFormats: 'webp, jpeg', maxUploadBytes: '5MB' });
  expect(res.status).toBe(201);
  expect(res.headers.location).toBeUndefined();
  expect(res.headers['cache-control']).toBe('no-store');
  const key = /<code id="new-key"[^>]*>([^<]+)<\/code>/.exec(res.text)?.[1];
  expect(key).toMatch(/^kiln_[\w-]{43}$/);
  const row = await client.query(`SELECT name, limits FROM api_keys WHERE prefix = $1`, [key!.slice(0, 11)]);
  expect(row.rows[0]).toEqual({ name: 'from the dashboard', limits: { requestsPerMinute: 30, allowedFormats: ['webp', 'jpg'], maxUploadBytes: 5 * 1024 * 1024 } });

  const api = await request(app).get('/api/jobs').set('Authorization', `Bearer ${key}`);
  expect(api.status).toBe(200);
  expect(api.headers['x-ratelimit-limit']).toBe('30');

  const list = await request(app).get('/dashboard/keys').set('Cookie', cookie);
  expect(list.text).toContain(key!.slice(0, 11));
  expect(list.text).not.toContain(key!);
  expect(list.text).toMatch(/30 requests\/min, uploads ≤ 5 MB, formats webp, jpg/);
});

test('forms without the session CSRF token are refused and change nothing', async () => {
  const { cookie } = await signIn();
  const before = (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys')).rows[0]!.n;
  const res = await request(app).post('/dashboard/keys').set('Cookie', cookie).type('form').send({ name: 'csrf victim', _csrf: 'forged' });
  expect(res.status).toBe(403);
  expect(res.text).toMatch(/This form has expired or did not come from this dashboard/);
  expect((await client.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys')).rows[0]!.n).toBe(before);
});

test('bad limits are refused with the form kept and every problem named', async () => {
  const { cookie, csrf } = await signIn();
  const res = await request(app)
    .post('/dashboard/keys')
    .set('Cookie', cookie)
    .type('form')
    .send({ _csrf: csrf, name: 'typo', requestsPerMinute: 'lots', allowedFormats: 'png,bmp' });
  expect(res.status).toBe(400);
  expect(res.text).toMatch(/Requests per minute: &quot;lots&quot; is not a whole number/);
  expect(res.text).toMatch(/&quot;bmp&quot; is not an output format/);
  expect(res.text).toMatch(/value="typo"/);
});

test('revoking asks for confirmation, then the key gets 401', async () => {
  const { cookie, csrf } = await signIn();
  const created = await request(app).post('/dashboard/keys').set('Cookie', cookie).type('form').send({ _csrf: csrf, name: 'short-lived' });
  const key = /<code id="new-key"[^>]*>([^<]+)<\/code>/.exec(created.text)![1]!;
  const id = (await client.query<{ id: string }>('SELECT id FROM api_keys WHERE prefix = $1', [key.slice(0, 11)])).rows[0]!.id;
  const confirm = await request(app).get(`/dashboard/keys/${id}/revoke`).set('Cookie', cookie);
  expect(confirm.text).toMatch(/Revoke “short-lived”\?/);
  const done = await request(app)
    .post(`/dashboard/keys/${id}/revoke`)
    .set('Cookie', cookie)
    .type('form')
    .send({ _csrf: csrfOf(confirm.text) });
  expect(done.status).toBe(303);
  expect(done.headers.location).toBe(`/dashboard/keys?revoked=${id}`);
  expect((await request(app).get('/api/jobs').set('Authorization', `Bearer ${key}`)).status).toBe(401);
});

test('"try it" uploads as the chosen key and lands on the job page; without the token nothing is created', async () => {
  const { cookie, csrf } = await signIn();
  const created = await request(app).post('/dashboard/keys').set('Cookie', cookie).type('form').send({ _csrf: csrf, name: 'try key', allowedFormats: 'webp' });
  const key = /<code id="new-key"[^>]*>([^<]+)<\/code>/.exec(created.text)![1]!;
  const id = (await client.query<{ id: string }>('SELECT id FROM api_keys WHERE prefix = $1', [key.slice(0, 11)])).rows[0]!.id;
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#ff0000' } })
    .png()
    .toBuffer();

  const page = await request(app).get(`/dashboard/try?key=${id}`).set('Cookie', cookie);
  expect(page.text).toContain(`${key.slice(0, 11)}…`);
  expect(page.text).toMatch(/curl -H &quot;Authorization: Bearer \$KEY&quot; -F files=@photo.png -F format=webp/);

  const forged = await request(app)
    .post(`/dashboard/try?key=${id}`)
    .set('Cookie', cookie)
    .field('_csrf', 'nope')
    .field('key', id)
    .field('format', 'webp')
    .attach('files', png, 'red.png');
  expect(forged.status).toBe(403);
  const refused = await request(app)
    .post(`/dashboard/try?key=${id}`)
    .set('Cookie', cookie)
    .field('_csrf', csrf)
    .field('key', id)
    .field('format', 'png')
    .attach('files', png, 'red.png');
  expect(refused.status).toBe(403);
  expect(refused.text).toMatch(/asks for png, which this key may not create/);
  expect((await client.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs WHERE api_key_id = $1', [id])).rows[0]!.n).toBe(0);

  const ok = await request(app)
    .post(`/dashboard/try?key=${id}`)
    .set('Cookie', cookie)
    .field('_csrf', csrf)
    .field('key', id)
    .field('format', 'webp')
    .attach('files', png, 'red.png');
  expect(ok.status).toBe(303);
  const jobId = /^\/dashboard\/jobs\/([0-9a-f-]{36})\?created=1$/.exec(ok.headers.location ?? '')![1]!;
  // The job belongs to the key: the key's own API sees it.
  expect((await request(app).get(`/api/jobs/${jobId}`).set('Authorization', `Bearer ${key}`)).status).toBe(200);
  const jobPage = await request(app).get(`/dashboard/jobs/${jobId}`).set('Cookie', cookie);
  expect(jobPage.text).toContain('red.png');
  expect(jobPage.text).toMatch(/data-live-job="[0-9a-f-]{36}" data-status="pending"/);
  const live = await request(app).get(`/dashboard/api/jobs?ids=${jobId}`).set('Cookie', cookie);
  expect(live.body.jobs[0]).toMatchObject({ jobId, status: 'pending', progress: 0 });
  const jobs = await request(app).get(`/dashboard/jobs?key=${id}&status=pending`).set('Cookie', cookie);
  expect(jobs.text).toContain(`data-job-id="${jobId}"`);
});

test('dashboard responses forbid framing and inline script, and are not cached', async () => {
  const r = await request(app).get('/dashboard/login');
  expect(r.headers['content-security-policy']).toMatch(/script-src 'self'/);
  expect(r.headers['x-frame-options']).toBe('DENY');
  expect(r.headers['cache-control']).toBe('no-store');
});
