/**
 * A real S3-protocol server on 127.0.0.1 for tests and `pnpm bench`: fauxqs (npm, MIT), run as its
 * own process with objects kept as plain files in `dir`, so it can be killed and started again with
 * everything it held, and so tests can compare the bytes it stored with what they sent.
 *
 * Why fauxqs and not s3rver: s3rver 3.7.1 (last released years ago) answers AbortMultipartUpload
 * with 405, so an aborted upload's parts can never be cleaned up, and it stores aws-chunked bodies
 * still wrapped. fauxqs is maintained, implements abort, unwraps aws-chunked bodies and keeps each
 * unfinished multipart upload as a folder under `_multipart/` — which stands in for
 * ListMultipartUploads, which it (like s3rver) lacks. Its caveats, which the tests work around: it
 * checks no signatures or credentials and no presigned expiry, ignores response-content-* overrides
 * on presigned GETs, takes at most 11 MiB per request (keep S3_PART_SIZE_MB ≤ 10), and holds a whole
 * object in memory while completing or serving it.
 *
 * As a program: `node scripts/s3-server.ts --dir DIR --port N --bucket NAME` (prints `ready` once
 * the bucket exists). As a module: `startS3Server()` runs that program as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from './lib/free-port.ts';

const SELF = fileURLToPath(import.meta.url);

export interface S3Server {
  endpoint: string;
  port: number;
  bucket: string;
  dir: string;
  /** Environment for a Kiln process using this server. */
  env: Record<string, string>;
  /** Keys of the objects in the bucket (relative to the bucket, prefix included). */
  objects(): Promise<string[]>;
  /** The bytes the server stored for a key, read from its own files. */
  storedBytes(key: string): Promise<Buffer>;
  /** Multipart uploads started and neither completed nor aborted. */
  unfinishedUploads(): Promise<string[]>;
  /** SIGKILL: the server vanishes mid-request, as a crash or a network cut would look. */
  kill(): Promise<void>;
  /** Starts it again on the same port with everything it had stored. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function walk(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

export async function startS3Server(opts: { dir?: string; port?: number; bucket?: string } = {}): Promise<S3Server> {
  const dir = opts.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-s3-')));
  const ownDir = !opts.dir;
  const port = opts.port ?? (await freePort());
  const bucket = opts.bucket ?? 'kiln-test';
  const endpoint = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let log = '';

  const launch = async () => {
    const c = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', SELF, '--dir', dir, '--port', String(port), '--bucket', bucket], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`S3 server did not start in 30 s:\n${log.slice(-2000)}`)), 30_000);
      const onData = (b: Buffer) => {
        log = (log + b.toString()).slice(-20_000);
        if (/^ready$/m.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      };
      c.stdout!.on('data', onData);
      c.stderr!.on('data', onData);
      c.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`S3 server exited with ${code}:\n${log.slice(-2000)}`));
      });
    });
    log = '';
  };
  const end = async (signal: NodeJS.Signals) => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill(signal);
    await exited;
  };

  await launch();
  const objectsDir = path.join(dir, 'buckets', bucket, 'objects');
  return {
    endpoint,
    port,
    bucket,
    dir,
    env: {
      STORAGE: 's3',
      S3_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      S3_REGION: 'us-east-1',
      S3_ACCESS_KEY_ID: 'kiln-test',
      S3_SECRET_ACCESS_KEY: 'kiln-test-secret',
      // Never let the SDK look for instance credentials on the network.
      AWS_EC2_METADATA_DISABLED: 'true',
    },
    objects: async () =>
      (await walk(objectsDir))
        .filter((f) => f.endsWith('.data'))
        .map((f) => f.slice(0, -'.data'.length).split(path.sep).join('/'))
        .sort(),
    storedBytes: (key) => fs.readFile(path.join(objectsDir, `${key}.data`)),
    unfinishedUploads: async () => (await fs.readdir(path.join(dir, '_multipart')).catch(() => [])).sort(),
    kill: () => end('SIGKILL'),
    restart: async () => {
      await end('SIGKILL');
      await launch();
    },
    stop: async () => {
      await end('SIGTERM');
      if (ownDir) await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, port: { type: 'string' }, bucket: { type: 'string' } } });
  if (!values.dir || !values.port || !values.bucket) throw new Error('usage: node scripts/s3-server.ts --dir DIR --port N --bucket NAME');
  // fauxqs always binds 0.0.0.0; a test server has no business listening beyond this machine.
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
    const first = args[0] as { host?: string } | undefined;
    if (first && typeof first === 'object' && first.host === '0.0.0.0') args[0] = { ...first, host: '127.0.0.1' };
    return (listen as (...a: unknown[]) => net.Server).apply(this, args);
  } as typeof listen;
  const { startFauxqs } = await import('fauxqs');
  const server = await startFauxqs({ port: Number(values.port), logger: false, s3StorageDir: path.resolve(values.dir) });
  server.createBucket(values.bucket);
  process.stdout.write('ready\n');
  const stop = () => void server.stop().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  main().catch((err: unknown) => {
    process.stderr.write(`s3 server failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
