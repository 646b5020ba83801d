/**
 * Multipart intake under broken bodies, on a real gateway listening on 127.0.0.1 (createApp on real
 * Postgres, real disk): each of busboy's refusals is a 400 with a reason, a client that hangs up
 * mid-part leaves no temporary file, descriptor or job folder, a full disk is a 507, Node's own
 * parser refusals carry a code, and /readyz tells strangers only its status.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createApp } from '../src/app.ts';
import { answerClientError } from '../src/server.ts';
import { listTree, multipartBody, openFds, rawRequest } from '../../../test/helpers/fuzz.ts';
import { until } from '../../../test/helpers/kiln.ts';
import { photo } from '../../../test/helpers/images.ts';
import { startTestGateway, type TestGateway } from './helpers.ts';
import { startS3Server, type S3Server } from '../../../scripts/s3-server.ts';

const TOKEN = 'intake-test-metrics-token-0123456789';
let gw: TestGateway;
let server: http.Server;
let url: string;
let png: Buffer;

async function listen(app: http.RequestListener): Promise<{ server: http.Server; url: string }> {
  const s = http.createServer(app);
  s.on('clientError', answerClientError);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { server: s, url: `http://127.0.0.1:${(s.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  gw = await startTestGateway('intake', { METRICS_TOKEN: TOKEN });
  ({ server, url } = await listen(createApp(gw.deps)));
  png = await photo(32, 24, { format: 'png' });
}, 60_000);
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await gw?.close();
});

const blobs = () => path.join(gw.dataDir, 'blobs');
const B = 'kiln-intake-boundary';
const auth = () => ({ Authorization: `Bearer ${gw.key}` });
const headersFor = (body: Buffer, ct = `multipart/form-data; boundary=${B}`) => ({ ...auth(), 'Content-Type': ct, 'Content-Length': String(body.length) });

/** Nothing of a refused request may stay: no temporary file, no job folder, no descriptor into DATA_DIR. */
async function expectNothingLeft(): Promise<void> {
  await until(
    'no temporary file, job folder or open descriptor into DATA_DIR',
    async () => {
      const tmp = await listTree(path.join(blobs(), '.tmp'));
      const jobs = await listTree(path.join(blobs(), 'jobs'));
      const fds = (await openFds(process.pid)).filter((f) => f.startsWith(gw.dataDir));
      return tmp.length === 0 && jobs.length === 0 && fds.length === 0;
    },
    10_000,
  ).catch(async () => {
    expect({
      tmp: await listTree(path.join(blobs(), '.tmp')),
      jobs: await listTree(path.join(blobs(), 'jobs')),
      fds: (await openFds(process.pid)).filter((f) => f.startsWith(gw.dataDir)),
    }).toEqual({ tmp: [], jobs: [], fds: [] });
  });
}

const big = () => Buffer.concat([png, Buffer.alloc(400_000, 7)]);
const full = () =>
  multipartBody(B, [
    { name: 'format', data: 'webp' },
    { name: 'files', filename: 'a.png', contentType: 'image/png', data: big() },
  ]);

describe('a multipart body that cannot be read is a 400 naming what is wrong, and leaves nothing behind', () => {
  const cases: [string, () => { body: Buffer; headers: Record<string, string> }, string, RegExp][] = [
    [
      'a body cut short under a correct Content-Length',
      () => {
        const body = full().subarray(0, 200_000);
        return { body, headers: headersFor(body) };
      },
      'body_incomplete',
      /ended before the closing boundary/,
    ],
    [
      'a malformed part header after a stored file',
      () => {
        const body = multipartBody(B, [
          { name: 'files', filename: 'a.png', data: big() },
          { name: 'x', data: 'y', rawHeaders: 'garbage-without-colon\r\n' },
        ]);
        return { body, headers: headersFor(body) };
      },
      'malformed_part_header',
      /malformed header/,
    ],
    [
      'multipart/form-data without a boundary',
      () => {
        const body = full();
        return { body, headers: headersFor(body, 'multipart/form-data') };
      },
      'missing_boundary',
      /has no boundary/,
    ],
  ];
  test.each(cases)('%s', async (_name, make, reason, message) => {
    const { body, headers } = make();
    const r = await rawRequest(url, { method: 'POST', path: '/api/jobs', headers, body });
    expect(r.status).toBe(400);
    const parsed = JSON.parse(r.body) as { code: string; error: string; detail: { reason: string } };
    expect(parsed).toMatchObject({ code: 'invalid_request', detail: { reason } });
    expect(parsed.error).toMatch(message);
    await expectNothingLeft();
  });
});

test('a client that hangs up in the middle of a file leaves no temporary file, descriptor or job folder', async () => {
  const body = full();
  for (const at of [150, 60_000, 250_000]) {
    await rawRequest(url, { method: 'POST', path: '/api/jobs', headers: headersFor(body), body, sendBytes: at });
    await expectNothingLeft();
  }
});

test('a field refused after the files were stored removes the job folder too, not only the files', async () => {
  const body = multipartBody(B, [
    { name: 'files', filename: 'a.png', data: png },
    { name: 'format', data: 'not-a-format' },
  ]);
  const r = await rawRequest(url, { method: 'POST', path: '/api/jobs', headers: headersFor(body), body });
  expect(r.status).toBe(400);
  expect(JSON.parse(r.body)).toMatchObject({ code: 'invalid_field' });
  await expectNothingLeft();
});

test("a request Node's parser refuses still gets a code and a sentence", async () => {
  const r = await rawRequest(url, { method: 'POST', path: '/api/jobs', headers: { ...auth(), 'X-Bad': 'a\u0001b', 'Content-Length': '0' } });
  expect(r.status).toBe(400);
  expect(JSON.parse(r.body)).toMatchObject({ code: 'invalid_request', detail: { reason: expect.stringMatching(/^hpe_/) } });
  const huge = await rawRequest(url, { method: 'GET', path: '/api/formats', headers: { 'X-Big': 'x'.repeat(40_000) } });
  expect(huge.status).toBe(431);
  expect(JSON.parse(huge.body)).toMatchObject({ code: 'invalid_request', detail: { reason: 'hpe_header_overflow' } });
});

describe('/readyz', () => {
  test('tells a stranger only its status', async () => {
    for (const headers of [{}, { Authorization: 'Bearer not-the-token-at-all-0000' }, auth()]) {
      const r = await rawRequest(url, { method: 'GET', path: '/readyz', headers });
      expect({ status: r.status, body: JSON.parse(r.body) }).toEqual({ status: 200, body: { status: 'ready' } });
      expect(r.body).not.toContain(gw.dataDir);
    }
  });

  test('gives its checks, storage location, workers and engines to the metrics token', async () => {
    const r = await rawRequest(url, { method: 'GET', path: '/readyz', headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(r.status).toBe(200);
    const body = JSON.parse(r.body) as Record<string, unknown>;
    expect(body).toMatchObject({
      status: 'ready',
      checks: { database: { ok: true }, queue: { ok: true }, storage: { driver: 'local', path: path.join(gw.dataDir, 'blobs'), ok: true } },
    });
    expect(body).toHaveProperty('workers');
    expect(body).toHaveProperty('engines');
  });

  test('with METRICS_TOKEN unset, nobody gets the detail', async () => {
    const { METRICS_TOKEN: _, ...config } = gw.deps.config;
    const open = await listen(createApp({ ...gw.deps, config }));
    try {
      const r = await rawRequest(open.url, { method: 'GET', path: '/readyz', headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(JSON.parse(r.body)).toEqual({ status: 'ready' });
    } finally {
      await new Promise((r) => open.server.close(r));
    }
  });
});

/**
 * A really full disk: DATA_DIR on a 1 MiB tmpfs. Mounting needs root (as on this project's CI
 * machines); elsewhere the test says why it did not run.
 */
describe('a full disk', () => {
  let mnt: string | undefined;
  let full: TestGateway | undefined;
  let fullUrl: string;
  let fullServer: http.Server;
  beforeAll(async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-enospc-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
      mnt = dir;
    } catch {
      await fs.rm(dir, { recursive: true, force: true });
      return;
    }
    full = await startTestGateway('enospc', { DATA_DIR: mnt });
    ({ server: fullServer, url: fullUrl } = await listen(createApp(full.deps)));
  }, 60_000);
  afterAll(async () => {
    if (fullServer) await new Promise((r) => fullServer.close(r));
    // close() removes DATA_DIR's contents; the mount point itself goes after the unmount.
    await full?.close().catch(() => undefined);
    if (mnt) {
      execFileSync('umount', [mnt]);
      await fs.rm(mnt, { recursive: true, force: true });
    }
  });

  test('is a 507 with a code, and the partial file is removed', async () => {
    if (!full) return void console.warn('skipped: mounting a tmpfs needs root');
    const body = multipartBody(B, [
      { name: 'format', data: 'webp' },
      { name: 'files', filename: 'a.png', data: Buffer.concat([png, Buffer.alloc(3 * 1024 * 1024, 1)]) },
    ]);
    const r = await rawRequest(fullUrl, {
      method: 'POST',
      path: '/api/jobs',
      headers: { Authorization: `Bearer ${full.key}`, 'Content-Type': `multipart/form-data; boundary=${B}`, 'Content-Length': String(body.length) },
      body,
    });
    expect(r.status).toBe(507);
    expect(JSON.parse(r.body)).toMatchObject({ code: 'insufficient_storage', detail: { reason: 'storage_full' }, error: expect.stringMatching(/DATA_DIR/) });
    await until('the partial file to be removed', async () => (await listTree(path.join(mnt!, 'blobs', '.tmp'))).length === 0, 10_000);
    expect(await listTree(path.join(mnt!, 'blobs', 'jobs'))).toEqual([]);
    // And once there is room again, the same upload works.
    const small = multipartBody(B, [
      { name: 'format', data: 'webp' },
      { name: 'files', filename: 'a.png', data: png },
    ]);
    const ok = await rawRequest(fullUrl, {
      method: 'POST',
      path: '/api/jobs',
      headers: { Authorization: `Bearer ${full.key}`, 'Content-Type': `multipart/form-data; boundary=${B}`, 'Content-Length': String(small.length) },
      body: small,
    });
    expect(ok.status).toBe(200);
  });
});

/** The same refusals on S3 storage (a real S3-protocol server on 127.0.0.1): nothing stored, no multipart upload left open. */
describe('on S3 storage', () => {
  let s3: S3Server;
  let s3gw: TestGateway;
  let s3Url: string;
  let s3Server: http.Server;
  beforeAll(async () => {
    s3 = await startS3Server();
    s3gw = await startTestGateway('intake-s3', s3.env);
    ({ server: s3Server, url: s3Url } = await listen(createApp(s3gw.deps)));
  }, 60_000);
  afterAll(async () => {
    if (s3Server) await new Promise((r) => s3Server.close(r));
    await s3gw?.close();
    await s3?.stop();
  });

  test('a client that hangs up, or a body cut short, past the first 5 MiB part aborts the multipart upload and stores nothing', async () => {
    // 12 MiB: two full parts are sent (a multipart upload is open) before the body stops.
    const body = multipartBody(B, [
      { name: 'format', data: 'webp' },
      { name: 'files', filename: 'a.png', data: Buffer.concat([png, Buffer.alloc(12 * 1024 * 1024, 3)]) },
    ]);
    const headers = { Authorization: `Bearer ${s3gw.key}`, 'Content-Type': `multipart/form-data; boundary=${B}`, 'Content-Length': String(body.length) };
    // (Without the abort, each of these leaves an unfinished upload: checked by removing it once.)
    await rawRequest(s3Url, { method: 'POST', path: '/api/jobs', headers, body, sendBytes: 11 * 1024 * 1024 }, 60_000);
    const cut = body.subarray(0, 11 * 1024 * 1024);
    const r = await rawRequest(s3Url, { method: 'POST', path: '/api/jobs', headers: { ...headers, 'Content-Length': String(cut.length) }, body: cut }, 60_000);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ code: 'invalid_request', detail: { reason: 'body_incomplete' } });
    await until('the multipart uploads to be aborted', async () => (await s3.unfinishedUploads()).length === 0, 20_000, 100);
    expect((await s3.objects()).filter((k) => k.startsWith('jobs/'))).toEqual([]);
  }, 90_000);
});
