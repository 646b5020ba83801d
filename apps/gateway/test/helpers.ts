/**
 * A real gateway for supertest: buildDeps + createApp on a database of its own (real Postgres and
 * pg-boss, no workers), a temporary DATA_DIR, a bootstrap key, and a plain client for checking rows.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '@kiln/config';
import { createApp } from '../src/app.ts';
import { buildDeps } from '../src/server.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

export interface TestGateway {
  db: TestDatabase;
  dataDir: string;
  deps: Awaited<ReturnType<typeof buildDeps>>;
  app: ReturnType<typeof createApp>;
  client: pg.Client;
  /** The BOOTSTRAP_API_KEY the gateway made sure exists. */
  key: string;
  close: () => Promise<void>;
}

export async function startTestGateway(tag: string, env: Record<string, string | undefined> = {}): Promise<TestGateway> {
  const db = await createTestDatabase();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `kiln-${tag}-`));
  const key = `kiln_${tag}_test_key_0123456789abcdefghijklmnop`;
  const deps = await buildDeps(loadConfig({ DATABASE_URL: db.url, DATA_DIR: dataDir, BOOTSTRAP_API_KEY: key, LOG_LEVEL: 'error', ...env }));
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  return {
    db,
    dataDir,
    deps,
    app: createApp(deps),
    client,
    key,
    close: async () => {
      await client.end();
      await deps.close();
      await db.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}
