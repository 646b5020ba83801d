import { createHash } from 'node:crypto';
import pg from 'pg';

// bigint columns (sizes) fit comfortably in a JS number for anything Kiln stores.
pg.types.setTypeParser(20, (v) => Number(v));

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

let preparedStatements = true;

/**
 * A query Kiln runs on every job, by name: named, Postgres parses and plans it once per connection
 * instead of on every call (measured here: ~0.1 ms less Postgres CPU per call for a two-table join,
 * more for the CTE statements). `createPool(…, { preparedStatements: false })` turns names off, for
 * poolers that cannot keep prepared statements. A name must always carry the same text.
 */
export function named(name: string, text: string, values: unknown[]): pg.QueryConfig {
  return preparedStatements ? { name: `kiln_${name}`, text, values } : { text, values };
}

/** Names given by namedByText, by statement text. */
const namesByText = new Map<string, string>();

/**
 * named() for a statement assembled from parts another package adds (the queue's message or
 * completion CTEs): the name is `prefix` and a hash of the text, so each distinct text has its own
 * name and a name always carries the same text. The texts are few (one per set of queues).
 */
export function namedByText(prefix: string, text: string, values: unknown[]): pg.QueryConfig {
  let name = namesByText.get(text);
  if (!name) {
    name = `${prefix}_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
    namesByText.set(text, name);
  }
  return named(name, text, values);
}

export function createPool(connectionString: string, max = 10, opts: { preparedStatements?: boolean; connectTimeoutSeconds?: number } = {}): pg.Pool {
  if (opts.preparedStatements !== undefined) preparedStatements = opts.preparedStatements;
  // Without a connection timeout a query waits for a connection for as long as Postgres takes to come
  // back (or the pool to free one): DB_CONNECT_TIMEOUT_SECONDS bounds it, and the gateway answers 503.
  const pool = new pg.Pool({
    connectionString,
    max,
    application_name: 'kiln',
    ...(opts.connectTimeoutSeconds ? { connectionTimeoutMillis: opts.connectTimeoutSeconds * 1000 } : {}),
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', (err) => console.error(JSON.stringify({ level: 'error', msg: 'idle postgres client error', err: err.message })));
  // Nor may a checked-out one: pg-pool takes its own error listener off a client while it is lent
  // out, and a client whose server goes away between two queries (a transaction's, when Postgres
  // restarts) then emits an 'error' nobody handles, which kills the process. The query in flight
  // fails on its own and the broken client is dropped when released; this only keeps us alive.
  pool.on('connect', (client) => {
    client.on('error', (err) => console.error(JSON.stringify({ level: 'warn', msg: 'postgres connection lost while in use', err: err.message })));
  });
  return pool;
}

export async function withTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
