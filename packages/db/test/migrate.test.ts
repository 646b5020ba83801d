/**
 * The migration runner on a real, empty Postgres database: every file in migrations/ applied once,
 * in order, even when several processes start at the same moment; a second run is a no-op.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate, MIGRATIONS_DIR } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ empty: true });
});
afterAll(async () => {
  await db?.drop();
});

test('three processes migrating at once apply each migration exactly once; a later run does nothing', async () => {
  const files = (await fs.readdir(MIGRATIONS_DIR))
    .filter((f) => f.endsWith('.sql'))
    .map((f) => f.replace(/\.sql$/, ''))
    .sort();
  expect(files.length).toBeGreaterThanOrEqual(3);
  const runs = await Promise.all([migrate(db.url), migrate(db.url), migrate(db.url)]);
  expect(runs.flat().sort()).toEqual(files);
  expect(runs.filter((r) => r.length > 0)).toHaveLength(1);

  expect(await migrate(db.url)).toEqual([]);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const applied = (await client.query<{ name: string }>('SELECT name FROM kiln_migrations ORDER BY run_on, id')).rows.map((r) => r.name);
    expect(applied).toEqual(files);
    const tables = (await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'")).rows.map((r) => r.t);
    expect(tables).toEqual(expect.arrayContaining(['api_keys', 'jobs', 'job_files', 'kiln_migrations']));
  } finally {
    await client.end();
  }
});

/**
 * A database that a released Kiln migrated (the set of the last landed release: 0001–0006 and 0009)
 * takes every later migration on upgrade. node-pg-migrate's checkOrder refuses a file numbered below
 * one already applied, so a new migration numbered under 0009 would stop every upgraded install.
 */
test('an install migrated by the previous release upgrades: every new migration is numbered after its newest', async () => {
  const released = ['0001_init', '0002_worker_heartbeats', '0003_key_limits', '0004_key_change_notify', '0005_turbofiles', '0006_media_tools_url_sources', '0009_job_totals'];
  const old = await createTestDatabase({ empty: true });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-migrations-'));
  try {
    for (const name of released) await fs.copyFile(path.join(MIGRATIONS_DIR, `${name}.sql`), path.join(dir, `${name}.sql`));
    expect(await migrate(old.url, { dir })).toEqual(released);
    const all = (await fs.readdir(MIGRATIONS_DIR))
      .filter((f) => f.endsWith('.sql'))
      .map((f) => f.replace(/\.sql$/, ''))
      .sort();
    expect(await migrate(old.url)).toEqual(all.filter((n) => !released.includes(n)));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
    await old.drop();
  }
});
