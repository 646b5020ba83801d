/**
 * GET /openapi.json and GET /docs through createApp on real Postgres: the document is valid OpenAPI
 * 3.1 (checked by @seriousme/openapi-schema-validator), names every route the Express app really
 * has and nothing else (the router stack is walked), covers the error catalog and the request
 * fields, and real answers of both dialects validate against it (ajv, JSON Schema 2020-12). The
 * reference page loads only files the gateway itself serves.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import request from 'supertest';
import sharp from 'sharp';
import { ERROR_STATUS, FILE_ERROR_CODES, TOOL_NAMES, TOOLS } from '@kiln/contracts';
import { buildOpenApiDocument, ROUTE_DOCS } from '../src/openapi/openapi.document.ts';
import { swaggerUiDir } from '../src/docs.routes.ts';
import { startTestGateway, type TestGateway } from './helpers.ts';
import { openApiChecker } from '../../../test/helpers/openapi.ts';

// biome-ignore lint/suspicious/noExplicitAny: a parsed JSON document, read by path.
type Doc = Record<string, any>;
/** One layer of Express's router stack (router@2): a route, or a mounted router with its own stack. */
interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  rawPath?: unknown;
}
const METHODS = ['get', 'post', 'put', 'delete', 'patch'] as const;

let gw: TestGateway;
let doc: Doc;
let png: Buffer;

beforeAll(async () => {
  gw = await startTestGateway('openapi', { ADMIN_PASSWORD: 'openapi-test-password' });
  doc = (await request(gw.app).get('/openapi.json').expect(200)).body;
  // The groups imported on their first request (lazy-router.ts): loaded now, so the walk below sees their routes.
  const stack = (gw.app as unknown as { router: { stack: Layer[] } }).router.stack;
  await Promise.all(stack.map((l) => (l.handle as { load?: () => Promise<unknown> } | undefined)?.load?.()));
  png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366ff' } })
    .png()
    .toBuffer();
}, 60_000);
afterAll(async () => {
  await gw?.close();
});

/** Every (method, route) the app answers, read from the router stack as Express itself holds it. */
function expressRoutes(app: TestGateway['app']): { method: string; route: string }[] {
  const out: { method: string; route: string }[] = [];
  const join = (a: string, b: string) => `${a}/${b}`.replace(/\/+/g, '/').replace(/(.)\/$/, '$1');
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const [method, on] of Object.entries(layer.route.methods)) {
          if (on && method !== '_all') out.push({ method, route: join(prefix, layer.route.path) });
        }
      } else if (layer.handle && Array.isArray(layer.handle.stack)) {
        if (typeof layer.rawPath !== 'string') throw new Error(`A router mounted at ${String(layer.rawPath)}: teach this walk about it.`);
        walk(layer.handle.stack, join(prefix, layer.rawPath));
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return out;
}

/** Whether an Express route pattern (`/api/jobs/:id`) matches a path. */
const matches = (pattern: string, p: string) => new RegExp(`^${pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z_]\w*/g, '[^/]+')}$`).test(p);

function operations(d: Doc): { method: string; path: string; op: Doc }[] {
  return Object.entries(d.paths as Doc).flatMap(([p, item]) => METHODS.filter((m) => item[m]).map((m) => ({ method: m, path: p, op: item[m] })));
}

test('the served document is valid OpenAPI 3.1 and is the one generated from the route docs', async () => {
  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  expect(result.errors ?? []).toEqual([]);
  expect(result.valid).toBe(true);
  expect(validator.version).toBe('3.1');
  expect(doc).toEqual(JSON.parse(JSON.stringify(buildOpenApiDocument(ROUTE_DOCS, doc.info.version))));
  expect(doc.info.version).toBe(JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '..', 'package.json'), 'utf8')).version);
});

test('every Express route is in the document, and every operation in it is an Express route', () => {
  const routes = expressRoutes(gw.app);
  // The walk sees the routers that matter: both dialects, the dashboard, the reference itself.
  for (const expected of ['/api/jobs/:id', '/v1/tasks/:id/relationships/output', '/dashboard/api/jobs', '/docs/assets/:file', '/api/media/:tool']) {
    expect(routes.map((r) => r.route)).toContain(expected);
  }
  const ops = operations(doc);
  // As a path value: `{id}` stands for any segment.
  const asPath = (p: string) => p.replace(/\{[^}]+\}/g, 'x');
  const undocumented = routes.filter((r) => !ops.some((o) => o.method === r.method && matches(r.route, asPath(o.path))));
  const notRoutes = ops.filter((o) => !routes.some((r) => r.method === o.method && matches(r.route, asPath(o.path))));
  expect(undocumented).toEqual([]);
  expect(notRoutes.map((o) => `${o.method} ${o.path}`)).toEqual([]);
  // Each route doc names a route that exists as written, and the one media route is one path per tool.
  for (const d of ROUTE_DOCS) expect(routes).toContainEqual({ method: d.method, route: d.route });
  const mediaPaths = ops.filter((o) => o.path.startsWith('/api/media/')).map((o) => o.path);
  expect(mediaPaths.sort()).toEqual(TOOL_NAMES.map((t) => `/api/media/${t}`).sort());
  expect(new Set(ops.map((o) => o.op.operationId)).size).toBe(ops.length);
});

test('every error code of the catalog is documented with its status, and the file error codes with results', () => {
  const answered = new Map<string, Set<string>>();
  for (const { op } of operations(doc)) {
    for (const [status, r] of Object.entries(op.responses as Doc)) {
      for (const media of Object.values((r.content ?? {}) as Doc)) {
        const codeSchema = media.schema?.properties?.code ?? media.schema?.properties?.errors?.items?.properties?.code;
        for (const code of codeSchema?.enum ?? []) answered.set(code, (answered.get(code) ?? new Set()).add(status));
      }
    }
  }
  for (const [code, status] of Object.entries(ERROR_STATUS)) {
    expect([code, [...(answered.get(code) ?? [])]]).toEqual([code, [String(status)]]);
  }
  expect(doc.components.schemas.ErrorCode.enum).toEqual(Object.keys(ERROR_STATUS));
  expect(doc.components.schemas.FileError.properties.code.enum).toEqual([...FILE_ERROR_CODES]);
});

test('request fields: the job forms list every multipart field, each tool its options and input parts', () => {
  const props = (name: string) => Object.keys(doc.components.schemas[name].properties);
  const jobFields = ['files', 'format', 'formats', 'resize', 'resizes', 'resizeWidth', 'resizeWidths', 'resizeHeight', 'resizeHeights', 'compression', 'quality', 'compressions'];
  const more = [
    'autoOrient',
    'autoOrients',
    'mono',
    'monos',
    'mode',
    'modes',
    'targetBytes',
    'targetByteValues',
    'lossless',
    'losslessValues',
    'stripMetadata',
    'stripMetadataValues',
  ];
  expect(props('CreateJobRequest')).toEqual(expect.arrayContaining([...jobFields, ...more, 'jobType', 'createArchive', 'saveToStorage', 'sourceUrl', 'sourceUrls']));
  expect(props('CompressRequest')).toEqual(expect.arrayContaining([...jobFields, ...more]));
  expect(props('ConvertRequest')).not.toContain('targetBytes');
  expect(doc.components.schemas.CreateJobRequest.properties.compression).toMatchObject({ type: 'integer', minimum: 1, maximum: 100, default: 82 });
  for (const tool of TOOL_NAMES) {
    const op = doc.paths[`/api/media/${tool}`].post;
    if (TOOLS[tool].unavailable) {
      expect(Object.keys(op.responses)).toContain('501');
      continue;
    }
    const body = op.requestBody.content['multipart/form-data'].schema;
    expect(Object.keys(body.properties)).toEqual(expect.arrayContaining([...Object.keys(TOOLS[tool].options.shape), 'file', 'sourceUrl', 'async']));
  }
  expect(doc.paths['/api/media/thumbnail'].post.requestBody.content['multipart/form-data'].schema.properties.width).toMatchObject({ type: 'integer', default: 512 });
  expect(doc.paths['/api/jobs'].get.parameters.map((p: Doc) => p.name)).toEqual(['limit', 'offset', 'status', 'after']);
});

// ---- real answers against the document ----

let checker: ReturnType<typeof openApiChecker> | undefined;
/** Fails unless the document has this status and content type for the operation and the body validates against its schema. */
function expectDocumented(method: string, docPath: string, res: request.Response): void {
  checker ??= openApiChecker(doc);
  expect(() => checker!(method, docPath, { status: res.status, contentType: res.headers['content-type'], body: res.body })).not.toThrow();
}

test('Convertly answers, errors included, are what the document says', async () => {
  const { app, key } = gw;
  const auth = { Authorization: `Bearer ${key}` };
  const check = async (method: 'get' | 'post' | 'delete', url: string, docPath: string, status: number, build?: (r: request.Test) => request.Test) => {
    let r = request(app)[method](url).set(auth);
    if (build) r = build(r);
    const res = await r;
    expect([url, res.status]).toEqual([url, status]);
    expectDocumented(method, docPath, res);
    return res;
  };
  await check('get', '/api/formats', '/api/formats', 200);
  await check('get', '/api/media', '/api/media', 200);
  await check('get', '/healthz', '/healthz', 200);
  const ready = await request(app).get('/readyz');
  expectDocumented('get', '/readyz', ready);
  const created = await check('post', '/api/jobs', '/api/jobs', 200, (r) => r.attach('files', png, 'a.png').field('format', 'webp').field('resize', 'website'));
  const jobId = created.body.jobId as string;
  await check('get', `/api/jobs/${jobId}`, '/api/jobs/{id}', 200);
  await check('get', '/api/jobs?limit=5', '/api/jobs', 200);
  await check('delete', `/api/jobs/${jobId}`, '/api/jobs/{id}', 200);
  await check('delete', `/api/jobs/${jobId}`, '/api/jobs/{id}', 409);
  await check('get', '/api/jobs?limit=0', '/api/jobs', 400);
  await check('get', `/api/jobs/${crypto.randomUUID()}`, '/api/jobs/{id}', 404);
  await check('post', '/api/jobs', '/api/jobs', 400, (r) => r.attach('files', png, 'a.png').field('format', 'bmp'));
  await check('post', '/api/media/thumbnail', '/api/media/thumbnail', 200, (r) => r.attach('file', png, 'a.png').field('async', 'true'));
  await check('post', '/api/media/remove-background', '/api/media/remove-background', 501, (r) => r.attach('file', png, 'a.png'));
  await check('get', `/api/files/${crypto.randomUUID()}?exp=1&sig=x`, '/api/files/{id}', 404);
  await check('post', '/api/jobs', '/api/jobs', 415, (r) => r.attach('files', Buffer.from('just some text, no format at all'), 'a.txt').field('format', 'png'));
  await check('post', '/api/convert', '/api/convert', 400, (r) => r.send({ files: [] }));
  await check('post', '/api/media/trim', '/api/media/trim', 415, (r) => r.attach('file', png, 'a.png'));
  await check('post', '/api/media/nope', '/api/media/thumbnail', 404, (r) => r.attach('file', png, 'a.png'));
  const anonymous = await request(app).get('/api/jobs');
  expect(anonymous.status).toBe(401);
  expectDocumented('get', '/api/jobs', anonymous);
  const metrics = await request(app).get('/metrics');
  expect(metrics.status).toBe(200);
  expectDocumented('get', '/metrics', { ...metrics, body: metrics.text } as request.Response);
});

test('TurboFiles answers, errors included, are what the document says', async () => {
  const { app, key } = gw;
  const j = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/vnd.api+json' };
  const declared = await request(app)
    .post('/v1/files')
    .set(j)
    .send(JSON.stringify({ data: { type: 'files', attributes: { format: 'image/png', size: png.length } } }));
  expect(declared.status).toBe(201);
  expectDocumented('post', '/v1/files', declared);
  const fileId = declared.body.data.id as string;
  expectDocumented('get', '/v1/files/{id}', await request(app).get(`/v1/files/${fileId}`).set(j));
  const early = await request(app)
    .post('/v1/tasks')
    .set(j)
    .send(JSON.stringify({ data: { type: 'tasks', attributes: { format: { input: 'png', output: 'webp' } }, relationships: { input: { data: { type: 'files', id: fileId } } } } }));
  expect(early.status).toBe(409);
  expectDocumented('post', '/v1/tasks', early);
  const upload = new URL(declared.body.data.links.upload);
  const put = await request(app)
    .put(upload.pathname + upload.search)
    .set('Content-Type', 'application/octet-stream')
    .send(png);
  expect(put.status).toBe(200);
  expectDocumented('put', '/v1/files/{id}/upload', put);
  const task = await request(app)
    .post('/v1/tasks')
    .set(j)
    .send(
      JSON.stringify({
        data: {
          type: 'tasks',
          attributes: { format: { input: 'png', output: 'webp' }, settings: { resize: { width: 32 } } },
          relationships: { input: { data: { type: 'files', id: fileId } } },
        },
      }),
    );
  expect(task.status).toBe(201);
  expectDocumented('post', '/v1/tasks', task);
  const taskId = task.body.data.id as string;
  for (const [url, docPath] of [
    [`/v1/tasks/${taskId}`, '/v1/tasks/{id}'],
    ['/v1/tasks', '/v1/tasks'],
    ['/v1/files', '/v1/files'],
    [`/v1/tasks/${taskId}/input`, '/v1/tasks/{id}/input'],
    [`/v1/tasks/${taskId}/output`, '/v1/tasks/{id}/output'],
    [`/v1/tasks/${taskId}/relationships/input`, '/v1/tasks/{id}/relationships/input'],
    ['/v1/users/me', '/v1/users/me'],
    ['/v1/files?page[size]=500', '/v1/files'],
  ] as const) {
    expectDocumented('get', docPath, await request(app).get(url).set(j));
  }
  const anonymous = await request(app).get('/v1/files');
  expect(anonymous.status).toBe(401);
  expectDocumented('get', '/v1/files', anonymous);
  const refusals = [
    [
      await request(app)
        .put(upload.pathname + upload.search)
        .set('Content-Type', 'application/octet-stream')
        .send(png),
      'put',
      '/v1/files/{id}/upload',
      409,
    ],
    [
      await request(app)
        .post('/v1/files')
        .set(j)
        .send(JSON.stringify({ data: { type: 'files', id: 'mine', attributes: { format: 'png', size: 1 } } })),
      'post',
      '/v1/files',
      403,
    ],
    [
      await request(app)
        .post('/v1/files')
        .set(j)
        .send(JSON.stringify({ data: { type: 'files', attributes: { format: 'png', size: 1, colour: 'red' } } })),
      'post',
      '/v1/files',
      400,
    ],
    [
      await request(app)
        .post('/v1/files')
        .set({ ...j, 'Content-Type': 'text/plain' })
        .send('{}'),
      'post',
      '/v1/files',
      415,
    ],
    [
      await request(app)
        .get('/v1/files')
        .set({ ...j, Accept: 'application/vnd.api+json; ext="bulk"' }),
      'get',
      '/v1/files',
      406,
    ],
    [await request(app).get('/v1/files?sort=name').set(j), 'get', '/v1/files', 400],
    [await request(app).get(`/v1/tasks/${crypto.randomUUID()}`).set(j), 'get', '/v1/tasks/{id}', 404],
  ] as const;
  for (const [res, method, docPath, status] of refusals) {
    expect([docPath, res.status]).toEqual([docPath, status]);
    expectDocumented(method, docPath, res);
  }
  const second = await request(app)
    .post('/v1/files')
    .set(j)
    .send(JSON.stringify({ data: { type: 'files', attributes: { format: 'image/png', size: png.length + 1 } } }));
  const wrongSize = new URL(second.body.data.links.upload);
  const mismatch = await request(app)
    .put(wrongSize.pathname + wrongSize.search)
    .set('Content-Type', 'application/octet-stream')
    .send(png);
  expect(mismatch.status).toBe(400);
  expectDocumented('put', '/v1/files/{id}/upload', mismatch);
});

test('/docs renders the document with files the gateway serves itself: no CDN, nothing from another origin', async () => {
  const page = await request(gw.app).get('/docs').expect(200);
  expect(page.headers['content-type']).toMatch(/^text\/html/);
  expect(page.headers['content-security-policy']).toMatch(/default-src 'none'/);
  expect(page.headers['content-security-policy']).toMatch(/script-src 'self';/);
  const refs = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  expect(refs).toEqual(expect.arrayContaining(['/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css', '/docs/assets/docs.js']));
  for (const ref of refs) {
    expect(ref).toMatch(/^\/(?!\/)/);
    const res = await request(gw.app).get(ref).buffer(true);
    expect([ref, res.status]).toEqual([ref, 200]);
  }
  const bundle = await request(gw.app)
    .get('/docs/assets/swagger-ui-bundle.js')
    .buffer(true)
    .parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    });
  expect(Buffer.compare(bundle.body as Buffer, fs.readFileSync(path.join(swaggerUiDir(), 'swagger-ui-bundle.js')))).toBe(0);
  const init = await request(gw.app).get('/docs/assets/docs.js');
  expect(init.text).toContain("url: '/openapi.json'");
  expect(init.text).toContain('validatorUrl: null');
  expect((await request(gw.app).get('/docs/assets/..%2Fpackage.json')).status).toBe(404);
  expect((await request(gw.app).get('/docs/assets/index.html')).status).toBe(404);
});
