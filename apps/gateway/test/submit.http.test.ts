/**
 * The submission steps (jobs.service.ts) called directly, without Express, against a real cloned
 * database and pg-boss: admission and idempotency before any bytes, then one statement that writes
 * the job, its files and their queue messages — alone, or in a transaction with the key's admission,
 * the Idempotency-Key claim and a dialect's rows. No workers: jobs stay pending.
 */
import crypto from 'node:crypto';
import { AppError, parseJobFields, queueFor, type JobType, type KeyLimits } from '@kiln/contracts';
import { createApiKey, type ApiKeyRow } from '@kiln/db';
import { admitSubmission, submitJob, type JobSubmission } from '../src/jobs.service.ts';
import { startTestGateway, type TestGateway } from './helpers.ts';

let gw: TestGateway;
let deps: TestGateway['deps'];

beforeAll(async () => {
  gw = await startTestGateway('submit');
  ({ deps } = gw);
}, 60_000);
afterAll(async () => {
  await gw?.close();
});

const newKey = async (limits: KeyLimits = {}): Promise<ApiKeyRow> => (await createApiKey(deps.pool, `submit ${crypto.randomUUID()}`, limits)).row;

/** A job whose bytes are (notionally) stored already: submitJob never reads them. */
function job(jobType: JobType = 'convert', files = 1, fields: Record<string, string> = { format: 'webp' }): JobSubmission {
  const jobId = crypto.randomUUID();
  const request = parseJobFields(fields, files, { jobType });
  return {
    jobId,
    jobType,
    createArchive: false,
    files: request.files.map((options, i) => ({ fileId: crypto.randomUUID(), sourceKey: `jobs/${jobId}/src/${i}`, filename: `f${i}.jpg`, kind: 'jpg', size: 100 + i, options })),
  };
}

const count = async (sql: string, args: unknown[]) => (await gw.client.query<{ n: number }>(sql, args)).rows[0]!.n;
const jobsOf = (key: ApiKeyRow) => count('SELECT count(*)::int AS n FROM jobs WHERE api_key_id = $1', [key.id]);
const messagesFor = (jobId: string) => count(`SELECT count(*)::int AS n FROM pgboss.job WHERE data->>'jobId' = $1`, [jobId]);

/** The gateway's pool, counting the statements sent through it and the clients taken for transactions. */
function countingPool(): { pool: TestGateway['deps']['pool']; queries: () => number; connects: () => number } {
  let queries = 0;
  let connects = 0;
  const real = deps.pool;
  const pool = new Proxy(real, {
    get(target, prop) {
      if (prop === 'query')
        return (...args: Parameters<typeof real.query>) => {
          queries++;
          return (target.query as (...a: unknown[]) => unknown)(...args);
        };
      if (prop === 'connect')
        return () => {
          connects++;
          return target.connect();
        };
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { pool, queries: () => queries, connects: () => connects };
}

/** Until the webhook recipient cache is sure `key` has no endpoint (it loads once at start). */
async function nobodyListensTo(key: ApiKeyRow): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (deps.events?.recipients?.mayReceive(key.id, false, 'file.uploaded') !== false) {
    if (Date.now() > deadline) throw new Error('the recipient cache never loaded');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function refusal(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

test('submitJob writes the job and its files and queues one message per file on the queue queueFor names, in one commit', async () => {
  const key = await newKey({ retentionHours: 5 });
  for (const jobType of ['convert', 'compress'] as const) {
    const j = job(jobType, 2, jobType === 'convert' ? { format: 'webp' } : {});
    let seenFromOutside: number | undefined;
    const out = await submitJob(deps, await admitSubmission(deps, key), {
      ...j,
      // Inside the transaction: nobody else sees the job yet.
      beforeCommit: async (id) => {
        seenFromOutside = await count('SELECT count(*)::int AS n FROM jobs WHERE id = $1', [id]);
      },
    });
    expect(out).toEqual({ jobId: j.jobId, created: true });
    expect(seenFromOutside).toBe(0);
    const row = (await gw.client.query('SELECT job_type, status, total_files, retention_hours FROM jobs WHERE id = $1', [j.jobId])).rows[0];
    expect(row).toEqual({ job_type: jobType, status: 'pending', total_files: 2, retention_hours: 5 });
    const files = (await gw.client.query('SELECT id, idx, source_key, source_kind, original_size, options FROM job_files WHERE job_id = $1 ORDER BY idx', [j.jobId])).rows;
    expect(files.map((f) => [f.id, f.idx, f.source_key, f.source_kind, Number(f.original_size)])).toEqual(j.files.map((f, i) => [f.fileId, i, f.sourceKey, 'jpg', f.size]));
    expect(files[0].options).toEqual(j.files[0]!.options);
    const messages = (await gw.client.query(`SELECT name, data FROM pgboss.job WHERE data->>'jobId' = $1 ORDER BY data->>'fileId'`, [j.jobId])).rows;
    expect(messages).toEqual(
      j.files
        .map((f) => ({ name: queueFor(jobType, f), data: { jobId: j.jobId, fileId: f.fileId, apiKeyId: key.id, jobWebhook: false } }))
        .sort((a, b) => a.data.fileId.localeCompare(b.data.fileId)),
    );
    // JPEGs: the image class's queue of the job type.
    expect(messages[0].name).toBe(jobType === 'compress' ? 'compress.image' : 'convert.image');
  }
});

test('a throw just before commit leaves neither the job nor its messages', async () => {
  const key = await newKey();
  const j = job();
  await expect(
    submitJob(deps, await admitSubmission(deps, key), {
      ...j,
      beforeCommit: () => {
        throw new Error('listener failed');
      },
    }),
  ).rejects.toThrow('listener failed');
  expect(await jobsOf(key)).toBe(0);
  expect(await messagesFor(j.jobId)).toBe(0);
});

test('a submission nothing else must commit with is one statement, no transaction: the job, its files and their messages', async () => {
  const key = await newKey();
  await nobodyListensTo(key);
  const j = job('convert', 2);
  const counted = countingPool();
  let before: { id: string; files: number; queries: number } | undefined;
  const out = await submitJob({ ...deps, pool: counted.pool }, await admitSubmission(deps, key), {
    ...j,
    // Before the statement is sent: the sync routes listen here.
    beforeVisible: (id, files) => (before = { id, files, queries: counted.queries() }),
  });
  expect(out).toEqual({ jobId: j.jobId, created: true });
  expect([counted.queries(), counted.connects()]).toEqual([1, 0]);
  expect(before).toEqual({ id: j.jobId, files: 2, queries: 0 });
  expect(await count('SELECT total_files AS n FROM jobs WHERE id = $1', [j.jobId])).toBe(2);
  expect(await count('SELECT count(*)::int AS n FROM job_files WHERE job_id = $1', [j.jobId])).toBe(2);
  const messages = (await gw.client.query(`SELECT name, state, data FROM pgboss.job WHERE data->>'jobId' = $1 ORDER BY data->>'fileId'`, [j.jobId])).rows;
  expect(messages).toEqual(
    j.files
      .map((f) => ({ name: 'convert.image', state: 'created', data: { jobId: j.jobId, fileId: f.fileId, apiKeyId: key.id, jobWebhook: false } }))
      .sort((a, b) => a.data.fileId.localeCompare(b.data.fileId)),
  );
});

test('a throw in beforeVisible refuses the job before anything is written, in one statement or in a transaction', async () => {
  const key = await newKey();
  await nobodyListensTo(key);
  for (const idempotencyKey of [undefined, 'refused-1']) {
    const j = job();
    const counted = countingPool();
    await expect(
      submitJob({ ...deps, pool: counted.pool }, await admitSubmission(deps, key, idempotencyKey), {
        ...j,
        beforeVisible: () => {
          throw new Error('listener failed');
        },
      }),
    ).rejects.toThrow('listener failed');
    // Without an Idempotency-Key nothing was sent at all; with one, its transaction rolled back.
    if (!idempotencyKey) expect(counted.queries()).toBe(0);
    expect(await jobsOf(key)).toBe(0);
    expect(await messagesFor(j.jobId)).toBe(0);
  }
  expect(await count('SELECT count(*)::int AS n FROM idempotency_keys WHERE api_key_id = $1', [key.id])).toBe(0);
});

test('a submission with an Idempotency-Key, or for a key with limits, is a transaction whose job statement carries the messages', async () => {
  for (const [limits, idempotencyKey] of [
    [{}, 'tx-1'],
    [{ maxConcurrentJobs: 5 }, undefined],
  ] as const) {
    const key = await newKey(limits);
    await nobodyListensTo(key);
    const j = job('convert', 3);
    const counted = countingPool();
    let listened: string | undefined;
    expect(await submitJob({ ...deps, pool: counted.pool }, await admitSubmission(deps, key, idempotencyKey), { ...j, beforeVisible: (id) => (listened = id) })).toEqual({
      jobId: j.jobId,
      created: true,
    });
    expect(counted.connects()).toBe(1);
    expect(listened).toBe(j.jobId);
    expect(await messagesFor(j.jobId)).toBe(3);
  }
});

test('admission refuses a key at its limit before anything is read, while a replay of its earlier job is still answered', async () => {
  const key = await newKey({ maxConcurrentJobs: 1 });
  const first = job();
  expect(await submitJob(deps, await admitSubmission(deps, key, 'order-1'), first)).toEqual({ jobId: first.jobId, created: true });

  const refused = await refusal(admitSubmission(deps, key));
  expect([refused.code, refused.status]).toEqual(['rate_limited', 429]);
  expect(refused.message).toMatch(/maxConcurrentJobs 1/);

  const replay = await admitSubmission(deps, key, 'order-1');
  expect(replay.replayOf).toBe(first.jobId);
  const again = job();
  expect(await submitJob(deps, replay, again)).toEqual({ jobId: first.jobId, created: false });
  expect(await jobsOf(key)).toBe(1);
  expect(await messagesFor(again.jobId)).toBe(0);
});

test('two submissions admitted at once cannot both take the last slot: the second is refused under the key lock', async () => {
  const key = await newKey({ maxConcurrentJobs: 1 });
  const [a, b] = [await admitSubmission(deps, key), await admitSubmission(deps, key)];
  const outcomes = await Promise.allSettled([submitJob(deps, a!, job()), submitJob(deps, b!, job())]);
  expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
  const rejected = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
  expect(rejected.reason).toMatchObject({ code: 'rate_limited' });
  expect(await jobsOf(key)).toBe(1);
});

test('a request that loses the race for its Idempotency-Key creates nothing and answers with the winner', async () => {
  const key = await newKey();
  // Both looked before either had committed, so neither is a replay at admission.
  const [a, b] = [await admitSubmission(deps, key, 'race-1'), await admitSubmission(deps, key, 'race-1')];
  expect([a.replayOf, b.replayOf]).toEqual([undefined, undefined]);
  const winner = job();
  const loser = job();
  expect(await submitJob(deps, a, winner)).toEqual({ jobId: winner.jobId, created: true });
  expect(await submitJob(deps, b, loser)).toEqual({ jobId: winner.jobId, created: false });
  expect(await jobsOf(key)).toBe(1);
  expect(await messagesFor(loser.jobId)).toBe(0);

  // The same at the same moment: one waits on the other's claim inside Postgres.
  const [c, d] = [await admitSubmission(deps, key, 'race-2'), await admitSubmission(deps, key, 'race-2')];
  const [x, y] = await Promise.all([submitJob(deps, c, job()), submitJob(deps, d, job())]);
  expect([x.created, y.created].sort()).toEqual([false, true]);
  expect(x.jobId).toBe(y.jobId);
  expect(await jobsOf(key)).toBe(2);
});

test('a format the key may not create is refused before anything is written, compress targets included', async () => {
  const key = await newKey({ allowedFormats: ['png'] });
  const webp = job('convert', 2, { formats: '["png","webp"]' });
  const refused = await refusal(submitJob(deps, await admitSubmission(deps, key), webp));
  expect([refused.code, refused.status]).toEqual(['format_not_allowed', 403]);
  expect(refused.message).toMatch(/^files\[1\] \("f1\.jpg"\) asks for webp/);
  // Compressing a JPEG writes a JPEG.
  const compress = await refusal(submitJob(deps, await admitSubmission(deps, key), job('compress', 1, {})));
  expect(compress.detail).toMatchObject({ format: 'jpg', allowedFormats: ['png'] });
  expect(await jobsOf(key)).toBe(0);
});
