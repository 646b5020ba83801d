/**
 * Job totals by (type, dialect, status), kept by triggers on `jobs` (migrations/0009): each insert or
 * status change appends a delta row, and folding moves the deltas into `job_totals`. A read is a few
 * dozen rows whatever the size of `jobs`, and nothing on the job path ever waits for it.
 */
import type { Queryable } from './pool.ts';

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
          moved AS (DELETE FROM job_total_deltas WHERE (SELECT ok FROM lock) RETURNING job_type, dialect, status, n),
          summed AS (SELECT job_type, dialect, status, sum(n) AS n FROM moved GROUP BY 1, 2, 3),
          up AS (INSERT INTO job_totals AS t (job_type, dialect, status, n) SELECT job_type, dialect, status, n FROM summed
                   ON CONFLICT (job_type, dialect, status) DO UPDATE SET n = t.n + EXCLUDED.n)
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
