/** Retention: after expires_at, a job's blobs are deleted and its downloads vanish; the row stays. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createApiKey, createPool, finishFile, getJob, insertJob, withTransaction, type Pool } from '@kiln/db';
import { createLogger } from '@kiln/config';
import { keys, LocalDiskStore } from '@kiln/storage';
import { sweepExpired } from '../src/retention.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

let db: TestDatabase;
let pool: Pool;
let dir: string;
let store: LocalDiskStore;
beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 2);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-retention-'));
  store = await new LocalDiskStore(dir).init();
});
afterAll(async () => {
  await pool.end();
  await db.drop();
  await fs.rm(dir, { recursive: true, force: true });
});

test('an expired job loses its source and output blobs but keeps its record', async () => {
  const { row: key } = await createApiKey(pool, 'retention');
  const jobId = crypto.randomUUID();
  const fileId = crypto.randomUUID();
  const sourceKey = keys.source(jobId, fileId);
  await store.put(sourceKey, Readable.from([Buffer.from('source bytes')]));
  await insertJob(pool, {
    id: jobId,
    apiKeyId: key.id,
    jobType: 'convert',
    createArchive: false,
    files: [{ id: fileId, idx: 0, filename: 'a.png', sourceKey, sourceKind: 'png', originalSize: 12, options: {} }],
  });
  const outKey = keys.output(jobId, fileId, 'webp');
  await store.put(outKey, Readable.from([Buffer.from('output bytes')]));
  // Retention of ~0 hours: the job expires the moment it completes.
  await withTransaction(pool, (tx) =>
    finishFile(tx, jobId, fileId, { ok: true, output: { storageKey: outKey, filename: 'a.webp', mimeType: 'image/webp', size: 12 }, result: {} }, 0),
  );
  const otherJob = crypto.randomUUID();
  const otherKey = keys.source(otherJob, fileId);
  await store.put(otherKey, Readable.from([Buffer.from('keep me')]));

  expect(await sweepExpired(pool, store, createLogger('test', 'error'))).toBe(1);
  expect(await store.stat(sourceKey)).toBeUndefined();
  expect(await store.stat(outKey)).toBeUndefined();
  expect(await store.stat(otherKey)).toEqual({ size: 7 });
  const job = await getJob(pool, jobId);
  expect(job?.status).toBe('completed');
  const stored = await pool.query('SELECT count(*)::int AS n FROM stored_files WHERE job_id = $1', [jobId]);
  expect(stored.rows[0].n).toBe(0);
  // A second sweep finds nothing left to do.
  expect(await sweepExpired(pool, store, createLogger('test', 'error'))).toBe(0);
});
