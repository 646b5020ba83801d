/** Keys, isolation, idempotency and cancellation against a real gateway and database. */
import pg from 'pg';
import { createApiKey } from '@kiln/db';
import { form, startKiln, until, waitForJob, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';

let kiln: Kiln;
let otherKey: string;
beforeAll(async () => {
  // Gateway only: with no workers, jobs stay pending, which the cancel tests need.
  kiln = await startKiln({ apps: ['gateway'] });
  const c = new pg.Client({ connectionString: kiln.db.url });
  await c.connect();
  otherKey = (await createApiKey(c, 'someone else')).key;
  await c.end();
}, 90_000);
afterAll(async () => {
  await kiln?.stop();
});

const png = () => photo(40, 30, { format: 'png' });

test('no key → 401 with the contract body; unknown key → 401', async () => {
  const r = await kiln.api('/api/jobs', { key: null });
  expect(r.status).toBe(401);
  expect(await r.json()).toEqual({ error: 'Missing API key.', code: 'unauthorized' });
  const u = await kiln.api('/api/jobs', { key: 'kiln_not_a_real_key' });
  expect(u.status).toBe(401);
  expect(((await u.json()) as { code: string }).code).toBe('unauthorized');
});

test('x-api-key works as well as Bearer', async () => {
  const r = await fetch(`${kiln.url}/api/jobs`, { headers: { 'x-api-key': kiln.key } });
  expect(r.status).toBe(200);
});

test("another key's job is 404 — for reading, cancelling and listing", async () => {
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: await png() }], { format: 'webp' }) });
  const { jobId } = (await r.json()) as { jobId: string };
  const asOther = (init: RequestInit = {}) => kiln.api(`/api/jobs/${jobId}`, { ...init, key: otherKey });
  expect((await asOther()).status).toBe(404);
  expect((await asOther({ method: 'DELETE' })).status).toBe(404);
  const list = (await (await kiln.api('/api/jobs', { key: otherKey })).json()) as { jobs: unknown[] };
  expect(list.jobs).toHaveLength(0);
  expect((await kiln.api(`/api/jobs/${jobId}`)).status).toBe(200);
});

test('the same Idempotency-Key returns the same job and creates no second one', async () => {
  const headers = { 'Idempotency-Key': 'order-1234' };
  const body = async () => form([{ data: await png() }], { format: 'jpg' });
  const a = (await (await kiln.api('/api/jobs', { method: 'POST', body: await body(), headers })).json()) as { jobId: string };
  const b = await kiln.api('/api/jobs', { method: 'POST', body: await body(), headers });
  expect(b.headers.get('idempotent-replayed')).toBe('true');
  expect(((await b.json()) as { jobId: string }).jobId).toBe(a.jobId);
  // Concurrent duplicates race inside Postgres; still one job.
  const [c, d] = await Promise.all(
    [0, 1].map(async () => (await (await kiln.api('/api/jobs', { method: 'POST', body: await body(), headers: { 'Idempotency-Key': 'race-1' } })).json()) as { jobId: string }),
  );
  expect(c!.jobId).toBe(d!.jobId);
  // The same key under another API key is a different namespace.
  const e = (await (await kiln.api('/api/jobs', { method: 'POST', body: await body(), headers, key: otherKey })).json()) as { jobId: string };
  expect(e.jobId).not.toBe(a.jobId);
  const db = new pg.Client({ connectionString: kiln.db.url });
  await db.connect();
  const n = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM idempotency_keys`)).rows[0]!.n;
  const jobs = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs j JOIN idempotency_keys k ON k.job_id = j.id`)).rows[0]!.n;
  await db.end();
  expect(n).toBe(3);
  expect(jobs).toBe(3);
});

test('DELETE cancels a pending job, which then reads failed; a second DELETE is 409', async () => {
  const { jobId } = (await (await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: await png() }], { format: 'png' }) })).json()) as { jobId: string };
  const del = await kiln.api(`/api/jobs/${jobId}`, { method: 'DELETE' });
  expect(del.status).toBe(200);
  const job = await waitForJob(kiln, jobId);
  expect(job).toMatchObject({ status: 'failed', errorMessage: 'Job was cancelled.' });
  const again = await kiln.api(`/api/jobs/${jobId}`, { method: 'DELETE' });
  expect(again.status).toBe(409);
  expect(((await again.json()) as { code: string }).code).toBe('job_not_cancellable');
});

test('a cancelled job is not processed when a worker comes up', async () => {
  const { jobId } = (await (await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: await png() }], { format: 'png' }) })).json()) as { jobId: string };
  await kiln.api(`/api/jobs/${jobId}`, { method: 'DELETE' });
  await kiln.startApp('convert-worker');
  // Another, live job proves the worker is consuming; the cancelled one must stay untouched.
  const live = (await (await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: await png() }], { format: 'png' }) })).json()) as { jobId: string };
  expect((await waitForJob(kiln, live.jobId)).status).toBe('completed');
  await until(
    'pending messages to drain',
    async () => {
      const r = (await (await kiln.api('/api/jobs?status=pending')).json()) as { jobs: unknown[] };
      return r.jobs.length === 0 || undefined;
    },
    20_000,
  ).catch(() => undefined);
  const job = await waitForJob(kiln, jobId);
  expect(job.status).toBe('failed');
  expect(job.results[0]!.status).toBe('failed');
  expect(job.results[0]!.error!.code).toBe('cancelled');
  await kiln.stopApp('convert-worker');
});

test('a malformed job id is 404, not 500', async () => {
  expect((await kiln.api('/api/jobs/not-a-uuid')).status).toBe(404);
});
