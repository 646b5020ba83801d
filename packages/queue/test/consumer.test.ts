/**
 * The queue's consumer (src/consumer.ts): one fetch loop per queue per process. What it costs in
 * fetch statements is counted on pg-boss's own connection: every statement pg-boss sends goes
 * through its Db's executeSql, and a fetch is the UPDATE that marks messages active.
 */
import crypto from 'node:crypto';
import { QUEUES, Queue } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const QUEUE = QUEUES.convertImage;

/** Counts the fetch statements pg-boss sends for `name` from now on. */
function countFetches(queue: Queue, name: string): { count: () => number } {
  const pgb = queue.boss.getDb();
  const original = pgb.executeSql.bind(pgb);
  let n = 0;
  const isFetch = (text: string) => /SET\s+state = 'active',\s+started_on =/.test(text) && text.includes(`WHERE name = '${name}'`);
  // The consumer's fetch comes as a named statement (a query config; src/consumer.ts namedFetchDb).
  pgb.executeSql = ((q: string | { text: string }, values?: unknown[]) => {
    if (isFetch(typeof q === 'string' ? q : q.text)) n++;
    return original(q as string, values);
  }) as typeof pgb.executeSql;
  return { count: () => n };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function payload() {
  return { jobId: crypto.randomUUID(), fileId: crypto.randomUUID() };
}

/** Sends `n` messages one at a time, each only once the previous one is in `handled`. */
async function sendOneByOne(queue: Queue, n: number, handled: string[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const p = payload();
    await queue.send(QUEUE, p);
    await until(`message ${i} to be handled`, () => handled.includes(p.fileId));
  }
}

test('a message sent to an idle worker with two free slots is fetched once, and a slot that finishes does not look again', async () => {
  // A poll far longer than the test: every fetch here is one a NOTIFY (or the start) asked for.
  const queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 60, idlePollSeconds: 600 }).start();
  try {
    const fetches = countFetches(queue, QUEUE);
    const handled: string[] = [];
    await queue.work(QUEUE, 2, async (p) => {
      handled.push(p.fileId);
    });
    await until('the first look at the queue', () => fetches.count() >= 1);
    const N = 8;
    await sendOneByOne(queue, N, handled);
    // One fetch per message plus the look at the start (and one more if that look was still running
    // when the first NOTIFY came). With one pg-boss worker per slot it was about three per message:
    // the NOTIFY woke both idle slots, and the slot that ran the message asked again as soon as it
    // finished.
    expect(handled).toHaveLength(N);
    expect(fetches.count()).toBeLessThanOrEqual(N + 2);
  } finally {
    await queue.stop(5000);
  }
});

/** The fetch statements prepared on pg-boss's connections for `name`, with how often each was planned. */
async function preparedFetches(queue: Queue, name: string): Promise<{ name: string; generic: number; custom: number }[]> {
  type Client = { query: (text: string, values: unknown[]) => Promise<{ rows: { name: string; generic: number; custom: number }[] }>; release: () => void };
  // pg-boss's Db keeps its pg Pool as `pool`.
  const pool = (queue.boss.getDb() as unknown as { pool: { totalCount: number; connect: () => Promise<Client> } }).pool;
  // Every connection of the pool at once: pg_prepared_statements shows only its own session's.
  const clients = await Promise.all(Array.from({ length: pool.totalCount }, () => pool.connect()));
  try {
    const out: { name: string; generic: number; custom: number }[] = [];
    for (const c of clients) {
      const r = await c.query(
        `SELECT name, generic_plans::int AS generic, custom_plans::int AS custom FROM pg_prepared_statements
          WHERE statement LIKE '%SKIP LOCKED%' AND statement LIKE $1`,
        [`%WHERE name = '${name}'%`],
      );
      out.push(...r.rows);
    }
    return out;
  } finally {
    for (const c of clients) c.release();
  }
}

test("the fetch is pg-boss's SQL as a named statement: parsed once per connection and planned once, not on every fetch", async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 60, idlePollSeconds: 600 }).start();
  try {
    const fetches = countFetches(queue, QUEUE);
    const handled: string[] = [];
    await queue.work(QUEUE, 1, async (p) => {
      handled.push(p.fileId);
    });
    await until('the first look at the queue', () => fetches.count() >= 1);
    await sendOneByOne(queue, 6, handled);
    const prepared = await preparedFetches(queue, QUEUE);
    // Sent as pg-boss sends it (text only, no parameters), each fetch was a simple query, parsed and
    // planned anew: nothing is prepared then. Named, each connection that ran one plans it once (a
    // statement without parameters has only a generic plan) and reuses that plan after.
    expect(prepared.length).toBeGreaterThan(0);
    for (const s of prepared) expect(s.name).toMatch(/^kiln_boss_[0-9a-f]{16}$/);
    expect(prepared.reduce((n, s) => n + s.custom, 0)).toBe(0);
    // At most one generic-plan execution per fetch, and some: pg-boss's pool may have closed an idle
    // connection meanwhile, and its session's counts went with it, so equality cannot be asked for.
    const generic = prepared.reduce((n, s) => n + s.generic, 0);
    expect(generic).toBeGreaterThan(0);
    expect(generic).toBeLessThanOrEqual(fetches.count());
    expect(fetches.count()).toBeGreaterThanOrEqual(7);
  } finally {
    await queue.stop(5000);
  }
});

test('with prepared statements off (a pooler that cannot keep them), the fetch is sent as pg-boss sends it', async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 60, idlePollSeconds: 600, preparedStatements: false }).start();
  try {
    const handled: string[] = [];
    await queue.work(QUEUE, 1, async (p) => {
      handled.push(p.fileId);
    });
    await sendOneByOne(queue, 1, handled);
    expect(await preparedFetches(queue, QUEUE)).toEqual([]);
  } finally {
    await queue.stop(5000);
  }
});

test('a message that arrives while no NOTIFY can be heard is found by the idle poll', async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 60, idlePollSeconds: 1 }).start();
  try {
    const handled: string[] = [];
    await queue.work(QUEUE, 2, async (p) => {
      handled.push(p.fileId);
    });
    // A message that becomes ready later (as a retry after its backoff does) sends no NOTIFY.
    const p = payload();
    await queue.send(QUEUE, p, undefined, { startAfterSeconds: 2 });
    await until('the delayed message to be handled', () => handled.includes(p.fileId));
  } finally {
    await queue.stop(5000);
  }
});

test('a handler that throws is retried by pg-boss, with the attempt it is on', async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 2, expireInSeconds: 60, idlePollSeconds: 1 }).start();
  try {
    const attempts: number[] = [];
    const p = payload();
    await queue.work(QUEUE, 2, async (got, ctx) => {
      if (got.fileId !== p.fileId) return;
      attempts.push(ctx.retryCount);
      if (ctx.retryCount === 0) throw new Error('first attempt fails');
    });
    await queue.send(QUEUE, p);
    await until('the retry', () => attempts.length >= 2);
    expect(attempts).toEqual([0, 1]);
  } finally {
    await queue.stop(5000);
  }
});

test('stop waits for a running handler; one still running past the timeout is failed so pg-boss retries it', async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 2, expireInSeconds: 60, idlePollSeconds: 600 }).start();
  let release: () => void = () => undefined;
  const p = payload();
  let signal: AbortSignal | undefined;
  let started = false;
  await queue.work(QUEUE, 1, async (got, ctx) => {
    if (got.fileId !== p.fileId) return;
    started = true;
    signal = ctx.signal;
    await new Promise<void>((r) => (release = r));
  });
  await queue.send(QUEUE, p);
  await until('the handler to start', () => started);
  await queue.stop(300);
  expect(signal?.aborted).toBe(true);
  release();
  const check = await new Queue({ connectionString: db.url, retryLimit: 2, expireInSeconds: 60 }).start();
  try {
    const r = await check.boss.getDb().executeSql(`SELECT state FROM pgboss.job WHERE name = $1 AND data->>'fileId' = $2`, [QUEUE, p.fileId]);
    expect(r.rows.map((x: { state: string }) => x.state)).toEqual(['retry']);
  } finally {
    await check.stop(1000);
  }
});

/** Counts pg-boss's completion statements for `name` from now on, and the messages they carried. */
function countCompletions(queue: Queue, name: string): { statements: () => number; messages: () => number } {
  const pgb = queue.boss.getDb();
  const original = pgb.executeSql.bind(pgb);
  let statements = 0;
  let messages = 0;
  pgb.executeSql = (text: string, values?: unknown[]) => {
    if (/SET completed_on = \S+,\s+state = 'completed'/.test(text) && values?.[0] === name) {
      statements++;
      messages += (values[1] as unknown[]).length;
    }
    return original(text, values);
  };
  return { statements: () => statements, messages: () => messages };
}

test('a backlog is fetched as many at a time as slots are free, and messages that finish together are completed in one statement', async () => {
  const queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 60, idlePollSeconds: 600 }).start();
  try {
    const fetches = countFetches(queue, QUEUE);
    const completions = countCompletions(queue, QUEUE);
    const waiting: (() => void)[] = [];
    const handled: string[] = [];
    await queue.work(QUEUE, 4, async (p) => {
      await new Promise<void>((r) => waiting.push(r));
      handled.push(p.fileId);
    });
    await until('the first look at the queue', () => fetches.count() >= 1);
    await queue.sendMany(QUEUE, Array.from({ length: 12 }, payload));
    // Three rounds: four messages run, then all four return at once.
    for (let round = 0; round < 3; round++) {
      await until(`four messages running in round ${round}`, () => waiting.length === 4);
      for (const release of waiting.splice(0)) release();
    }
    await until('every message handled', () => handled.length === 12);
    await until('every message completed', () => completions.messages() === 12);
    // The start's look, three full fetches of four and the one that found the queue empty (one more if
    // the start's look was still running when the NOTIFY came); with one
    // pg-boss worker per slot it was a fetch per message and more. Each round's four completions go
    // in one statement, where pg-boss's workers sent one each.
    expect(fetches.count()).toBeLessThanOrEqual(6);
    expect(completions.statements()).toBeLessThanOrEqual(3);
  } finally {
    await queue.stop(5000);
  }
});

test("a handler running past its message's heartbeat keeps it: the consumer refreshes the heartbeat, and pg-boss retries nothing", async () => {
  // pg-boss fails a message whose heartbeat is older than heartbeatSeconds (10 s, its least) when it
  // supervises, here every 2 s: a handler of 13 s outlives the heartbeat unless it is refreshed.
  const queue = await new Queue({ connectionString: db.url, retryLimit: 2, expireInSeconds: 60, heartbeatSeconds: 10, superviseIntervalSeconds: 2, idlePollSeconds: 1 }).start();
  try {
    const p = payload();
    const seen: { retryCount: number; state: string; retries: number }[] = [];
    let done = false;
    await queue.work(QUEUE, 2, async (got, ctx) => {
      if (got.fileId !== p.fileId) return;
      await new Promise((r) => setTimeout(r, 13_000));
      const r = await queue.boss.getDb().executeSql(`SELECT state, retry_count FROM pgboss.job WHERE name = $1 AND data->>'fileId' = $2`, [QUEUE, p.fileId]);
      const row = r.rows[0] as { state: string; retry_count: number };
      seen.push({ retryCount: ctx.retryCount, state: row.state, retries: row.retry_count });
      done = true;
    });
    await queue.send(QUEUE, p);
    await until('the long handler to end', () => done, 30_000);
    expect(seen).toEqual([{ retryCount: 0, state: 'active', retries: 0 }]);
  } finally {
    await queue.stop(5000);
  }
}, 45_000);
