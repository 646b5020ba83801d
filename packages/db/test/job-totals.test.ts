/**
 * Job totals (migrations/0005): whatever happens to jobs — inserts, claims, finishes, cancellations,
 * an operator's own SQL, folds running alongside on other connections — the totals equal a count of
 * the jobs table, and a read looks at a few dozen rows rather than at the jobs.
 */
import crypto from 'node:crypto';
import { cancelJob, claimFile, createApiKey, createPool, finishFile, foldJobTotals, insertJob, readJobTotals, type Pool } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';
import type { Dialect } from '@kiln/contracts';

let db: TestDatabase;
let pool: Pool;
let keyId: string;
beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 12);
  keyId = (await createApiKey(pool, 'totals')).row.id;
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

async function newJob(jobType: 'convert' | 'compress', dialect?: Dialect): Promise<{ jobId: string; fileId: string }> {
  const jobId = crypto.randomUUID();
  const fileId = crypto.randomUUID();
  await insertJob(pool, {
    id: jobId,
    apiKeyId: keyId,
    jobType,
    ...(dialect ? { dialect } : {}),
    createArchive: false,
    files: [{ id: fileId, idx: 0, filename: 'a.png', sourceKey: `jobs/${jobId}/src/${fileId}`, sourceKind: 'png', originalSize: 10, options: {} }],
  });
  return { jobId, fileId };
}

/** The truth the totals must equal: a count of the jobs table itself. */
async function counted(): Promise<Record<string, number>> {
  const r = await pool.query<{ k: string; n: number }>(`SELECT job_type || '/' || dialect || '/' || status AS k, count(*)::int AS n FROM jobs GROUP BY 1`);
  return Object.fromEntries(r.rows.map((x) => [x.k, x.n]));
}
async function totals(): Promise<Record<string, number>> {
  return Object.fromEntries((await readJobTotals(pool)).filter((t) => t.count !== 0).map((t) => [`${t.jobType}/${t.dialect}/${t.status}`, t.count]));
}

test('totals follow every kind of change to jobs, with folds running concurrently on other connections', async () => {
  const ok = (jobId: string, fileId: string) =>
    ({ ok: true, output: { storageKey: `jobs/${jobId}/out/${fileId}.webp`, filename: 'a.webp', mimeType: 'image/webp', size: 5 }, result: {} }) as const;
  let folding = true;
  const folder = (async () => {
    let folds = 0;
    while (folding) {
      await foldJobTotals(pool);
      folds++;
    }
    return folds;
  })();

  const lives = Array.from({ length: 60 }, (_, i) =>
    (async () => {
      const { jobId, fileId } = await newJob(i % 3 === 0 ? 'compress' : 'convert', i % 4 === 0 ? 'turbofiles' : undefined);
      if (i % 5 === 0) return void (await cancelJob(pool, jobId, keyId, 24));
      if (i % 7 === 0) return; // stays pending
      await claimFile(pool, fileId);
      if (i % 11 === 0) return; // stays processing
      await finishFile(pool, jobId, fileId, i % 2 ? ok(jobId, fileId) : { ok: false, code: 'invalid_input', message: 'broken' }, 24);
    })(),
  );
  await Promise.all(lives);
  folding = false;
  expect(await folder).toBeGreaterThan(0);

  expect(await totals()).toEqual(await counted());
  expect(Object.keys(await counted()).length).toBeGreaterThanOrEqual(8);
});

test("an operator's own SQL is counted too, deletes and re-typed jobs included", async () => {
  const { jobId } = await newJob('convert');
  const other = await newJob('convert');
  await pool.query(`UPDATE jobs SET status = 'failed', dialect = 'turbofiles' WHERE id = $1`, [jobId]);
  await pool.query(`DELETE FROM job_files WHERE job_id = $1`, [other.jobId]);
  await pool.query(`DELETE FROM jobs WHERE id = $1`, [other.jobId]);
  // Updates that leave type, dialect and status alone append nothing.
  const before = (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM job_total_deltas')).rows[0]!.n;
  await pool.query(`UPDATE jobs SET purged_at = now() WHERE id = $1`, [jobId]);
  await pool.query(`UPDATE jobs SET status = status WHERE id = $1`, [jobId]);
  expect((await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM job_total_deltas')).rows[0]!.n).toBe(before);
  expect(await totals()).toEqual(await counted());
});

test('a read folds the deltas: what is left to read is a few rows however many jobs there are', async () => {
  await pool.query(
    `INSERT INTO jobs (id, api_key_id, job_type, status, total_files, dialect)
     SELECT gen_random_uuid(), $1, CASE WHEN g % 2 = 0 THEN 'convert' ELSE 'compress' END, 'completed', 1, 'convertly' FROM generate_series(1, 20000) g`,
    [keyId],
  );
  await readJobTotals(pool);
  expect((await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM job_total_deltas')).rows[0]!.n).toBe(0);
  const rows = (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM job_totals')).rows[0]!.n;
  expect(rows).toBeLessThanOrEqual(2 * 2 * 4);
  expect(await totals()).toEqual(await counted());
});
