/**
 * The outbox against real Postgres: an event exists exactly when the transaction that made its change
 * commits, `data` is the job as that transaction left it, only subscribed recipients get a delivery,
 * and the claim hands out one receiver's deliveries of one job strictly in order.
 */
import {
  claimFile,
  claimWebhookDeliveries,
  createApiKey,
  createPool,
  createWebhookEndpoint,
  finishFile,
  insertJob,
  insertWebhookEvent,
  pruneWebhookHistory,
  withTransaction,
  type Pool,
} from '@kiln/db';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';
import { recordJobEvents, type EventContext } from '../src/index.ts';

let db: TestDatabase;
let pool: Pool;
const ctx: EventContext = { urlFor: (s) => `http://kiln.test/api/files/${s.id}`, progressIntervalMs: 0 };

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 4);
});
afterAll(async () => {
  await pool.end();
  await db.drop();
});

async function setup(eventTypes: string[]) {
  const { row: key } = await createApiKey(pool, `events-${crypto.randomUUID()}`);
  const endpoint = await createWebhookEndpoint(pool, { apiKeyId: key.id, url: `http://hooks.test/${key.id}`, eventTypes, format: 'convertly', secret: 'whsec_x' });
  const jobId = crypto.randomUUID();
  const fileIds = [crypto.randomUUID(), crypto.randomUUID()];
  await insertJob(pool, {
    id: jobId,
    apiKeyId: key.id,
    jobType: 'convert',
    createArchive: false,
    files: fileIds.map((id, idx) => ({ id, idx, filename: `f${idx}.png`, sourceKey: `jobs/${jobId}/src/${id}`, sourceKind: 'png', originalSize: 10, options: { format: 'webp' } })),
  });
  return { key, endpoint, jobId, fileIds };
}

const count = async (sql: string, args: unknown[]) => (await pool.query<{ n: number }>(sql, args)).rows[0]!.n;

test('a change that rolls back leaves no event; one that commits leaves it with its deliveries', async () => {
  const { jobId, fileIds } = await setup(['conversion.started']);
  await expect(
    withTransaction(pool, async (tx) => {
      const claim = await claimFile(tx, fileIds[0]!);
      expect(claim?.jobStarted).toBe(true);
      expect(await recordJobEvents(tx, ctx, jobId, { kind: 'started' })).toBe(1);
      throw new Error('roll back');
    }),
  ).rejects.toThrow('roll back');
  expect(await count('SELECT count(*)::int AS n FROM webhook_events WHERE job_id = $1', [jobId])).toBe(0);
  expect(await count('SELECT count(*)::int AS n FROM webhook_deliveries WHERE job_id = $1', [jobId])).toBe(0);

  await withTransaction(pool, async (tx) => {
    await claimFile(tx, fileIds[0]!);
    await recordJobEvents(tx, ctx, jobId, { kind: 'started' });
  });
  const { rows } = await pool.query<{ type: string; data: { jobId: string; status: string; results: unknown[] } }>('SELECT type, data FROM webhook_events WHERE job_id = $1', [
    jobId,
  ]);
  expect(rows).toHaveLength(1);
  // The job as the committing transaction left it: already processing.
  expect(rows[0]).toMatchObject({ type: 'conversion.started', data: { jobId, status: 'processing' } });
  expect(rows[0]!.data.results).toHaveLength(2);
  expect(await count('SELECT count(*)::int AS n FROM webhook_deliveries WHERE job_id = $1', [jobId])).toBe(1);
});

test('only subscribed endpoints get a delivery, and nothing is written for an event nobody receives', async () => {
  const { jobId, fileIds } = await setup(['conversion.completed']);
  await withTransaction(pool, async (tx) => {
    await claimFile(tx, fileIds[0]!);
    expect(await recordJobEvents(tx, ctx, jobId, { kind: 'started' })).toBe(0);
  });
  expect(await count('SELECT count(*)::int AS n FROM webhook_events WHERE job_id = $1', [jobId])).toBe(0);
});

test("one receiver's deliveries of one job are claimed one at a time, in event order", async () => {
  const { jobId, fileIds } = await setup(['file.uploaded', 'conversion.progress', 'conversion.completed']);
  for (const [i, fileId] of fileIds.entries()) {
    await withTransaction(pool, async (tx) => {
      await claimFile(tx, fileId);
      const ok = {
        ok: true as const,
        output: { storageKey: `jobs/${jobId}/out/${fileId}.webp`, filename: `f${i}.webp`, mimeType: 'image/webp', size: 5 },
        result: { format: 'webp' },
      };
      const after = await finishFile(tx, jobId, fileId, ok, 24);
      await recordJobEvents(tx, ctx, jobId, { kind: 'file_finished', file: { index: i, filename: `f${i}.png` }, output: `f${i}.webp`, jobFinal: after!.jobFinal });
    });
  }
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) {
    const claimed = (await claimWebhookDeliveries(pool, 10, 60)).filter((d) => d.jobId === jobId);
    // Never two of the same job at once: the next waits for the one before to finish.
    expect(claimed).toHaveLength(1);
    seen.push(claimed[0]!.eventType);
    await pool.query(`UPDATE webhook_deliveries SET status = 'succeeded' WHERE id = $1`, [claimed[0]!.id]);
  }
  expect(seen).toEqual(['file.uploaded', 'conversion.progress', 'file.uploaded', 'conversion.completed']);
});

test('history older than WEBHOOK_HISTORY_DAYS goes, unless a delivery of it is still pending', async () => {
  const { key, jobId } = await setup(['conversion.completed']);
  const done = await insertWebhookEvent(pool, { apiKeyId: key.id, jobId, type: 'conversion.completed', data: {} });
  const open = await insertWebhookEvent(pool, { apiKeyId: key.id, jobId, type: 'conversion.completed', data: {} });
  await pool.query(`UPDATE webhook_events SET created_at = now() - interval '31 days' WHERE id = ANY($1)`, [[done.eventId, open.eventId]]);
  await pool.query(`UPDATE webhook_deliveries SET status = 'succeeded' WHERE event_id = $1`, [done.eventId]);
  await pruneWebhookHistory(pool, 30);
  const left = await pool.query<{ id: string }>('SELECT id FROM webhook_events WHERE id = ANY($1)', [[done.eventId, open.eventId]]);
  expect(left.rows.map((r) => r.id)).toEqual([open.eventId]);
  expect(await count('SELECT count(*)::int AS n FROM webhook_deliveries WHERE event_id = $1', [done.eventId])).toBe(0);
});
