/**
 * One Postgres for the whole run: DATABASE_URL when set (an external server), otherwise an embedded
 * server in a temporary directory. A template database is migrated (our tables + pg-boss's schema)
 * once; each test file clones it, so files are isolated and start in milliseconds.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrate, startEmbedded } from '@kiln/db';
import { Queue } from '@kiln/queue';

export const TEMPLATE_DB = 'kiln_test_template';

export default async function globalSetup(): Promise<void> {
  // scripts/test-package.ts sets this for a package whose test script says --no-postgres.
  if (process.env.KILN_TEST_POSTGRES === 'off') return;
  let adminUrl: string;
  if (process.env.DATABASE_URL) {
    adminUrl = process.env.DATABASE_URL;
  } else {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-test-pg-'));
    const server = await startEmbedded({
      dataDir: dir,
      port: 55000 + Math.floor(Math.random() * 2000),
      database: 'postgres',
      // Test data is thrown away: durability buys nothing here.
      extraFlags: ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
    });
    adminUrl = server.url('postgres');
    (globalThis as Record<string, unknown>).__KILN_PG__ = { server, dir };
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB}`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`);
  await admin.end();
  const templateUrl = withDatabase(adminUrl, TEMPLATE_DB);
  await migrate(templateUrl);
  const q = await new Queue({ connectionString: templateUrl, retryLimit: 1, expireInSeconds: 120, supervise: false }).start();
  await q.stop();
  process.env.KILN_TEST_ADMIN_URL = adminUrl;
}

export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}
