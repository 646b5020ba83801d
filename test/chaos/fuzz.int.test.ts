/**
 * Hostile requests against real gateway and worker processes (127.0.0.1 only): a multipart fuzzer
 * (random fields, names, lengths and JSON, bodies cut short under a correct Content-Length, clients
 * that hang up mid-part, missing and wrong boundaries, malformed part headers, huge fields, random
 * bytes) on every multipart route, and a JSON:API fuzzer on TurboFiles' /v1 routes. Seeded: the
 * seed is printed, and KILN_FUZZ_SEED=<seed> replays a run. Bounded: a few hundred requests.
 *
 * What must hold: no answer is ≥ 500 and none hangs; afterwards the gateway holds no more
 * descriptors than before and none into DATA_DIR, blobs/.tmp is as empty as it started, no empty
 * jobs/<id> folder is left by a refused upload, and /healthz still answers.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { fuzzSeed, listTree, multipartBody, openFds, randomJson, rawRequest, Rng, type MultipartPart, type RawRequest } from '../helpers/fuzz.ts';
import { photo } from '../helpers/images.ts';
import { startKiln, until, type Kiln } from '../helpers/kiln.ts';
import { JSONAPI } from '../helpers/turbofiles.ts';

const MAX_FIELD_BYTES = 4096;
const MAX_UPLOAD_BYTES = 256 * 1024;
const MAX_FILES = 4;
const REQUESTS = { multipart: 240, jsonapi: 120 };
const CONCURRENCY = 4;

const seed = fuzzSeed();
let kiln: Kiln;
let gatewayPid: number;
let png: Buffer;
const blobs = () => path.join(kiln.dataDir, 'blobs');

beforeAll(async () => {
  console.log(`fuzz seed ${seed} (replay: KILN_FUZZ_SEED=${seed})`);
  kiln = await startKiln({
    env: {
      MAX_FIELD_BYTES: String(MAX_FIELD_BYTES),
      MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
      MAX_FILES_PER_JOB: String(MAX_FILES),
      SYNC_TIMEOUT_SECONDS: '5',
      CONVERT_CONCURRENCY: '1',
      COMPRESS_CONCURRENCY: '1',
    },
  });
  gatewayPid = kiln.procs.get('gateway')!.pid!;
  png = await photo(24, 16, { format: 'png' });
}, 120_000);

afterAll(async () => {
  await kiln?.stop();
});

const auth = () => ({ Authorization: `Bearer ${kiln.key}` });
const MULTIPART_ROUTES = ['/api/jobs', '/api/convert', '/api/compress', '/api/media/thumbnail', '/api/media/inspect', '/api/media/watermark', '/api/media/nope'];
const FIELD_NAMES = [
  'format',
  'formats',
  'jobType',
  'files',
  'files[0]',
  'files[1]',
  'files[]',
  'file',
  'quality',
  'resize',
  'resizeWidth',
  'options',
  'sourceUrl',
  'createArchive',
  'x',
];

function randomPart(rng: Rng): MultipartPart {
  if (rng.chance(0.45)) {
    const data = rng.pick([() => png, () => rng.bytes(rng.int(0, 2048)), () => Buffer.alloc(0), () => Buffer.concat([png.subarray(0, rng.int(0, png.length)), rng.bytes(64)])])();
    return {
      name: rng.chance(0.8) ? rng.pick(['files', 'files[0]', 'files[1]', 'file', 'watermarkFile']) : rng.text(rng.int(0, 20)),
      filename: rng.chance(0.9) ? rng.pick(['a.png', 'upload', '../../etc/passwd', '', rng.text(rng.int(1, 60))]) : undefined,
      contentType: rng.pick(['image/png', 'application/octet-stream', undefined, rng.text(10)]),
      data,
    };
  }
  const value = rng.pick([
    () => rng.pick(['png', 'webp', 'jpg', 'mp4', 'zip', 'convert', 'compress', 'true', 'false', '']),
    () => JSON.stringify(randomJson(rng)),
    () => rng.text(rng.int(0, 200)),
    () => String(rng.int(-5, 100_000)),
  ])();
  return { name: rng.chance(0.85) ? rng.pick(FIELD_NAMES) : rng.text(rng.int(0, 30)), data: value };
}

/** One hostile multipart request, and a label for the report. */
function multipartCase(rng: Rng): { kind: string; req: RawRequest } {
  const route = rng.pick(MULTIPART_ROUTES);
  const boundary = rng.chance(0.9) ? `----kiln${rng.int(0, 1e9)}` : rng.text(rng.int(1, 70)).replace(/[\r\n]/g, '');
  const parts = Array.from({ length: rng.int(0, 6) }, () => randomPart(rng));
  const headers = (body: Buffer, ct = `multipart/form-data; boundary=${boundary}`): Record<string, string> => ({
    ...auth(),
    'Content-Type': ct,
    'Content-Length': String(body.length),
  });
  const kind = rng.pick([
    'valid',
    'valid',
    'random',
    'random',
    'cut',
    'hangup',
    'no-boundary',
    'wrong-boundary',
    'bad-header',
    'huge-field',
    'huge-file',
    'many-parts',
    'bytes',
    'not-multipart',
  ]);
  const post = (body: Buffer, h: Record<string, string>, extra: Partial<RawRequest> = {}) => ({ kind, req: { method: 'POST', path: route, headers: h, body, ...extra } });
  switch (kind) {
    case 'cut': {
      // A correct Content-Length for a body that stops before the closing boundary.
      const full = multipartBody(boundary, [...parts, { name: 'files', filename: 'a.png', data: rng.bytes(rng.int(1000, 60_000)) }]);
      const body = full.subarray(0, rng.int(1, full.length - 1));
      return post(body, headers(body));
    }
    case 'hangup': {
      const full = multipartBody(boundary, [
        { name: 'format', data: 'webp' },
        { name: 'files', filename: 'a.png', data: Buffer.concat([png, rng.bytes(rng.int(20_000, 200_000))]) },
        ...parts,
      ]);
      return post(full, headers(full), { sendBytes: rng.int(1, full.length - 1) });
    }
    case 'no-boundary': {
      const body = multipartBody(boundary, parts);
      return post(body, headers(body, rng.pick(['multipart/form-data', 'multipart/form-data;', 'multipart/form-data; boundary=', 'multipart/form-data; charset=utf-8'])));
    }
    case 'wrong-boundary': {
      const body = multipartBody(`${boundary}x`, [...parts, { name: 'files', filename: 'a.png', data: png }]);
      return post(body, headers(body));
    }
    case 'bad-header': {
      const garbage = rng.pick(['garbage-without-colon\r\n', 'Content-Disposition\r\n', `${rng.text(300)}\r\n`, 'Content-Disposition: form-data; name\r\n', ':\r\n']);
      const at = rng.int(0, parts.length);
      const bad = [...parts.slice(0, at), { name: 'x', data: rng.bytes(rng.int(0, 5000)), rawHeaders: garbage }, ...parts.slice(at)];
      const body = multipartBody(boundary, bad);
      return post(body, headers(body));
    }
    case 'huge-field': {
      const body = multipartBody(boundary, [
        ...parts,
        rng.chance(0.5) ? { name: 'format', data: 'x'.repeat(MAX_FIELD_BYTES + rng.int(1, 50_000)) } : { name: 'y'.repeat(rng.int(200, 5000)), data: 'png' },
      ]);
      return post(body, headers(body));
    }
    case 'huge-file': {
      const body = multipartBody(boundary, [
        { name: 'format', data: 'webp' },
        { name: 'files', filename: 'a.png', data: Buffer.concat([png, rng.bytes(MAX_UPLOAD_BYTES + rng.int(1, 100_000))]) },
      ]);
      return post(body, headers(body));
    }
    case 'many-parts': {
      const many = Array.from({ length: rng.int(MAX_FILES + 1, 260) }, (_, i) =>
        rng.chance(0.5) ? { name: `files[${i}]`, filename: `${i}.png`, data: png } : { name: `f${i}`, data: String(i) },
      );
      const body = multipartBody(boundary, many);
      return post(body, headers(body));
    }
    case 'bytes': {
      const body = rng.bytes(rng.int(0, 20_000));
      return post(body, headers(body));
    }
    case 'not-multipart': {
      const body = Buffer.from(rng.chance(0.5) ? JSON.stringify(randomJson(rng)) : rng.text(rng.int(0, 500)));
      return post(body, headers(body, rng.pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded', JSONAPI, ''])));
    }
    case 'valid': {
      // A request that should be taken, with some harmless noise: the workers get real work too.
      const noise = Array.from({ length: rng.int(0, 3) }, () => ({ name: rng.pick(['quality', 'resize', 'x', 'note']), data: rng.pick(['80', 'email', rng.text(10)]) }));
      const body = multipartBody(boundary, [
        { name: 'format', data: rng.pick(['webp', 'jpg', 'png', 'avif']) },
        ...noise,
        { name: 'files', filename: 'a.png', contentType: 'image/png', data: png },
      ]);
      return { kind, req: { method: 'POST', path: rng.pick(['/api/jobs', '/api/convert']), headers: headers(body), body } };
    }
    default: {
      const body = multipartBody(boundary, parts, { close: rng.chance(0.9) });
      return post(body, headers(body));
    }
  }
}

function jsonapiCase(rng: Rng, known: { fileId?: string }): { kind: string; req: RawRequest } {
  const id = rng.pick([known.fileId ?? '00000000-0000-4000-8000-000000000000', 'not-a-uuid', rng.text(40), '..%2F..%2Fetc', '00000000-0000-4000-8000-000000000000']);
  const route = rng.pick([
    ['POST', '/v1/files'],
    ['POST', '/v1/tasks'],
    ['GET', '/v1/files'],
    ['GET', `/v1/files/${encodeURIComponent(id)}`],
    ['DELETE', `/v1/files/${encodeURIComponent(id)}`],
    ['GET', '/v1/tasks'],
    ['GET', `/v1/tasks/${encodeURIComponent(id)}`],
    ['PUT', `/v1/files/${encodeURIComponent(id)}/upload?exp=${rng.int(0, 2e9)}&sig=${rng.text(20)}`],
    ['GET', '/v1/users/me'],
  ] as const);
  const query = rng.chance(0.3)
    ? `${route[1].includes('?') ? '&' : '?'}${rng.pick(['page[size]', 'page[after]', 'include', 'fields[files]', rng.text(6)])}=${encodeURIComponent(rng.text(rng.int(0, 30)))}`
    : '';
  const doc = rng.pick([
    () => ({
      data: {
        type: 'tasks',
        attributes: { format: { input: 'image/png', output: rng.pick(['image/webp', 'image/jpeg', 'image/avif']) }, ...(rng.chance(0.2) ? { settings: randomJson(rng) } : {}) },
        relationships: { input: { data: { type: 'files', id: known.fileId } } },
      },
    }),
    () => randomJson(rng),
    () => ({ data: { type: rng.pick(['files', 'tasks', rng.text(5)]), attributes: randomJson(rng) } }),
    () => ({ data: { type: 'files', attributes: { format: rng.pick(['png', 'image/png', 'mp4', rng.text(8)]), size: rng.pick([1, 0, -1, 1e12, 2 ** 53, 'x', 1024]) } } }),
    () => ({
      data: {
        type: 'tasks',
        attributes: { format: { input: rng.pick(['image/png', rng.text(5)]), output: rng.pick(['image/webp', 'video/mp4', rng.text(5)]) }, settings: randomJson(rng) },
        relationships: { input: { data: { type: 'files', id } } },
      },
    }),
  ])();
  let body = Buffer.from(JSON.stringify(doc));
  if (rng.chance(0.15)) body = body.subarray(0, rng.int(0, body.length)); // broken JSON
  if (rng.chance(0.05)) body = Buffer.from(JSON.stringify({ data: { type: 'files', attributes: { filename: 'x'.repeat(rng.int(100_000, 3_000_000)) } } }));
  const headers: Record<string, string> = {
    ...(rng.chance(0.9) ? auth() : rng.chance(0.5) ? { Authorization: `Bearer ${rng.text(30)}` } : {}),
    'Content-Type': rng.pick([JSONAPI, JSONAPI, JSONAPI, 'application/json', `${JSONAPI}; ext=foo`, 'text/plain', 'multipart/form-data']),
    ...(rng.chance(0.3) ? { Accept: rng.pick([JSONAPI, `${JSONAPI}; profile="x"`, 'text/html', '*/*']) } : {}),
  };
  const withBody = route[0] !== 'GET' && route[0] !== 'DELETE';
  if (withBody) headers['Content-Length'] = String(body.length);
  const cut = withBody && rng.chance(0.1) ? { sendBytes: rng.int(0, body.length) } : {};
  return {
    kind: `${route[0]} ${route[1].replace(/\/[0-9a-f-]{36}|\/[^/?]{20,}/g, '/:id').split('?')[0]}`,
    req: { method: route[0], path: route[1] + query, headers, ...(withBody ? { body } : {}), ...cut },
  };
}

interface Outcome {
  kind: string;
  status: number | undefined;
  body: string;
  code: string | undefined;
  headers: Record<string, string>;
  hungUp: boolean;
}

async function runAll(cases: { kind: string; req: RawRequest }[]): Promise<Outcome[]> {
  const out: Outcome[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        // A hang is a finding too: rawRequest rejects after 30 s without an answer.
        const r = await rawRequest(kiln.url, c.req, 30_000);
        out.push({
          kind: c.kind,
          status: r.status,
          body: r.body.slice(0, 300),
          code: /"code":"([a-z_]+)"/.exec(r.body)?.[1],
          headers: r.headers,
          hungUp: c.req.sendBytes !== undefined,
        });
      }
    }),
  );
  return out;
}

/** The gateway's state that must come back: descriptors, temporary files, job folders. */
async function snapshot() {
  const fds = await openFds(gatewayPid);
  return { fds: fds.length, intoData: fds.filter((f) => f.startsWith(kiln.dataDir)), tmp: await listTree(path.join(blobs(), '.tmp')) };
}

/** jobs/<id> folders no job owns: what a refused upload used to leave (empty, or with its parts). */
async function orphanJobFolders(): Promise<string[]> {
  const ids = await fs.readdir(path.join(blobs(), 'jobs')).catch(() => [] as string[]);
  if (!ids.length) return [];
  const c = new pg.Client({ connectionString: kiln.db.url });
  await c.connect();
  try {
    const { rows } = await c.query<{ id: string }>('SELECT id::text FROM jobs WHERE id::text = ANY($1)', [ids]);
    const owned = new Set(rows.map((r) => r.id));
    return ids.filter((id) => !owned.has(id));
  } finally {
    await c.end();
  }
}

/** Waits until every job has finished, so the workers' scratch folders are gone too. */
async function settled(): Promise<void> {
  await until(
    'every job to finish',
    async () => {
      const c = new pg.Client({ connectionString: kiln.db.url });
      await c.connect();
      try {
        const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM jobs WHERE status IN ('pending', 'processing')`);
        return Number(rows[0]!.n) === 0;
      } finally {
        await c.end();
      }
    },
    120_000,
    500,
  );
}

function report(outcomes: Outcome[]): string {
  const byKind = new Map<string, Map<string, number>>();
  for (const o of outcomes) {
    const m = byKind.get(o.kind) ?? new Map<string, number>();
    const s = o.status === undefined ? (o.hungUp ? 'client hung up' : 'no answer') : String(o.status);
    m.set(s, (m.get(s) ?? 0) + 1);
    byKind.set(o.kind, m);
  }
  return [...byKind.entries()]
    .sort()
    .map(([k, m]) => `${k}: ${[...m.entries()].map(([s, n]) => `${s}×${n}`).join(' ')}`)
    .join('\n');
}

async function expectBackToStart(before: Awaited<ReturnType<typeof snapshot>>): Promise<void> {
  await settled();
  // Descriptors close asynchronously after the last answer: wait on a deadline, then assert.
  const after = await until(
    'the gateway to hold no more descriptors than before',
    async () => {
      const s = await snapshot();
      return s.fds <= before.fds && s.intoData.length === 0 && s.tmp.length === 0 ? s : undefined;
    },
    20_000,
    200,
  ).catch(async () => snapshot());
  console.log(`gateway descriptors: ${before.fds} before, ${after.fds} after; blobs/.tmp entries after: ${after.tmp.length}`);
  expect({ intoData: after.intoData, tmp: after.tmp }).toEqual({ intoData: [], tmp: [] });
  expect(after.fds).toBeLessThanOrEqual(before.fds);
  expect(await orphanJobFolders()).toEqual([]);
  const health = await fetch(`${kiln.url}/healthz`);
  expect(health.status).toBe(200);
}

/** Requests that open what the gateway keeps open anyway (pool connections, lazy modules), before the baseline. */
async function warmUp(): Promise<void> {
  const rng = new Rng(1);
  await runAll(Array.from({ length: 12 }, () => multipartCase(rng)));
  await settled();
}

test('the multipart fuzzer gets no 5xx and leaves no descriptor, temporary file or empty job folder behind', async () => {
  await warmUp();
  const before = await snapshot();
  expect(before.tmp).toEqual([]);
  const rng = new Rng(seed);
  const outcomes = await runAll(Array.from({ length: REQUESTS.multipart }, () => multipartCase(rng)));
  console.log(`multipart fuzz (seed ${seed}), ${outcomes.length} requests:\n${report(outcomes)}`);
  const bad = outcomes.filter((o) => o.status !== undefined && o.status >= 500);
  expect(bad).toEqual([]);
  // Only a client that hung up itself may go without an answer.
  expect(outcomes.filter((o) => o.status === undefined && !o.hungUp)).toEqual([]);
  // Every refusal is a sentence with a code.
  expect(outcomes.filter((o) => o.status !== undefined && o.status >= 400 && !o.code)).toEqual([]);
  await expectBackToStart(before);
  // A client that went away is not an error of ours.
  expect(kiln.logs()).not.toMatch(/"msg":"unhandled error"/);
}, 300_000);

test('the JSON:API fuzzer on /v1 gets no 5xx and leaves the gateway as it was', async () => {
  // One real declared file, so some requests aim at an id that exists.
  const declared = await kiln.api('/v1/files', {
    method: 'POST',
    headers: { 'Content-Type': JSONAPI },
    body: JSON.stringify({ data: { type: 'files', attributes: { format: 'png', size: png.length } } }),
  });
  expect(declared.status).toBe(201);
  const file = ((await declared.json()) as { data: { id: string; links: { upload: string } } }).data;
  const put = await fetch(file.links.upload, { method: 'PUT', body: new Uint8Array(png) });
  expect(put.status).toBe(200);
  const known = { fileId: file.id };
  const before = await snapshot();
  const rng = new Rng(seed ^ 0x5f5f);
  const outcomes = await runAll(Array.from({ length: REQUESTS.jsonapi }, () => jsonapiCase(rng, known)));
  console.log(`JSON:API fuzz (seed ${seed}), ${outcomes.length} requests:\n${report(outcomes)}`);
  expect(outcomes.filter((o) => o.status !== undefined && o.status >= 500)).toEqual([]);
  expect(outcomes.filter((o) => o.status === undefined && !o.hungUp)).toEqual([]);
  await expectBackToStart(before);
  expect(kiln.logs()).not.toMatch(/"msg":"unhandled error"/);
}, 300_000);
