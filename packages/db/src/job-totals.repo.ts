/**
 * Job totals by (key, type, dialect, status), kept by triggers on `jobs` (migrations/0009): each insert or
 * status change appends a delta row, and folding moves the deltas into `job_totals`. A read is a few
 * dozen rows whatever the size of `jobs`, and nothing on the job path ever waits for it. The key
 * (migrations/0010) lets a listing's `total` be read the same way.
 */
import { named, type Queryable } from './pool.ts';

export interface JobTotalRow {
  jobType: string;
  dialect: string;
  status: string;
  count: number;
}

// One fold at a time: a second one (another gateway's scrape, the sweeper) skips instead of waiting.
const FOLD_LOCK = 4_271_865_326;

/**
 * Moves the deltas into job_totals in one statement; returns how many delta rows it folded (0 when
 * another fold holds the lock). Any snapshot sees totals plus deltas consistently, before or after.
 */
export async function foldJobTotals(db: Queryable): Promise<number> {
  const r = await db.query<{ folded: number }>(
    `WITH lock AS (SELECT pg_try_advisory_xact_lock($1) AS ok),
          moved AS (DELETE FROM job_total_deltas WHERE (SELECT ok FROM lock) RETURNING api_key_id, job_type, dialect, status, n),
          summed AS (SELECT api_key_id, job_type, dialect, status, sum(n) AS n FROM moved GROUP BY 1, 2, 3, 4),
          up AS (INSERT INTO job_totals AS t (api_key_id, job_type, dialect, status, n) SELECT api_key_id, job_type, dialect, status, n FROM summed
                   ON CONFLICT (api_key_id, status, job_type, dialect) DO UPDATE SET n = t.n + EXCLUDED.n)
     SELECT count(*)::int AS folded FROM moved`,
    [FOLD_LOCK],
  );
  return r.rows[0]?.folded ?? 0;
}

/** Every (type, dialect, status) ever seen with its current count; folds first so the deltas stay few. */
export async function readJobTotals(db: Queryable): Promise<JobTotalRow[]> {
  await foldJobTotals(db);
  const r = await db.query<JobTotalRow>(
    `SELECT job_type AS "jobType", dialect, status, sum(n)::bigint AS count
       FROM (SELECT job_type, dialect, status, n FROM job_totals
             UNION ALL SELECT job_type, dialect, status, n FROM job_total_deltas) x
      GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
  );
  return r.rows;
}

/**
 * How many jobs a key has (with `status`, in that status); without `apiKeyId`, every key's. Reads the
 * folded totals and the deltas not yet folded in one snapshot: exact, and a few rows per key
 * whatever the key's history.
 */
export async function countJobs(db: Queryable, q: { apiKeyId?: string; status?: string }): Promise<number> {
  const r = await db.query<{ n: number }>(countJobsStatement(q));
  return r.rows[0]?.n ?? 0;
}

export function countJobsStatement(q: { apiKeyId?: string; status?: string }) {
  const where = [q.apiKeyId ? 'api_key_id = $1' : '$1::uuid IS NULL', q.status ? 'status = $2' : '$2::text IS NULL'].join(' AND ');
  const s = named(
    `count_jobs_${q.apiKeyId ? 'k' : ''}${q.status ? 's' : ''}`,
    `SELECT (coalesce((SELECT sum(n) FROM job_totals WHERE ${where}), 0)
           + coalesce((SELECT sum(n) FROM job_total_deltas WHERE ${where}), 0))::int AS n`,
    [q.apiKeyId ?? null, q.status ?? null],
  );
  return { ...s, values: s.values ?? [] };
}
