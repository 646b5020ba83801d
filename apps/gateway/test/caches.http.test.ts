/**
 * The gateway's API-key cache through createApp with real Postgres: a key is looked up once and then
 * served from memory, any change to api_keys (by anyone: SQL, the CLI, the dashboard) reaches every
 * gateway through the trigger's NOTIFY and ends the cache, and while the LISTEN connection is down
 * nothing is served from the cache at all.
 */
import type pg from 'pg';
import request from 'supertest';
import { createApiKey } from '@kiln/db';
import { startTestGateway, type TestGateway } from './helpers.ts';
import { until } from '../../../test/helpers/kiln.ts';

let gw: TestGateway;
let deps: TestGateway['deps'];
let app: TestGateway['app'];
let client: pg.Client;

beforeAll(async () => {
  gw = await startTestGateway('cache');
  ({ deps, app, client } = gw);
}, 60_000);
afterAll(async () => {
  await client?.query('ALTER TABLE api_keys ENABLE TRIGGER api_keys_changed').catch(() => undefined);
  await gw?.close();
});

const status = async (key: string) => (await request(app).get('/api/jobs').set('Authorization', `Bearer ${key}`)).status;

test('a cached key keeps working only until a change to api_keys is announced', async () => {
  const { key, row } = await createApiKey(client, 'cached');
  expect(await status(key)).toBe(200);
  // Revoke with the trigger off: nobody is told, so the gateway still answers from its cache —
  // which shows the cache is what answered.
  await client.query('ALTER TABLE api_keys DISABLE TRIGGER api_keys_changed');
  await client.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [row.id]);
  expect(await status(key)).toBe(200);
  // Any announced change to api_keys (here: a statement touching no row at all) ends it.
  await client.query('ALTER TABLE api_keys ENABLE TRIGGER api_keys_changed');
  await client.query('UPDATE api_keys SET name = name WHERE false');
  await until('the revoked key to be refused', async () => (await status(key)) === 401, 5000, 20);
});

test('revoking through SQL, as the keys CLI does, is refused within moments', async () => {
  const { key, row } = await createApiKey(client, 'revoked by sql');
  expect(await status(key)).toBe(200);
  await client.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [row.id]);
  await until('the revoked key to be refused', async () => (await status(key)) === 401, 5000, 20);
});

test('while the LISTEN connection is down nothing is served from the cache; it comes back by itself', async () => {
  const { key, row } = await createApiKey(client, 'listener down');
  expect(await status(key)).toBe(200);
  await client.query('ALTER TABLE api_keys DISABLE TRIGGER api_keys_changed');
  try {
    await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kiln-gateway-listen' AND datname = current_database()");
    await until('the listener to notice', async () => !deps.waiter.listening(), 5000, 10);
    await client.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [row.id]);
    // No notification was sent, yet the revoked key is refused: the cache was dropped with the connection.
    expect(await status(key)).toBe(401);
  } finally {
    await client.query('ALTER TABLE api_keys ENABLE TRIGGER api_keys_changed');
  }
  await until('the listener to reconnect', async () => deps.waiter.listening(), 10_000, 50);
  const other = await createApiKey(client, 'after reconnect');
  expect(await status(other.key)).toBe(200);
});
