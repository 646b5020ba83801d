/**
 * The job waiter on real Postgres LISTEN/NOTIFY: a job expected before its insert commits is answered
 * by its NOTIFY alone, with no query; without a LISTEN connection it falls back to looking; a wait
 * without a notice ends at its timeout.
 */
import pg from 'pg';
import { JOB_DONE_CHANNEL } from '@kiln/contracts';
import { createLogger } from '@kiln/config';
import { createApiKey, createPool, insertJob, type Pool } from '@kiln/db';
import { createJobWaiter, type JobWaiter } from '../src/job-waiter.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';
import { until } from '../../../test/helpers/kiln.ts';

let db: TestDatabase;
let pool: Pool;
let client: pg.Client;
let waiter: JobWaiter;
let queries = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 2);
  // The waiter's own pool, counting the queries it makes (all go to the real database).
  const counted = {
    query: (...args: Parameters<Pool['query']>) => {
      queries++;
      return (pool.query as (...a: unknown[]) => unknown)(...args);
    },
  } as unknown as Pool;
  waiter = await createJobWaiter(db.url, counted, createLogger('test', 'error'));
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});
afterAll(async () => {
  await waiter?.close();
  await client?.end();
  await pool?.end();
  await db?.drop();
});

async function pendingJob(): Promise<string> {
  const { row } = await createApiKey(pool, `waiter ${crypto.randomUUID()}`);
  const id = crypto.randomUUID();
  await insertJob(pool, {
    id,
    apiKeyId: row.id,
    jobType: 'convert',
    createArchive: false,
    files: [{ id: crypto.randomUUID(), idx: 0, filename: 'a.png', sourceKey: 'k', sourceKind: 'png', originalSize: 1, options: {} }],
  });
  return id;
}

test('an expected job is answered by its NOTIFY alone, even one that arrives before the wait starts', async () => {
  const early = await pendingJob();
  const late = await pendingJob();
  const before = queries;
  const a = waiter.expect(early);
  const b = waiter.expect(late);
  await client.query('SELECT pg_notify($1, $2)', [JOB_DONE_CHANNEL, early]);
  await new Promise((r) => setTimeout(r, 100));
  expect(await a.wait(5000)).toBe(true);
  const waiting = b.wait(5000);
  await client.query('SELECT pg_notify($1, $2)', [JOB_DONE_CHANNEL, late]);
  expect(await waiting).toBe(true);
  expect(queries - before).toBe(0);
});

test('a wait with no notice ends at its timeout, false; a plain wait looks at the job first', async () => {
  const id = await pendingJob();
  const before = queries;
  const t0 = Date.now();
  expect(await waiter.expect(id).wait(300)).toBe(false);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
  expect(await waiter.wait(id, 300)).toBe(false);
  expect(queries - before).toBeGreaterThanOrEqual(1);
});

test('with the LISTEN connection down, an expected job is looked at instead of trusted to a notice', async () => {
  const id = await pendingJob();
  await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kiln-gateway-listen' AND datname = current_database()");
  await until('the listener to notice', async () => !waiter.listening(), 5000, 10);
  // The job is final before anyone waits, and no notice will come: only a look can tell.
  await client.query("UPDATE jobs SET status = 'completed' WHERE id = $1", [id]);
  const before = queries;
  // Under the 1 s backup poll: only the first look can answer this in time.
  expect(await waiter.expect(id).wait(500)).toBe(true);
  expect(queries - before).toBeGreaterThanOrEqual(1);
  await until('the listener to come back', async () => waiter.listening(), 10_000, 50);
});
