/**
 * The file handler's holds on a real Postgres, pg-boss and local store, converting real files: the
 * claim takes the hold (with the scratch folder it will make) and the finish releases it, so nothing
 * is left in worker_holds after a file ends, and a duplicate held by another live worker is dropped.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { createLogger, loadConfig } from '@kiln/config';
import { fileOptionsFor, queueFor } from '@kiln/contracts';
import { claimFileHeld, createApiKey, createPool, insertJob, type Pool } from '@kiln/db';
import { createMetrics } from '@kiln/metrics';
import { Queue } from '@kiln/queue';
import { keys, LocalDiskStore, type BlobStore } from '@kiln/storage';
import { createFileHandler } from '../src/file-handler.ts';
import { startWorkerInstance, type RunningInstance } from '../src/lifecycle/instance.ts';
import { settingsFrom } from '../src/runtime.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.ts';

const log = createLogger('test', 'error');
let db: TestDatabase;
let pool: Pool;
let queue: Queue;
let apiKeyId: string;
let dataDir: string;
let store: LocalDiskStore;
let me: RunningInstance;
let other: RunningInstance;
/**
 * The hold row as each scratch folder was made (or each scratch file handed out, before the engine
 * wrote it): what the sweep would have found had the worker died then.
 */
const seenAtScratch: { dir: string; kind: 'folder' | 'file'; holds: { instance_id: string; scratch_dir: string | null }[] }[] = [];
/** The file's row and holds as each scratch folder was removed (or each scratch file left scratch: moved into place, or removed). */
const seenAtRemoval: { status: string; holds: number }[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, 4);
  queue = await new Queue({ connectionString: db.url, retryLimit: 1, expireInSeconds: 120, supervise: false }).start();
  apiKeyId = (await createApiKey(pool, 'holds')).row.id;
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-holds-'));
  store = await new LocalDiskStore(path.join(dataDir, 'blobs')).init();
  const start = () => startWorkerInstance({ pool, queue, log, service: 'test-worker', settings: { orphanSeconds: 20, retryLimit: 1, retentionHours: 1 } });
  me = await start();
  other = await start();
});
afterAll(async () => {
  await me?.stop();
  await other?.stop();
  await queue?.stop();
  await pool?.end();
  await db?.drop();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

/**
 * The local store, with a look at worker_holds each time a scratch folder has just been made or a
 * scratch file handed out, and each time one goes (a scratch file also goes by putFile).
 */
function watchedStore(): BlobStore {
  const scratchFiles = new Set<string>();
  const seeRemoval = async (dir: string) => {
    const file = await pool.query<{ status: string }>('SELECT f.status FROM worker_holds h JOIN job_files f ON f.id = h.file_id WHERE h.scratch_dir = $1', [dir]);
    seenAtRemoval.push({ status: file.rows[0]?.status ?? 'no hold', holds: file.rowCount ?? 0 });
  };
  const seeScratch = async (dir: string, kind: 'folder' | 'file') => {
    const holds = (await pool.query('SELECT instance_id, scratch_dir FROM worker_holds')).rows;
    seenAtScratch.push({ dir, kind, holds });
  };
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'scratch') {
        return async (planned?: string) => {
          const s = await target.scratch(planned);
          await seeScratch(s.dir, 'folder');
          return {
            dir: s.dir,
            release: async () => {
              await seeRemoval(s.dir);
              await s.release();
            },
          };
        };
      }
      if (prop === 'scratchFile') {
        return async (planned?: string) => {
          const s = await target.scratchFile(planned);
          await seeScratch(s.path, 'file');
          scratchFiles.add(s.path);
          return {
            path: s.path,
            release: async () => {
              if (scratchFiles.delete(s.path)) await seeRemoval(s.path);
              await s.release();
            },
          };
        };
      }
      if (prop === 'putFile') {
        return async (key: string, local: string, opts?: { size?: number }) => {
          if (scratchFiles.delete(local)) await seeRemoval(local);
          return target.putFile(key, local, opts);
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

function handler(mode: 'convert' | 'compress' = 'convert') {
  const config = loadConfig({ DATA_DIR: dataDir });
  return createFileHandler(
    {
      pool,
      queue,
      store: watchedStore(),
      log,
      metrics: createMetrics(),
      settings: settingsFrom(config),
      outbound: { fetchToStream: () => Promise.reject(new Error('no URL sources in this test')) },
      instance: me,
    },
    mode,
  );
}

async function newFile(bytes: Buffer, options = OPTIONS): Promise<{ jobId: string; fileId: string }> {
  const jobId = crypto.randomUUID();
  const fileId = crypto.randomUUID();
  const sourceKey = keys.source(jobId, fileId);
  await fs.mkdir(path.dirname(path.join(store.root, sourceKey)), { recursive: true });
  await fs.writeFile(path.join(store.root, sourceKey), bytes);
  await insertJob(pool, {
    id: jobId,
    apiKeyId,
    jobType: 'convert',
    createArchive: false,
    files: [{ id: fileId, idx: 0, filename: 'a.png', sourceKey, sourceKind: 'png', originalSize: bytes.length, options }],
  });
  return { jobId, fileId };
}

const OPTIONS = fileOptionsFor({ format: 'webp', quality: 80 });
const ctx = () => ({ id: crypto.randomUUID(), queue: queueFor('convert', { kind: 'png', tool: null }), retryCount: 0, retryLimit: 1, signal: new AbortController().signal });
const holds = async () => (await pool.query('SELECT file_id, instance_id FROM worker_holds')).rows;
const fileRow = async (fileId: string) =>
  (await pool.query<{ status: string; attempts: number; error_code: string | null }>('SELECT status, attempts, error_code FROM job_files WHERE id = $1', [fileId])).rows[0]!;
const scratchLeft = async () => (await fs.readdir(path.join(store.root, '.tmp'))).filter((n) => n.startsWith('w-'));
const outputOf = async (fileId: string) =>
  (
    await pool.query<{ storage_key: string; size: string }>('SELECT s.storage_key, s.size FROM job_files f JOIN stored_files s ON s.id = f.output_file_id WHERE f.id = $1', [
      fileId,
    ])
  ).rows[0]!;

let png: Buffer;
beforeAll(async () => {
  png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#c04020' } })
    .png()
    .toBuffer();
});

test.each([
  // One sharp encode writes only its output: straight at the planned path, a file, which putFile moves into place.
  ['png → webp', 'file', 'convert', OPTIONS, /\.webp$/],
  // A PDF page has intermediates (the page's raster, its folder): a folder of its own.
  ['png → pdf', 'folder', 'convert', fileOptionsFor({ format: 'pdf', quality: 80 }), /\.pdf$/],
  // Compression may encode several times: a folder, whatever the engine.
  ['png compressed to webp', 'folder', 'compress', fileOptionsFor({ format: 'webp', quality: 80 }), /\.webp$/],
] as const)('a converted file (%s) leaves no hold behind; while it worked, its hold named its scratch %s', async (_what, kind, mode, options, ext) => {
  const { jobId, fileId } = await newFile(png, options);
  seenAtScratch.length = 0;
  seenAtRemoval.length = 0;
  await handler(mode)({ jobId, fileId }, ctx());
  expect(await fileRow(fileId)).toEqual({ status: 'completed', attempts: 1, error_code: null });
  expect(await holds()).toEqual([]);
  expect(me.active.size).toBe(0);
  expect(await scratchLeft()).toEqual([]);
  // The sweep after a crash mid-file would have found this folder (or file) through the hold.
  expect(seenAtScratch).toEqual([{ dir: expect.any(String), kind, holds: [{ instance_id: me.id, scratch_dir: seenAtScratch[0]?.dir }] }]);
  expect(path.dirname(seenAtScratch[0]!.dir)).toBe(path.join(store.root, '.tmp'));
  // The folder (or the file, moved into place) went while the hold still pointed at it, before the
  // outcome was written (the statement that writes it releases the hold): no moment where a crash
  // would orphan it.
  expect(seenAtRemoval).toEqual([{ status: 'processing', holds: 1 }]);
  // The output is where its row says, of the size the row says.
  const out = await outputOf(fileId);
  expect(out.storage_key).toMatch(ext);
  expect((await fs.stat(path.join(store.root, out.storage_key))).size).toBe(Number(out.size));
});

test.each([
  ['png → webp', 'file', 'convert', OPTIONS],
  ['png → pdf', 'folder', 'convert', fileOptionsFor({ format: 'pdf', quality: 80 })],
] as const)('a file that fails for good (%s) leaves no hold and no scratch %s behind either', async (_what, kind, mode, options) => {
  const { jobId, fileId } = await newFile(Buffer.concat([png.subarray(0, 40), Buffer.alloc(200, 7)]), options);
  seenAtScratch.length = 0;
  seenAtRemoval.length = 0;
  await handler(mode)({ jobId, fileId }, ctx());
  expect(seenAtScratch.map((s) => s.kind)).toEqual([kind]);
  expect(seenAtRemoval).toEqual([{ status: 'processing', holds: 1 }]);
  expect(await fileRow(fileId)).toMatchObject({ status: 'failed', attempts: 1 });
  expect(await holds()).toEqual([]);
  expect(me.active.size).toBe(0);
  expect(await scratchLeft()).toEqual([]);
});

test('a source blob gone from storage fails the file as gone, not as an image that could not be decoded', async () => {
  const { jobId, fileId } = await newFile(png);
  await fs.rm(path.join(store.root, keys.source(jobId, fileId)));
  await handler()({ jobId, fileId }, ctx());
  const row = (await pool.query<{ status: string; error_code: string; error_message: string }>('SELECT status, error_code, error_message FROM job_files WHERE id = $1', [fileId]))
    .rows[0];
  expect(row).toEqual({ status: 'failed', error_code: 'engine_failed', error_message: 'The uploaded file is no longer in storage; submit the job again.' });
  expect(await holds()).toEqual([]);
  expect(await scratchLeft()).toEqual([]);
});

test('a duplicate message for a file another live worker holds is dropped: no attempt counted, the hold stays theirs', async () => {
  const { jobId, fileId } = await newFile(png);
  expect((await claimFileHeld(pool, fileId, { instanceId: other.id, orphanSeconds: 20, scratchDir: null })).outcome).toBe('claimed');
  await handler()({ jobId, fileId }, ctx());
  expect(await fileRow(fileId)).toEqual({ status: 'processing', attempts: 1, error_code: null });
  expect(await holds()).toEqual([{ file_id: fileId, instance_id: other.id }]);
  expect(me.active.size).toBe(0);
  // Once the other worker is dead, the same message is this worker's to do.
  await pool.query("UPDATE worker_instances SET seen_at = now() - interval '1 hour' WHERE id = $1", [other.id]);
  await handler()({ jobId, fileId }, ctx());
  expect(await fileRow(fileId)).toEqual({ status: 'completed', attempts: 2, error_code: null });
  expect(await holds()).toEqual([]);
});

test('a message for a file already final writes nothing and leaves no hold', async () => {
  const { jobId, fileId } = await newFile(png);
  await handler()({ jobId, fileId }, ctx());
  await handler()({ jobId, fileId }, ctx());
  expect(await fileRow(fileId)).toEqual({ status: 'completed', attempts: 1, error_code: null });
  expect(await holds()).toEqual([]);
  expect(me.active.size).toBe(0);
});

test("the statement that records a file's outcome completes its queue message too, converted or failed for good", async () => {
  const name = queueFor('convert', { kind: 'png', tool: null });
  for (const bytes of [png, Buffer.concat([png.subarray(0, 40), Buffer.alloc(200, 7)])]) {
    const { jobId, fileId } = await newFile(bytes);
    await queue.send(name, { jobId, fileId, apiKeyId, jobWebhook: false });
    const [msg] = await queue.boss.fetch(name, { batchSize: 1 });
    expect(msg).toBeDefined();
    let settled = false;
    await handler()(
      { jobId, fileId },
      {
        ...ctx(),
        id: msg!.id,
        queue: name,
        completion: (p: number) => queue.completionFragment(name, { id: msg!.id, retryCount: msg!.retryCount }, p),
        settled: () => {
          settled = true;
        },
      },
    );
    // No consumer ran: the handler's own finishing statement completed the message.
    expect(settled).toBe(true);
    const state = await pool.query<{ state: string }>('SELECT state FROM pgboss.job WHERE id = $1', [msg!.id]);
    expect(state.rows[0]!.state).toBe('completed');
    expect((await fileRow(fileId)).status).toBe(bytes === png ? 'completed' : 'failed');
  }
});
