/**
 * The dashboard's webhooks page through createApp: register an endpoint for a key (its secret shown
 * once, in the POST response), the allow-list refusal as a page, rotate, replay, delete. Real
 * Postgres; no workers, so deliveries stay pending.
 */
import request from 'supertest';
import { createApiKey, insertJob, insertWebhookEvent, listWebhookEndpoints } from '@kiln/db';
import { startTestGateway, type TestGateway } from './helpers.ts';

const PASSWORD = 'correct horse battery staple';
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway('dashwh', { ADMIN_PASSWORD: PASSWORD, URL_IMPORT_ALLOWED_HOSTS: 'localhost' });
}, 60_000);
afterAll(async () => {
  await gw?.close();
});

const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

async function signIn(): Promise<{ cookie: string; csrf: string }> {
  const form = await request(gw.app).get('/dashboard/login').set('X-Forwarded-For', '198.51.100.77');
  const login = ([] as string[])
    .concat(form.headers['set-cookie'] ?? [])
    .find((c) => c.startsWith('kiln_login='))!
    .split(';')[0]!;
  const res = await request(gw.app)
    .post('/dashboard/login')
    .set('X-Forwarded-For', '198.51.100.77')
    .set('Cookie', login)
    .type('form')
    .send({ _csrf: csrfOf(form.text), password: PASSWORD });
  const cookie = ([] as string[])
    .concat(res.headers['set-cookie'] ?? [])
    .find((c) => c.startsWith('kiln_session='))!
    .split(';')[0]!;
  const page = await request(gw.app).get('/dashboard/webhooks').set('Cookie', cookie);
  expect(page.status).toBe(200);
  return { cookie, csrf: csrfOf(page.text) };
}

test('an operator registers, rotates, replays and deletes a key’s webhook endpoint from the dashboard', async () => {
  const { row: key } = await createApiKey(gw.client, 'dashboard hooks');
  const { cookie, csrf } = await signIn();
  const post = (path: string, body: Record<string, string | string[]>) =>
    request(gw.app)
      .post(path)
      .set('Cookie', cookie)
      .type('form')
      .send({ _csrf: csrf, ...body });

  const refused = await post('/dashboard/webhooks', { key: key.id, url: 'http://127.0.0.1:9/hook', format: 'convertly' });
  expect(refused.status).toBe(400);
  expect(refused.text).toMatch(/url: URL not allowed/);
  expect(await listWebhookEndpoints(gw.client, key.id)).toHaveLength(0);

  const created = await post('/dashboard/webhooks', {
    key: key.id,
    url: 'http://localhost:9/hook',
    format: 'standard',
    event_types: ['conversion.completed', 'conversion.failed'],
  });
  expect(created.status).toBe(201);
  const secret = /data-testid="new-secret">([^<]+)</.exec(created.text)?.[1];
  expect(secret).toMatch(/^whsec_/);
  const [ep] = await listWebhookEndpoints(gw.client, key.id);
  expect(ep).toMatchObject({ url: 'http://localhost:9/hook', format: 'standard', eventTypes: ['conversion.completed', 'conversion.failed'], secret });
  // The list never shows a secret.
  expect((await request(gw.app).get('/dashboard/webhooks').set('Cookie', cookie)).text).not.toContain(secret!);

  const rotated = await post(`/dashboard/webhooks/${ep!.id}/rotate`, {});
  expect(rotated.status).toBe(200);
  const fresh = /data-testid="new-secret">([^<]+)</.exec(rotated.text)?.[1];
  expect(fresh).toMatch(/^whsec_/);
  expect(fresh).not.toBe(secret);
  expect((await listWebhookEndpoints(gw.client, key.id))[0]).toMatchObject({ secret: fresh, previousSecret: secret });

  // A delivery to replay: an event of a job of this key.
  const jobId = crypto.randomUUID();
  await insertJob(gw.client, {
    id: jobId,
    apiKeyId: key.id,
    jobType: 'convert',
    createArchive: false,
    files: [{ id: crypto.randomUUID(), idx: 0, filename: 'a.png', sourceKey: `jobs/${jobId}/src/a`, sourceKind: 'png', originalSize: 1, options: {} }],
  });
  await insertWebhookEvent(gw.client, { apiKeyId: key.id, jobId, type: 'conversion.completed', data: { jobId } });
  const page = await request(gw.app).get('/dashboard/webhooks').set('Cookie', cookie);
  const deliveryId = /data-delivery-id="([^"]+)"/.exec(page.text)?.[1];
  expect(deliveryId).toBeDefined();
  const replay = await post(`/dashboard/webhooks/deliveries/${deliveryId}/retry`, {});
  expect(replay.status).toBe(200);
  expect(replay.text).toMatch(/queued again/);

  const deleted = await post(`/dashboard/webhooks/${ep!.id}/delete`, {});
  expect(deleted.status).toBe(200);
  expect(await listWebhookEndpoints(gw.client, key.id)).toHaveLength(0);
  const { rows } = await gw.client.query<{ status: string; last_error: string }>('SELECT status, last_error FROM webhook_deliveries WHERE id = $1', [deliveryId]);
  expect(rows[0]).toEqual({ status: 'failed', last_error: 'The endpoint was deleted.' });
});

test('the webhooks page needs a session and a CSRF token', async () => {
  expect((await request(gw.app).get('/dashboard/webhooks')).status).toBe(303);
  const { cookie } = await signIn();
  const forged = await request(gw.app).post('/dashboard/webhooks').set('Cookie', cookie).type('form').send({ url: 'http://localhost:9/x' });
  expect(forged.status).toBe(403);
});
