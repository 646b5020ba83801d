import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';

/** The repository's `migrations/` folder: numbered SQL files for Kiln's own tables. */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../migrations');

// Any number that differs from node-pg-migrate's own lock id; held for the whole run so that
// several processes starting at once (gateway + workers) wait for each other instead of failing.
const KILN_MIGRATION_LOCK = 4_271_865_325;

export async function migrate(connectionString: string, opts: { log?: (msg: string) => void } = {}): Promise<string[]> {
  const client = new pg.Client({ connectionString, application_name: 'kiln-migrate' });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [KILN_MIGRATION_LOCK]);
    const ran = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      migrationsTable: 'kiln_migrations',
      direction: 'up',
      count: Infinity,
      noLock: true,
      checkOrder: true,
      singleTransaction: true,
      log: () => undefined,
    });
    for (const m of ran) opts.log?.(`applied migration ${m.name}`);
    return ran.map((m) => m.name);
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [KILN_MIGRATION_LOCK]).catch(() => undefined);
    await client.end();
  }
}
