/** The error catalog at the HTTP edge: statuses and bodies for failures that aren't field errors. */
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import request from 'supertest';
import { createLogger, loadConfig } from '@kiln/config';
import { createPool } from '@kiln/db';
import { createMetrics } from '@kiln/metrics';
import { createApp } from '../src/app.ts';
import type { GatewayDeps } from '../src/deps.ts';
import { until } from '../../../test/helpers/kiln.ts';

function appWithDeadDatabase() {
  // Port 1 on loopback: nothing listens, so every query fails with ECONNREFUSED.
  const pool = createPool('postgres://kiln:x@127.0.0.1:1/kiln', 1);
  const deps = { config: loadConfig({}), pool, log: createLogger('test', 'error'), metrics: createMetrics() } as unknown as GatewayDeps;
  return { app: createApp(deps), pool };
}

test('an unreachable database answers 503 with Retry-After, not a 500', async () => {
  const { app, pool } = appWithDeadDatabase();
  const res = await request(app).get('/api/jobs').set('Authorization', 'Bearer kiln_whatever');
  expect(res.status).toBe(503);
  expect(res.headers['retry-after']).toBe('5');
  expect(res.body).toEqual({ error: expect.stringMatching(/cannot reach its database/), code: 'unavailable' });
  await pool.end();
});

test('an unknown route is a 404 in the error shape', async () => {
  const { app, pool } = appWithDeadDatabase();
  const res = await request(app).get('/nope');
  expect(res.status).toBe(404);
  expect(res.body.code).toBe('not_found');
  await pool.end();
});

test('liveness answers without touching the database', async () => {
  const { app, pool } = appWithDeadDatabase();
  const res = await request(app).get('/healthz');
  expect(res.status).toBe(200);
  await pool.end();
});

test('a request refused before its body is read: on a closing connection answered once the body has arrived (read and thrown away), so the connection is not reset under the client; on a keep-alive one at once', async () => {
  const { app, pool } = appWithDeadDatabase();
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    // Refused before a byte of the 3 MiB body is read: an upload without a key, a route that does not exist.
    const body = Buffer.alloc(3 * 1024 * 1024, 7);
    const half = body.length / 2;
    const answers: string[] = [];
    for (const target of ['POST /api/jobs', 'PUT /nope', 'POST /api/convert']) {
      const sock = net.connect(port, '127.0.0.1');
      await once(sock, 'connect');
      const got: Buffer[] = [];
      const ended = new Promise<string>((resolve) => {
        sock.on('data', (c: Buffer) => got.push(c));
        sock.on('error', (err: NodeJS.ErrnoException) => resolve(`${err.code}: ${Buffer.concat(got).toString('latin1')}`));
        sock.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
      });
      sock.write(`${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: ${body.length}\r\n\r\n`);
      await new Promise<void>((resolve) => sock.write(body.subarray(0, half), () => resolve()));
      // Half the body sent: no answer yet (answering now and closing with the rest still arriving
      // is what resets connections), and the connection is still open for the rest.
      await new Promise((r) => setTimeout(r, 300));
      expect(Buffer.concat(got).length).toBe(0);
      await new Promise<void>((resolve, reject) => sock.write(body.subarray(half), (err) => (err ? reject(err) : resolve())));
      answers.push(await ended);
    }
    expect(answers.map((a) => a.slice(0, 12))).toEqual(['HTTP/1.1 401', 'HTTP/1.1 404', 'HTTP/1.1 401']);

    // Keep-alive: answered at once (the client may stop sending), the rest read by Node itself, and the
    // connection still serves the next request.
    const sock = net.connect(port, '127.0.0.1');
    await once(sock, 'connect');
    let got = '';
    sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
    const closed = once(sock, 'close');
    sock.write(`POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: ${body.length}\r\n\r\n`);
    await new Promise<void>((resolve) => sock.write(body.subarray(0, half), () => resolve()));
    await until('the answer while the body is still arriving', async () => got.includes('\r\n\r\n'), 5000, 10);
    expect(got.slice(0, 12)).toBe('HTTP/1.1 401');
    sock.write(body.subarray(half));
    sock.write('GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    await closed;
    expect(got.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 401', 'HTTP/1.1 404']);
  } finally {
    server.close();
    await pool.end();
  }
});
