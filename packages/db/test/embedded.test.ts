/** The embedded server: Kiln reaches it over a unix socket in the cluster's folder when the path fits. */
import pg from 'pg';
import { unixSocketDir } from '../src/index.ts';

test('the socket lives in the cluster folder, and a path too long for sockaddr_un means TCP only', () => {
  expect(unixSocketDir('/srv/kiln/data/postgres', 5433)).toBe('/srv/kiln/data/postgres');
  expect(unixSocketDir(`/srv/${'d'.repeat(100)}/postgres`, 5433)).toBeUndefined();
  expect(unixSocketDir('/srv/my data/postgres', 5433)).toBeUndefined();
});

const embedded = !process.env.DATABASE_URL;
(embedded ? test : test.skip)('connections from Kiln go through the unix socket, not loopback TCP', async () => {
  const url = process.env.KILN_TEST_ADMIN_URL!;
  expect(new URL(url).searchParams.get('host')).toMatch(/^\//);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ addr: string | null }>('SELECT inet_server_addr()::text AS addr');
    expect(r.rows[0]!.addr).toBeNull();
  } finally {
    await c.end();
  }
});
