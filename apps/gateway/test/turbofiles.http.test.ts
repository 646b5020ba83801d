/**
 * The TurboFiles dialect (/v1, JSON:API 1.1) through createApp with real Postgres and pg-boss and no
 * workers, so tasks stay pending: documents and media types, the upload link and every way an upload
 * is refused, a table of bad task requests (status, code, source; nothing queued), isolation between
 * keys, cursor pagination over 25 tasks both ways, rate headers, users/me, and the error shapes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type pg from 'pg';
import request from 'supertest';
import sharp from 'sharp';
import type { KeyLimits } from '@kiln/contracts';
import { createLogger, loadConfig } from '@kiln/config';
import { createApiKey } from '@kiln/db';
import { inputKindOf, outputFormatOf, sniff } from '@kiln/formats';
import { jsonApiErrors } from '../src/turbofiles/jsonapi.ts';
import { startTestGateway, type TestGateway } from './helpers.ts';
import { until } from '../../../test/helpers/kiln.ts';

let gw: TestGateway;
let app: TestGateway['app'];
let client: pg.Client;
let key: string;
let png: Buffer;
let jpeg: Buffer;

const MT = 'application/vnd.api+json';

beforeAll(async () => {
  // A fixed public URL: supertest gives every request a new port, and links are built from it otherwise.
  gw = await startTestGateway('turbofiles', { PUBLIC_URL: 'http://kiln.test', ADMIN_PASSWORD: 'operator password' });
  ({ app, client, key } = gw);
  png = await sharp({ create: { width: 320, height: 200, channels: 3, background: '#3366ff' } })
    .png()
    .toBuffer();
  jpeg = await sharp(png).jpeg().toBuffer();
}, 60_000);
afterAll(async () => {
  await gw?.close();
});

const newKey = async (limits: KeyLimits = {}) => (await createApiKey(client, 'turbofiles test', limits)).key;
const count = async (sql: string, args: unknown[] = []) => (await client.query<{ n: number }>(sql, args)).rows[0]!.n;
/** Everything a submission leaves behind: job rows, task rows, queue messages. */
const footprint = async () => ({
  jobs: await count('SELECT count(*)::int AS n FROM jobs'),
  tasks: await count('SELECT count(*)::int AS n FROM turbofiles_tasks'),
  messages: await count('SELECT count(*)::int AS n FROM pgboss.job'),
});

const pathOf = (url: string) => {
  const u = new URL(url);
  return u.pathname + u.search;
};

function declare(k: string, attributes: Record<string, unknown>) {
  return request(app)
    .post('/v1/files')
    .set({ Authorization: `Bearer ${k}`, 'Content-Type': MT, Accept: MT })
    .send(JSON.stringify({ data: { type: 'files', attributes } }));
}

function postTask(k: string, body: unknown, headers: Record<string, string> = {}) {
  return request(app)
    .post('/v1/tasks')
    .set({ Authorization: `Bearer ${k}`, 'Content-Type': MT, ...headers })
    .send(typeof body === 'string' ? body : JSON.stringify(body));
}

const get = (k: string | null, p: string) => {
  const r = request(app).get(p);
  return k ? r.set('Authorization', `Bearer ${k}`) : r;
};

/** GET with the body kept as bytes, whatever its type. */
const download = (p: string) =>
  request(app)
    .get(p)
    .buffer(true)
    .parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    });

/** POST to /v1/files with exactly these headers (the key added) and a raw body. */
const postFiles = (headers: Record<string, string>, body?: string) => {
  const r = request(app)
    .post('/v1/files')
    .set({ Authorization: `Bearer ${key}`, ...headers });
  return body === undefined ? r : r.send(body);
};

/** A declared and uploaded file; returns its id. */
async function readyFile(k: string, bytes = png, format = 'image/png'): Promise<string> {
  const d = await declare(k, { format, size: bytes.length });
  expect(d.status).toBe(201);
  const up = await request(app).put(pathOf(d.body.data.links.upload)).set('Content-Type', 'application/octet-stream').send(bytes);
  expect(up.status).toBe(200);
  return d.body.data.id as string;
}

const taskBody = (inputId: string, output = 'image/webp', extra: Record<string, unknown> = {}) => ({
  data: { attributes: { format: { input: 'image/png', output }, ...extra }, relationship: { input: { data: { id: inputId } } } },
});

describe('files', () => {
  test('POST /v1/files: 201, a JSON:API document in its own media type, a signed upload link, AWAITING_UPLOAD for 48 h', async () => {
    const r = await declare(key, { format: 'image/png', size: png.length });
    expect(r.status).toBe(201);
    expect(r.headers['content-type']).toBe(MT);
    expect(r.body.jsonapi).toEqual({ version: '1.1' });
    const f = r.body.data;
    expect(f).toMatchObject({ type: 'files', attributes: { format: 'image/png', size: png.length, status: 'AWAITING_UPLOAD' } });
    expect(r.body.links.self).toBe(f.links.self);
    expect(r.headers.location).toBe(f.links.self);
    expect(f.links.upload).toMatch(new RegExp(`/v1/files/${f.id}/upload\\?exp=\\d+&sig=`));
    expect(f.links.download).toBeUndefined();
    const ttl = Date.parse(f.attributes.expires_at) - Date.parse(f.attributes.created_at);
    expect(ttl).toBe(48 * 3600_000);
  });

  test('a PUT of exactly the declared bytes makes the file READY; its download link returns them; a second PUT is 409', async () => {
    const d = await declare(key, { format: 'png', size: png.length });
    const link = pathOf(d.body.data.links.upload);
    // No API key on the upload: the signature is the permission.
    const up = await request(app).put(link).send(png);
    expect(up.status).toBe(200);
    expect(up.body.data.attributes.status).toBe('READY');
    const got = await get(key, `/v1/files/${d.body.data.id}`);
    expect(got.body.data.attributes.status).toBe('READY');
    expect(got.body.data.links.upload).toBeUndefined();
    const dl = await download(pathOf(got.body.data.links.download));
    expect(dl.status).toBe(200);
    expect(Buffer.compare(dl.body as Buffer, png)).toBe(0);
    const again = await request(app).put(link).send(png);
    expect(again.status).toBe(409);
    expect(again.body.errors[0]).toMatchObject({ status: '409', code: 'conflict' });
  });

  test('a PUT of the wrong length or the wrong bytes is refused, stores nothing, queues nothing, and the file keeps awaiting its upload', async () => {
    const before = await footprint();
    const d = await declare(key, { format: 'image/png', size: png.length });
    const id = d.body.data.id as string;
    const link = pathOf(d.body.data.links.upload);
    const stored = () => count(`SELECT count(*)::int AS n FROM turbofiles_files WHERE id = $1 AND storage_key IS NOT NULL`, [id]);

    const short = await request(app)
      .put(link)
      .send(png.subarray(0, png.length - 1));
    expect(short.status).toBe(400);
    expect(short.body.errors[0]).toMatchObject({ status: '400', code: 'size_mismatch', detail: expect.stringMatching(new RegExp(`exactly ${png.length} bytes`)) });

    // A JPEG of exactly the declared size: right length, wrong bytes.
    const fake = Buffer.concat([jpeg, Buffer.alloc(Math.max(0, png.length - jpeg.length))]).subarray(0, png.length);
    const wrong = await request(app).put(link).send(fake);
    expect(wrong.status).toBe(415);
    expect(wrong.body.errors[0]).toMatchObject({ code: 'format_mismatch', detail: expect.stringMatching(/image\/jpeg .*not the declared image\/png/) });

    // More bytes than declared, with no Content-Length (chunked): cut off as soon as they overflow.
    const server = http.createServer(app).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const long = await new Promise<{ status: number; body: { errors: { code: string }[] } }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: link, method: 'PUT' }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.write(png);
      req.end(Buffer.alloc(10));
    });
    server.close();
    expect(long.status).toBe(400);
    expect(long.body.errors[0]!.code).toBe('size_mismatch');

    const file = await get(key, `/v1/files/${id}`);
    expect(file.body.data.attributes.status).toBe('AWAITING_UPLOAD');
    expect(file.body.data.links.upload).toBeDefined();
    expect(file.body.data.meta.upload_error).toMatch(/exactly \d+ bytes/);
    expect(await stored()).toBe(0);
    expect(await footprint()).toEqual(before);
    const blobs = await import('node:fs/promises').then((fs) => fs.readdir(`${gw.dataDir}/blobs/uploads/${id}`).catch(() => []));
    expect(blobs).toEqual([]);
    // The file still takes its real bytes afterwards.
    expect((await request(app).put(link).send(png)).status).toBe(200);
  });

  test('an upload the client abandons halfway stores nothing, gives its claim back, and the file still takes the whole upload', async () => {
    const bytes = Buffer.concat([png, Buffer.alloc(4 * 1024 * 1024, 7)]);
    const d = await declare(key, { format: 'image/png', size: bytes.length });
    const id = d.body.data.id as string;
    const link = pathOf(d.body.data.links.upload);
    const server = http.createServer(app).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const req = http.request({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: link, method: 'PUT', headers: { 'content-length': String(bytes.length) } });
    req.on('error', () => undefined);
    req.write(bytes.subarray(0, 1024 * 1024));
    // Once the first megabyte is being stored, the client goes away.
    await until('the upload to be claimed', async () => (await count(`SELECT count(*)::int AS n FROM turbofiles_files WHERE id = $1 AND upload_claim IS NOT NULL`, [id])) === 1);
    req.destroy();
    const file = await until('the interrupted upload to be given up', async () => {
      const f = (await get(key, `/v1/files/${id}`)).body.data;
      return f.meta?.upload_error ? f : undefined;
    });
    server.close();
    expect(file.attributes.status).toBe('AWAITING_UPLOAD');
    expect(file.meta.upload_error).toMatch(/interrupted/);
    const left = await import('node:fs/promises').then((fs) => fs.readdir(`${gw.dataDir}/blobs/uploads/${id}`).catch(() => []));
    expect(left).toEqual([]);
    expect((await request(app).put(link).send(bytes)).status).toBe(200);
  });

  test('an upload link that is forged, expired or for another file is 403; a task on a file awaiting its bytes is 409', async () => {
    const d = await declare(key, { format: 'image/png', size: png.length });
    const u = new URL(d.body.data.links.upload);
    const forged = await request(app)
      .put(`${u.pathname}?exp=${u.searchParams.get('exp')}&sig=AAAA${u.searchParams.get('sig')!.slice(4)}`)
      .send(png);
    expect(forged.status).toBe(403);
    expect(forged.body.errors[0]).toMatchObject({ code: 'forbidden' });
    const other = await declare(key, { format: 'image/png', size: png.length });
    const swapped = await request(app).put(`/v1/files/${other.body.data.id}/upload${u.search}`).send(png);
    expect(swapped.status).toBe(403);
    const { exp, sig } = gw.deps.signer.sign(`tf-upload:${d.body.data.id}`, -10);
    expect((await request(app).put(`${u.pathname}?exp=${exp}&sig=${sig}`).send(png)).body.errors[0].detail).toMatch(/has expired/);

    const before = await footprint();
    const t = await postTask(key, taskBody(d.body.data.id));
    expect(t.status).toBe(409);
    expect(t.body.errors[0]).toMatchObject({ code: 'file_not_ready', source: { pointer: '/data/relationship/input/data/id' } });
    expect(await footprint()).toEqual(before);
  });

  test('declaring an unknown format is 415, a size over the upload limit 413, each pointing at its member', async () => {
    const bmp = await declare(key, { format: 'image/bmp', size: 10 });
    expect(bmp.status).toBe(415);
    expect(bmp.body.errors[0]).toMatchObject({ status: '415', code: 'unsupported_format', source: { pointer: '/data/attributes/format' } });
    const small = await newKey({ maxUploadBytes: 1000 });
    const big = await declare(small, { format: 'png', size: 1001 });
    expect(big.status).toBe(413);
    expect(big.body.errors[0]).toMatchObject({ code: 'file_too_large', source: { pointer: '/data/attributes/size' }, meta: { limit: 'maxUploadBytes', maxBytes: 1000 } });
  });

  test('DELETE /v1/files/:id: 204 and gone, bytes included; 409 while a task still reads it', async () => {
    const id = await readyFile(key);
    const del = await request(app).delete(`/v1/files/${id}`).set('Authorization', `Bearer ${key}`);
    expect(del.status).toBe(204);
    expect((await get(key, `/v1/files/${id}`)).status).toBe(404);
    const left = await import('node:fs/promises').then((fs) => fs.readdir(`${gw.dataDir}/blobs/uploads/${id}`).catch(() => []));
    expect(left).toEqual([]);

    const used = await readyFile(key);
    expect((await postTask(key, taskBody(used))).status).toBe(201);
    const busy = await request(app).delete(`/v1/files/${used}`).set('Authorization', `Bearer ${key}`);
    expect(busy.status).toBe(409);
    expect((await get(key, `/v1/files/${used}`)).body.data.attributes.status).toBe('READY');
  });
});

describe('tasks', () => {
  let input: string;
  beforeAll(async () => {
    input = await readyFile(key);
  });

  test("the seed's body: 201, PENDING, the input file in included, queued as a one-file job on the convert queue with a fit-inside box", async () => {
    const body = {
      data: {
        attributes: { format: { input: 'image/png', output: 'image/webp' }, settings: { resize: { width: 640, height: 640, max_width: 1280, max_height: 1280 } } },
        relationship: { input: { data: { id: input } } },
      },
    };
    const r = await postTask(key, body);
    expect(r.status).toBe(201);
    expect(r.headers['content-type']).toBe(MT);
    const t = r.body.data;
    expect(t).toMatchObject({
      type: 'tasks',
      attributes: {
        public: false,
        status: 'PENDING',
        format: { input: 'image/png', output: 'image/webp' },
        settings: body.data.attributes.settings,
        started_at: null,
        processed_at: null,
      },
      relationships: { input: { data: { type: 'files', id: input } }, output: { data: null } },
    });
    expect(t.relationships.input.links.related).toBe(`${t.links.self}/input`);
    expect(r.headers.location).toBe(t.links.self);
    expect(r.body.included).toEqual([expect.objectContaining({ type: 'files', id: input, attributes: expect.objectContaining({ status: 'READY' }) })]);

    const job = (await client.query(`SELECT dialect, job_type, total_files FROM jobs WHERE id = $1`, [t.id])).rows[0];
    expect(job).toEqual({ dialect: 'turbofiles', job_type: 'convert', total_files: 1 });
    const file = (await client.query(`SELECT source_key, source_kind, options FROM job_files WHERE job_id = $1`, [t.id])).rows[0];
    expect(file.source_key).toMatch(new RegExp(`^uploads/${input}/`));
    expect(file.source_kind).toBe('png');
    expect(file.options).toMatchObject({ format: 'webp', resize: 'box', resizeWidth: 640, resizeHeight: 640 });
    expect(await count(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'convert.image' AND data->>'jobId' = $1`, [t.id])).toBe(1);

    // The same task read back, and through the Convertly dialect: one job, two views.
    const again = await get(key, `/v1/tasks/${t.id}`);
    expect(again.body.data).toEqual(t);
    const asJob = await get(key, `/api/jobs/${t.id}`);
    expect(asJob.body).toMatchObject({ jobId: t.id, status: 'pending', totalFiles: 1 });
    const rel = await get(key, `/v1/tasks/${t.id}/relationships/input`);
    expect(rel.body.data).toEqual({ type: 'files', id: input });
    expect((await get(key, `/v1/tasks/${t.id}/input`)).body.data.id).toBe(input);
    expect((await get(key, `/v1/tasks/${t.id}/output`)).body.data).toBeNull();
  });

  test('relationships (plural, with types), bare extensions and plain application/json are accepted too', async () => {
    const r = await postTask(
      key,
      { data: { type: 'tasks', attributes: { format: { input: 'png', output: 'jpg' } }, relationships: { input: { data: { type: 'files', id: input } } } } },
      { 'Content-Type': 'application/json' },
    );
    expect(r.status).toBe(201);
    expect(r.body.data.attributes.format).toEqual({ input: 'png', output: 'jpg' });
  });

  test('a replay with the same Idempotency-Key returns the first task and creates nothing', async () => {
    const first = await postTask(key, taskBody(input), { 'Idempotency-Key': 'tf-replay-1' });
    const before = await footprint();
    const second = await postTask(key, taskBody(input), { 'Idempotency-Key': 'tf-replay-1' });
    expect(second.status).toBe(200);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body.data.id).toBe(first.body.data.id);
    expect(await footprint()).toEqual(before);
  });

  const cases: [string, number, string, unknown, Record<string, string>][] = [
    ['a body that is not JSON', 400, 'invalid_request', '{"data":', { pointer: '' }],
    ['no data', 400, 'invalid_field', {}, { pointer: '/data' }],
    ['data as an array', 400, 'invalid_field', { data: [] }, { pointer: '/data' }],
    ['no attributes', 400, 'invalid_field', { data: { relationship: { input: { data: { id: 'x' } } } } }, { pointer: '/data/attributes' }],
    ['no format', 400, 'invalid_field', { data: { attributes: {}, relationship: { input: { data: { id: 'x' } } } } }, { pointer: '/data/attributes/format' }],
    ['no format.input', 400, 'invalid_field', { data: { attributes: { format: { output: 'webp' } } } }, { pointer: '/data/attributes/format/input' }],
    ['no format.output', 400, 'invalid_field', { data: { attributes: { format: { input: 'png' } } } }, { pointer: '/data/attributes/format/output' }],
    ['a numeric format.output', 400, 'invalid_field', { data: { attributes: { format: { input: 'png', output: 5 } } } }, { pointer: '/data/attributes/format/output' }],
    ['an unknown attribute', 400, 'invalid_field', { data: { attributes: { format: { input: 'png', output: 'webp' }, quality: 5 } } }, { pointer: '/data/attributes/quality' }],
    ['a negative width', 400, 'invalid_field', 'resize:{"width":-1}', { pointer: '/data/attributes/settings/resize/width' }],
    ['a zero max_height', 400, 'invalid_field', 'resize:{"max_height":0}', { pointer: '/data/attributes/settings/resize/max_height' }],
    ['a width that is text', 400, 'invalid_field', 'resize:{"width":"640"}', { pointer: '/data/attributes/settings/resize/width' }],
    ['an unknown resize member', 400, 'invalid_field', 'resize:{"fit":"cover"}', { pointer: '/data/attributes/settings/resize/fit' }],
    ['no relationship', 400, 'invalid_field', { data: { attributes: { format: { input: 'png', output: 'webp' } } } }, { pointer: '/data/relationships' }],
    [
      'an input without an id',
      400,
      'invalid_field',
      { data: { attributes: { format: { input: 'png', output: 'webp' } }, relationship: { input: { data: {} } } } },
      { pointer: '/data/relationship/input/data/id' },
    ],
    ['the wrong type', 409, 'conflict', { data: { type: 'files', attributes: { format: { input: 'png', output: 'webp' } } } }, { pointer: '/data/type' }],
    [
      'a client-generated id',
      403,
      'forbidden',
      { data: { id: 'mine', attributes: { format: { input: 'png', output: 'webp' } }, relationship: { input: { data: { id: 'x' } } } } },
      { pointer: '/data/id' },
    ],
    ['an unknown output format', 415, 'unsupported_format', 'output:image/bmp', { pointer: '/data/attributes/format/output' }],
    ['an output the input cannot become', 415, 'unsupported_format', 'output:audio/mpeg', { pointer: '/data/attributes/format/output' }],
    ['rar, which nothing free writes', 415, 'unsupported_format', 'output:rar', { pointer: '/data/attributes/format/output' }],
    ['an unknown input format', 415, 'unsupported_format', 'input:image/x-nope', { pointer: '/data/attributes/format/input' }],
    ['an input format that is not the file', 415, 'format_mismatch', 'input:image/jpeg', { pointer: '/data/attributes/format/input' }],
    ['an input id that is not a file', 404, 'not_found', 'id:nope', { pointer: '/data/relationship/input/data/id' }],
    ['an input id no file has', 404, 'not_found', 'id:3c90c3cc-0d44-4b50-8888-8dd25736052a', { pointer: '/data/relationship/input/data/id' }],
    ['another key’s file', 404, 'not_found', 'id:OTHER', { pointer: '/data/relationship/input/data/id' }],
    ['a query parameter the endpoint does not read', 400, 'invalid_field', 'query:?include=input', { parameter: 'include' }],
  ];

  test.each(cases)('a task with %s: %i %s naming its source, nothing queued', async (_what, status, code, spec, source) => {
    let body: unknown = spec;
    let path = '/v1/tasks';
    if (typeof spec === 'string' && /^(resize|output|input|id|query):/.test(spec)) {
      const [kind, value] = [spec.slice(0, spec.indexOf(':')), spec.slice(spec.indexOf(':') + 1)];
      const base = taskBody(input) as { data: { attributes: Record<string, unknown> & { format: Record<string, string> }; relationship: { input: { data: { id: string } } } } };
      if (kind === 'resize') base.data.attributes.settings = { resize: JSON.parse(value) };
      if (kind === 'output') base.data.attributes.format.output = value;
      if (kind === 'input') base.data.attributes.format.input = value;
      if (kind === 'id') base.data.relationship.input.data.id = value === 'OTHER' ? await readyFile(await newKey()) : value;
      if (kind === 'query') path += value;
      body = base;
    }
    const before = await footprint();
    const r = await request(app)
      .post(path)
      .set({ Authorization: `Bearer ${key}`, 'Content-Type': MT })
      .send(typeof body === 'string' ? body : JSON.stringify(body));
    expect(r.status).toBe(status);
    expect(r.headers['content-type']).toBe(MT);
    expect(r.body.jsonapi).toEqual({ version: '1.1' });
    expect(r.body.errors).toHaveLength(1);
    expect(r.body.errors[0]).toMatchObject({ status: String(status), code, title: http.STATUS_CODES[status], detail: expect.any(String) });
    expect(r.body.errors[0].source).toEqual(source);
    expect(await footprint()).toEqual(before);
  });

  test('no shape of body is a 500: every member of the seed replaced by every kind of JSON value', async () => {
    const seed = taskBody(input, 'image/webp', { settings: { resize: { width: 640, height: 640, max_width: 1280, max_height: 1280 } } });
    const paths: string[][] = [];
    const walk = (v: unknown, at: string[]) => {
      paths.push(at);
      if (v && typeof v === 'object') for (const [k, child] of Object.entries(v)) walk(child, [...at, k]);
    };
    walk(seed, []);
    const values: unknown[] = [null, [], [1, 2], {}, '', 0, -1, 1.5, 2 ** 60, 'x'.repeat(300), '\u0000\ud800', true, { __PROTO__: { polluted: 1 } }, { data: {} }];
    const statuses = new Set<number>();
    for (const at of paths) {
      for (const value of values) {
        const doc = structuredClone(seed) as Record<string, unknown>;
        let body: unknown = doc;
        if (at.length === 0) body = value;
        else {
          let node = doc as Record<string, unknown>;
          for (const k of at.slice(0, -1)) node = node[k] as Record<string, unknown>;
          node[at[at.length - 1]!] = value;
        }
        // A literal "__proto__" member, as a hostile client sends it (an object literal would set the prototype instead).
        const r = await postTask(key, JSON.stringify(body).replaceAll('"__PROTO__"', '"__proto__"'));
        statuses.add(r.status);
        if (r.status >= 500) throw new Error(`${JSON.stringify(body).slice(0, 300)} → ${r.status} ${JSON.stringify(r.body)}`);
        if (r.status >= 400) expect(r.body.errors[0]).toMatchObject({ status: String(r.status), code: expect.any(String), detail: expect.any(String) });
      }
    }
    expect([...statuses].every((st) => st < 500)).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 60_000);

  test("the key's admission limits count tasks and Convertly jobs together: 429 at maxConcurrentJobs, 402 past the monthly quota", async () => {
    const busy = await newKey({ maxConcurrentJobs: 1 });
    const f = await readyFile(busy);
    // A Convertly job (pending: no workers here) takes the key's one slot.
    const job = await request(app).post('/api/jobs').set('Authorization', `Bearer ${busy}`).field('format', 'webp').attach('files', png, 'a.png');
    expect(job.status).toBe(200);
    const before = await footprint();
    const r = await postTask(busy, taskBody(f));
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('5');
    expect(r.body.errors[0]).toMatchObject({ code: 'rate_limited', meta: { limit: 'maxConcurrentJobs', max: 1 } });
    expect(r.body.errors[0].source).toBeUndefined();
    expect(await footprint()).toEqual(before);

    const monthly = await newKey({ monthlyJobQuota: 1 });
    const g = await readyFile(monthly);
    expect((await postTask(monthly, taskBody(g))).status).toBe(201);
    const over = await postTask(monthly, taskBody(g));
    expect(over.status).toBe(402);
    expect(over.body.errors[0]).toMatchObject({ code: 'quota_exceeded', meta: { limit: 'monthlyJobQuota' } });
  });

  test('a format the key may not create is 403 naming allowedFormats; another key’s task is 404', async () => {
    const limited = await newKey({ allowedFormats: ['png'] });
    const own = await readyFile(limited);
    const before = await footprint();
    const r = await postTask(limited, taskBody(own));
    expect(r.status).toBe(403);
    expect(r.body.errors[0]).toMatchObject({ code: 'format_not_allowed', source: { pointer: '/data/attributes/format/output' }, meta: { limit: 'allowedFormats' } });
    expect(await footprint()).toEqual(before);

    const t = await postTask(key, taskBody(input));
    const stranger = await newKey();
    for (const p of [`/v1/tasks/${t.body.data.id}`, `/v1/files/${input}`, `/v1/tasks/${t.body.data.id}/input`]) {
      const other = await get(stranger, p);
      expect(other.status).toBe(404);
      expect(other.body.errors[0]).toMatchObject({ status: '404', code: 'not_found' });
    }
    expect((await get(stranger, '/v1/tasks')).body.data).toEqual([]);
  });
});

test("the operator dashboard's job list shows tasks as the jobs they are, marked as TurboFiles tasks", async () => {
  const k = await newKey();
  const t = await postTask(k, taskBody(await readyFile(k)));
  const form = await request(app).get('/dashboard/login');
  const login = ([] as string[])
    .concat(form.headers['set-cookie'] ?? [])
    .find((c) => c.startsWith('kiln_login='))!
    .split(';')[0]!;
  const signedIn = await request(app)
    .post('/dashboard/login')
    .set('Cookie', login)
    .type('form')
    .send({ _csrf: /name="_csrf" value="([^"]+)"/.exec(form.text)![1], password: 'operator password' });
  const session = ([] as string[])
    .concat(signedIn.headers['set-cookie'] ?? [])
    .find((c) => c.startsWith('kiln_session='))!
    .split(';')[0]!;
  const jobs = await request(app).get('/dashboard/jobs').set('Cookie', session);
  const row = new RegExp(`data-job-id="${t.body.data.id}"[\\s\\S]*?</tr>`).exec(jobs.text)?.[0];
  expect(row).toMatch(/convert <span class="muted">TurboFiles task<\/span>/);
});

describe('pagination', () => {
  let owner: string;
  let ids: string[];
  beforeAll(async () => {
    owner = await newKey();
    const file = await readyFile(owner);
    ids = [];
    // One file, 25 tasks: a file can feed any number of tasks until it expires.
    for (let i = 0; i < 25; i++) {
      const r = await postTask(owner, taskBody(file));
      expect(r.status).toBe(201);
      ids.push(r.body.data.id);
    }
    ids.reverse(); // newest first, as lists are
  }, 60_000);

  type ListBody = { data: { id: string }[]; links: { next: string | null; prev: string | null; self: string }; meta: { rangeTruncated: boolean } };
  const list = async (p: string) => {
    const r = await get(owner, p);
    expect(r.status).toBe(200);
    return r.body as ListBody;
  };

  test('25 tasks walked forwards by links.next and back by links.prev: every task once, newest first, no overlap or gap', async () => {
    const pages: ListBody[] = [];
    let next: string | null = '/v1/tasks?page[size]=10';
    while (next) {
      const page = await list(next.startsWith('http') ? pathOf(next) : next);
      pages.push(page);
      next = page.links.next;
    }
    expect(pages.map((p) => p.data.length)).toEqual([10, 10, 5]);
    expect(pages.flatMap((p) => p.data.map((t) => t.id))).toEqual(ids);
    expect(pages.map((p) => p.meta.rangeTruncated)).toEqual([true, true, false]);
    expect(pages[0]!.links.prev).toBeNull();

    const back: ListBody[] = [pages[2]!];
    let prev = pages[2]!.links.prev;
    while (prev) {
      const page = await list(pathOf(prev));
      back.unshift(page);
      prev = page.links.prev;
    }
    expect(back.map((p) => p.data.map((t) => t.id))).toEqual(pages.map((p) => p.data.map((t) => t.id)));
    // The page before the oldest five: page[before] from the last page holds exactly the ten above it.
    expect(back[1]!.meta.rangeTruncated).toBe(true);
  });

  test('a bare timestamp as the hosted links carry, nanoseconds included, is a cursor by time alone', async () => {
    const far = await list('/v1/tasks?page[after]=2999-01-01T00:00:00.123456789Z&page[size]=100');
    expect(far.data.map((t) => t.id)).toEqual(ids);
    const past = await list('/v1/tasks?page[before]=2000-01-01T00:00:00Z&page[size]=5');
    expect(past.data.map((t) => t.id)).toEqual(ids.slice(-5));
    expect(past.meta.rangeTruncated).toBe(true);
  });

  test('defaults to 10 per page, tasks of this key only, with their input files included once', async () => {
    const r = await get(owner, '/v1/tasks');
    expect(r.body.data.map((t: { id: string }) => t.id)).toEqual(ids.slice(0, 10));
    expect(r.body.included).toHaveLength(1);
    expect(r.body.links.next).toContain('page%5Bafter%5D=');
    const none = await get(owner, '/v1/tasks?include=');
    expect(none.body.included).toEqual([]);
  });

  test('a range between two cursors holds what lies between; more than page[size] of it is rangeTruncated', async () => {
    // The cursor of task i is what links.next carries after a one-task page ending at it.
    const cursorBefore = async (i: number) => {
      const page = await list(`/v1/tasks?page[size]=${i + 1}`);
      return new URL(page.links.next!).searchParams.get('page[after]')!;
    };
    const after2 = await cursorBefore(2); // after the third newest
    const after9 = await cursorBefore(9);
    const range = await list(`/v1/tasks?page[size]=3&page[after]=${encodeURIComponent(after2)}&page[before]=${encodeURIComponent(after9)}`);
    expect(range.data.map((t) => t.id)).toEqual(ids.slice(3, 6));
    expect(range.meta.rangeTruncated).toBe(true);
    const whole = await list(`/v1/tasks?page[size]=10&page[after]=${encodeURIComponent(after2)}&page[before]=${encodeURIComponent(after9)}`);
    expect(whole.data.map((t) => t.id)).toEqual(ids.slice(3, 9));
    expect(whole.meta.rangeTruncated).toBe(false);
  });

  test.each([
    ['page[size]=0', 'page[size]'],
    ['page[size]=101', 'page[size]'],
    ['page[size]=abc', 'page[size]'],
    ['page[size]=1&page[size]=2', 'page[size]'],
    ['page[after]=yesterday', 'page[after]'],
    ['page[before]=2024-02-30T00:00:00Z', 'page[before]'],
    ['page[after]=2024-11-22T16:20:28Z,not-a-uuid', 'page[after]'],
    ['page[number]=2', 'page[number]'],
    ['sort=created_at', 'sort'],
    ['include=owner', 'include'],
  ])('GET /v1/tasks?%s is 400 naming the parameter', async (query, parameter) => {
    const r = await get(owner, `/v1/tasks?${query}`);
    expect(r.status).toBe(400);
    expect(r.body.errors[0]).toMatchObject({ code: 'invalid_field', source: { parameter } });
  });

  test('GET /v1/files pages the same way over declared files and task results', async () => {
    const other = await newKey();
    const made: string[] = [];
    for (let i = 0; i < 3; i++) made.unshift((await declare(other, { format: 'png', size: 10 })).body.data.id);
    const r = await get(other, '/v1/files?page[size]=2');
    expect(r.body.data.map((f: { id: string }) => f.id)).toEqual(made.slice(0, 2));
    expect(r.body.meta.rangeTruncated).toBe(true);
    const rest = await get(other, pathOf(r.body.links.next));
    expect(rest.body.data.map((f: { id: string }) => f.id)).toEqual(made.slice(2));
    expect(rest.body.links.next).toBeNull();
  });
});

describe('JSON:API at the edge', () => {
  test('401 for a missing or unknown key, as an error document', async () => {
    for (const k of [null, 'kiln_not_a_key']) {
      const r = await get(k, '/v1/tasks');
      expect(r.status).toBe(401);
      expect(r.headers['content-type']).toBe(MT);
      expect(r.body).toEqual({
        jsonapi: { version: '1.1' },
        errors: [{ id: expect.any(String), status: '401', code: 'unauthorized', title: 'Unauthorized', detail: k ? 'Invalid API key.' : 'Missing API key.' }],
      });
      expect(r.body.errors[0].id).toBe(r.headers['x-request-id']);
    }
  });

  test('content negotiation: 415 for other body types or parameters on the JSON:API type, 406 when only a parameterised JSON:API type is accepted', async () => {
    const body = JSON.stringify({ data: { attributes: { format: 'png', size: 1 } } });
    for (const ct of ['text/plain', `${MT}; charset=utf-8`, `${MT}; ext="https://jsonapi.org/ext/atomic"`]) {
      const r = await postFiles({ 'Content-Type': ct }, body);
      expect(r.status).toBe(415);
      expect(r.body.errors[0]).toMatchObject({ code: 'unsupported_media_type', source: { header: 'Content-Type' } });
    }
    const none = await postFiles({});
    expect(none.status).toBe(415);
    const notAcceptable = await get(key, '/v1/tasks').set('Accept', `${MT}; version=2`);
    expect(notAcceptable.status).toBe(406);
    expect(notAcceptable.body.errors[0]).toMatchObject({ code: 'not_acceptable', source: { header: 'Accept' } });
    expect((await get(key, '/v1/tasks').set('Accept', `${MT}; profile="x", ${MT}; version=2`)).status).toBe(200);
  });

  test('a body over TURBOFILES_MAX_BODY_BYTES is 413 naming the setting; an unknown route is a JSON:API 404', async () => {
    const huge = JSON.stringify({ data: { attributes: { format: 'png', size: 1, pad: 'x'.repeat(70 * 1024) } } });
    const r = await postFiles({ 'Content-Type': MT }, huge);
    expect(r.status).toBe(413);
    expect(r.body.errors[0]).toMatchObject({ code: 'request_too_large', meta: { limit: 'TURBOFILES_MAX_BODY_BYTES' } });
    const nope = await get(key, '/v1/nothing-here');
    expect(nope.status).toBe(404);
    expect(nope.body.errors[0]).toMatchObject({ status: '404', code: 'not_found' });
  });

  test('a key with a rate limit sees X-Ratelimit-Limit and -Remaining on every response, errors included, and 429 with Retry-After past it', async () => {
    const limited = await newKey({ requestsPerMinute: 3 });
    // Fixed windows are per calendar minute: don't start in the last seconds of one.
    while (new Date().getSeconds() >= 55) await new Promise((r) => setTimeout(r, 250));
    const a = await get(limited, '/v1/users/me');
    expect(a.headers['x-ratelimit-limit']).toBe('3');
    expect(a.headers['x-ratelimit-remaining']).toBe('2');
    const b = await get(limited, '/v1/tasks/3c90c3cc-0d44-4b50-8888-8dd25736052a');
    expect(b.status).toBe(404);
    expect(b.headers['x-ratelimit-remaining']).toBe('1');
    await get(limited, '/v1/tasks');
    const over = await get(limited, '/v1/tasks');
    expect(over.status).toBe(429);
    expect(Number(over.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(over.headers['x-ratelimit-remaining']).toBe('0');
    expect(over.body.errors[0]).toMatchObject({ status: '429', code: 'rate_limited', meta: { limit: 'requestsPerMinute', max: 3 } });
    // Unlimited keys get no such headers.
    expect((await get(key, '/v1/users/me')).headers['x-ratelimit-limit']).toBeUndefined();
  });

  test('GET /v1/users/me: the key as a users resource, its limits and its usage this month', async () => {
    const k = await newKey({ monthlyJobQuota: 50, allowedFormats: ['webp'] });
    const f = await readyFile(k);
    await postTask(k, taskBody(f));
    const r = await get(k, '/v1/users/me');
    expect(r.status).toBe(200);
    expect(r.body.data).toMatchObject({
      type: 'users',
      attributes: {
        name: 'turbofiles test',
        limits: { monthly_task_quota: 50, allowed_formats: ['webp'], requests_per_minute: null, max_upload_bytes: 1024 ** 3, file_ttl_hours: 48 },
        usage: { jobs_this_month: 1, active_jobs: 1 },
      },
    });
    expect(r.body.links.self).toMatch(/\/v1\/users\/me$/);
  });

  test('a 500 says only that it happened and its request id, as the error id', async () => {
    const broken = express();
    const logged: unknown[] = [];
    broken.use((req, _res, next) => {
      req.requestId = 'req-123';
      // The request's own logger (request-context.ts binds its id): the cause must be logged through it.
      req.log = { ...createLogger('test', 'error'), error: (msg, fields) => void logged.push({ requestId: req.requestId, msg, fields }) };
      next();
    });
    broken.get('/boom', () => {
      throw new Error('secret internals: password=hunter2');
    });
    broken.use(jsonApiErrors(loadConfig({})));
    const r = await request(broken).get('/boom');
    expect(r.status).toBe(500);
    expect(r.body).toEqual({
      jsonapi: { version: '1.1' },
      errors: [
        {
          id: 'req-123',
          status: '500',
          code: 'internal_error',
          title: 'Internal Server Error',
          detail: 'Something went wrong on our side; it has been logged with request id req-123.',
          meta: { requestId: 'req-123' },
        },
      ],
    });
    expect(JSON.stringify(r.body)).not.toContain('hunter2');
    // The cause goes to the log, with the same request id.
    expect(logged).toEqual([
      { requestId: 'req-123', msg: 'unhandled error', fields: expect.objectContaining({ err: expect.objectContaining({ message: expect.stringContaining('hunter2') }) }) },
    ]);
  });

  test('GET /api/formats lists every MIME type and extension a format member may be given as, from the registry', async () => {
    const res = await request(app).get('/api/formats');
    const { inputs, outputs } = res.body.mediaTypes as { inputs: Record<string, string>; outputs: Record<string, string> };
    expect(inputs).toMatchObject({ 'image/png': 'png', 'image/jpeg': 'jpg', jpeg: 'jpg', 'video/quicktime': 'mov' });
    expect(outputs).toMatchObject({ 'image/webp': 'webp', 'application/gzip': 'gz', jpeg: 'jpg' });
    for (const [name, kind] of Object.entries(inputs)) expect(inputKindOf(name)).toBe(kind);
    for (const [name, format] of Object.entries(outputs)) expect(outputFormatOf(name)).toBe(format);
  });

  test('downloads of a declared file need its signed link, and serve what was uploaded', async () => {
    const id = await readyFile(key, jpeg, 'jpg');
    const f = await get(key, `/v1/files/${id}`);
    const u = new URL(f.body.data.links.download);
    const bad = await request(app).get(`${u.pathname}?exp=${u.searchParams.get('exp')}&sig=x`);
    expect(bad.status).toBe(404);
    const ok = await download(u.pathname + u.search);
    expect(ok.headers['content-type']).toBe('image/jpeg');
    expect(sniff(ok.body as Buffer)).toBe('jpg');
  });
});
