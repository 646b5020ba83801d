/**
 * pg-boss keeps finished messages only QUEUE_HISTORY_SECONDS (its deleteAfterSeconds): Kiln's own
 * tables are the record, so its table holds an hour of traffic rather than its 7-day default.
 */
import { QUEUES, Queue } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

test('every queue keeps finished messages for the configured time, 1 h by default, and a restart applies a change', async () => {
  const first = await new Queue({ connectionString: db.url, retryLimit: 2, expireInSeconds: 120, supervise: false }).start();
  try {
    for (const name of Object.values(QUEUES)) expect((await first.boss.getQueue(name))?.deleteAfterSeconds).toBe(3600);
  } finally {
    await first.stop();
  }
  const second = await new Queue({ connectionString: db.url, retryLimit: 2, expireInSeconds: 120, deleteAfterSeconds: 600, supervise: false }).start();
  try {
    for (const name of Object.values(QUEUES)) expect((await second.boss.getQueue(name))?.deleteAfterSeconds).toBe(600);
  } finally {
    await second.stop();
  }
});
