/**
 * One contract for every BlobStore driver: local disk, and S3 against a real S3-protocol server
 * started here on 127.0.0.1 (scripts/s3-server.ts). Every write is checked against the bytes the
 * backend itself stored — the files under the local root, the S3 server's own object files — not
 * only against what the store reads back.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BlobNotFoundError, LocalDiskStore, StorageConfigError, StorageUnavailableError, s3OptionsFrom, type BlobStore, type StorageSettings } from '../src/index.ts';
import { S3Store } from '../src/s3.ts';
import { startS3Server, type S3Server } from '../../../scripts/s3-server.ts';

const MiB = 1024 * 1024;

interface Driver {
  store: BlobStore;
  /** The bytes the backend holds for a key, read behind the store's back; undefined when absent. */
  stored(key: string): Promise<Buffer | undefined>;
  /** Every key the backend holds. */
  all(): Promise<string[]>;
  /** Half-written data: temporary files, unfinished multipart uploads, local copies. */
  leftovers(): Promise<string[]>;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort();
}

function chunked(data: Buffer, size = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
    })(),
  );
}

/** Sends `bytes` of random data, then fails the way a dropped client connection does. */
function failingSource(bytes: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= bytes) {
        this.destroy(Object.assign(new Error('Request aborted'), { code: 'ECONNRESET' }));
        return;
      }
      const n = Math.min(256 * 1024, bytes - sent);
      sent += n;
      this.push(crypto.randomBytes(n));
    },
  });
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const jobKey = (name: string) => `jobs/${crypto.randomUUID()}/${name}`;

let s3: S3Server;
let tmp: string;

function s3Settings(dataDir: string, env: Record<string, string>, over: Partial<StorageSettings> = {}): StorageSettings {
  return {
    dataDir,
    STORAGE: 's3',
    S3_BUCKET: env.S3_BUCKET,
    S3_REGION: 'us-east-1',
    S3_ENDPOINT: env.S3_ENDPOINT,
    S3_FORCE_PATH_STYLE: true,
    S3_ACCESS_KEY_ID: env.S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY: env.S3_SECRET_ACCESS_KEY,
    S3_PART_SIZE_MB: 5,
    S3_REQUEST_CHECKSUM: 'when_supported',
    S3_RESPONSE_CHECKSUM: 'when_supported',
    ...over,
  };
}

beforeAll(async () => {
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-store-contract-'));
  s3 = await startS3Server();
}, 60_000);
afterAll(async () => {
  await s3?.stop();
  await fs.rm(tmp, { recursive: true, force: true });
});

const drivers: [string, () => Promise<Driver>][] = [
  [
    'local disk',
    async () => {
      const root = await fs.mkdtemp(path.join(tmp, 'local-'));
      const store = await new LocalDiskStore(root).init();
      return {
        store,
        stored: (key) => fs.readFile(path.join(root, key)).catch(() => undefined),
        all: async () => (await filesUnder(root)).filter((f) => !f.startsWith('.tmp/')),
        leftovers: () => filesUnder(path.join(root, '.tmp')),
      };
    },
  ],
  [
    'S3',
    async () => {
      const dataDir = await fs.mkdtemp(path.join(tmp, 's3-'));
      // A prefix, as an operator sharing a bucket would set: every key must land under it.
      const prefix = `p-${crypto.randomBytes(3).toString('hex')}/`;
      const store = await new S3Store(s3OptionsFrom(s3Settings(dataDir, s3.env, { S3_PREFIX: prefix }))).init();
      return {
        store,
        stored: (key) => s3.storedBytes(prefix + key).catch(() => undefined),
        all: async () => (await s3.objects()).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)),
        leftovers: async () => [...(await s3.unfinishedUploads()), ...(await filesUnder(path.join(dataDir, 'scratch')))],
      };
    },
  ],
];

describe.each(drivers)('BlobStore contract: %s', (_name, make) => {
  let d: Driver;
  beforeAll(async () => {
    d = await make();
  }, 30_000);

  test('put streams a source and stores exactly its bytes', async () => {
    const data = crypto.randomBytes(3 * MiB + 123);
    const key = jobKey('src/a');
    expect(await d.store.put(key, chunked(data))).toEqual({ size: data.length });
    expect((await d.stored(key))?.equals(data)).toBe(true);
    expect(await d.store.stat(key)).toEqual({ size: data.length });
    expect((await readAll(await d.store.open(key))).equals(data)).toBe(true);
    expect(await d.leftovers()).toEqual([]);
  });

  test('an empty source is stored as an empty blob', async () => {
    const key = jobKey('src/empty');
    expect(await d.store.put(key, Readable.from([]))).toEqual({ size: 0 });
    expect(await d.store.stat(key)).toEqual({ size: 0 });
    expect((await d.stored(key))?.length).toBe(0);
  });

  test('a file of many parts is stored whole and in order', async () => {
    const data = crypto.randomBytes(41 * MiB + 7);
    const key = jobKey('src/large');
    expect(await d.store.put(key, chunked(data, 200_000))).toEqual({ size: data.length });
    const stored = await d.stored(key);
    expect(stored && sha(stored)).toBe(sha(data));
    expect(sha(await readAll(await d.store.open(key)))).toBe(sha(data));
    expect(await d.leftovers()).toEqual([]);
  }, 60_000);

  test.each([
    ['exactly one part', 5 * MiB],
    ['one part and a byte', 5 * MiB + 1],
    ['exactly two parts', 10 * MiB],
  ])('a file of %s is stored exactly', async (_what, bytes) => {
    const data = crypto.randomBytes(bytes);
    const key = jobKey('src/boundary');
    expect(await d.store.put(key, chunked(data, 100_000))).toEqual({ size: bytes });
    expect((await d.stored(key))?.equals(data)).toBe(true);
    expect(await d.leftovers()).toEqual([]);
  });

  test('open reads inclusive byte ranges', async () => {
    const data = crypto.randomBytes(100_000);
    const key = jobKey('out/r.bin');
    await d.store.put(key, chunked(data));
    for (const [start, end] of [
      [0, 0],
      [100, 4999],
      [99_990, 99_999],
      [0, 99_999],
    ] as const) {
      expect((await readAll(await d.store.open(key, { start, end }))).equals(data.subarray(start, end + 1))).toBe(true);
    }
  });

  test('putFile stores a finished local file and consumes it', async () => {
    const data = crypto.randomBytes(7 * MiB + 1);
    const file = path.join(tmp, `finished-${crypto.randomUUID()}`);
    await fs.writeFile(file, data);
    const key = jobKey('out/f.webp');
    expect(await d.store.putFile(key, file)).toEqual({ size: data.length });
    expect((await d.stored(key))?.equals(data)).toBe(true);
    await expect(fs.stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test("putFile makes the key's folder for a job's first file and puts the next ones beside it", async () => {
    const job = crypto.randomUUID();
    for (const name of ['a.webp', 'b.webp']) {
      const file = path.join(tmp, `finished-${crypto.randomUUID()}`);
      await fs.writeFile(file, name);
      expect(await d.store.putFile(`jobs/${job}/out/${name}`, file)).toEqual({ size: name.length });
      expect((await d.stored(`jobs/${job}/out/${name}`))?.toString()).toBe(name);
    }
    const missing = path.join(tmp, `never-written-${crypto.randomUUID()}`);
    await expect(d.store.putFile(`jobs/${job}/out/c.webp`, missing)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await d.store.stat(`jobs/${job}/out/c.webp`)).toBeUndefined();
    expect(await d.leftovers()).toEqual([]);
  });

  test("a request's parts written side by side into a job's new folder all land", async () => {
    const job = crypto.randomUUID();
    const names = Array.from({ length: 40 }, (_, i) => `jobs/${job}/src/${i}`);
    await Promise.all(names.map((k) => d.store.put(k, Readable.from([Buffer.from(k)]))));
    for (const k of names) expect((await d.stored(k))?.toString()).toBe(k);
    expect(await d.leftovers()).toEqual([]);
  });

  test('scratchFile names a file that does not exist yet; putFile takes it with its known size; release removes one left behind', async () => {
    const planned = d.store.scratchPath();
    const s = await d.store.scratchFile(planned);
    expect(s.path).toBe(planned);
    // Nothing is made for it.
    await expect(fs.stat(planned)).rejects.toMatchObject({ code: 'ENOENT' });
    const data = crypto.randomBytes(70_000);
    await fs.writeFile(s.path, data);
    const key = jobKey('out/direct.webp');
    expect(await d.store.putFile(key, s.path, { size: data.length })).toEqual({ size: data.length });
    expect((await d.stored(key))?.equals(data)).toBe(true);
    await expect(fs.stat(s.path)).rejects.toMatchObject({ code: 'ENOENT' });
    await s.release();
    // A failed attempt leaves its partial output: release removes it.
    const left = await d.store.scratchFile();
    expect(path.basename(left.path)).toMatch(/^w-[0-9a-f]{16}$/);
    await fs.writeFile(left.path, 'partial');
    await left.release();
    await expect(fs.stat(left.path)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await d.leftovers()).toEqual([]);
    await expect(d.store.scratchFile(path.join(os.tmpdir(), 'w-0000000000000000'))).rejects.toThrow(/is not under/);
  });

  test('get answers a small blob as its bytes, a larger one as a stream of them, both with the size', async () => {
    const data = crypto.randomBytes(300_001);
    const key = jobKey('out/g.bin');
    await d.store.put(key, chunked(data));
    const small = await d.store.get(key, data.length);
    expect(small?.size).toBe(data.length);
    expect(small?.stream).toBeUndefined();
    expect(small?.bytes?.equals(data)).toBe(true);
    const large = await d.store.get(key, data.length - 1);
    expect(large?.size).toBe(data.length);
    expect(large?.bytes).toBeUndefined();
    expect((await readAll(large!.stream!)).equals(data)).toBe(true);
    const empty = jobKey('out/empty.bin');
    await d.store.put(empty, Readable.from([]));
    expect(await d.store.get(empty, 1024)).toEqual({ size: 0, bytes: Buffer.alloc(0) });
  });

  test('a missing key: stat and get are undefined and open rejects with BlobNotFoundError', async () => {
    const key = jobKey('nothing-here');
    expect(await d.store.stat(key)).toBeUndefined();
    expect(await d.store.get(key, 1024)).toBeUndefined();
    await expect(d.store.open(key)).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  test('delete removes single keys and whole job folders, in batches, and nothing beside them', async () => {
    const job = crypto.randomUUID();
    const keys = Array.from({ length: 1005 }, (_, i) => `jobs/${job}/out/${String(i).padStart(4, '0')}.bin`);
    for (let i = 0; i < keys.length; i += 25) await Promise.all(keys.slice(i, i + 25).map((k) => d.store.put(k, Readable.from([Buffer.from(k)]))));
    await d.store.put(`jobs/${job}/src/s`, Readable.from([Buffer.from('src')]));
    // Neighbours whose names start with the same characters must survive.
    const sibling = `jobs/${job}x/keep`;
    const other = jobKey('keep');
    await d.store.put(sibling, Readable.from([Buffer.from('sibling')]));
    await d.store.put(other, Readable.from([Buffer.from('other')]));
    expect((await d.all()).filter((k) => k.startsWith(`jobs/${job}/`))).toHaveLength(1006);

    await d.store.delete([`jobs/${job}/src/s`, `jobs/${job}`, jobKey('never-existed')]);
    expect((await d.all()).filter((k) => k.startsWith(`jobs/${job}/`))).toEqual([]);
    expect((await d.stored(sibling))?.toString()).toBe('sibling');
    expect((await d.stored(other))?.toString()).toBe('other');
    await d.store.delete([other]);
    expect(await d.store.stat(other)).toBeUndefined();
    await d.store.delete([]);
  }, 60_000);

  test('keys that could leave the store are refused and nothing is written', async () => {
    const before = await d.all();
    const file = path.join(tmp, `escape-${crypto.randomUUID()}`);
    await fs.writeFile(file, 'x');
    for (const key of ['../escape', '/etc/passwd', 'jobs/../../escape', 'jobs//x', '.hidden', 'jobs/./x', 'jobs\\..\\x', '', 'jobs/x/', 'jobs/x/..']) {
      await expect(d.store.put(key, Readable.from([Buffer.from('x')]))).rejects.toThrow(/Invalid storage key/);
      await expect(d.store.putFile(key, file)).rejects.toThrow(/Invalid storage key/);
      await expect(d.store.open(key)).rejects.toThrow(/Invalid storage key/);
      await expect(d.store.stat(key)).rejects.toThrow(/Invalid storage key/);
      await expect(d.store.delete([key])).rejects.toThrow(/Invalid storage key/);
      await expect(d.store.localPath(key)).rejects.toThrow(/Invalid storage key/);
    }
    expect(await d.all()).toEqual(before);
    await expect(fs.stat(path.join(tmp, 'escape'))).rejects.toMatchObject({ code: 'ENOENT' });
    await fs.rm(file, { force: true });
  });

  test.each([
    ['after several parts', 12 * MiB],
    ['before the first part is full', 300 * 1024],
  ])(
    'an aborted upload (%s) rejects with its error and leaves nothing behind',
    async (_when, bytes) => {
      const key = jobKey('src/aborted');
      await expect(d.store.put(key, failingSource(bytes))).rejects.toThrow('Request aborted');
      // Parts already in flight finish before the abort is sent: wait for it, bounded.
      await until('no unfinished upload or temporary file', async () => (await d.leftovers()).length === 0);
      expect(await d.store.stat(key)).toBeUndefined();
      expect(await d.stored(key)).toBeUndefined();
    },
    30_000,
  );

  test('localPath hands engines a readable file; release leaves the blob in place', async () => {
    const data = crypto.randomBytes(2 * MiB);
    const key = jobKey('src/for-engine');
    await d.store.put(key, chunked(data));
    const local = await d.store.localPath(key);
    expect((await fs.readFile(local.path)).equals(data)).toBe(true);
    await local.release();
    // Unchecked (the caller asks stat itself should the engine fail): the same readable file.
    const unchecked = await d.store.localPath(key, { unchecked: true });
    expect((await fs.readFile(unchecked.path)).equals(data)).toBe(true);
    await unchecked.release();
    expect(await d.store.stat(key)).toEqual({ size: data.length });
    expect(await d.leftovers()).toEqual([]);
    await expect(d.store.localPath(jobKey('missing'))).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await d.leftovers()).toEqual([]);
  });

  test('localPath under a scratch folder: a copy (if any) is made inside it, so removing the folder removes it; never under any other folder', async () => {
    const data = crypto.randomBytes(300 * 1024);
    const key = jobKey('src/for-tool');
    await d.store.put(key, chunked(data));
    const scratch = await d.store.scratch(d.store.scratchPath());
    const local = await d.store.localPath(key, { unchecked: true, under: scratch.dir });
    expect((await fs.readFile(local.path)).equals(data)).toBe(true);
    // The local store hands out the blob itself; a remote one copies into the folder and nowhere else.
    if (d.store.kind === 's3') expect(path.dirname(local.path)).toBe(scratch.dir);
    else expect(path.dirname(local.path)).not.toBe(scratch.dir);
    await scratch.release();
    await local.release();
    expect(await d.store.stat(key)).toEqual({ size: data.length });
    expect(await d.leftovers()).toEqual([]);
    if (d.store.kind === 's3') await expect(d.store.localPath(key, { under: tmp })).rejects.toThrow(/is not under/);
    expect(await d.leftovers()).toEqual([]);
  });

  test('scratch gives a fresh writable folder that release removes', async () => {
    const a = await d.store.scratch();
    const b = await d.store.scratch();
    expect(a.dir).not.toBe(b.dir);
    await fs.writeFile(path.join(a.dir, 'out.bin'), 'x');
    await a.release();
    await b.release();
    await expect(fs.stat(a.dir)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await d.leftovers()).toEqual([]);
  });

  test('scratchPath names a folder that does not exist yet; scratch makes exactly that one', async () => {
    const planned = d.store.scratchPath();
    expect(path.isAbsolute(planned)).toBe(true);
    expect(path.basename(planned)).toMatch(/^w-[0-9a-f]{16}$/);
    expect(d.store.scratchPath()).not.toBe(planned);
    await expect(fs.stat(planned)).rejects.toMatchObject({ code: 'ENOENT' });
    const s = await d.store.scratch(planned);
    expect(s.dir).toBe(planned);
    expect((await fs.stat(planned)).isDirectory()).toBe(true);
    await s.release();
    await expect(d.store.scratch(path.join(os.tmpdir(), 'w-0000000000000000'))).rejects.toThrow(/is not under/);
    expect(await d.leftovers()).toEqual([]);
  });

  test('ping answers while the store is reachable', async () => {
    await expect(d.store.ping()).resolves.toBeUndefined();
  });
});

describe('S3 only', () => {
  let store: S3Store;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(tmp, 's3-only-'));
    store = await new S3Store(s3OptionsFrom(s3Settings(dataDir, s3.env))).init();
  });

  test('a presigned GET serves the object with the asked-for name and type, and expires', async () => {
    const data = crypto.randomBytes(50_000);
    const key = jobKey('out/p.png');
    await store.put(key, chunked(data));
    const url = new URL(await store.presignGet(key, { expiresInSeconds: 120, contentDisposition: 'attachment; filename="p.png"', contentType: 'image/png' }));
    expect(url.origin).toBe(s3.endpoint);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('120');
    expect(url.searchParams.get('response-content-disposition')).toBe('attachment; filename="p.png"');
    expect(url.searchParams.get('response-content-type')).toBe('image/png');
    const r = await fetch(url);
    expect(r.status).toBe(200);
    expect(Buffer.from(await r.arrayBuffer()).equals(data)).toBe(true);
  });

  test('a presigned PUT takes exactly the signed length, carries no empty-body checksum, and stores the bytes', async () => {
    const data = crypto.randomBytes(70_000);
    const key = jobKey('src/uploaded-directly');
    const url = new URL(await store.presignPut(key, { expiresInSeconds: 300, contentLength: data.length, contentType: 'application/octet-stream' }));
    expect(url.searchParams.get('X-Amz-SignedHeaders')?.split(';')).toEqual(expect.arrayContaining(['content-length', 'content-type', 'host']));
    // The SDK's default would sign the CRC32 of an empty body, which real S3 then refuses.
    expect([...url.searchParams.keys()].filter((k) => /checksum/i.test(k))).toEqual([]);
    const r = await fetch(url, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } });
    expect(r.status).toBe(200);
    expect((await s3.storedBytes(key)).equals(data)).toBe(true);
    expect(await store.stat(key)).toEqual({ size: data.length });
  });

  test('start-up names S3_BUCKET when the bucket does not exist', async () => {
    const err = await new S3Store(s3OptionsFrom(s3Settings(dataDir, s3.env, { S3_BUCKET: 'no-such-bucket' }))).init().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageConfigError);
    expect(err).toMatchObject({ setting: 'S3_BUCKET', message: expect.stringMatching(/S3_BUCKET=no-such-bucket does not exist/) });
  });

  test('start-up names S3_ENDPOINT when nothing answers there', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const err = await new S3Store(s3OptionsFrom(s3Settings(dataDir, s3.env, { S3_ENDPOINT: `http://127.0.0.1:${port}` }))).init().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageConfigError);
    expect(err).toMatchObject({ setting: 'S3_ENDPOINT', message: expect.stringMatching(new RegExp(`Cannot reach S3_ENDPOINT http://127.0.0.1:${port} \\(.*ECONNREFUSED`)) });
  });

  test('start-up names the credentials when the endpoint refuses them', async () => {
    // The test S3 server accepts any credentials, so this peer answers as S3 does to a wrong key:
    // 403 to HEAD (no body), and the InvalidAccessKeyId document to anything else.
    const refusing = http.createServer((req, res) => {
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end(
        req.method === 'HEAD'
          ? undefined
          : '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>',
      );
    });
    await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
    try {
      const port = (refusing.address() as net.AddressInfo).port;
      const err = await new S3Store(s3OptionsFrom(s3Settings(dataDir, s3.env, { S3_ENDPOINT: `http://127.0.0.1:${port}` }))).init().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageConfigError);
      expect(err).toMatchObject({ setting: 'S3_ACCESS_KEY_ID', message: expect.stringMatching(/refused Kiln's credentials .*check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY/) });
    } finally {
      refusing.close();
    }
  });

  test('while the server is down every operation is StorageUnavailableError; afterwards all is there again', async () => {
    const data = crypto.randomBytes(10_000);
    const key = jobKey('src/survives');
    await store.put(key, chunked(data));
    await s3.kill();
    try {
      const failures = await Promise.all([
        store.ping().catch((e: unknown) => e),
        store.stat(key).catch((e: unknown) => e),
        store.open(key).catch((e: unknown) => e),
        store.get(key, 1 << 20).catch((e: unknown) => e),
        store.put(jobKey('src/x'), chunked(data)).catch((e: unknown) => e),
        store.delete([key]).catch((e: unknown) => e),
        store.localPath(key).catch((e: unknown) => e),
      ]);
      for (const f of failures) {
        expect(f).toBeInstanceOf(StorageUnavailableError);
        expect(f).toMatchObject({ setting: 'S3_ENDPOINT', message: expect.stringMatching(/Storage is unavailable: cannot reach bucket .* ECONNREFUSED/) });
      }
      expect(await filesUnder(path.join(dataDir, 'scratch'))).toEqual([]);
    } finally {
      await s3.restart();
    }
    await store.ping();
    expect((await readAll(await store.open(key))).equals(data)).toBe(true);
  }, 60_000);
});
