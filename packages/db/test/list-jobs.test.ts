/**
 * listJobs at scale (issue 16): a page and its total are what a direct query of the jobs table says,
 * with deltas unfolded and folded, for one key, one status and the operator's view; and neither
 * statement reads the history with a sequential scan once the tables are big (the operator's total
 * reads job_totals whole: a few rows per key).
 */
import crypto from 'node:crypto';
import { createApiKey, createPool, foldJobTotals, insertJob, listJobs, listJobsStatements, type JobStatus, type Pool } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

let db: TestDatabase;
let pool: Pool;
let big: string;
let small: string;
beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 6);
  big = (await createApiKey(pool, 'big')).row.id;
  small = (await createApiKey(pool, 'small')).row.id;
  // History for `big`, through the triggers (as real jobs would): 40,000 jobs over a year, mixed statuses.
  await pool.query(
    `INSERT INTO jobs (id, api_key_id, job_type, status, total_files, created_at)
     SELECT gen_random_uuid(), $1, 'convert', (ARRAY['completed','failed','completed','pending'])[1 + g % 4], 1,
            now() - make_interval(secs => g * 800)
       FROM generate_series(1, 40000) g`,
    [big],
  );
  for (let i = 0; i < 5; i++) {
    const id = crypto.randomUUID();
    await insertJob(pool, {
      id,
      apiKeyId: small,
      jobType: 'convert',
      createArchive: false,
      files: [{ id: crypto.randomUUID(), idx: 0, filename: 'a.png', sourceKey: `jobs/${id}/src/a`, sourceKind: 'png', originalSize: 1, options: {} }],
    });
  }
  await pool.query('VACUUM ANALYZE jobs');
}, 120_000);
afterAll(async () => {
  await pool.end();
  await db.drop();
});

async function truth(apiKeyId: string | undefined, status: JobStatus | undefined, limit: number, offset: number) {
  const cond = [apiKeyId ? 'api_key_id = $1' : '$1::uuid IS NULL', status ? 'status = $2' : '$2::text IS NULL'].join(' AND ');
  const ids = await pool.query<{ id: string }>(`SELECT id FROM jobs WHERE ${cond} ORDER BY created_at DESC, id LIMIT $3 OFFSET $4`, [
    apiKeyId ?? null,
    status ?? null,
    limit,
    offset,
  ]);
  const n = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE ${cond}`, [apiKeyId ?? null, status ?? null]);
  return { ids: ids.rows.map((r) => r.id), total: n.rows[0]!.n };
}

const cases: [string, () => string | undefined, JobStatus | undefined, number, number][] = [
  ['one key, first page', () => big, undefined, 20, 0],
  ['one key, completed, offset 10000', () => big, 'completed', 20, 10_000],
  ['one key, pending, past the end', () => big, 'pending', 20, 20_000],
  ['a small key', () => small, undefined, 20, 0],
  ['every key (dashboard)', () => undefined, 'failed', 50, 300],
];

test.each(cases)('%s: the page and total equal a direct count, before and after folding', async (_n, key, status, limit, offset) => {
  for (const fold of [false, true]) {
    if (fold) await foldJobTotals(pool);
    const want = await truth(key(), status, limit, offset);
    const got = await listJobs(pool, { ...(key() ? { apiKeyId: key()! } : {}), ...(status ? { status } : {}), limit, offset });
    expect(got.jobs.map((j) => j.id)).toEqual(want.ids);
    expect(got.total).toBe(want.total);
    if (status) for (const j of got.jobs) expect(j.status).toBe(status);
  }
});

test.each(cases)('%s: no sequential scan in either plan', async (_n, key, status, limit, offset) => {
  for (const s of listJobsStatements({ ...(key() ? { apiKeyId: key()! } : {}), ...(status ? { status } : {}), limit, offset })) {
    const plan = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${s.text}`, s.values);
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
    // The operator's total sums job_totals over every key: a few rows per key, never the history.
    expect(text).not.toMatch(key() ? /Seq Scan/ : /Seq Scan on (?!job_totals )/);
  }
});
