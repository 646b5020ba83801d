/**
 * Fixed-window counters in Postgres, so every gateway process counts against the same windows: one
 * upsert per counted request, timed by the database clock (gateways' clocks may disagree).
 */
import type { Queryable } from './pool.ts';

export interface WindowHit {
  /** Hits in the current window, including this one. */
  hits: number;
  /** When the current window ends (epoch seconds). */
  resetAt: number;
  /** The database's clock at the time of the hit (epoch milliseconds). */
  now: number;
}

/** Counts one hit on `bucket` in the current window of `windowSeconds` and returns the window's total. */
export async function hitWindow(db: Queryable, bucket: string, windowSeconds = 60): Promise<WindowHit> {
  const r = await db.query<{ hits: number; start: number; now: number }>(
    `INSERT INTO rate_limit_windows (bucket, window_start, hits)
     VALUES ($1, to_timestamp(floor(extract(epoch FROM clock_timestamp())::float8 / $2::int) * $2::int), 1)
     ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_windows.hits + 1
     RETURNING hits, extract(epoch FROM window_start)::float8 AS start, (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`,
    [bucket, windowSeconds],
  );
  const row = r.rows[0]!;
  return { hits: row.hits, resetAt: Math.round(row.start) + windowSeconds, now: row.now };
}

/** Drops windows that ended long ago; cheap thanks to the index on window_start. */
export async function pruneWindows(db: Queryable, olderThanSeconds = 3600): Promise<number> {
  const r = await db.query(`DELETE FROM rate_limit_windows WHERE window_start < now() - make_interval(secs => $1)`, [olderThanSeconds]);
  return r.rowCount ?? 0;
}
