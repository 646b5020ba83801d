/**
 * `pnpm start` (scripts/start.ts) by role: what it refuses before starting anything, and two hosts
 * started at the same moment on one empty database — one running only the gateway, the other only
 * the workers — sharing nothing but Postgres and a bucket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sniff } from '@kiln/formats';
import { download, form, freePort, stopProcess, until, type JobDetailJson } from './helpers/kiln.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { photo } from './helpers/images.ts';
import { startS3Server, type S3Server } from '../scripts/s3-server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Started {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

function start(env: Record<string, string | undefined>): Started {
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'start.ts')], { cwd: ROOT, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    out = (out + b.toString()).slice(-200_000);
  });
  child.stderr!.on('data', (b: Buffer) => {
    out = (out + b.toString()).slice(-200_000);
  });
  return { child, output: () => out, exit: new Promise((r) => child.once('exit', (code) => r(code))) };
}

let s3: S3Server;
let tmp: string;
const baseEnv = () => {
  const env: Record<string, string | undefined> = { ...process.env, LOG_LEVEL: 'info', LOG_FORMAT: 'json', HOST: '127.0.0.1', AWS_EC2_METADATA_DISABLED: 'true' };
  delete env.DATABASE_URL;
  return env;
};

beforeAll(async () => {
  s3 = await startS3Server();
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-start-roles-'));
}, 60_000);
afterAll(async () => {
  await s3?.stop();
  await fs.rm(tmp, { recursive: true, force: true });
});

test('a partial KILN_ROLES without DATABASE_URL is refused before an embedded Postgres starts', async () => {
  const dataDir = path.join(tmp, 'refused');
  const s = start({ ...baseEnv(), KILN_ROLES: 'convert,compress', DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()) });
  expect(await s.exit).toBe(1);
  expect(s.output()).toMatch(/KILN_ROLES=convert,compress runs only part of Kiln.*Set DATABASE_URL to a Postgres every host can reach/s);
  await expect(fs.stat(path.join(dataDir, 'postgres'))).rejects.toMatchObject({ code: 'ENOENT' });
}, 60_000);

test('an unknown role is refused with the list of roles', async () => {
  const s = start({ ...baseEnv(), KILN_ROLES: 'gateway,transcoder', DATA_DIR: path.join(tmp, 'unknown') });
  expect(await s.exit).toBe(1);
  expect(s.output()).toMatch(/KILN_ROLES: unknown role "transcoder": use a comma list of gateway, convert, compress/);
}, 60_000);

test('a bucket that does not exist stops start-up once, naming S3_BUCKET', async () => {
  const s = start({ ...baseEnv(), ...s3.env, S3_BUCKET: 'not-created', DATA_DIR: path.join(tmp, 'nobucket'), EMBEDDED_PG_PORT: String(await freePort()) });
  expect(await s.exit).toBe(1);
  expect(s.output()).toMatch(/\[kiln\] storage: S3_BUCKET=not-created does not exist at http:\/\/127\.0\.0\.1:\d+/);
  expect(s.output()).not.toMatch(/gateway listening|worker ready/);
}, 60_000);

describe('two hosts started at once on one empty database', () => {
  let db: TestDatabase;
  let apiHost: Started;
  let workerHost: Started;
  let port: number;
  const key = `kiln_test_${crypto.randomBytes(24).toString('base64url')}`;
  /** /readyz shows its detail only to a caller holding this. */
  const METRICS_TOKEN = crypto.randomBytes(24).toString('hex');

  beforeAll(async () => {
    // Empty: both hosts race to migrate and to create pg-boss's schema and queues.
    db = await createTestDatabase({ empty: true });
    port = await freePort();
    const shared = {
      METRICS_TOKEN: METRICS_TOKEN,
      ...baseEnv(),
      ...s3.env,
      DATABASE_URL: db.url,
      SIGNING_SECRET: crypto.randomBytes(32).toString('base64url'),
      BOOTSTRAP_API_KEY: key,
      DB_POOL_MAX: '3',
      CONVERT_CONCURRENCY: '1',
      COMPRESS_CONCURRENCY: '1',
    };
    apiHost = start({ ...shared, KILN_ROLES: 'gateway', PORT: String(port), DATA_DIR: path.join(tmp, 'api-host') });
    workerHost = start({ ...shared, KILN_ROLES: 'convert,compress', DATA_DIR: path.join(tmp, 'worker-host') });
    await until(
      'both hosts to be up',
      async () => {
        for (const h of [apiHost, workerHost]) if (h.child.exitCode !== null) throw new Error(`a host exited:\n${h.output().slice(-3000)}`);
        return apiHost.output().includes('"msg":"gateway listening"') && (workerHost.output().match(/"msg":"worker ready"/g) ?? []).length === 2;
      },
      90_000,
      100,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- api host\n${apiHost.output().slice(-3000)}\n--- worker host\n${workerHost.output().slice(-3000)}`);
    });
  }, 120_000);

  afterAll(async () => {
    await Promise.all([apiHost, workerHost].filter(Boolean).map((h) => stopProcess(h.child)));
    await db?.drop();
  });

  test('each runs only its roles, and a job submitted to one is done by the other', async () => {
    expect(apiHost.output()).toMatch(/\[kiln\] running gateway \(KILN_ROLES=gateway\)/);
    expect(apiHost.output()).not.toMatch(/"msg":"worker ready"/);
    expect(workerHost.output()).toMatch(/\[kiln\] running convert-worker, compress-worker \(KILN_ROLES=convert,compress\)/);
    expect(workerHost.output()).not.toMatch(/gateway listening/);
    for (const h of [apiHost, workerHost]) expect(h.output()).toMatch(/\[kiln\] storage: s3 bucket=kiln-test endpoint=http:\/\/127\.0\.0\.1:\d+/);

    const base = `http://127.0.0.1:${port}`;
    const auth = { Authorization: `Bearer ${key}` };
    const r = await fetch(`${base}/api/jobs`, {
      method: 'POST',
      headers: auth,
      body: form([{ data: await photo(200, 150, { format: 'png' }), filename: 'roles.png' }], { format: 'jpg' }),
    });
    expect(r.status).toBe(200);
    const { jobId } = (await r.json()) as { jobId: string };
    const job = await until(
      'the job to finish',
      async () => {
        const j = (await (await fetch(`${base}/api/jobs/${jobId}`, { headers: auth })).json()) as JobDetailJson;
        return j.status === 'completed' || j.status === 'failed' ? j : undefined;
      },
      60_000,
      100,
    );
    expect(job.status).toBe('completed');
    expect(sniff(await download(job.results[0]!.downloadUrl!))).toBe('jpg');

    const ready = (await (await fetch(`${base}/readyz`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } })).json()) as {
      checks: { storage: { driver: string; ok: boolean } };
      workers: { service: string }[];
    };
    expect(ready.checks.storage).toMatchObject({ driver: 's3', ok: true });
    expect(ready.workers.map((w) => w.service).sort()).toEqual(['compress-worker', 'convert-worker']);
  }, 90_000);
});
