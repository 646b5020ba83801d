/**
 * Kiln as several hosts that share nothing but Postgres and one bucket: two gateways, two convert
 * workers and a compress worker, each its own process with its own DATA_DIR (so nothing can pass
 * through a disk), against a real S3-protocol server on 127.0.0.1. Jobs go alternately to both
 * gateways; every result must download byte-identically from either one, the workers must leave
 * their scratch folders empty, and retention must leave the bucket empty.
 */
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { sniff } from '@kiln/formats';
import { resolveFfmpeg } from '@kiln/codec';
import { form, freePort, spawnApp, stopProcess, until, type App, type JobDetailJson, type UploadPart } from './helpers/kiln.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { photo } from './helpers/images.ts';
import { makeClip, makeTempDir } from '../packages/codec/test/helpers/media-fixtures.ts';
import { startS3Server, type S3Server } from '../scripts/s3-server.ts';

interface Host {
  name: string;
  app: App;
  dataDir: string;
  port?: number;
  child?: ChildProcess;
}

const PREFIX = 'kiln/';
let s3: S3Server;
let db: TestDatabase;
let sql: pg.Client;
let hosts: Host[];
let key: string;
let log = '';
let media: { dir: string; cleanup: () => Promise<void> };
const started = Date.now();

const gatewayUrl = (h: Host) => `http://127.0.0.1:${h.port}`;
const gateways = () => hosts.filter((h) => h.app === 'gateway');

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

beforeAll(async () => {
  [s3, db] = await Promise.all([startS3Server(), createTestDatabase()]);
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  key = `kiln_test_${crypto.randomBytes(24).toString('base64url')}`;
  // What every host shares: Postgres, the bucket, and the key that signs download links.
  const shared: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...s3.env,
    S3_PREFIX: PREFIX,
    DATABASE_URL: db.url,
    SIGNING_SECRET: crypto.randomBytes(32).toString('base64url'),
    BOOTSTRAP_API_KEY: key,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'json',
    DB_POOL_MAX: '3',
    CONVERT_CONCURRENCY: '2',
    COMPRESS_CONCURRENCY: '2',
    RETENTION_SWEEP_SECONDS: '1',
  };
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-multi-host-'));
  hosts = [
    { name: 'gateway-a', app: 'gateway' },
    { name: 'gateway-b', app: 'gateway' },
    { name: 'convert-1', app: 'convert-worker' },
    { name: 'convert-2', app: 'convert-worker' },
    { name: 'compress-1', app: 'compress-worker' },
  ].map((h) => ({ ...h, app: h.app as App, dataDir: path.join(root, h.name) }));
  for (const h of hosts) {
    await fs.mkdir(h.dataDir);
    if (h.app === 'gateway') h.port = await freePort();
  }
  const start = async (h: Host) => {
    h.child = await spawnApp(
      h.app,
      { ...shared, DATA_DIR: h.dataDir, ...(h.port ? { PORT: String(h.port) } : {}) },
      (t) => {
        log = (log + t).slice(-400_000);
      },
      h.name,
    );
  };
  // Both gateways start together: migrations and queue creation must cope with a concurrent start.
  await Promise.all(gateways().map(start));
  await Promise.all(hosts.filter((h) => h.app !== 'gateway').map(start));
  media = await makeTempDir('multi-host');
}, 180_000);

afterAll(async () => {
  await Promise.all((hosts ?? []).map((h) => (h.child ? stopProcess(h.child) : undefined)));
  await sql?.end();
  await db?.drop();
  await s3?.stop();
  await media?.cleanup();
  if (hosts?.[0]) await fs.rm(path.dirname(hosts[0].dataDir), { recursive: true, force: true });
  process.stdout.write(`multi-host test: ${Math.round((Date.now() - started) / 1000)} s in all\n`);
});

interface Planned {
  files: UploadPart[];
  fields: Record<string, string>;
  expect: string[];
  archive?: boolean;
}

async function plan(): Promise<Planned[]> {
  const ffmpeg = await resolveFfmpeg();
  const clip = await fs.readFile(
    await makeClip(ffmpeg.path, path.join(media.dir, 'clip.mp4'), { seconds: 1, video: { width: 320, height: 240, rate: 15 }, audio: {}, format: 'mp4' }),
  );
  const pics = await Promise.all(Array.from({ length: 6 }, (_, i) => photo(320 + 16 * i, 240, { format: i % 2 ? 'jpeg' : 'png', seed: i })));
  const targets = ['webp', 'png', 'jpg', 'avif', 'gif', 'tiff'];
  const jobs: Planned[] = [];
  for (let i = 0; i < 28; i++) {
    const t = targets[i % targets.length]!;
    jobs.push({ files: [{ data: pics[i % pics.length]!, filename: `p${i}` }], fields: { format: t }, expect: [t] });
  }
  for (let i = 0; i < 4; i++) {
    const pic = pics[i]!;
    jobs.push({ files: [{ data: pic, filename: `c${i}` }], fields: { jobType: 'compress', quality: '60' }, expect: [sniff(pic)!] });
  }
  jobs.push({ files: [{ data: clip, filename: 'clip.mp4' }], fields: { format: 'webm' }, expect: ['webm'] });
  jobs.push({ files: [{ data: clip, filename: 'clip.mp4' }], fields: { format: 'gif' }, expect: ['gif'] });
  for (let i = 0; i < 6; i++) {
    jobs.push({
      files: [0, 1, 2].map((k) => ({ data: pics[(i + k) % pics.length]!, filename: `a${i}-${k}` })),
      fields: { format: 'webp', createArchive: 'true' },
      expect: ['webp', 'webp', 'webp'],
      archive: true,
    });
  }
  return jobs;
}

async function fetchFrom(gw: Host, link: string): Promise<Buffer> {
  const u = new URL(link);
  const r = await fetch(`${gatewayUrl(gw)}${u.pathname}${u.search}`);
  if (r.status !== 200) throw new Error(`${gw.name} ${u.pathname} → ${r.status} ${await r.text()}`);
  return Buffer.from(await r.arrayBuffer());
}

/** The one same byte string from every gateway. */
async function fromEveryGateway(link: string): Promise<Buffer> {
  const [a, b] = await Promise.all(gateways().map((g) => fetchFrom(g, link)));
  expect(a!.equals(b!)).toBe(true);
  return a!;
}

test('40 jobs across two gateways, two convert workers and a compress worker: all complete, identical from either gateway, and nothing left behind', async () => {
  const jobs = await plan();
  expect(jobs).toHaveLength(40);
  const [gwA, gwB] = gateways() as [Host, Host];
  const auth = { Authorization: `Bearer ${key}` };

  // Submitted alternately, eight at a time.
  const ids: string[] = [];
  for (let i = 0; i < jobs.length; i += 8) {
    ids.push(
      ...(await Promise.all(
        jobs.slice(i, i + 8).map(async (j, k) => {
          const gw = (i + k) % 2 === 0 ? gwA : gwB;
          const r = await fetch(`${gatewayUrl(gw)}/api/jobs`, { method: 'POST', headers: auth, body: form(j.files, j.fields) });
          const body = await r.text();
          if (r.status !== 200 && r.status !== 201 && r.status !== 202) throw new Error(`${gw.name} POST /api/jobs → ${r.status} ${body}`);
          return (JSON.parse(body) as { jobId: string }).jobId;
        }),
      )),
    );
  }

  // Each job is followed through the gateway it was NOT submitted to.
  const done = await Promise.all(
    ids.map((id, i) =>
      until(
        `job ${i} (${id}) to finish`,
        async () => {
          const r = await fetch(`${gatewayUrl(i % 2 === 0 ? gwB : gwA)}/api/jobs/${id}`, { headers: auth });
          const j = (await r.json()) as JobDetailJson;
          return j.status === 'completed' || j.status === 'failed' ? j : undefined;
        },
        240_000,
        250,
      ),
    ),
  );

  for (const [i, j] of done.entries()) {
    const want = jobs[i]!;
    expect({ i, status: j.status, errors: j.results.filter((r) => r.status !== 'completed').map((r) => r.error) }).toEqual({ i, status: 'completed', errors: [] });
    for (const [n, res] of j.results.entries()) {
      const bytes = await fromEveryGateway(res.downloadUrl!);
      expect({ i, n, kind: sniff(bytes), size: bytes.length }).toEqual({ i, n, kind: want.expect[n], size: res.finalSize });
    }
    if (want.archive) {
      const zip = await fromEveryGateway(j.archive!.downloadUrl);
      expect(sniff(zip)).toBe('zip');
      expect(zip.length).toBe(j.archive!.size);
      // One central-directory record per file.
      expect(zip.toString('latin1').split('PK\x01\x02').length - 1).toBe(want.files.length);
    }
  }
  // The work really was spread: each worker host converted or compressed some of it.
  for (const name of ['convert-1', 'convert-2', 'compress-1'])
    expect({ name, worked: log.includes(`[${name}] {`) && new RegExp(`\\[${name}\\] [^\\n]*"msg":"file done"`).test(log) }).toEqual({ name, worked: true });

  // No host kept anything of its own: no blobs, and the workers' scratch folders are empty.
  await until(
    'every scratch folder to be empty',
    async () => {
      for (const h of hosts) if ((await filesUnder(h.dataDir)).length) return false;
      return true;
    },
    15_000,
  );
  for (const h of hosts) expect({ host: h.name, files: await filesUnder(h.dataDir) }).toEqual({ host: h.name, files: [] });
  expect((await s3.objects()).every((k) => k.startsWith(`${PREFIX}jobs/`))).toBe(true);
  expect(await s3.unfinishedUploads()).toEqual([]);

  // Retention: as if a day had passed. The convert workers' sweepers empty the bucket.
  const sample = done[0]!.results[0]!.downloadUrl!;
  await sql.query(`UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = ANY($1::uuid[])`, [ids]);
  const purgedCount = async () => (await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM jobs WHERE id = ANY($1::uuid[]) AND purged_at IS NOT NULL', [ids])).rows[0]!.n;
  // A sweeper deletes a job's blobs, then marks it purged: wait for both.
  await until('retention to purge every job', async () => (await purgedCount()) === 40, 60_000, 250);
  expect(await s3.objects()).toEqual([]);
  expect(await s3.unfinishedUploads()).toEqual([]);
  for (const gw of gateways()) {
    const u = new URL(sample);
    expect((await fetch(`${gatewayUrl(gw)}${u.pathname}${u.search}`)).status).toBe(404);
  }
}, 420_000);
