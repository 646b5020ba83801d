/**
 * A task that meets a storage outage goes back in pg-boss (real Postgres) as a fresh, delayed
 * message that remembers when its outage began, and stops being put back once that is longer ago
 * than STORAGE_RETRY_MAX_SECONDS.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { createLogger } from '@kiln/config';
import { Queue, QUEUES } from '@kiln/queue';
import { StorageUnavailableError } from '@kiln/storage';
import { requeueWhileStorageIsDown } from '../src/storage-outage.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

let db: TestDatabase;
let queue: Queue;
let sql: pg.Client;
const log = createLogger('test', 'error');
const outage = new StorageUnavailableError('Storage is unavailable: cannot reach bucket b at http://127.0.0.1:1 (ECONNREFUSED).', 'S3_ENDPOINT');

beforeAll(async () => {
  db = await createTestDatabase();
  queue = await new Queue({ connectionString: db.url, retryLimit: 2, expireInSeconds: 120, supervise: false }).start();
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
});
afterAll(async () => {
  await sql?.end();
  await queue?.stop();
  await db?.drop();
});

const queued = async (fileId: string) =>
  (
    await sql.query<{ data: { storageWaitSince?: string }; wait: number; retry_count: number }>(
      `SELECT data, extract(epoch FROM start_after - now())::float AS wait, retry_count FROM pgboss.job WHERE name = $1 AND data->>'fileId' = $2`,
      [QUEUES.convertFile, fileId],
    )
  ).rows;

test('the first meeting with an outage queues the task again in a few seconds, with no retry spent', async () => {
  const payload = { jobId: crypto.randomUUID(), fileId: crypto.randomUUID() };
  const before = Date.now();
  expect(await requeueWhileStorageIsDown(queue, QUEUES.convertFile, payload, outage, 3600, log)).toBe(true);
  const [row, ...more] = await queued(payload.fileId);
  expect(more).toEqual([]);
  expect(row!.retry_count).toBe(0);
  expect(row!.wait).toBeGreaterThan(0.5);
  expect(row!.wait).toBeLessThanOrEqual(2.5);
  expect(Date.parse(row!.data.storageWaitSince!)).toBeGreaterThanOrEqual(before - 1000);
});

test('a longer outage waits longer between tries, and keeps the moment it began', async () => {
  const since = new Date(Date.now() - 40_000).toISOString();
  const payload = { jobId: crypto.randomUUID(), fileId: crypto.randomUUID(), storageWaitSince: since };
  expect(await requeueWhileStorageIsDown(queue, QUEUES.convertFile, payload, outage, 3600, log)).toBe(true);
  const [row] = await queued(payload.fileId);
  expect(row!.wait).toBeGreaterThan(15);
  expect(row!.wait).toBeLessThanOrEqual(30.5);
  expect(row!.data.storageWaitSince).toBe(since);
});

test('past STORAGE_RETRY_MAX_SECONDS the task is not put back', async () => {
  const payload = { jobId: crypto.randomUUID(), fileId: crypto.randomUUID(), storageWaitSince: new Date(Date.now() - 120_000).toISOString() };
  expect(await requeueWhileStorageIsDown(queue, QUEUES.convertFile, payload, outage, 60, log)).toBe(false);
  expect(await queued(payload.fileId)).toEqual([]);
});
