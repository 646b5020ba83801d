/**
 * Queue.insertFragment: the messages sendMany inserts, as SQL for a statement of the caller's (the
 * gateway's job insert). The rows must be the ones boss.insert writes — every column pg-boss fills
 * from the queue's policy — and a consumer must be woken by the fragment's NOTIFY, fetch the messages
 * and complete them, as it does for sendMany's.
 */
import crypto from 'node:crypto';
import pg from 'pg';
import { QUEUES, Queue } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

let db: TestDatabase;
let client: pg.Client;
beforeAll(async () => {
  db = await createTestDatabase();
  client = new pg.Client({ connectionString: db.url });
  await client.connect();
});
afterAll(async () => {
  await client?.end();
  await db?.drop();
});

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const payload = () => ({ jobId: crypto.randomUUID(), fileId: crypto.randomUUID(), apiKeyId: crypto.randomUUID(), jobWebhook: false });

/**
 * Every column of a message except the ones that differ between any two messages (id, data) and the
 * instants, which are compared as the intervals pg-boss derives from them: a column pg-boss adds
 * later is compared too.
 */
async function messageRows(fileIds: string[]): Promise<Record<string, unknown>[]> {
  const r = await client.query(
    `SELECT to_jsonb(j) - 'id' - 'data' - 'created_on' - 'start_after' - 'keep_until' AS columns,
            extract(epoch FROM j.keep_until - j.start_after)::float8 AS keep_seconds,
            j.start_after <= now() AS ready,
            j.created_on <= now() AS created
       FROM pgboss.job j WHERE j.data->>'fileId' = ANY($1::text[]) ORDER BY j.data->>'fileId'`,
    [fileIds],
  );
  return r.rows;
}

/** The fragment in a statement of its own, behind two parameters of the "caller's" to renumber past. */
async function insertWithFragment(queue: Queue, batches: [typeof QUEUES.convertImage | typeof QUEUES.convertMedia, ReturnType<typeof payload>[]][]): Promise<number> {
  const m = queue.insertFragment(batches, 3);
  const r = await client.query<{ n: string; a: number; b: string }>(
    `WITH caller AS (SELECT $1::int AS a, $2::text AS b),\n${m.ctes}\nSELECT ${m.inserted} AS n, a, b FROM caller`,
    [7, 'mine', ...m.values],
  );
  expect([r.rows[0]!.a, r.rows[0]!.b]).toEqual([7, 'mine']);
  return Number(r.rows[0]!.n);
}

test("the fragment's messages are the rows boss.insert writes: the queue's retry, expiry, heartbeat, deletion and retention policy", async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 3, expireInSeconds: 123, deleteAfterSeconds: 77, heartbeatSeconds: 20 }).start();
  try {
    const viaBoss = [payload(), payload()];
    const viaFragment = [payload(), payload()];
    await queue.sendMany(QUEUES.convertImage, viaBoss);
    expect(await insertWithFragment(queue, [[QUEUES.convertImage, viaFragment]])).toBe(2);

    const boss = await messageRows(viaBoss.map((p) => p.fileId));
    const ours = await messageRows(viaFragment.map((p) => p.fileId));
    expect(boss).toHaveLength(2);
    expect(ours).toEqual(boss);
    // What the comparison is made of, so a queue that was not configured would not pass unnoticed.
    expect(ours[0]!.columns).toMatchObject({
      name: QUEUES.convertImage,
      state: 'created',
      retry_limit: 3,
      retry_backoff: true,
      expire_seconds: 123,
      deletion_seconds: 77,
      heartbeat_seconds: 20,
    });
    expect(ours[0]).toMatchObject({ ready: true, created: true });
    const data = await client.query(`SELECT data FROM pgboss.job WHERE data->>'fileId' = $1`, [viaFragment[0]!.fileId]);
    expect(data.rows[0].data).toEqual(viaFragment[0]);
  } finally {
    await queue.stop(5000);
  }
});

test("messages of two queues in one fragment each go to their queue, with that queue's NOTIFY", async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 60 }).start();
  const listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  try {
    const heard: string[] = [];
    listener.on('notification', (n) => {
      if (n.channel.startsWith('pgboss_')) heard.push(n.payload ?? '');
    });
    const channel = (await client.query<{ c: string }>(`SELECT 'pgboss_' || left(encode(sha224('pgboss'::bytea), 'hex'), 24) AS c`)).rows[0]!.c;
    await listener.query(`LISTEN ${channel}`);
    const images = [payload(), payload(), payload()];
    const media = [payload()];
    expect(
      await insertWithFragment(queue, [
        [QUEUES.convertImage, images],
        [QUEUES.convertMedia, media],
      ]),
    ).toBe(4);
    const r = await client.query(`SELECT name, count(*)::int AS n FROM pgboss.job WHERE data->>'fileId' = ANY($1::text[]) GROUP BY name ORDER BY name`, [
      [...images, ...media].map((p) => p.fileId),
    ]);
    expect(r.rows).toEqual([
      { name: QUEUES.convertImage, n: 3 },
      { name: QUEUES.convertMedia, n: 1 },
    ]);
    // One NOTIFY per queue (pg-boss's own gate: LIMIT 1), not one per message.
    await until('both NOTIFYs', () => heard.length >= 2);
    await new Promise((r) => setTimeout(r, 100));
    expect(heard.sort()).toEqual([QUEUES.convertImage, QUEUES.convertMedia].sort());
  } finally {
    await listener.end();
    await queue.stop(5000);
  }
});

test("a consumer is woken by the fragment's NOTIFY, fetches its messages and completes them", async () => {
  // No idle poll within the test: only the NOTIFY (or the start's first look) makes the consumer fetch.
  const queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 60, idlePollSeconds: 600 }).start();
  try {
    const handled: string[] = [];
    let looked = false;
    const pgb = queue.boss.getDb();
    const original = pgb.executeSql.bind(pgb);
    // The consumer's fetch comes as a named statement (a query config; src/consumer.ts namedFetchDb).
    pgb.executeSql = ((q: string | { text: string }, values?: unknown[]) => {
      if (/SET\s+state = 'active',\s+started_on =/.test(typeof q === 'string' ? q : q.text)) looked = true;
      return original(q as string, values);
    }) as typeof pgb.executeSql;
    await queue.work(QUEUES.convertImage, 2, async (p) => {
      handled.push(p.fileId);
    });
    // Sent after the consumer's first look found the queue empty, so what it fetches the NOTIFY asked for.
    await until("the consumer's first look", () => looked);
    await new Promise((r) => setTimeout(r, 200));
    const sent = [payload(), payload()];
    expect(await insertWithFragment(queue, [[QUEUES.convertImage, sent]])).toBe(2);
    await until('both messages handled', () => sent.every((p) => handled.includes(p.fileId)));
    await until('both messages completed', async () => {
      const r = await client.query(`SELECT count(*)::int AS n FROM pgboss.job WHERE data->>'fileId' = ANY($1::text[]) AND state = 'completed'`, [sent.map((p) => p.fileId)]);
      return r.rows[0].n === 2;
    });
  } finally {
    await queue.stop(5000);
  }
});

test('a payload its queue does not accept is refused before any SQL is made, as sendMany refuses it', async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 60 }).start();
  try {
    const bad = { jobId: 'not-a-uuid', fileId: crypto.randomUUID() };
    expect(() => queue.insertFragment([[QUEUES.convertImage, [bad]]], 1)).toThrow(/jobId|uuid/i);
    await expect(queue.sendMany(QUEUES.convertImage, [bad])).rejects.toThrow(/jobId|uuid/i);
  } finally {
    await queue.stop(5000);
  }
});
