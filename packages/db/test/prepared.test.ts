/**
 * Named statements: Kiln's frequent queries carry a name (Postgres plans them once per connection)
 * unless DB_PREPARED_STATEMENTS=false, for poolers that cannot keep prepared statements.
 */
import { loadConfig } from '@kiln/config';
import { createPool, getJob, named, type Pool } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

test('DB_PREPARED_STATEMENTS defaults to true and reads true/false/1/0; a bad value names the variable', () => {
  expect(loadConfig({}).DB_PREPARED_STATEMENTS).toBe(true);
  expect(loadConfig({ DB_PREPARED_STATEMENTS: 'false' }).DB_PREPARED_STATEMENTS).toBe(false);
  expect(loadConfig({ DB_PREPARED_STATEMENTS: '0' }).DB_PREPARED_STATEMENTS).toBe(false);
  expect(loadConfig({ DB_PREPARED_STATEMENTS: '1' }).DB_PREPARED_STATEMENTS).toBe(true);
  expect(() => loadConfig({ DB_PREPARED_STATEMENTS: 'maybe' })).toThrow(/DB_PREPARED_STATEMENTS/);
});

test.each([true, false])('with preparedStatements=%s the same queries run again and again on every connection', async (prepared) => {
  const pool: Pool = createPool(db.url, 3, { preparedStatements: prepared });
  try {
    expect(named('x', 'SELECT 1', []).name).toBe(prepared ? 'kiln_x' : undefined);
    const id = crypto.randomUUID();
    const all = await Promise.all(Array.from({ length: 30 }, () => getJob(pool, id)));
    expect(all.every((j) => j === undefined)).toBe(true);
    const seen = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'kiln_%'");
    // pg_prepared_statements shows this session's statements only: the connection that ran the count
    // also ran getJob at least once when names are on.
    expect(seen.rows[0]!.n > 0).toBe(prepared);
  } finally {
    await pool.end();
  }
});
