/** Worker heartbeats: each worker service upserts its engine report; /readyz reads them back. */
import type { Queryable } from './pool.ts';

export interface WorkerHeartbeat {
  service: string;
  engines: Record<string, unknown>;
  seenAt: Date;
  /** Seconds since `seenAt`, by the database's clock (so host clocks need not agree). */
  ageSeconds: number;
}

export async function upsertWorkerHeartbeat(db: Queryable, service: string, engines: Record<string, unknown>): Promise<void> {
  await db.query(
    `INSERT INTO worker_heartbeats (service, engines, seen_at) VALUES ($1, $2, now())
     ON CONFLICT (service) DO UPDATE SET engines = excluded.engines, seen_at = excluded.seen_at`,
    [service, JSON.stringify(engines)],
  );
}

export async function listWorkerHeartbeats(db: Queryable): Promise<WorkerHeartbeat[]> {
  const r = await db.query<{ service: string; engines: Record<string, unknown>; seenAt: Date; ageSeconds: number }>(
    `SELECT service, engines, seen_at AS "seenAt", extract(epoch FROM now() - seen_at)::float8 AS "ageSeconds"
       FROM worker_heartbeats ORDER BY service`,
  );
  return r.rows;
}
