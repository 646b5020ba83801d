/**
 * The worker lifecycle's pieces on a real Postgres (and pg-boss): file holds, the reconcile sweep
 * after a worker died, the outcome write retried through an outage, and RSS recycling.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '@kiln/config';
import { claimFile, claimFileHeld, createApiKey, createPool, finishFile, insertJob, type Pool } from '@kiln/db';
import { QUEUES, Queue } from '@kiln/queue';
import { retryWhileDatabaseIsDown } from '../src/lifecycle/db-retry.ts';
import { fileHolds } from '../src/lifecycle/holds.ts';
import { startWorkerInstance, type RunningInstance } from '../src/lifecycle/instance.ts';
import { watchRss } from '../src/lifecycle/rss-recycle.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

const log = createLogger('test', 'error');
let db: TestDatabase;
let pool: Pool;
let queue: Queue;
let apiKeyId: string;
const instances: RunningInstance[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 4);
  queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 120, supervise: false }).start();
  apiKeyId = (await createApiKey(pool, 'lifecycle')).row.id;
});
afterAll(async () => {
  for (const i of instances) await i.stop();
  await queue?.stop();
  await pool?.end();
  await db?.drop();
});

async function instance(): Promise<RunningInstance> {
  const i = await startWorkerInstance({ pool, queue, log, service: 'test-worker', settings: { orphanSeconds: 20, retryLimit: 1, retentionHours: 1 } });
  instances.push(i);
  return i;
}

async function newFile(opts: { createArchive?: boolean } = {}): Promise<{ jobId: string; fileId: string }> {
  const jobId = crypto.randomUUID();
  const fileId = crypto.randomUUID();
  await insertJob(pool, {
    id: jobId,
    apiKeyId,
    jobType: 'convert',
    createArchive: opts.createArchive ?? false,
    files: [{ id: fileId, idx: 0, filename: 'a.png', sourceKey: `jobs/${jobId}/src/${fileId}`, sourceKind: 'png', originalSize: 10, options: { format: 'webp' } }],
  });
  return { jobId, fileId };
}

/** Makes an instance look dead: not seen for longer than the orphan window. */
async function age(id: string): Promise<void> {
  await pool.query("UPDATE worker_instances SET seen_at = now() - interval '1 hour' WHERE id = $1", [id]);
}

async function liveMessages(fileId: string): Promise<number> {
  return (await queue.liveFileIds([fileId])).has(fileId) ? 1 : 0;
}

const held = async (fileId: string) =>
  (await pool.query<{ instance_id: string; scratch_dir: string | null }>('SELECT instance_id, scratch_dir FROM worker_holds WHERE file_id = $1', [fileId])).rows;
const fileRow = async (fileId: string) => (await pool.query<{ status: string; attempts: number }>('SELECT status, attempts FROM job_files WHERE id = $1', [fileId])).rows[0]!;
const hold = (i: RunningInstance, scratchDir: string | null = null) => ({ instanceId: i.id, orphanSeconds: 20, scratchDir });

test('a file has one live holder: a second worker is refused without an attempt counted, and takes it over once the first is dead', async () => {
  const [a, b] = [await instance(), await instance()];
  const { fileId } = await newFile();
  expect((await claimFileHeld(pool, fileId, hold(a, '/tmp/w-a'))).outcome).toBe('claimed');
  // The same instance again (a retry of its own): still its hold, a new attempt.
  expect((await claimFileHeld(pool, fileId, hold(a, '/tmp/w-a2'))).outcome).toBe('claimed');
  expect(await fileRow(fileId)).toEqual({ status: 'processing', attempts: 2 });
  // A duplicate message in another live worker: refused, naming the holder; nothing written.
  expect(await claimFileHeld(pool, fileId, hold(b, '/tmp/w-b'))).toEqual({ outcome: 'refused', holder: a.id });
  expect(await fileRow(fileId)).toEqual({ status: 'processing', attempts: 2 });
  expect(await held(fileId)).toEqual([{ instance_id: a.id, scratch_dir: '/tmp/w-a2' }]);
  await age(a.id);
  const took = await claimFileHeld(pool, fileId, hold(b, '/tmp/w-b'));
  expect(took.outcome).toBe('claimed');
  expect(took.outcome === 'claimed' && took.claim.file.attempts).toBe(3);
  expect(await held(fileId)).toEqual([{ instance_id: b.id, scratch_dir: '/tmp/w-b' }]);
  // Out of the way of the next tests' sweeps.
  await a.stop();
  await b.stop();
});

test('a claim with nothing to do writes no hold; the finish deletes its own hold and no other', async () => {
  const [a, b] = [await instance(), await instance()];
  const { jobId, fileId } = await newFile();
  const c = await claimFileHeld(pool, fileId, hold(a));
  expect(c.outcome).toBe('claimed');
  const outcome = { ok: false as const, code: 'invalid_input', message: 'broken' };
  // Another instance's id leaves a's hold alone (the delete is by file and instance)...
  expect(await finishFile(pool, jobId, fileId, outcome, 1, undefined, b.id)).toBeDefined();
  expect(await held(fileId)).toHaveLength(1);
  // ...and the holder's own finish deletes it, even when the file was already final.
  expect(await finishFile(pool, jobId, fileId, outcome, 1, undefined, a.id)).toBeUndefined();
  expect(await held(fileId)).toEqual([]);
  // The file is final: a late duplicate writes nothing at all.
  expect(await claimFileHeld(pool, fileId, hold(b))).toEqual({ outcome: 'nothing', holdTaken: false });
  expect(await held(fileId)).toEqual([]);
  expect(await fileRow(fileId)).toEqual({ status: 'failed', attempts: 1 });
  await a.stop();
  await b.stop();
});

test('the handler side: a duplicate message is dropped whether the holder is another worker or this one', async () => {
  const [a, b] = [await instance(), await instance()];
  const { fileId } = await newFile();
  const inA = fileHolds(pool, a, log);
  const inB = fileHolds(pool, b, log);
  expect(inA.enter(fileId)).toBe(true);
  expect((await inA.claim(pool, fileId, null)).outcome).toBe('claimed');
  expect(inA.enter(fileId)).toBe(false);
  expect(inB.enter(fileId)).toBe(true);
  expect(await inB.claim(pool, fileId, null)).toEqual({ outcome: 'duplicate' });
  await inB.leave(fileId, false);
  expect(b.active.has(fileId)).toBe(false);
  expect(await held(fileId)).toEqual([{ instance_id: a.id, scratch_dir: null }]);
  await inA.leave(fileId, true);
  expect(a.active.has(fileId)).toBe(false);
  expect(await held(fileId)).toEqual([]);
  expect(inB.enter(fileId)).toBe(true);
  expect((await inB.claim(pool, fileId, null)).outcome).toBe('claimed');
  await inB.leave(fileId, true);
  expect(await fileRow(fileId)).toEqual({ status: 'processing', attempts: 2 });
  await a.stop();
  await b.stop();
});

test.each([
  ['folder', 'w-0123456789abcdef'],
  // A conversion that writes only its output writes it at the planned path itself (BlobStore.scratchFile).
  ['file', 'w-0123456789abcdee'],
])("the sweep removes a dead worker's scratch %s and re-queues the file it held, once", async (kind, name) => {
  const sweeper = await instance();
  // A worker that will die mid-file: registered, then never seen again (no timers of its own here).
  const dead = { id: crypto.randomUUID(), orphanSeconds: 20 };
  await pool.query('INSERT INTO worker_instances (id, service, host, pid) VALUES ($1, $2, $3, 1)', [dead.id, 'test-worker', os.hostname()]);
  const { fileId } = await newFile();
  // What a handler does: the claim takes the hold and records the scratch path it will use, then
  // makes the folder there and writes in it, or writes its one output file there.
  const scratch = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-sweep-')), name);
  expect((await claimFileHeld(pool, fileId, { instanceId: dead.id, orphanSeconds: 20, scratchDir: scratch })).outcome).toBe('claimed');
  if (kind === 'folder') {
    await fs.mkdir(scratch);
    await fs.writeFile(path.join(scratch, 'partial.webp'), 'x');
  } else await fs.writeFile(scratch, 'partial');
  // It dies: its row goes stale.
  await age(dead.id);
  expect(await liveMessages(fileId)).toBe(0);

  const report = await sweeper.reconcile();
  expect(report).toMatchObject({ deadInstances: 1, scratchRemoved: 1, requeued: 1, failed: 0 });
  await expect(fs.stat(scratch)).rejects.toThrow();
  expect(await liveMessages(fileId)).toBe(1);
  expect((await pool.query('SELECT 1 FROM worker_instances WHERE id = $1', [dead.id])).rowCount).toBe(0);
  // A message carries it now: the next pass leaves it alone.
  expect(await sweeper.reconcile()).toMatchObject({ deadInstances: 0, requeued: 0 });
});

test("a dead worker's hold taken over by a claim before any sweep ran: the sweep still removes the dead worker's scratch folder", async () => {
  const sweeper = await instance();
  const live = await instance();
  const dead = { id: crypto.randomUUID() };
  await pool.query('INSERT INTO worker_instances (id, service, host, pid) VALUES ($1, $2, $3, 1)', [dead.id, 'test-worker', os.hostname()]);
  const { fileId } = await newFile();
  const scratch = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-sweep-')), 'w-fedcba9876543210');
  expect((await claimFileHeld(pool, fileId, { instanceId: dead.id, orphanSeconds: 20, scratchDir: scratch })).outcome).toBe('claimed');
  await fs.mkdir(scratch);
  await age(dead.id);
  // pg-boss's retry reaches a live worker first: it takes the hold over, with a folder of its own.
  expect((await claimFileHeld(pool, fileId, hold(live, '/tmp/w-live'))).outcome).toBe('claimed');
  expect(await held(fileId)).toEqual([{ instance_id: live.id, scratch_dir: '/tmp/w-live' }]);
  const report = await sweeper.reconcile();
  expect(report).toMatchObject({ deadInstances: 1, scratchRemoved: 1 });
  await expect(fs.stat(scratch)).rejects.toThrow();
  expect((await pool.query('SELECT 1 FROM worker_instances WHERE id = $1', [dead.id])).rowCount).toBe(0);
  await live.stop();
});

test('a file that goes final while its claim waits: the claim says it wrote a hold, and leaving releases it', async () => {
  const a = await instance();
  const { fileId } = await newFile();
  const other = await pool.connect();
  try {
    // Another session finishes the file and has not committed yet.
    await other.query('BEGIN');
    await other.query("UPDATE job_files SET status = 'failed', error_code = 'cancelled', completed_at = now() WHERE id = $1", [fileId]);
    const inA = fileHolds(pool, a, log);
    expect(inA.enter(fileId)).toBe(true);
    const claiming = inA.claim(pool, fileId, null);
    // The claim's snapshot saw the file pending, wrote its hold and waits for the file's row.
    for (let i = 0; i < 200; i++) {
      const waiting = await pool.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH c AS%' AND datname = current_database()");
      if (waiting.rowCount) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await other.query('COMMIT');
    expect(await claiming).toEqual({ outcome: 'nothing', holdTaken: true });
    expect(await held(fileId)).toHaveLength(1);
    await inA.leave(fileId, true);
    expect(await held(fileId)).toEqual([]);
    expect(await fileRow(fileId)).toEqual({ status: 'failed', attempts: 0 });
  } finally {
    other.release();
  }
  await a.stop();
});

test('a file abandoned more than JOB_RETRY_LIMIT + 3 times is recorded as failed, not re-queued again', async () => {
  const sweeper = await instance();
  const { jobId, fileId } = await newFile();
  for (let i = 0; i < 5; i++) await claimFile(pool, fileId);
  const report = await sweeper.reconcile();
  expect(report).toMatchObject({ requeued: 0, failed: 1 });
  const row = (await pool.query('SELECT status, error_code, error_message FROM job_files WHERE id = $1', [fileId])).rows[0];
  expect(row).toMatchObject({ status: 'failed', error_code: 'engine_failed' });
  expect(row.error_message).toMatch(/stopped before finishing 5 times/);
  expect((await pool.query('SELECT status FROM jobs WHERE id = $1', [jobId])).rows[0].status).toBe('failed');
});

test('a job waiting for an archive no message will build is completed without it; one whose message is live is left alone', async () => {
  const sweeper = await instance();
  const archiveJob = async () => {
    const { jobId, fileId } = await newFile({ createArchive: true });
    await claimFile(pool, fileId);
    const output = { storageKey: `jobs/${jobId}/out/${fileId}.webp`, filename: 'a.webp', mimeType: 'image/webp', size: 5 };
    const after = await finishFile(pool, jobId, fileId, { ok: true, output, result: {} }, 1);
    expect(after).toMatchObject({ needsArchive: true, jobFinal: false, status: 'processing' });
    return jobId;
  };
  const jobRow = async (id: string) => (await pool.query('SELECT status, archive_file_id, error_message, expires_at FROM jobs WHERE id = $1', [id])).rows[0];
  // Its archive.build message used up its retries (or was lost): nothing will ever build it.
  const orphan = await archiveJob();
  // This one's message is queued: its build is still to come.
  const queued = await archiveJob();
  await queue.send(QUEUES.archiveBuild, { jobId: queued });

  const report = await sweeper.reconcile();
  expect(report.archivesAbandoned).toBe(1);
  expect(await jobRow(orphan)).toMatchObject({ status: 'completed', archive_file_id: null, error_message: expect.stringMatching(/archive of results could not be built/) });
  expect((await jobRow(orphan)).expires_at).not.toBeNull();
  expect(await jobRow(queued)).toMatchObject({ status: 'processing', error_message: null });
  // Settled once: the next pass finds nothing more to do.
  expect((await sweeper.reconcile()).archivesAbandoned).toBe(0);
});

describe('retryWhileDatabaseIsDown', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

  test('retries while Postgres is unreachable and returns what the write returned', async () => {
    let calls = 0;
    const out = await retryWhileDatabaseIsDown(
      'a write',
      async () => {
        if (++calls < 3) throw refused;
        return 'ok';
      },
      { maxSeconds: 10, log },
    );
    expect(out).toBe('ok');
    expect(calls).toBe(3);
  });

  test('gives up after WORKER_RECORD_RETRY_SECONDS, and never retries an error that is not an outage', async () => {
    let calls = 0;
    await expect(
      retryWhileDatabaseIsDown(
        'a write',
        async () => {
          calls++;
          throw refused;
        },
        { maxSeconds: 1, log },
      ),
    ).rejects.toThrow('ECONNREFUSED');
    expect(calls).toBeGreaterThan(1);
    calls = 0;
    const bad = Object.assign(new Error('syntax error'), { code: '42601' });
    await expect(
      retryWhileDatabaseIsDown(
        'a write',
        async () => {
          calls++;
          throw bad;
        },
        { maxSeconds: 10, log },
      ),
    ).rejects.toThrow('syntax error');
    expect(calls).toBe(1);
  });
});

test('watchRss fires once past WORKER_MAX_RSS_MB, with the reason, and never when it is 0', async () => {
  const reasons: string[] = [];
  let mb = 100;
  const stop = watchRss({ maxMb: 200, log, onOver: (r) => reasons.push(r), everyMs: 5, rss: () => mb * 1024 * 1024 });
  await new Promise((r) => setTimeout(r, 30));
  expect(reasons).toEqual([]);
  mb = 300;
  await new Promise((r) => setTimeout(r, 60));
  expect(reasons).toEqual(['resident memory 300 MiB is over WORKER_MAX_RSS_MB=200']);
  stop();
  const off = watchRss({ maxMb: 0, log, onOver: (r) => reasons.push(r), everyMs: 5, rss: () => 1e12 });
  await new Promise((r) => setTimeout(r, 30));
  expect(reasons).toHaveLength(1);
  off();
});
