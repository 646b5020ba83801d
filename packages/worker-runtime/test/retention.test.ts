/** Retention: after expires_at, a job's blobs are deleted and its downloads vanish; the row stays. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createApiKey, createPool, createTurbofilesFile, finishFile, getJob, insertJob, insertTask, withTransaction, type Pool } from '@kiln/db';
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

describe('TurboFiles uploads', () => {
  const log = createLogger('test', 'error');

  /** A declared file whose bytes are stored, expiring `hours` from now (negative: already expired). */
  async function upload(apiKeyId: string, hours: number): Promise<{ id: string; key: string }> {
    const id = crypto.randomUUID();
    await createTurbofilesFile(pool, { id, apiKeyId, format: 'image/png', kind: 'png', size: 5, ttlHours: hours });
    const key = keys.upload(id, crypto.randomUUID());
    await store.put(key, Readable.from([Buffer.from('bytes')]));
    await pool.query(`UPDATE turbofiles_files SET storage_key = $2, ready_at = now() WHERE id = $1`, [id, key]);
    return { id, key };
  }

  /** A task (a one-file job) reading `file`, left pending, or finished with a result expiring at once. */
  async function task(apiKeyId: string, file: { id: string; key: string }, finished: boolean): Promise<string> {
    const jobId = crypto.randomUUID();
    const fileId = crypto.randomUUID();
    await withTransaction(pool, async (tx) => {
      await insertJob(tx, {
        id: jobId,
        apiKeyId,
        jobType: 'convert',
        createArchive: false,
        dialect: 'turbofiles',
        files: [{ id: fileId, idx: 0, filename: 'a.png', sourceKey: file.key, sourceKind: 'png', originalSize: 5, options: {} }],
      });
      expect(await insertTask(tx, { jobId, apiKeyId, inputFileId: file.id, format: { input: 'png', output: 'webp' }, settings: {} })).toBe(true);
    });
    if (finished) await finishFile(pool, jobId, fileId, { ok: false, code: 'invalid_input', message: 'x' }, 0);
    return jobId;
  }

  test('an expired upload loses its bytes unless a task still pending reads it; a task expiring never takes its shared input', async () => {
    const { row: key } = await createApiKey(pool, 'uploads');
    const expired = await upload(key.id, -1);
    const readByPending = await upload(key.id, 1);
    const live = await upload(key.id, 1);
    // Tasks are only made on files that have not expired yet; this one expires while its task waits.
    await task(key.id, readByPending, false);
    await pool.query(`UPDATE turbofiles_files SET expires_at = now() - interval '1 minute' WHERE id = $1`, [readByPending.id]);
    // A finished task whose retention (0 h) is over: its job is purged, the file it read is not its own.
    const doneJob = await task(key.id, live, true);

    await sweepExpired(pool, store, log);
    expect(await store.stat(expired.key)).toBeUndefined();
    expect(await store.stat(readByPending.key)).toEqual({ size: 5 });
    expect(await store.stat(live.key)).toEqual({ size: 5 });
    const purged = await pool.query(`SELECT id FROM turbofiles_files WHERE purged_at IS NOT NULL AND api_key_id = $1`, [key.id]);
    expect(purged.rows.map((r) => r.id)).toEqual([expired.id]);
    expect((await pool.query(`SELECT purged_at FROM jobs WHERE id = $1`, [doneJob])).rows[0].purged_at).not.toBeNull();

    // Once the pending task has finished, its expired input goes at the next sweep.
    await pool.query(`UPDATE jobs SET status = 'failed' WHERE api_key_id = $1 AND status = 'pending'`, [key.id]);
    await sweepExpired(pool, store, log);
    expect(await store.stat(readByPending.key)).toBeUndefined();
  });
});

test('a backlog is purged in batches within one sweep, each batch a short statement, and a time budget stops it', async () => {
  const { row: key } = await createApiKey(pool, 'backlog');
  // 23 expired jobs with an output row each: batches of 5 take five rounds (5+5+5+5+3) in one sweep.
  const ids: string[] = [];
  for (let i = 0; i < 23; i++) {
    const jobId = crypto.randomUUID();
    const fileId = crypto.randomUUID();
    ids.push(jobId);
    await insertJob(pool, {
      id: jobId,
      apiKeyId: key.id,
      jobType: 'convert',
      createArchive: false,
      files: [{ id: fileId, idx: 0, filename: 'a.png', sourceKey: keys.source(jobId, fileId), sourceKind: 'png', originalSize: 1, options: {} }],
    });
    const outKey = keys.output(jobId, fileId, 'webp');
    await store.put(outKey, Readable.from([Buffer.from('out')]));
    await finishFile(pool, jobId, fileId, { ok: true, output: { storageKey: outKey, filename: 'a.webp', mimeType: 'image/webp', size: 3 }, result: {} }, 0);
  }
  const log = createLogger('test', 'error');
  // A spent budget: one batch, then the sweep stops and leaves the rest to the next one.
  expect(await sweepExpired(pool, store, log, { batch: 5, budgetMs: 0 })).toBe(5);
  expect(await sweepExpired(pool, store, log, { batch: 5, budgetMs: 60_000 })).toBe(18);
  const left = await pool.query(`SELECT count(*)::int AS n FROM jobs WHERE id = ANY($1::uuid[]) AND purged_at IS NULL`, [ids]);
  expect(left.rows[0].n).toBe(0);
  const stored = await pool.query(`SELECT count(*)::int AS n FROM stored_files WHERE job_id = ANY($1::uuid[])`, [ids]);
  expect(stored.rows[0].n).toBe(0);
  // The output link on each file went with its stored row (ON DELETE SET NULL, through job_files_by_output).
  const linked = await pool.query(`SELECT count(*)::int AS n FROM job_files WHERE job_id = ANY($1::uuid[]) AND output_file_id IS NOT NULL`, [ids]);
  expect(linked.rows[0].n).toBe(0);
});
