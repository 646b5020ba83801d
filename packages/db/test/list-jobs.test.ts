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
  // 30 jobs created at one instant, between two of the history's: keyset paging must order the tie by id.
  await pool.query(
    `INSERT INTO jobs (id, api_key_id, job_type, status, total_files, created_at)
     SELECT gen_random_uuid(), $1, 'convert', 'failed', 1, now() - make_interval(secs => 5000 * 800 + 400) FROM generate_series(1, 30)`,
    [big],
  );
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

/** The listing's order, straight from the table: every id of the key (and status), newest first. */
async function order(apiKeyId: string, status?: JobStatus): Promise<string[]> {
  const r = await pool.query<{ id: string }>(`SELECT id FROM jobs WHERE api_key_id = $1 AND ($2::text IS NULL OR status = $2) ORDER BY created_at DESC, id`, [
    apiKeyId,
    status ?? null,
  ]);
  return r.rows.map((x) => x.id);
}

test('keyset paging: following each page from its last job lists every job once, in order, ties included', async () => {
  const want = await order(big, 'failed');
  const got: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const page = await listJobs(pool, { apiKeyId: big, status: 'failed', limit: 97, offset: 0, ...(after ? { after } : {}) });
    expect(page.afterFound).toBe(true);
    got.push(...page.jobs.map((j) => j.id));
    if (!page.hasMore) break;
    after = page.jobs.at(-1)!.id;
  }
  expect(got).toEqual(want);
  // Small pages through the 30 jobs that share one created_at: each page starts right after its cursor.
  const all = await order(big);
  const tie = (await pool.query<{ id: string }>(`SELECT id FROM jobs WHERE created_at = (SELECT created_at FROM jobs GROUP BY created_at HAVING count(*) = 30)`)).rows;
  const firstTie = Math.min(...tie.map((t) => all.indexOf(t.id)));
  let cursor = all[firstTie - 2]!;
  for (let i = 0; i < 6; i++) {
    const page = await listJobs(pool, { apiKeyId: big, limit: 7, offset: 0, after: cursor });
    const at = all.indexOf(cursor);
    expect(page.jobs.map((j) => j.id)).toEqual(all.slice(at + 1, at + 8));
    cursor = page.jobs.at(-1)!.id;
  }
});

test('keyset paging with an offset counts from the cursor; a cursor outside the listing gives no page', async () => {
  const all = await order(big, 'completed');
  const page = await listJobs(pool, { apiKeyId: big, status: 'completed', limit: 20, offset: 5, after: all[9_000]! });
  expect(page.jobs.map((j) => j.id)).toEqual(all.slice(9_006, 9_026));
  expect(page.hasMore).toBe(true);
  const last = await listJobs(pool, { apiKeyId: big, status: 'completed', limit: 20, offset: 0, after: all.at(-3)! });
  expect(last.jobs.map((j) => j.id)).toEqual(all.slice(-2));
  expect(last.hasMore).toBe(false);
  expect(last.afterFound).toBe(true);
  // Another key's job, and a job that does not exist: an empty page that says why.
  const smallJob = (await order(small))[0]!;
  for (const after of [smallJob, crypto.randomUUID()]) {
    const none = await listJobs(pool, { apiKeyId: big, limit: 20, offset: 0, after });
    expect(none.jobs).toEqual([]);
    expect(none.afterFound).toBe(false);
  }
  // The last job of a listing is found: its empty page is the end, not a bad cursor.
  const end = await listJobs(pool, { apiKeyId: big, status: 'completed', limit: 20, offset: 0, after: all.at(-1)! });
  expect(end.jobs).toEqual([]);
  expect(end.afterFound).toBe(true);
});

test('keyset paging reads no more index entries than the page, however deep the cursor', async () => {
  const all = await order(big, 'completed');
  for (const [label, q] of [
    ['after', { apiKeyId: big, status: 'completed' as const, limit: 21, offset: 0, after: all[15_000]! }],
    ['offset', { apiKeyId: big, status: 'completed' as const, limit: 21, offset: 15_001 }],
  ] as const) {
    const [page] = listJobsStatements(q);
    const plan = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${page!.text}`, page!.values);
    // The scan of jobs_by_key_status under the page's Limit: how many entries it returned.
    const nodes: { 'Node Type': string; 'Index Name'?: string; 'Actual Rows': number; Plans?: unknown[] }[] = [];
    const walk = (n: (typeof nodes)[number]) => {
      nodes.push(n);
      for (const c of (n.Plans ?? []) as (typeof nodes)[number][]) walk(c);
    };
    walk((plan.rows[0]!['QUERY PLAN'] as unknown as { Plan: (typeof nodes)[number] }[])[0]!.Plan);
    const scan = nodes.find((n) => n['Index Name'] === 'jobs_by_key_status');
    expect(scan).toBeDefined();
    if (label === 'after') expect(scan!['Actual Rows']).toBeLessThanOrEqual(21);
    else expect(scan!['Actual Rows']).toBeGreaterThan(15_000);
    expect(nodes.some((n) => n['Node Type'] === 'Seq Scan')).toBe(false);
  }
});
