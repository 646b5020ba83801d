/** The error catalog at the HTTP edge: statuses and bodies for failures that aren't field errors. */
import request from 'supertest';
import { createLogger, loadConfig } from '@kiln/config';
import { createPool } from '@kiln/db';
import { createMetrics } from '@kiln/metrics';
import { createApp } from '../src/app.ts';
import type { GatewayDeps } from '../src/deps.ts';

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
