import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/** The repository's `migrations/` folder: numbered SQL files for Kiln's own tables. */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../migrations');

// Any number that differs from node-pg-migrate's own lock id; held for the whole run so that
// several processes starting at once (gateway + workers) wait for each other instead of failing.
const KILN_MIGRATION_LOCK = 4_271_865_325;

/**
 * Applies every migration not yet applied, in order. `dir` is for tests that replay an older release's
 * set first. Migrations must only ever be added after the newest released one: the runner refuses
 * (checkOrder) a database where a later file was applied before an earlier one.
 */
export async function migrate(connectionString: string, opts: { log?: (msg: string) => void; dir?: string } = {}): Promise<string[]> {
  const dir = opts.dir ?? MIGRATIONS_DIR;
  const client = new pg.Client({ connectionString, application_name: 'kiln-migrate' });
  await client.connect();
  try {
    // The common case, every migration already applied (a process started after `pnpm start` migrated),
    // is answered with one query and without loading the runner.
    if (await allApplied(client, dir)) return [];
    await client.query('SELECT pg_advisory_lock($1)', [KILN_MIGRATION_LOCK]);
    // Loaded here, not at the top: processes that never migrate (a running gateway, the workers) are
    // spared its ~10 MB of code.
    const { runner } = await import('node-pg-migrate');
    const ran = await runner({
      dbClient: client,
      dir,
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

async function allApplied(client: pg.Client, dir: string): Promise<boolean> {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.sql')).map((f) => f.replace(/\.sql$/, ''));
  const table = await client.query<{ ok: boolean }>("SELECT to_regclass('public.kiln_migrations') IS NOT NULL AS ok");
  if (!table.rows[0]?.ok) return false;
  const done = new Set((await client.query<{ name: string }>('SELECT name FROM kiln_migrations')).rows.map((r) => r.name));
  return files.every((f) => done.has(f));
}
