/**
 * Queue.completionFragment: a fetched message completed by a CTE of the handler's own statement, as
 * boss.complete completes it (same state, output and fence), and a handler that does so is not
 * completed a second time by its consumer (counted on pg-boss's own connection).
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { QUEUES, Queue } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

let db: TestDatabase;
let sql: pg.Client;
beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
});
afterAll(async () => {
  await sql?.end();
  await db?.drop();
});

const QUEUE = QUEUES.convertImage;
const payload = () => ({ jobId: crypto.randomUUID(), fileId: crypto.randomUUID() });
const row = async (id: string) =>
  (await sql.query<{ state: string; output: unknown; completed: boolean }>('SELECT state, output, completed_on IS NOT NULL AS completed FROM pgboss.job WHERE id = $1', [id]))
    .rows[0]!;

/** Runs `fragment` in a statement of the caller's own, as finishFile does, with its own parameter first. */
async function runWith(fragment: { ctes: string; values: unknown[] }): Promise<void> {
  await sql.query(`WITH ${fragment.ctes}, mine AS (SELECT $1::int AS n) SELECT n FROM mine`, [7, ...fragment.values]);
}

test('the fragment completes the fetched attempt in the caller statement, as boss.complete does; another attempt is left alone', async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 60, supervise: false }).start();
  try {
    await queue.sendMany(QUEUE, [payload(), payload(), payload()]);
    const [a, b, c] = await queue.boss.fetch(QUEUE, { batchSize: 3 });
    await runWith(queue.completionFragment(QUEUE, { id: a!.id, retryCount: a!.retryCount }, 2));
    await queue.boss.complete(QUEUE, [{ id: b!.id, retryCount: b!.retryCount }]);
    expect(await row(a!.id)).toEqual(await row(b!.id));
    expect(await row(a!.id)).toMatchObject({ state: 'completed', completed: true });
    // Fenced to the attempt it was fetched as: a stale retry count changes nothing.
    await runWith(queue.completionFragment(QUEUE, { id: c!.id, retryCount: c!.retryCount + 1 }, 2));
    expect((await row(c!.id)).state).toBe('active');
  } finally {
    await queue.stop(5000);
  }
});

test('a handler whose statement completed its message is not completed again by the consumer', async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 60, idlePollSeconds: 600, supervise: false }).start();
  const pgb = queue.boss.getDb();
  const original = pgb.executeSql.bind(pgb);
  let completions = 0;
  pgb.executeSql = (text: string, values?: unknown[]) => {
    if (/SET completed_on = pgboss\.job_now\(\),\s+state = 'completed'/.test(text)) completions++;
    return original(text, values);
  };
  try {
    const settledIds: string[] = [];
    const plainIds: string[] = [];
    await queue.work(QUEUE, 2, async (p, ctx) => {
      if (p.fileId.startsWith('0')) {
        plainIds.push(ctx.id);
        return;
      }
      await runWith(ctx.completion!(2));
      ctx.settled!();
      settledIds.push(ctx.id);
    });
    const N = 6;
    for (let i = 0; i < N; i++) await queue.send(QUEUE, { ...payload(), fileId: `${i === 0 ? '0' : 'f'}${crypto.randomUUID().slice(1)}` });
    const deadline = Date.now() + 20_000;
    const done = async () => {
      const ids = [...settledIds, ...plainIds];
      const r = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE id = ANY($1) AND state = 'completed'`, [ids]);
      return r.rows[0]!.n;
    };
    while ((await done()) < N) {
      if (Date.now() > deadline) throw new Error(`timed out: ${await done()} completed`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(settledIds).toHaveLength(N - 1);
    expect(plainIds).toHaveLength(1);
    // Only the handler that did not settle its own message needed the consumer's completion.
    expect(completions).toBe(1);
  } finally {
    pgb.executeSql = original;
    await queue.stop(5000);
  }
});
