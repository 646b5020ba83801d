/** Per-test-file databases cloned from the migrated template (see test/global-setup.ts). */
import crypto from 'node:crypto';
import pg from 'pg';

const TEMPLATE_DB = 'kiln_test_template';

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

export interface TestDatabase {
  url: string;
  name: string;
  drop: () => Promise<void>;
}

/** A database of its own for one test file: a clone of the migrated template, or `empty` (no tables). */
export async function createTestDatabase(opts: { empty?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = process.env.KILN_TEST_ADMIN_URL;
  if (!adminUrl) {
    const why = process.env.KILN_TEST_POSTGRES === 'off' ? "this package's test script says --no-postgres: remove it" : 'run tests through jest (globalSetup starts Postgres)';
    throw new Error(`KILN_TEST_ADMIN_URL is not set: ${why}.`);
  }
  const name = `kiln_t_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // CREATE DATABASE … TEMPLATE needs the template to have no other sessions; retry briefly if a
    // parallel test file is cloning it at the same moment.
    for (let i = 0; ; i++) {
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE ${opts.empty ? 'template0' : TEMPLATE_DB}`);
        break;
      } catch (err) {
        if (i > 20 || !/being accessed by other users/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(adminUrl, name),
    name,
    drop: async () => {
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await a.end();
    },
  };
}
