/**
 * Real exchanges with real servers on loopback, allowed through URL_IMPORT_ALLOWED_HOSTS: a real file
 * arrives intact and streamed; slow, stalled and oversized answers are cut with the right error and the
 * server sees its connection closed; the socket goes to the checked address (DNS rebinding); TLS still
 * verifies the certificate against the name while connecting to the IP; webhook-style requests.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { until } from '../../../test/helpers/kiln.ts';
import { isOutboundError } from '../src/index.ts';
import { clients, readAll, selfSignedCert, serve, type TestServer } from './helpers.ts';

const pool = clients();
afterAll(() => pool.closeAll());

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const allowLoopback = { allowedHosts: ['127.0.0.1'] };

describe('a real file from an allowed local server', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-outbound-'));
  const file = path.join(dir, 'photo.bin');
  const bytes = crypto.randomBytes(3 * 1024 * 1024 + 17);
  let server: TestServer;
  let releaseRest: () => void = () => undefined;
  const restReleased = new Promise<void>((r) => (releaseRest = r));

  beforeAll(async () => {
    fs.writeFileSync(file, bytes);
    server = await serve((req, res) => {
      if (req.url === '/start') {
        res.writeHead(301, { location: '/files/photo.bin?sig=abc' });
        return res.end();
      }
      if (req.url === '/files/photo.bin?sig=abc') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) });
        return fs.createReadStream(file).pipe(res);
      }
      if (req.url === '/streamed') {
        // Half the file, then nothing until the test has received bytes: proves the body is handed on as it arrives.
        res.writeHead(200, { 'content-length': String(bytes.length) });
        res.write(bytes.subarray(0, bytes.length / 2));
        void restReleased.then(() => res.end(bytes.subarray(bytes.length / 2)));
        return;
      }
      if (req.url === '/hops/0') return res.end('arrived');
      const hop = /^\/hops\/(\d+)$/.exec(req.url ?? '');
      if (hop) {
        res.writeHead(307, { location: `/hops/${Number(hop[1]) - 1}` });
        return res.end();
      }
      res.writeHead(404);
      res.end('no such file');
    });
  });
  afterAll(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('arrives byte for byte through a redirect, with the final URL reported', async () => {
    const { o, calls } = pool.make(allowLoopback, { 'files.test': ['127.0.0.1'] });
    const res = await o.fetchToStream(`http://files.test:${server.port}/start`, { maxBytes: bytes.length });
    expect(res.status).toBe(200);
    expect(res.finalUrl).toBe(`http://files.test:${server.port}/files/photo.bin?sig=abc`);
    expect(sha(await readAll(res.body))).toBe(sha(bytes));
    expect(calls.every((c) => c === '127.0.0.1')).toBe(true);
    // The server was asked for the name it is known by, not for the IP we connected to.
    expect(server.requests.at(-1)?.headers.host).toBe(`files.test:${server.port}`);
    expect(server.requests.at(-1)?.headers['user-agent']).toBe('Kiln-URL-Import/1.0');
  });

  test('is streamed: bytes reach the caller before the server has sent the rest', async () => {
    const { o } = pool.make(allowLoopback);
    const res = await o.fetchToStream(`${server.origin}/streamed`, { maxBytes: bytes.length });
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of res.body) {
      chunks.push(chunk as Buffer);
      received += (chunk as Buffer).length;
      if (received > 0) releaseRest();
    }
    expect(sha(Buffer.concat(chunks))).toBe(sha(bytes));
  });

  test('exactly URL_IMPORT_MAX_REDIRECTS redirects are followed', async () => {
    const { o } = pool.make({ ...allowLoopback, maxRedirects: 5 });
    const res = await o.fetchToStream(`${server.origin}/hops/5`, { maxBytes: 100 });
    expect((await readAll(res.body)).toString()).toBe('arrived');
    expect(res.finalUrl).toBe(`${server.origin}/hops/0`);
    await expect(o.fetchToStream(`${server.origin}/hops/6`, { maxBytes: 100 })).rejects.toMatchObject({ kind: 'limit_exceeded', setting: 'URL_IMPORT_MAX_REDIRECTS' });
  });

  test('a non-2xx answer fails fetch_failed with the status in the message', async () => {
    const { o } = pool.make(allowLoopback);
    const err = await o.fetchToStream(`${server.origin}/missing?token=secret`, { maxBytes: 100 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'fetch_failed', status: 404, retryable: false });
    // The query (signed URLs carry tokens there) is left out of messages.
    expect(isOutboundError(err) && err.message).toBe(`GET ${server.origin}/missing answered HTTP 404, not a success (2xx).`);
  });
});

describe('bounded: slow, stalled and oversized answers', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await serve((req, res) => {
      switch (req.url) {
        case '/no-headers':
          return; // accept, read the request, never answer
        case '/stall':
          res.writeHead(200, { 'content-length': '1000' });
          res.write(Buffer.alloc(100));
          return; // and never the rest
        case '/trickle': {
          res.writeHead(200);
          const t = setInterval(() => res.write('x'), 20);
          res.on('close', () => clearInterval(t));
          return;
        }
        case '/declared-big':
          res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) });
          res.write(Buffer.alloc(1024));
          return;
        case '/endless': {
          res.writeHead(200); // chunked, no length: only counting can stop it
          const chunk = Buffer.alloc(64 * 1024, 1);
          const pump = () => {
            while (!res.destroyed && res.write(chunk));
          };
          res.on('drain', pump);
          pump();
          return;
        }
        case '/unavailable':
          res.writeHead(503);
          return res.end('later');
        default:
          res.end('ok');
      }
    });
  });
  afterAll(() => server.close());

  /** Connections the server accepted from `since` on, all closed by now (or soon). */
  const closedSince = (since: number) =>
    until('the server to see the connection closed', async () => server.sockets.length > since && server.sockets.slice(since).every((s) => s.destroyed || s.closed), 10_000);

  test('headers that never come fail timeout naming URL_IMPORT_IDLE_TIMEOUT_SECONDS, and the socket is closed', async () => {
    const { o } = pool.make({ ...allowLoopback, idleTimeoutMs: 300 });
    const since = server.sockets.length;
    await expect(o.fetchToStream(`${server.origin}/no-headers`, { maxBytes: 100 })).rejects.toMatchObject({
      kind: 'timeout',
      setting: 'URL_IMPORT_IDLE_TIMEOUT_SECONDS',
      message: `${server.origin}/no-headers sent no response within 0.3 s; raise URL_IMPORT_IDLE_TIMEOUT_SECONDS to wait longer.`,
    });
    await closedSince(since);
  });

  test('a body that stalls fails timeout, and the socket is closed', async () => {
    const { o } = pool.make({ ...allowLoopback, idleTimeoutMs: 300 });
    const since = server.sockets.length;
    const res = await o.fetchToStream(`${server.origin}/stall`, { maxBytes: 10_000 });
    await expect(readAll(res.body)).rejects.toMatchObject({
      kind: 'timeout',
      setting: 'URL_IMPORT_IDLE_TIMEOUT_SECONDS',
      message: expect.stringMatching(/stopped sending its body for 0\.3 s/),
    });
    await closedSince(since);
  });

  test('a peer that never stops trickling is cut by the total timeout', async () => {
    const { o } = pool.make({ ...allowLoopback, idleTimeoutMs: 10_000, timeoutMs: 600 });
    const since = server.sockets.length;
    const res = await o.fetchToStream(`${server.origin}/trickle`, { maxBytes: 10_000_000 });
    await expect(readAll(res.body)).rejects.toMatchObject({
      kind: 'timeout',
      setting: 'URL_IMPORT_TIMEOUT_SECONDS',
      message: `${server.origin}/trickle took longer than 0.6 s in all; raise URL_IMPORT_TIMEOUT_SECONDS to wait longer.`,
    });
    await closedSince(since);
  });

  test("a per-call total timeout names the caller's setting (webhooks)", async () => {
    const { o } = pool.make(allowLoopback);
    await expect(o.request(`${server.origin}/no-headers`, { body: '{}', timeoutMs: 300, timeoutSetting: 'WEBHOOK_TIMEOUT_SECONDS' })).rejects.toMatchObject({
      kind: 'timeout',
      setting: 'WEBHOOK_TIMEOUT_SECONDS',
      message: expect.stringMatching(/raise WEBHOOK_TIMEOUT_SECONDS/),
    });
  });

  test('a declared length over the limit fails limit_exceeded before the body is read', async () => {
    const { o } = pool.make(allowLoopback);
    const since = server.sockets.length;
    await expect(o.fetchToStream(`${server.origin}/declared-big`, { maxBytes: 1024 * 1024, maxBytesSetting: 'MAX_UPLOAD_BYTES' })).rejects.toMatchObject({
      kind: 'limit_exceeded',
      setting: 'MAX_UPLOAD_BYTES',
      message: `${server.origin}/declared-big is 10485760 bytes, over the limit of 1048576 bytes; raise MAX_UPLOAD_BYTES to allow it.`,
    });
    await closedSince(since);
  });

  test('an endless body is cut at the limit: the caller never gets more than maxBytes, and the socket is closed', async () => {
    const { o } = pool.make(allowLoopback);
    const since = server.sockets.length;
    const res = await o.fetchToStream(`${server.origin}/endless`, { maxBytes: 1_000_000, maxBytesSetting: "the API key's max_file_size" });
    let received = 0;
    const err = await (async () => {
      for await (const c of res.body) received += (c as Buffer).length;
    })().catch((e: unknown) => e);
    expect(err).toMatchObject({
      kind: 'limit_exceeded',
      message: expect.stringMatching(/endless is more than 1000000 bytes, over the limit of 1000000 bytes; raise the API key's max_file_size to allow it/),
    });
    expect(received).toBeLessThanOrEqual(1_000_000);
    await closedSince(since);
  });

  test('a body the caller drops without reading closes the connection', async () => {
    const { o } = pool.make(allowLoopback);
    const since = server.sockets.length;
    const res = await o.fetchToStream(`${server.origin}/endless`, { maxBytes: 1e12 });
    res.body.destroy();
    await closedSince(since);
  });

  test("the caller's abort signal stops the fetch with the caller's own reason", async () => {
    const { o } = pool.make(allowLoopback);
    const since = server.sockets.length;
    const ac = new AbortController();
    const res = await o.fetchToStream(`${server.origin}/endless`, { maxBytes: 1e12, signal: ac.signal });
    const reason = new Error('job cancelled');
    let n = 0;
    const err = await (async () => {
      for await (const _ of res.body) if (++n === 3) ac.abort(reason);
    })().catch((e: unknown) => e);
    expect(err).toBe(reason);
    await closedSince(since);
  });

  test('503 is a retryable fetch_failed; a refused connection is one too', async () => {
    const { o } = pool.make(allowLoopback);
    await expect(o.fetchToStream(`${server.origin}/unavailable`, { maxBytes: 100 })).rejects.toMatchObject({
      kind: 'fetch_failed',
      status: 503,
      retryable: true,
      message: expect.stringMatching(/answered HTTP 503/),
    });
    const closed = await serve(() => undefined);
    const port = closed.port;
    await closed.close();
    await expect(o.fetchToStream(`http://127.0.0.1:${port}/`, { maxBytes: 100 })).rejects.toMatchObject({
      kind: 'fetch_failed',
      retryable: true,
      message: `Could not fetch http://127.0.0.1:${port}/ (ECONNREFUSED).`,
    });
  });
});

describe('the socket goes to the address that was checked', () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    a = await serve((_req, res) => res.end('from 127.0.0.1'));
    b = await serve((_req, res) => res.end('from 127.0.0.2'), { host: '127.0.0.2', port: a.port });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });

  test('DNS rebinding: a resolver answering public then loopback gets one lookup, and the connection goes to the public answer', async () => {
    // 93.184.215.14 stands for a public host: the test connector routes it to the loopback server.
    const { o, calls, lookups } = pool.make({}, { 'rebind.test': (n) => (n === 0 ? ['93.184.215.14'] : ['127.0.0.1']) }, { route: { '93.184.215.14': '127.0.0.1' } });
    const res = await o.fetchToStream(`http://rebind.test:${a.port}/`, { maxBytes: 100 });
    expect((await readAll(res.body)).toString()).toBe('from 127.0.0.1');
    expect(lookups).toEqual(['rebind.test']);
    expect(calls).toEqual(['93.184.215.14']);
    // A new connection resolves again, and the loopback answer is refused then.
    await o.close();
    const { o: again, calls: againCalls } = pool.make({}, { 'rebind.test': ['127.0.0.1'] });
    await expect(again.fetchToStream(`http://rebind.test:${a.port}/`, { maxBytes: 100 })).rejects.toMatchObject({
      kind: 'url_not_allowed',
      message: expect.stringMatching(/rebind\.test resolves to a loopback address/),
    });
    expect(againCalls).toEqual([]);
  });

  test('with real sockets: the checked 127.0.0.1 is reached, the rebound 127.0.0.2 never is', async () => {
    const { o, lookups } = pool.make(allowLoopback, { 'rebind.test': (n) => (n === 0 ? ['127.0.0.1'] : ['127.0.0.2']) });
    const res = await o.fetchToStream(`http://rebind.test:${a.port}/`, { maxBytes: 100 });
    expect((await readAll(res.body)).toString()).toBe('from 127.0.0.1');
    expect(lookups).toEqual(['rebind.test']);
    expect(a.sockets.at(-1)?.localAddress).toBe('127.0.0.1');
    expect(b.sockets).toHaveLength(0);
  });

  test('a check at submission does not vouch for the fetch: the fetch resolves and checks again', async () => {
    const { o, calls } = pool.make({}, { 'later.test': (n) => (n === 0 ? ['93.184.215.14'] : ['10.0.0.5']) });
    await expect(o.checkUrl('http://later.test/')).resolves.toMatchObject({ addresses: ['93.184.215.14'] });
    await expect(o.fetchToStream('http://later.test/', { maxBytes: 100 })).rejects.toMatchObject({
      kind: 'url_not_allowed',
      message: expect.stringMatching(/later\.test resolves to a private address \(10\.0\.0\.5\)/),
    });
    expect(calls).toEqual([]);
  });

  test('an address that refuses the connection falls over to the next checked one', async () => {
    const dead = await serve(() => undefined, { host: '127.0.0.3' });
    const port = a.port;
    await dead.close();
    const { o, calls } = pool.make({ allowedHosts: ['127.0.0.0/8'] }, { 'two.test': ['127.0.0.3', '127.0.0.1'] });
    const res = await o.fetchToStream(`http://two.test:${port}/`, { maxBytes: 100 });
    expect((await readAll(res.body)).toString()).toBe('from 127.0.0.1');
    expect(calls).toEqual(['127.0.0.3', '127.0.0.1']);
  });

  test('IPv6: an allowed [::1] literal and a name answering ::1 both reach the server on ::1', async () => {
    const v6 = await serve((_req, res) => res.end('from ::1'), { host: '::1' });
    try {
      const { o, calls } = pool.make({ allowedHosts: ['::1'] }, { 'six.test': ['::1'] });
      expect((await readAll((await o.fetchToStream(`http://[::1]:${v6.port}/`, { maxBytes: 100 })).body)).toString()).toBe('from ::1');
      expect((await readAll((await o.fetchToStream(`http://six.test:${v6.port}/`, { maxBytes: 100 })).body)).toString()).toBe('from ::1');
      expect(calls).toEqual(['::1', '::1']);
    } finally {
      await v6.close();
    }
  });

  test('an allowed hostname lifts the refusal for its own addresses only', async () => {
    const { o } = pool.make({ allowedHosts: ['files.intranet'] }, { 'files.intranet': ['127.0.0.1'], 'other.intranet': ['127.0.0.1'] });
    const res = await o.fetchToStream(`http://files.intranet:${a.port}/`, { maxBytes: 100 });
    expect((await readAll(res.body)).toString()).toBe('from 127.0.0.1');
    await expect(o.fetchToStream(`http://other.intranet:${a.port}/`, { maxBytes: 100 })).rejects.toMatchObject({ kind: 'url_not_allowed' });
    await expect(o.fetchToStream(`http://127.0.0.1:${a.port}/`, { maxBytes: 100 })).rejects.toMatchObject({ kind: 'url_not_allowed' });
  });
});

describe('https to a pinned address', () => {
  const { key, cert } = selfSignedCert(['files.test']);
  let server: TestServer;
  beforeAll(async () => {
    server = await serve((_req, res) => res.end('secret bytes'), { tls: { key, cert } });
  });
  afterAll(() => server.close());

  test('connects to the checked IP while SNI and the certificate check use the name', async () => {
    const { o, calls } = pool.make(allowLoopback, { 'files.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] }, { ca: cert });
    const res = await o.fetchToStream(`https://files.test:${server.port}/x`, { maxBytes: 100 });
    expect((await readAll(res.body)).toString()).toBe('secret bytes');
    expect(calls).toEqual(['127.0.0.1']);
    expect((server.sockets.at(-1) as import('node:tls').TLSSocket).servername).toBe('files.test');
    // The same IP under a name the certificate does not cover is refused: the IP did not replace the name.
    await expect(o.fetchToStream(`https://other.test:${server.port}/x`, { maxBytes: 100 })).rejects.toMatchObject({
      kind: 'fetch_failed',
      retryable: false,
      message: expect.stringMatching(/TLS certificate of other\.test:\d+ was refused \(ERR_TLS_CERT_ALTNAME_INVALID\)/),
    });
  });
});

describe('request(): small signed POSTs (webhooks)', () => {
  let server: TestServer;
  const seen: { method?: string; headers: Record<string, unknown>; body: string }[] = [];
  beforeAll(async () => {
    server = await serve(async (req, res) => {
      const body = (await readAll(req)).toString();
      seen.push({ method: req.method, headers: req.headers, body });
      if (req.url === '/gone') {
        res.writeHead(410);
        return res.end('endpoint removed');
      }
      if (req.url === '/to-other') {
        res.writeHead(307, { location: `http://localhost.test:${server.port}/final` });
        return res.end();
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('y'.repeat(50_000));
    });
  });
  afterAll(() => server.close());

  test('sends the body and headers, returns the status and a capped preview of the answer', async () => {
    const { o } = pool.make(allowLoopback);
    const payload = JSON.stringify({ id: 'evt_1', type: 'conversion.completed' });
    const res = await o.request(`${server.origin}/hook`, {
      body: payload,
      headers: { 'content-type': 'application/json', 'user-agent': 'Kiln-Webhooks/1.0', 'convertly-signature': 't=1,v1=ab' },
      previewBytes: 100,
    });
    expect(res.status).toBe(200);
    expect(res.preview).toBe('y'.repeat(100));
    expect(seen.at(-1)).toMatchObject({
      method: 'POST',
      body: payload,
      headers: { 'content-type': 'application/json', 'user-agent': 'Kiln-Webhooks/1.0', 'convertly-signature': 't=1,v1=ab' },
    });
  });

  test('a 410 is an answer, not an error', async () => {
    const { o } = pool.make(allowLoopback);
    const res = await o.request(`${server.origin}/gone`, { body: '{}' });
    expect(res).toMatchObject({ status: 410, preview: 'endpoint removed', finalUrl: `${server.origin}/gone` });
  });

  test('a followed redirect to another origin drops the Authorization header', async () => {
    const { o } = pool.make({ allowedHosts: ['127.0.0.1', 'localhost.test'] }, { 'localhost.test': ['127.0.0.1'] });
    const res = await o.request(`${server.origin}/to-other`, { body: 'x', headers: { authorization: 'Bearer secret' }, followRedirects: true });
    expect(res.status).toBe(200);
    expect(res.finalUrl).toBe(`http://localhost.test:${server.port}/final`);
    const [first, second] = seen.slice(-2);
    expect(first?.headers.authorization).toBe('Bearer secret');
    expect(second?.headers.authorization).toBeUndefined();
    expect(second).toMatchObject({ method: 'POST', body: 'x' }); // 307 keeps method and body
  });
});
