/**
 * What purging expired jobs costs with a big history (docs/performance.md, issue 16), not part of
 * `pnpm bench`:  node scripts/bench/retention-profile.ts [JOBS]  (default 300,000)
 * Starts an embedded Postgres of its own in a temporary folder, seeds JOBS finished jobs as the growth
 * figure does, lets 1,200 of them expire, and times the database side of three purges: main's (two
 * statements per job, without migration 0010's job_files_by_output index), the same with the index,
 * and this branch's batches (markJobsPurged, 200 jobs per statement).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createApiKey, createPool, expiredJobs, markJobsPurged, migrate, startEmbedded } from '@kiln/db';
import { seed } from './growth.ts';
import { freePort } from '../lib/free-port.ts';

const N = Number(process.argv[2] ?? 300000);
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-exp-'));
const srv = await startEmbedded({ dataDir: dir, port: await freePort() });
const url = srv.url();
await migrate(url);
const c = new pg.Client({ connectionString: url });
await c.connect();
const k = await createApiKey(c, 'k');
const others = [];
for (let i = 0; i < 50; i++) others.push((await createApiKey(c, `o${i}`)).row.id);
console.log('seeded', await seed(c, k.row.id, N / 5, N, others));
const pool = createPool(url, 2);
// 1200 completed jobs expire now.
await c.query(`UPDATE jobs SET expires_at = now() - interval '1 hour' WHERE id IN (SELECT id FROM jobs WHERE status = 'completed' ORDER BY created_at LIMIT 1200)`);
await c.query('VACUUM ANALYZE jobs');
async function timeIt(label: string, fn: () => Promise<number>) {
  const t0 = performance.now();
  const n = await fn();
  const ms = performance.now() - t0;
  console.log(label, n, 'jobs', ms.toFixed(0), 'ms', (ms / n).toFixed(2), 'ms/job', 'load', (await fs.readFile('/proc/loadavg', 'utf8')).split(' ')[0]);
}
// main's way: per job, an UPDATE and a DELETE.
const purgeOneByOne = async () => {
  const jobs = await expiredJobs(pool, 100);
  for (const j of jobs) {
    await pool.query(`UPDATE jobs SET archive_file_id = NULL, purged_at = now() WHERE id = $1`, [j.id]);
    await pool.query(`DELETE FROM stored_files WHERE job_id = $1`, [j.id]);
  }
  return jobs.length;
};
// main's way: 100 jobs, per job UPDATE + DELETE, without the job_files_by_output index (0001 had none).
await c.query('DROP INDEX job_files_by_output');
await timeIt('main (per job, no FK index), 100 jobs:', purgeOneByOne);
await c.query('CREATE INDEX job_files_by_output ON job_files (output_file_id) WHERE output_file_id IS NOT NULL');
await timeIt('main (per job) with the FK index, 100 jobs:', purgeOneByOne);
await timeIt('branch (batches of 200), 1000 jobs:', async () => {
  let n = 0;
  for (;;) {
    const jobs = await expiredJobs(pool, 200);
    await markJobsPurged(
      pool,
      jobs.map((j) => j.id),
    );
    n += jobs.length;
    if (jobs.length < 200) break;
  }
  return n;
});
await pool.end();
await c.end();
await srv.stop();
await fs.rm(dir, { recursive: true, force: true });
