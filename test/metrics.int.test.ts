/**
 * Metrics end to end: real jobs through real convert and compress workers move the counters on the
 * gateway's /metrics and on each worker's own port (every page parsed as Prometheus text), a backlog
 * shows as queue depth and age while no worker takes it, every page needs METRICS_TOKEN, and no
 * label carries an id.
 */
import crypto from 'node:crypto';
import { form, freePort, startKiln, until, waitForJob, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';
import { labelsWithIds, scrape, type MetricsPage } from './helpers/prometheus.ts';

const TOKEN = crypto.randomBytes(24).toString('hex');
let kiln: Kiln;
let convertMetrics: string;
let compressMetrics: string;

beforeAll(async () => {
  const [convertPort, compressPort] = [await freePort(), await freePort()];
  convertMetrics = `http://127.0.0.1:${convertPort}/metrics`;
  compressMetrics = `http://127.0.0.1:${compressPort}/metrics`;
  kiln = await startKiln({ env: { METRICS_TOKEN: TOKEN, CONVERT_METRICS_PORT: String(convertPort), COMPRESS_METRICS_PORT: String(compressPort) } });
}, 90_000);
afterAll(async () => {
  await kiln?.stop();
});

const gatewayPage = () => scrape(`${kiln.url}/metrics`, TOKEN);

async function submit(fields: Record<string, string>, data: Buffer): Promise<string> {
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data }], fields) });
  const body = (await r.json()) as { jobId: string };
  expect(r.status).toBe(200);
  return body.jobId;
}

/** How much each series moved between two scrapes of the same page. */
const moved = (before: MetricsPage, after: MetricsPage) => (name: string, labels: Record<string, string>) => after.sum(name, labels) - before.sum(name, labels);

test('real jobs move the counters on the gateway and on each worker, and no label names an id', async () => {
  const [gwBefore, convertBefore, compressBefore] = await Promise.all([gatewayPage(), scrape(convertMetrics, TOKEN), scrape(compressMetrics, TOKEN)]);
  const good = await photo(320, 240);
  const corrupt = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(2000, 7)]);
  const ids = [await submit({ format: 'webp' }, good), await submit({ format: 'png' }, corrupt), await submit({ jobType: 'compress', compression: '60' }, good)];
  const jobs = await Promise.all(ids.map((id) => waitForJob(kiln, id)));
  expect(jobs.map((j) => j.status)).toEqual(['completed', 'failed', 'completed']);

  const [convertAfter, compressAfter] = await Promise.all([scrape(convertMetrics, TOKEN), scrape(compressMetrics, TOKEN)]);
  const convert = moved(convertBefore, convertAfter);
  expect(convert('kiln_conversion_duration_seconds_count', { engine: 'sharp', mode: 'convert', outcome: 'ok' })).toBe(1);
  expect(convert('kiln_conversion_duration_seconds_count', { engine: 'sharp', mode: 'convert', outcome: 'failed' })).toBe(1);
  expect(convert('kiln_conversion_failures_total', { engine: 'sharp', mode: 'convert', code: 'invalid_input' })).toBe(1);
  expect(convert('kiln_jobs_completed_total', { type: 'convert', dialect: 'convertly' })).toBe(1);
  expect(convert('kiln_jobs_failed_total', { type: 'convert', dialect: 'convertly' })).toBe(1);
  expect(convertAfter.value('kiln_db_pool_connections', { state: 'total' })).toBeGreaterThanOrEqual(1);
  expect(convertAfter.value('process_resident_memory_bytes')).toBeGreaterThan(0);

  const compress = moved(compressBefore, compressAfter);
  expect(compress('kiln_conversion_duration_seconds_count', { engine: 'sharp', mode: 'compress', outcome: 'ok' })).toBe(1);
  expect(compress('kiln_jobs_completed_total', { type: 'compress', dialect: 'convertly' })).toBe(1);
  expect(compress('kiln_conversion_failures_total', {})).toBe(0);

  // The gateway's Postgres-backed gauges are cached for a few seconds: wait for one that has the jobs.
  const gwAfter = await until(
    "the gateway's job totals to count the finished jobs",
    async () => {
      const p = await gatewayPage();
      const done = moved(gwBefore, p);
      return done('kiln_jobs', { type: 'convert', status: 'completed' }) === 1 &&
        done('kiln_jobs', { type: 'convert', status: 'failed' }) === 1 &&
        done('kiln_jobs', { type: 'compress', status: 'completed' }) === 1
        ? p
        : undefined;
    },
    30_000,
    250,
  );
  const gw = moved(gwBefore, gwAfter);
  expect(gw('kiln_jobs_created_total', { type: 'convert', dialect: 'convertly' })).toBe(2);
  expect(gw('kiln_jobs_created_total', { type: 'compress', dialect: 'convertly' })).toBe(1);
  expect(gw('kiln_http_requests_total', { route: '/api/jobs', method: 'POST', status: '200' })).toBe(3);
  expect(gw('kiln_http_requests_total', { route: '/api/jobs/:id', method: 'GET', status: '200' })).toBeGreaterThanOrEqual(3);
  expect(gw('kiln_upload_bytes_total', { dialect: 'convertly' })).toBe(2 * good.length + corrupt.length);
  expect(gw('kiln_upload_files_total', { dialect: 'convertly' })).toBe(3);
  expect(gwAfter.value('kiln_jobs', { type: 'convert', dialect: 'convertly', status: 'pending' })).toBe(0);
  for (const page of [gwAfter, convertAfter, compressAfter]) expect(labelsWithIds(page, ids)).toEqual([]);
}, 120_000);

test('a backlog no worker takes shows as queue depth and age on the gateway, and drains when one starts', async () => {
  await kiln.stopApp('convert-worker');
  const ids = [await submit({ format: 'webp' }, await photo(64, 48)), await submit({ format: 'jpg' }, await photo(64, 48))];
  const backlog = await until(
    'the gateway to show the waiting messages',
    async () => {
      const p = await gatewayPage();
      // The queue gauges and the job totals are read and cached separately: wait for a page with both.
      return p.value('kiln_queue_jobs', { queue: 'convert.image', state: 'ready' }) === 2 &&
        (p.value('kiln_queue_oldest_ready_seconds', { queue: 'convert.image' }) ?? 0) >= 1 &&
        p.value('kiln_jobs', { type: 'convert', dialect: 'convertly', status: 'pending' }) === 2
        ? p
        : undefined;
    },
    30_000,
    250,
  );
  expect(backlog.value('kiln_jobs', { type: 'convert', dialect: 'convertly', status: 'pending' })).toBe(2);
  expect(backlog.value('kiln_queue_jobs', { queue: 'convert.image', state: 'active' })).toBe(0);

  await kiln.startApp('convert-worker');
  await Promise.all(ids.map((id) => waitForJob(kiln, id)));
  await until(
    'the backlog to drain on the gateway page',
    async () => {
      const p = await gatewayPage();
      return p.value('kiln_queue_jobs', { queue: 'convert.image', state: 'ready' }) === 0 && p.value('kiln_queue_oldest_ready_seconds', { queue: 'convert.image' }) === 0;
    },
    30_000,
    250,
  );
}, 120_000);

test('every metrics page refuses a scrape without the token', async () => {
  for (const url of [`${kiln.url}/metrics`, convertMetrics, compressMetrics]) {
    const none = await fetch(url);
    expect({ url, status: none.status }).toEqual({ url, status: 401 });
    expect(await none.json()).toEqual({ code: 'unauthorized', error: expect.stringContaining('METRICS_TOKEN') });
    const wrong = await fetch(url, { headers: { Authorization: `Bearer ${kiln.key}` } });
    expect({ url, status: wrong.status }).toEqual({ url, status: 401 });
  }
});
