/**
 * finishFile settles a job in one statement: many files finishing at the same moment on separate
 * connections leave exact counters, one final transition, one notification, and duplicates change nothing.
 */
import pg from 'pg';
import { claimFile, createApiKey, createPool, finishFile, getJob, getJobFiles, getJobWithFiles, insertJob, withTransaction, type FileOutcome, type Pool } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

let db: TestDatabase;
let pool: Pool;
beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 12);
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

async function newJob(files: number, createArchive = false): Promise<{ jobId: string; fileIds: string[]; apiKeyId: string }> {
  const { row: key } = await createApiKey(pool, `finish-${crypto.randomUUID()}`);
  const jobId = crypto.randomUUID();
  const fileIds = Array.from({ length: files }, () => crypto.randomUUID());
  await insertJob(pool, {
    id: jobId,
    apiKeyId: key.id,
    jobType: 'convert',
    createArchive,
    files: fileIds.map((id, idx) => ({ id, idx, filename: `f${idx}.png`, sourceKey: `jobs/${jobId}/src/${id}`, sourceKind: 'png', originalSize: 10, options: {} })),
  });
  return { jobId, fileIds, apiKeyId: key.id };
}

const ok = (jobId: string, fileId: string): FileOutcome => ({
  ok: true,
  output: { storageKey: `jobs/${jobId}/out/${fileId}.webp`, filename: 'x.webp', mimeType: 'image/webp', size: 5 },
  result: { format: 'webp' },
});
const bad: FileOutcome = { ok: false, code: 'invalid_input', message: 'broken' };

test('24 files finishing at once: exact counts, one final transition, one notification', async () => {
  const { jobId, fileIds } = await newJob(24);
  const listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  const heard: string[] = [];
  listener.on('notification', (n) => heard.push(n.payload ?? ''));
  await listener.query('LISTEN kiln_test_done');
  try {
    for (const id of fileIds) expect(await claimFile(pool, id)).toBeDefined();
    const after = await Promise.all(fileIds.map((id, i) => finishFile(pool, jobId, id, i % 4 === 0 ? bad : ok(jobId, id), 24, 'kiln_test_done')));
    expect(after.filter((a) => a?.jobFinal)).toHaveLength(1);
    expect(after.filter((a) => a?.allFilesDone)).toHaveLength(1);
    const job = (await getJob(pool, jobId))!;
    expect(job).toMatchObject({ status: 'completed', completedFiles: 18, failedFiles: 6, totalFiles: 24 });
    expect(job.completedAt).toBeInstanceOf(Date);
    expect(job.expiresAt!.getTime() - job.completedAt!.getTime()).toBe(24 * 3600 * 1000);
    const files = await getJobFiles(pool, jobId);
    expect(files.filter((f) => f.status === 'completed' && f.output?.mimeType === 'image/webp')).toHaveLength(18);
    expect(files.filter((f) => f.status === 'failed' && f.errorCode === 'invalid_input')).toHaveLength(6);

    // A duplicate message for a finished file changes nothing.
    expect(await finishFile(pool, jobId, fileIds[1]!, bad, 24, 'kiln_test_done')).toBeUndefined();
    expect(await getJob(pool, jobId)).toMatchObject({ completedFiles: 18, failedFiles: 6, status: 'completed' });
    await new Promise((r) => setTimeout(r, 200));
    expect(heard).toEqual([jobId]);
  } finally {
    await listener.end();
  }
});

test('a job whose files all fail ends failed, told by its counters; an archive job waits for its archive', async () => {
  const failing = await newJob(2);
  await finishFile(pool, failing.jobId, failing.fileIds[0]!, bad, 24);
  expect(await getJob(pool, failing.jobId)).toMatchObject({ status: 'processing', failedFiles: 1 });
  const last = await finishFile(pool, failing.jobId, failing.fileIds[1]!, bad, 24);
  expect(last).toMatchObject({ jobFinal: true, allFilesDone: true, needsArchive: false, status: 'failed' });
  // The row holds no sentence: the gateway words "all 2 files failed" from the counters (job-responses.ts).
  expect(await getJob(pool, failing.jobId)).toMatchObject({ status: 'failed', failedFiles: 2, completedFiles: 0, totalFiles: 2, errorMessage: null });

  const archived = await newJob(2, true);
  await withTransaction(pool, (tx) => finishFile(tx, archived.jobId, archived.fileIds[0]!, ok(archived.jobId, archived.fileIds[0]!), 24));
  const end = await withTransaction(pool, (tx) => finishFile(tx, archived.jobId, archived.fileIds[1]!, bad, 24));
  expect(end).toMatchObject({ jobFinal: false, allFilesDone: true, needsArchive: true, status: 'processing' });
  expect((await getJob(pool, archived.jobId))!.completedAt).toBeNull();
});

test('getJobWithFiles answers in one query exactly what getJob and getJobFiles answer in two, for the owner only', async () => {
  const { jobId, fileIds, apiKeyId } = await newJob(3);
  await finishFile(pool, jobId, fileIds[0]!, ok(jobId, fileIds[0]!), 24);
  await finishFile(pool, jobId, fileIds[2]!, bad, 24);
  const both = await getJobWithFiles(pool, jobId, apiKeyId);
  expect(both!.job).toEqual(await getJob(pool, jobId, apiKeyId));
  expect(both!.files).toEqual(await getJobFiles(pool, jobId));
  expect(both!.files.map((f) => f.status)).toEqual(['completed', 'pending', 'failed']);
  expect(both!.files[0]!.output).toMatchObject({ mimeType: 'image/webp', size: 5 });
  const other = await newJob(1);
  expect(await getJobWithFiles(pool, jobId, other.apiKeyId)).toBeUndefined();
});

describe('the final notice carries a one-file job, so the sync answer needs no read', () => {
  /** Listens on a channel of its own and returns the payloads heard. */
  async function listening(): Promise<{ channel: string; heard: string[]; end: () => Promise<void> }> {
    const channel = `t_${crypto.randomUUID().replace(/-/g, '')}`;
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const heard: string[] = [];
    c.on('notification', (n) => heard.push(n.payload ?? ''));
    await c.query(`LISTEN ${channel}`);
    return { channel, heard, end: () => c.end() };
  }
  const until = async (cond: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  };
  /** What getJobWithFiles returns, as JSON would carry it. */
  const asJson = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;

  test.each([
    ['completed', true],
    ['failed', false],
  ])('%s: the payload is exactly getJobWithFiles', async (_s, succeeds) => {
    const l = await listening();
    try {
      const { jobId, fileIds, apiKeyId } = await newJob(1);
      await claimFile(pool, fileIds[0]!);
      await finishFile(pool, jobId, fileIds[0]!, succeeds ? ok(jobId, fileIds[0]!) : bad, 24, l.channel);
      await until(() => l.heard.length > 0);
      expect(l.heard).toHaveLength(1);
      const payload = JSON.parse(l.heard[0]!) as { id: string; job: unknown; files: unknown };
      expect(payload.id).toBe(jobId);
      const read = (await getJobWithFiles(pool, jobId, apiKeyId))!;
      // Dates travel as Postgres's ISO strings (µs); the gateway reads them with new Date(), as pg does.
      const job = payload.job as Record<string, unknown>;
      for (const k of ['createdAt', 'startedAt', 'completedAt', 'expiresAt']) job[k] = job[k] === null ? null : new Date(job[k] as string);
      expect(asJson(job)).toEqual(asJson(read.job));
      expect(asJson(payload.files)).toEqual(asJson(read.files));
    } finally {
      await l.end();
    }
  });

  test('a job of several files, or a payload near the 8000-byte limit, carries the id only', async () => {
    const l = await listening();
    try {
      const many = await newJob(2);
      for (const f of many.fileIds) await finishFile(pool, many.jobId, f, ok(many.jobId, f), 24, l.channel);
      const big = await newJob(1);
      await finishFile(pool, big.jobId, big.fileIds[0]!, { ...ok(big.jobId, big.fileIds[0]!), result: { notes: ['x'.repeat(9000)] } } as FileOutcome, 24, l.channel);
      await until(() => l.heard.length >= 2);
      expect(l.heard).toEqual([many.jobId, big.jobId]);
    } finally {
      await l.end();
    }
  });
});
