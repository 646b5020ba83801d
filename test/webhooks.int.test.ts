/**
 * Webhooks end to end: the gateway, a convert worker delivering from the Postgres outbox, and real
 * receivers on this machine (127.0.0.1, reached as `localhost`, the one name URL_IMPORT_ALLOWED_HOSTS
 * lists). Convertly-format deliveries are checked with the verifier Convertly's guide prints, standard
 * ones with the Standard Webhooks reference library (`standardwebhooks`), never with our own code.
 * Each scenario uses its own API key, so endpoints of one never receive another's events.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import sharp from 'sharp';
import { Webhook } from 'standardwebhooks';
import {
  deleteWebhookResponseSchema,
  listDeliveriesResponseSchema,
  listWebhooksResponseSchema,
  webhookDeliverySchema,
  webhookEndpointWithSecretSchema,
  webhookEnvelopeSchema,
  webhookKeySecretResponseSchema,
} from '@kiln/contracts';
import { createApiKey } from '@kiln/db';
import { sniff } from '@kiln/formats';
import { download, form, startKiln, until, type JobDetailJson, type Kiln } from './helpers/kiln.ts';
import { seedTask, turbofiles } from './helpers/turbofiles.ts';
import { WebhookReceiver, type Received } from './helpers/webhook-receiver.ts';

/** docs.convertly.sh, "Verify signatures" — as the guide prints it. */
function verifyConvertlyWebhook(rawBody: string, header: string, secret: string) {
  const parts = Object.fromEntries(header.split(',').map((part) => part.split('=')));
  const payload = `${parts.t}.${rawBody}`;
  const expected = createHmac('sha256', secret).update(payload).digest('hex');
  return timingSafeEqual(Buffer.from(parts.v1), Buffer.from(expected));
}

interface Envelope {
  id: string;
  type: string;
  created: number;
  data: {
    jobId: string;
    status: string;
    filename?: string;
    fileIndex?: number;
    results: { status: string; downloadUrl: string | null; format: string | null }[];
  };
}
interface Endpoint {
  id: string;
  url: string;
  secret: string;
  event_types: string[];
  format: string;
  status: string;
  previous_secret_expires_at: string | null;
}
interface Delivery {
  id: string;
  event_id: string;
  event_type: string;
  status: string;
  http_status: number | null;
  response_preview: string | null;
  attempts: number;
  error: string | null;
  endpoint_id: string | null;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let kiln: Kiln;
const receiver = new WebhookReceiver();
let png: Buffer;

const envelope = (r: Received) => JSON.parse(r.body) as Envelope;
const types = (rs: Received[]) => rs.map((r) => envelope(r).type);

/** Two uploads, each finishing: the order one receiver sees for a two-file job. */
const TWO_FILE_EVENTS = ['file.uploaded', 'file.uploaded', 'conversion.started', 'file.uploaded', 'conversion.progress', 'file.uploaded', 'conversion.completed'];

async function newKey(name: string): Promise<string> {
  const client = new pg.Client({ connectionString: kiln.db.url });
  await client.connect();
  try {
    return (await createApiKey(client, name)).key;
  } finally {
    await client.end();
  }
}

function json(body: unknown): RequestInit {
  return { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

async function register(key: string, body: Record<string, unknown>): Promise<Endpoint> {
  const r = await kiln.api('/api/webhooks', { ...json(body), key });
  expect(r.status).toBe(201);
  // What the route answers is what the contract (and so the OpenAPI document) says.
  return webhookEndpointWithSecretSchema.parse(await r.json()) as Endpoint;
}

async function submit(key: string, files: number, fields: Record<string, string> = {}): Promise<string> {
  const parts = Array.from({ length: files }, (_, i) => ({ data: png, filename: `photo-${i}.png` }));
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form(parts, { format: 'webp', ...fields }), key });
  expect(r.status).toBe(200);
  return ((await r.json()) as { jobId: string }).jobId;
}

/** The job once it is final, read with the key that owns it. */
function waitForJob(key: string, jobId: string): Promise<JobDetailJson> {
  return until(
    `job ${jobId} to finish`,
    async () => {
      const j = (await (await kiln.api(`/api/jobs/${jobId}`, { key })).json()) as JobDetailJson;
      return j.status === 'completed' || j.status === 'failed' ? j : undefined;
    },
    60_000,
    100,
  );
}

async function deliveries(key: string): Promise<Delivery[]> {
  const r = await kiln.api('/api/webhooks/deliveries?limit=100', { key });
  expect(r.status).toBe(200);
  return listDeliveriesResponseSchema.parse(await r.json()).deliveries as Delivery[];
}

beforeAll(async () => {
  png = await sharp({ create: { width: 320, height: 200, channels: 3, background: { r: 200, g: 90, b: 30 } } })
    .png()
    .toBuffer();
  await receiver.start();
  kiln = await startKiln({
    apps: ['gateway', 'convert-worker'],
    env: {
      URL_IMPORT_ALLOWED_HOSTS: 'localhost',
      WEBHOOK_RETRY_BASE_MS: '300',
      WEBHOOK_TIMEOUT_SECONDS: '2',
      // No backstop poll within the tests' waits: every delivery, retry and lease take-over must come
      // from a notice or a due time the loop computed itself.
      WEBHOOK_POLL_MS: '600000',
      WEBHOOK_PROGRESS_INTERVAL_MS: '0',
      WEBHOOK_RETRY_HOURS: '1',
    },
  });
}, 120_000);

afterAll(async () => {
  if (process.env.KILN_TEST_LOG) fs.writeFileSync(process.env.KILN_TEST_LOG, kiln?.logs() ?? '');
  await kiln?.stop();
  await receiver.stop();
});

test('both formats verify with their own verifiers, and each receiver gets a job’s events in order with the job as GET returns it', async () => {
  const key = await newKey('formats');
  const convertly = await register(key, { url: receiver.url('/a/convertly'), event_types: ['file.uploaded', 'conversion.started', 'conversion.progress', 'conversion.completed'] });
  const standard = await register(key, { url: receiver.url('/a/standard'), format: 'standard' });
  expect(convertly.secret).toMatch(/^whsec_/);
  expect(convertly.format).toBe('convertly');
  expect(standard.format).toBe('standard');
  expect(standard.event_types).toHaveLength(7);

  const jobId = await submit(key, 2, { webhookUrl: receiver.url('/a/job') });
  const job = await waitForJob(key, jobId);
  expect(job.status).toBe('completed');
  for (const path of ['/a/convertly', '/a/standard', '/a/job']) await until(`7 events at ${path}`, async () => receiver.on(path).length >= 7, 30_000);

  for (const r of receiver.on('/a/convertly')) {
    expect(r.headers['user-agent']).toBe('Kiln-Webhooks/1.0');
    expect(verifyConvertlyWebhook(r.body, String(r.headers['convertly-signature']), convertly.secret)).toBe(true);
    expect(r.headers['convertly-event']).toBe(envelope(r).type);
    expect(String(r.headers['convertly-signature'])).toContain(`t=${r.headers['convertly-timestamp']},`);
  }
  for (const r of receiver.on('/a/standard')) {
    const verified = new Webhook(standard.secret).verify(r.body, r.headers as Record<string, string>) as Envelope;
    expect(verified.id).toBe(r.headers['webhook-id']);
    expect(() => new Webhook(convertly.secret).verify(r.body, r.headers as Record<string, string>)).toThrow();
  }
  // The job's own webhookUrl: every event, signed with the key's first endpoint's secret.
  for (const r of receiver.on('/a/job')) expect(verifyConvertlyWebhook(r.body, String(r.headers['convertly-signature']), convertly.secret)).toBe(true);

  for (const path of ['/a/convertly', '/a/standard', '/a/job']) {
    const got = receiver.on(path);
    expect(types(got)).toEqual(TWO_FILE_EVENTS);
    expect(new Set(got.map((r) => envelope(r).id)).size).toBe(7);
    for (const r of got) expect(envelope(r).id).toMatch(/^evt_[0-9a-f-]{36}$/);
  }
  const events = receiver.on('/a/convertly').map(envelope);
  expect(events[0]!.data).toMatchObject({ jobId, status: 'pending', filename: 'photo-0.png', fileIndex: 0 });
  expect(events[2]!.data.status).toBe('processing');
  const done = events[6]!;
  expect(done.data).toMatchObject({ jobId, status: 'completed' });
  expect(Math.abs(done.created - Date.now() / 1000)).toBeLessThan(120);
  // The payload's links are real signed links.
  for (const res of done.data.results) {
    expect(res.status).toBe('completed');
    expect(sniff(await download(res.downloadUrl!))).toBe('webp');
  }

  const list = listWebhooksResponseSchema.parse(await (await kiln.api('/api/webhooks', { key })).json());
  expect(list.webhooks.map((w) => w.id)).toEqual([convertly.id, standard.id]);
  for (const r of receiver.on('/a/standard')) webhookEnvelopeSchema.parse(JSON.parse(r.body));
  for (const w of list.webhooks) expect(w).not.toHaveProperty('secret');
  const history = await deliveries(key);
  expect(history).toHaveLength(21);
  for (const d of history) expect(d).toMatchObject({ status: 'succeeded', http_status: 200, response_preview: 'ok', attempts: 1 });
});

test('a receiver that is down for a while then up gets every event exactly once per id, in order', async () => {
  const down = new WebhookReceiver();
  await down.start();
  try {
    const key = await newKey('down-then-up');
    await register(key, { url: down.url('/b') });
    await down.stop();
    const jobId = await submit(key, 2);
    expect((await waitForJob(key, jobId)).status).toBe('completed');
    // Kiln has tried and failed at least twice while nobody listened.
    await until('a failed attempt or two', async () => (await deliveries(key)).some((d) => d.attempts >= 2 && d.status === 'pending' && d.error), 30_000);
    expect(down.received).toHaveLength(0);
    await down.start();
    await until('all 7 events', async () => down.on('/b').length >= 7 && (await deliveries(key)).every((d) => d.status === 'succeeded'), 60_000);
    const got = down.on('/b');
    expect(types(got)).toEqual(TWO_FILE_EVENTS);
    expect(new Set(got.map((r) => envelope(r).id)).size).toBe(got.length);
    expect(got).toHaveLength(7);
  } finally {
    await down.stop();
  }
});

test('kill -9 of the delivering worker mid-send: the event still arrives, from the restarted worker', async () => {
  const key = await newKey('kill');
  const ep = await register(key, { url: receiver.url('/c'), event_types: ['conversion.completed'] });
  // The first request is held open, as a slow receiver would; we kill the worker sending it.
  receiver.answer = (r) => (r.path === '/c' && receiver.on('/c').length === 1 ? 'hang' : 200);
  try {
    const jobId = await submit(key, 1);
    await until('the first delivery to arrive', async () => receiver.on('/c').length >= 1, 30_000);
    await kiln.stopApp('convert-worker', 'SIGKILL');
    await kiln.startApp('convert-worker');
    await until('the event again, answered', async () => receiver.on('/c').some((r) => r.answered === 200), 60_000);
    const got = receiver.on('/c');
    expect(new Set(got.map((r) => envelope(r).id)).size).toBe(1);
    expect(envelope(got.at(-1)!)).toMatchObject({ type: 'conversion.completed', data: { jobId, status: 'completed' } });
    expect(verifyConvertlyWebhook(got.at(-1)!.body, String(got.at(-1)!.headers['convertly-signature']), ep.secret)).toBe(true);
    const [d] = await until('the delivery recorded', async () => ((await deliveries(key)).every((x) => x.status === 'succeeded') ? deliveries(key) : undefined));
    expect(d).toMatchObject({ status: 'succeeded', http_status: 200 });
    expect(d!.attempts).toBeGreaterThanOrEqual(2);
  } finally {
    receiver.answer = () => 200;
  }
}, 120_000);

test('a URL outside the allow-list is refused at registration and at submission, and nothing is sent to it', async () => {
  const key = await newKey('ssrf');
  const before = receiver.received.length;
  const byAddress = `http://127.0.0.1:${receiver.port}/d`;
  for (const url of [byAddress, 'http://169.254.169.254/latest/meta-data/', 'http://10.0.0.7/hook']) {
    const r = await kiln.api('/api/webhooks', { ...json({ url }), key });
    expect(r.status).toBe(400);
    const body = (await r.json()) as { code: string; error: string; detail: { field: string } };
    expect(body.code).toBe('url_not_allowed');
    expect(body.detail.field).toBe('url');
    expect(body.error).toMatch(/^url: URL not allowed/);
  }
  // Submission: refused before anything is created (a secret exists, so that is not the reason).
  await register(key, { url: receiver.url('/d-ok'), event_types: ['conversion.failed'] });
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: png, filename: 'a.png' }], { format: 'webp', webhookUrl: byAddress }), key });
  expect(r.status).toBe(400);
  const body = (await r.json()) as { code: string; error: string; detail: { field: string } };
  expect(body).toMatchObject({ code: 'url_not_allowed', detail: { field: 'webhookUrl' } });
  expect(body.error).toMatch(/loopback/);
  const jobs = (await (await kiln.api('/api/jobs', { key })).json()) as { pagination: { total: number } };
  expect(jobs.pagination.total).toBe(0);
  expect(receiver.received.length).toBe(before);
  expect(receiver.received.some((x) => x.path === '/d')).toBe(false);
});

test('a job webhookUrl needs a secret; POST /api/webhooks/secret makes the key’s default one', async () => {
  const key = await newKey('default-secret');
  const refused = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: png, filename: 'a.png' }], { format: 'webp', webhookUrl: receiver.url('/e') }), key });
  expect(refused.status).toBe(400);
  expect(await refused.json()).toMatchObject({ code: 'invalid_field', detail: { field: 'webhookUrl' } });
  const s = await kiln.api('/api/webhooks/secret', { method: 'POST', key });
  expect(s.status).toBe(201);
  const { secret } = webhookKeySecretResponseSchema.parse(await s.json());
  expect(secret).toMatch(/^whsec_/);
  const jobId = await submit(key, 1, { webhookUrl: receiver.url('/e') });
  await until('4 events', async () => receiver.on('/e').length >= 4, 30_000);
  const got = receiver.on('/e');
  expect(types(got)).toEqual(['file.uploaded', 'conversion.started', 'file.uploaded', 'conversion.completed']);
  for (const r of got) expect(verifyConvertlyWebhook(r.body, String(r.headers['convertly-signature']), secret)).toBe(true);
  expect(envelope(got[3]!).data.jobId).toBe(jobId);
});

test('410 Gone disables the endpoint: no further deliveries, and a replay is refused', async () => {
  const key = await newKey('gone');
  receiver.answer = (r) => (r.path === '/g' ? 410 : 200);
  try {
    const ep = await register(key, { url: receiver.url('/g') });
    const jobId = await submit(key, 1);
    expect((await waitForJob(key, jobId)).status).toBe('completed');
    await until('every delivery finished', async () => (await deliveries(key)).every((d) => d.status === 'failed'), 30_000);
    expect(receiver.on('/g')).toHaveLength(1);
    const history = await deliveries(key);
    expect(history.find((d) => d.http_status === 410)).toMatchObject({ status: 'failed', event_type: 'file.uploaded' });
    expect(history.filter((d) => d.http_status === null).every((d) => /410 Gone/.test(d.error ?? ''))).toBe(true);
    const list = (await (await kiln.api('/api/webhooks', { key })).json()) as { webhooks: (Endpoint & { disabled_reason: string })[] };
    expect(list.webhooks[0]).toMatchObject({ id: ep.id, status: 'disabled' });
    expect(list.webhooks[0]!.disabled_reason).toMatch(/410 Gone/);
    const retry = await kiln.api(`/api/webhooks/deliveries/${history[0]!.id}/retry`, { method: 'POST', key });
    expect(retry.status).toBe(409);
    // A later job sends it nothing.
    await waitForJob(key, await submit(key, 1));
    expect(receiver.on('/g')).toHaveLength(1);
  } finally {
    receiver.answer = () => 200;
  }
});

test('rotation: the old secret signs alongside the new one; a replay sends the same event again; delete stops deliveries', async () => {
  const key = await newKey('rotate');
  const ep = await register(key, { url: receiver.url('/f'), events: ['conversion.completed'] });
  const rotated = await kiln.api(`/api/webhooks/${ep.id}/rotate`, { method: 'POST', key });
  expect(rotated.status).toBe(200);
  const fresh = webhookEndpointWithSecretSchema.parse(await rotated.json()) as Endpoint;
  expect(fresh.secret).not.toBe(ep.secret);
  expect(fresh.previous_secret_expires_at).not.toBeNull();
  await submit(key, 1);
  await until('the event', async () => receiver.on('/f').length >= 1, 30_000);
  const r = receiver.on('/f')[0]!;
  const header = String(r.headers['convertly-signature']);
  expect(verifyConvertlyWebhook(r.body, header, fresh.secret)).toBe(true);
  const t = header.split(',')[0]!.slice(2);
  expect(header.split(',')).toContain(`v1=${createHmac('sha256', ep.secret).update(`${t}.${r.body}`).digest('hex')}`);

  const [d] = await deliveries(key);
  const replay = await kiln.api(`/api/webhooks/deliveries/${d!.id}/retry`, { method: 'POST', key });
  expect(replay.status).toBe(202);
  expect(webhookDeliverySchema.parse(await replay.json()).id).toBe(d!.id);
  await until('the replay', async () => receiver.on('/f').length >= 2, 30_000);
  expect(envelope(receiver.on('/f')[1]!).id).toBe(envelope(r).id);
  expect(receiver.on('/f')[1]!.body).toBe(r.body);

  const del = await kiln.api(`/api/webhooks/${ep.id}`, { method: 'DELETE', key });
  expect(del.status).toBe(200);
  expect(deleteWebhookResponseSchema.parse(await del.json())).toEqual({ id: ep.id, deleted: true });
  expect(((await (await kiln.api('/api/webhooks', { key })).json()) as { webhooks: unknown[] }).webhooks).toHaveLength(0);
  await waitForJob(key, await submit(key, 1));
  expect(receiver.on('/f')).toHaveLength(2);
  expect((await kiln.api(`/api/webhooks/${ep.id}`, { method: 'DELETE', key })).status).toBe(404);
});

test('bad registrations are refused with the field named', async () => {
  const key = await newKey('bad');
  const cases: [unknown, string][] = [
    [{}, 'url'],
    [{ url: receiver.url('/x'), event_types: ['conversion.done'] }, 'event_types.0'],
    [{ url: receiver.url('/x'), format: 'svix' }, 'format'],
    [{ url: 'ftp://example.com/x' }, 'url'],
  ];
  for (const [body, field] of cases) {
    const r = await kiln.api('/api/webhooks', { ...json(body), key });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { detail: { field: string } }).detail.field).toBe(field);
  }
  const bad = await kiln.api('/api/webhooks/deliveries?limit=500', { key });
  expect(bad.status).toBe(400);
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, DATABASE_URL: kiln.db.url, URL_IMPORT_ALLOWED_HOSTS: 'localhost', LOG_LEVEL: 'error' };
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'scripts', 'keys.ts'), 'webhooks', ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
const lastLine = (s: string) => s.trimEnd().split('\n').at(-1)!;

test('pnpm keys:webhooks adds an endpoint whose secret verifies real deliveries, lists, rotates and deletes it', async () => {
  const key = await newKey('cli');
  const client = new pg.Client({ connectionString: kiln.db.url });
  await client.connect();
  const { rows } = await client.query<{ prefix: string }>(`SELECT prefix FROM api_keys WHERE name = 'cli'`);
  await client.end();
  const prefix = rows[0]!.prefix;
  const refused = await cli(['add', prefix, `http://127.0.0.1:${receiver.port}/cli`]);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toMatch(/url: URL not allowed/);

  const added = await cli(['add', prefix, receiver.url('/cli'), '--events', 'conversion.completed', '--format', 'standard']);
  expect(added.code).toBe(0);
  const secret = lastLine(added.stdout);
  expect(secret).toMatch(/^whsec_/);
  await submit(key, 1);
  await until('the delivery', async () => receiver.on('/cli').length >= 1, 30_000);
  expect(new Webhook(secret).verify(receiver.on('/cli')[0]!.body, receiver.on('/cli')[0]!.headers as Record<string, string>)).toMatchObject({ type: 'conversion.completed' });

  const list = await cli(['list', '--key', prefix, '--json']);
  expect(list.code).toBe(0);
  const [ep] = JSON.parse(list.stdout) as Endpoint[];
  expect(ep).toMatchObject({ url: receiver.url('/cli'), format: 'standard', event_types: ['conversion.completed'] });
  const hist = await cli(['deliveries', '--key', prefix]);
  expect(hist.stdout).toMatch(/conversion\.completed\s+succeeded\s+200/);
  const rotated = await cli(['rotate', ep!.id]);
  expect(rotated.code).toBe(0);
  expect(lastLine(rotated.stdout)).toMatch(/^whsec_/);
  expect(lastLine(rotated.stdout)).not.toBe(secret);
  expect((await cli(['delete', ep!.id])).code).toBe(0);
  expect((await cli(['delete', ep!.id])).code).toBe(1);
}, 120_000);

test('a TurboFiles task’s webhook_url and a media tool’s webhookUrl get their jobs’ events; a refused one names its pointer', async () => {
  // The bootstrap key: the TurboFiles helper speaks with it.
  const s = await kiln.api('/api/webhooks/secret', { method: 'POST' });
  const { secret } = (await s.json()) as { secret: string };
  const tf = turbofiles(kiln);
  const file = await tf.declare('image/png', png.length);
  expect((await tf.put(file.links.upload!, png)).status).toBeLessThan(300);
  const task = seedTask(file.id) as { data: { attributes: Record<string, unknown> } };

  const refused = await tf.task({ data: { ...task.data, attributes: { ...task.data.attributes, webhook_url: `http://127.0.0.1:${receiver.port}/tf` } } });
  expect(refused.status).toBe(400);
  expect(refused.doc.errors?.[0]).toMatchObject({ code: 'url_not_allowed', source: { pointer: '/data/attributes/webhook_url' } });

  const created = await tf.task({ data: { ...task.data, attributes: { ...task.data.attributes, webhook_url: receiver.url('/tf') } } });
  expect(created.status).toBe(201);
  await until('the task’s 4 events', async () => receiver.on('/tf').length >= 4, 30_000);
  expect(types(receiver.on('/tf'))).toEqual(['file.uploaded', 'conversion.started', 'file.uploaded', 'conversion.completed']);
  for (const r of receiver.on('/tf')) expect(verifyConvertlyWebhook(r.body, String(r.headers['convertly-signature']), secret)).toBe(true);
  expect(envelope(receiver.on('/tf')[3]!).data.jobId).toBe(created.doc.data.id);

  const fd = form([{ data: png, filename: 'p.png', field: 'file' }], { width: '40', webhookUrl: receiver.url('/mt') });
  const tool = await kiln.api('/api/media/thumbnail', { method: 'POST', body: fd });
  expect(tool.status).toBe(200);
  await until('the tool’s 3 events', async () => receiver.on('/mt').length >= 3, 30_000);
  expect(types(receiver.on('/mt'))).toEqual(['file.uploaded', 'file.uploaded', 'media.tool.completed']);
  expect(envelope(receiver.on('/mt')[2]!).data).toMatchObject({ status: 'completed', tool: 'thumbnail' });
});

test('the compress worker delivers too: a cancelled job’s conversion.failed arrives while no convert worker runs', async () => {
  const key = await newKey('cancel');
  const ep = await register(key, { url: receiver.url('/cancel'), event_types: ['conversion.failed'] });
  await kiln.stopApp('convert-worker');
  try {
    await kiln.startApp('compress-worker');
    const jobId = await submit(key, 1);
    const del = await kiln.api(`/api/jobs/${jobId}`, { method: 'DELETE', key });
    expect(del.status).toBe(200);
    await until('conversion.failed', async () => receiver.on('/cancel').length >= 1, 30_000);
    const [r] = receiver.on('/cancel');
    expect(envelope(r!)).toMatchObject({ type: 'conversion.failed', data: { jobId, status: 'failed', errorMessage: 'Job was cancelled.' } });
    expect(verifyConvertlyWebhook(r!.body, String(r!.headers['convertly-signature']), ep.secret)).toBe(true);
  } finally {
    await kiln.stopApp('compress-worker');
    await kiln.startApp('convert-worker');
  }
}, 120_000);

test('a URL source is file.uploaded once a worker has fetched it', async () => {
  const key = await newKey('url-source');
  const ep = await register(key, { url: receiver.url('/src-hook') });
  receiver.files.set('/img/source.png', png);
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([], { format: 'webp', sourceUrl: receiver.url('/img/source.png') }), key });
  expect(r.status).toBe(200);
  await until('4 events', async () => receiver.on('/src-hook').length >= 4, 30_000);
  const got = receiver.on('/src-hook');
  expect(types(got)).toEqual(['conversion.started', 'file.uploaded', 'file.uploaded', 'conversion.completed']);
  expect(envelope(got[1]!).data).toMatchObject({ filename: 'source.png', fileIndex: 0 });
  expect(envelope(got[2]!).data).toMatchObject({ filename: 'source.webp', fileIndex: 0 });
  for (const x of got) expect(verifyConvertlyWebhook(x.body, String(x.headers['convertly-signature']), ep.secret)).toBe(true);
});
