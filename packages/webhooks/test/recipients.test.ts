/**
 * The webhook recipient cache against real Postgres: it says "nobody" only when it is sure, follows
 * every endpoint change made by anyone (plain SQL here, as an operator might), and says "maybe"
 * whenever it cannot be sure (job webhookUrl, unknown key, closed listener).
 */
import { createApiKey, createPool, createWebhookEndpoint, deleteWebhookEndpoint, disableWebhookEndpoint, type Pool } from '@kiln/db';
import { createLogger } from '@kiln/config';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';
import { createRecipientCache, type RecipientCache } from '../src/index.ts';

let db: TestDatabase;
let pool: Pool;
let cache: RecipientCache;
const log = createLogger('test', 'error');

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 4);
  cache = await createRecipientCache(pool, db.url, log);
});
afterAll(async () => {
  await cache.close();
  await pool.end();
  await db.drop();
});

/** The cache follows a change through NOTIFY and a reload: wait (bounded) until it says `want`. */
async function until(want: boolean, ask: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (ask() !== want) {
    if (Date.now() > deadline) throw new Error(`the recipient cache did not come to say ${want} within 5 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const newKey = async () => (await createApiKey(pool, `recipients-${crypto.randomUUID()}`)).row.id;

test('a key without endpoints and a job without webhookUrl: nobody; anything unknown: maybe', async () => {
  const key = await newKey();
  await until(false, () => cache.mayReceive(key, false, 'conversion.started'));
  expect(cache.mayReceive(key, false)).toBe(false);
  expect(cache.mayReceive(key, true, 'conversion.started')).toBe(true);
  expect(cache.mayReceive(key, undefined)).toBe(true);
  expect(cache.mayReceive(undefined, false)).toBe(true);
});

test('an endpoint created, disabled or deleted in plain SQL is followed, per event type', async () => {
  const key = await newKey();
  await until(false, () => cache.mayReceive(key, false));
  const endpoint = await createWebhookEndpoint(pool, { apiKeyId: key, url: 'http://hooks.test/x', eventTypes: ['conversion.completed'], format: 'convertly', secret: 'whsec_x' });
  // "true" alone may be the "maybe" of a reload in flight: wait for the answer that only a loaded set gives.
  await until(true, () => cache.mayReceive(key, false, 'conversion.completed') && !cache.mayReceive(key, false, 'conversion.started'));
  expect(cache.mayReceive(key, false)).toBe(true);
  expect(cache.mayReceive(key, false, 'conversion.started')).toBe(false);

  await pool.query(`UPDATE webhook_endpoints SET event_types = '{conversion.started}' WHERE id = $1`, [endpoint.id]);
  await until(true, () => cache.mayReceive(key, false, 'conversion.started') && !cache.mayReceive(key, false, 'conversion.completed'));
  expect(cache.mayReceive(key, false, 'conversion.completed')).toBe(false);

  await disableWebhookEndpoint(pool, endpoint.id, 'gone');
  await until(false, () => cache.mayReceive(key, false));

  const second = await createWebhookEndpoint(pool, { apiKeyId: key, url: 'http://hooks.test/y', eventTypes: ['file.uploaded'], format: 'convertly', secret: 'whsec_y' });
  await until(true, () => cache.mayReceive(key, false, 'file.uploaded'));
  await deleteWebhookEndpoint(pool, second.id, key);
  await until(false, () => cache.mayReceive(key, false));
});

test('once it has seen an endpoint it does not go back to nobody while the endpoint stays', async () => {
  const key = await newKey();
  await until(false, () => cache.mayReceive(key, false));
  await createWebhookEndpoint(pool, { apiKeyId: key, url: 'http://hooks.test/z', eventTypes: ['conversion.started'], format: 'convertly', secret: 'whsec_z' });
  await until(true, () => cache.mayReceive(key, false, 'conversion.started') && !cache.mayReceive(key, false, 'file.uploaded'));
  // Other keys' changes make it reload meanwhile; none of those reloads may lose this key.
  const answers: boolean[] = [];
  for (let i = 0; i < 20; i++) {
    await createWebhookEndpoint(pool, { apiKeyId: await newKey(), url: 'http://hooks.test/o', eventTypes: ['file.uploaded'], format: 'convertly', secret: 'whsec_o' });
    answers.push(cache.mayReceive(key, false, 'conversion.started'));
    await new Promise((r) => setTimeout(r, 2));
    answers.push(cache.mayReceive(key, false, 'conversion.started'));
  }
  expect(answers.every(Boolean)).toBe(true);
});

test('a closed cache says maybe', async () => {
  const other = await createRecipientCache(pool, db.url, log);
  const key = await newKey();
  await until(false, () => other.mayReceive(key, false));
  await other.close();
  expect(other.mayReceive(key, false)).toBe(true);
});
