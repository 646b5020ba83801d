/**
 * The metric set without a database: the page parses as Prometheus text, the Postgres-backed gauges
 * read once per period however often they are scraped and never fail a scrape, and a worker's own
 * listener refuses a missing token and says which setting to change when its port is taken.
 */
import http from 'node:http';
import { bearerAllows, cachedRead, createMetrics, startMetricsServer, type QueueDepth } from '../src/index.ts';
import { parseMetricsPage as parse } from '../../../test/helpers/prometheus.ts';

test('a fresh registry renders as Prometheus text with the process metrics and every Kiln metric named', async () => {
  const m = createMetrics();
  m.initJobSeries(['convert', 'compress'], ['convertly']);
  m.httpRequests.inc({ route: '/api/jobs/:id', method: 'GET', status: '200' });
  m.httpDuration.observe({ route: '/api/jobs/:id', method: 'GET' }, 0.012);
  m.conversionDuration.observe({ engine: 'sharp', mode: 'convert', outcome: 'ok' }, 0.2);
  const page = parse(await m.registry.metrics());
  const type = (name: string) => page.families.find((f) => f.name === name)?.type;
  expect(type('process_cpu_user_seconds_total')).toBe('COUNTER');
  expect(type('nodejs_eventloop_lag_seconds')).toBe('GAUGE');
  expect(type('kiln_http_request_duration_seconds')).toBe('HISTOGRAM');
  expect(page.value('kiln_http_requests_total', { route: '/api/jobs/:id', status: '200' })).toBe(1);
  expect(page.value('kiln_http_request_duration_seconds_count', { route: '/api/jobs/:id' })).toBe(1);
  expect(page.value('kiln_conversion_duration_seconds_bucket', { engine: 'sharp', le: '0.1' })).toBe(0);
  expect(page.value('kiln_conversion_duration_seconds_bucket', { engine: 'sharp', le: '0.25' })).toBe(1);
  // Started at zero, so the first job is an increase a rate() can see.
  expect(page.value('kiln_jobs_created_total', { type: 'compress', dialect: 'convertly' })).toBe(0);
  for (const name of ['kiln_upload_bytes_total', 'kiln_jobs_failed_total', 'kiln_conversion_failures_total', 'kiln_webhook_deliveries_total']) expect(type(name)).toBe('COUNTER');
});

test('the Postgres-backed gauges read once per period, however many scrapes arrive', async () => {
  const m = createMetrics();
  let reads = 0;
  let depth = 3;
  m.watchQueues(async () => {
    reads++;
    return [{ queue: 'convert.file', ready: depth, deferred: 1, active: 2, oldestReadySeconds: 4.5 }] satisfies QueueDepth[];
  }, 60_000);
  const pages = await Promise.all([m.registry.metrics(), m.registry.metrics(), m.registry.metrics()]);
  depth = 9;
  pages.push(await m.registry.metrics());
  expect(reads).toBe(1);
  for (const text of pages) {
    const page = parse(text);
    expect(page.value('kiln_queue_jobs', { queue: 'convert.file', state: 'ready' })).toBe(3);
    expect(page.value('kiln_queue_jobs', { queue: 'convert.file', state: 'active' })).toBe(2);
    expect(page.value('kiln_queue_oldest_ready_seconds', { queue: 'convert.file' })).toBe(4.5);
    expect(page.value('kiln_metrics_source_up', { source: 'queues' })).toBe(1);
  }
});

test('a failing source keeps its last values, says so, and does not fail the scrape', async () => {
  const m = createMetrics();
  let fail = false;
  m.watchJobTotals(async () => {
    if (fail) throw new Error('connection refused');
    return [{ jobType: 'convert', dialect: 'convertly', status: 'completed', count: 7 }];
  }, 0);
  expect(parse(await m.registry.metrics()).value('kiln_jobs', { status: 'completed' })).toBe(7);
  fail = true;
  const page = parse(await m.registry.metrics());
  expect(page.value('kiln_metrics_source_up', { source: 'jobs' })).toBe(0);
  expect(page.value('kiln_jobs', { status: 'completed' })).toBe(7);
});

test('cachedRead shares one read in flight and does not keep a failure', async () => {
  let now = 0;
  let calls = 0;
  let fail = true;
  const read = cachedRead(
    async () => {
      calls++;
      if (fail) throw new Error('down');
      return calls;
    },
    1000,
    () => now,
  );
  await expect(Promise.all([read(), read()])).rejects.toThrow('down');
  expect(calls).toBe(1);
  fail = false;
  expect(await read()).toBe(2);
  now = 999;
  expect(await read()).toBe(2);
  now = 1000;
  expect(await read()).toBe(3);
});

test('the bearer check wants exactly the token, and nothing when none is set', () => {
  const token = 't'.repeat(32);
  expect(bearerAllows(undefined, undefined)).toBe(true);
  expect(bearerAllows(`Bearer ${token}`, token)).toBe(true);
  expect(bearerAllows(`bearer ${token} `, token)).toBe(true);
  expect(bearerAllows(undefined, token)).toBe(false);
  expect(bearerAllows(`Bearer ${token}x`, token)).toBe(false);
  expect(bearerAllows(`Basic ${token}`, token)).toBe(false);
  expect(bearerAllows(`Bearer ${token.slice(1)}`, token)).toBe(false);
});

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      })
      .on('error', reject);
  });
}

test("a worker's listener serves /metrics behind its token, and names the setting when its port is taken", async () => {
  const m = createMetrics();
  m.conversionFailures.inc({ engine: 'ffmpeg', mode: 'compress', code: 'timeout' });
  const token = 'k'.repeat(40);
  const server = await startMetricsServer({ registry: m.registry, port: 0, host: '127.0.0.1', token, setting: 'COMPRESS_METRICS_PORT' });
  try {
    const refused = await get(server.port, '/metrics');
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toEqual({ code: 'unauthorized', error: expect.stringContaining('METRICS_TOKEN') });
    expect((await get(server.port, '/metrics', { Authorization: 'Bearer wrong-token-wrong-token' })).status).toBe(401);
    const ok = await get(server.port, '/metrics', { Authorization: `Bearer ${token}` });
    expect(ok.status).toBe(200);
    expect(ok.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(parse(ok.body).value('kiln_conversion_failures_total', { engine: 'ffmpeg', code: 'timeout' })).toBe(1);
    expect((await get(server.port, '/other', { Authorization: `Bearer ${token}` })).status).toBe(404);

    await expect(startMetricsServer({ registry: m.registry, port: server.port, host: '127.0.0.1', setting: 'COMPRESS_METRICS_PORT' })).rejects.toThrow(
      `COMPRESS_METRICS_PORT=${server.port}: the port is already in use on 127.0.0.1 (another worker of this kind on this host?); give each worker its own port, or 0 to turn its metrics off.`,
    );
  } finally {
    await server.close();
  }
});

test("a registry nobody can scrape skips Node's own metrics (their event-loop sampling costs CPU), and keeps Kiln's", async () => {
  const page = parse(await createMetrics({ processMetrics: false }).registry.metrics());
  expect(page.families.filter((f) => /^(process|nodejs)_/.test(f.name))).toEqual([]);
  expect(page.families.map((f) => f.name)).toContain('kiln_conversion_duration_seconds');
});
