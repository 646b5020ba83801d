/**
 * Route groups the gateway imports on their first request (lazy-router.ts): the TurboFiles dialect,
 * the dashboard and the OpenAPI document. On a fresh gateway the first request to each — several at
 * once, too — is answered exactly as a request to a loaded group is; a failed import answers 500 and
 * the next request tries again. And the modules the upload path never needs are not loaded when the
 * gateway's own modules are (a child process records every module Node loads).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import express, { Router } from 'express';
import request from 'supertest';
import { createApp } from '../src/app.ts';
import { errorHandler } from '../src/errors.ts';
import { lazyRouter, type LazyRouter } from '../src/lazy-router.ts';
import { startTestGateway, type TestGateway } from './helpers.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const MT = 'application/vnd.api+json';
const PASSWORD = 'lazy routes password';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway('lazy', { ADMIN_PASSWORD: PASSWORD, PUBLIC_URL: 'http://kiln.test' });
}, 60_000);
afterAll(async () => {
  await gw?.close();
});

/** The app's lazily mounted groups, by mount path, as Express holds them. */
function lazyLayers(app: express.Express): Map<string, LazyRouter> {
  const stack = (app as unknown as { router: { stack: { rawPath?: unknown; handle: unknown }[] } }).router.stack;
  const out = new Map<string, LazyRouter>();
  for (const l of stack) if (typeof (l.handle as Partial<LazyRouter>).load === 'function') out.set(String(l.rawPath), l.handle as LazyRouter);
  return out;
}

test('the TurboFiles dialect and the dashboard are mounted unloaded, and the first requests to them (two at once) are answered in full', async () => {
  const app = createApp(gw.deps);
  const lazy = lazyLayers(app);
  expect([...lazy.keys()].sort()).toEqual(['/dashboard', '/v1']);
  for (const l of lazy.values()) expect(l.stack).toBeUndefined();

  const me = () =>
    request(app)
      .get('/v1/users/me')
      .set({ Authorization: `Bearer ${gw.key}`, Accept: MT });
  const [a, b] = await Promise.all([me(), me()]);
  for (const r of [a, b]) {
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/vnd\.api\+json/);
    expect(r.body.data.type).toBe('users');
  }
  // Its own error documents too: a 401 from inside the group, in JSON:API's shape.
  const anon = await request(app).get('/v1/tasks').set({ Accept: MT });
  expect(anon.status).toBe(401);
  expect(anon.body.errors[0].status).toBe('401');
  expect(lazy.get('/v1')!.stack!.length).toBeGreaterThan(0);
  expect(lazy.get('/dashboard')!.stack).toBeUndefined();

  const [login, root] = await Promise.all([request(app).get('/dashboard/login'), request(app).get('/dashboard')]);
  expect(login.status).toBe(200);
  expect(login.text).toMatch(/<label for="password">/);
  expect(login.headers['content-security-policy']).toMatch(/default-src 'none'/);
  expect(root.status).toBe(303);
  expect(root.headers.location).toBe('/dashboard/login');
  // Paths outside the groups still reach the app's own 404.
  const missing = await request(app).get('/dashboardx');
  expect(missing.status).toBe(404);
  expect(missing.body.code).toBe('not_found');
});

test('the first GET /openapi.json on a fresh gateway imports and serves the document', async () => {
  const app = createApp(gw.deps);
  const r = await request(app).get('/openapi.json');
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  expect(r.body.openapi).toMatch(/^3\.1\./);
  expect(Object.keys(r.body.paths)).toContain('/v1/tasks');
});

test('a group whose import fails answers 500 and is imported again by the next request', async () => {
  let calls = 0;
  const app = express();
  app.use(
    '/g',
    lazyRouter(async () => {
      calls++;
      if (calls === 1) throw new Error('import failed');
      const r = Router();
      r.get('/x', (_req, res) => {
        res.json({ ok: true, base: _req.baseUrl });
      });
      return r;
    }),
  );
  app.use(errorHandler());
  expect((await request(app).get('/g/x')).status).toBe(500);
  const ok = await request(app).get('/g/x');
  expect(ok.status).toBe(200);
  expect(ok.body).toEqual({ ok: true, base: '/g' });
  await request(app).get('/g/x').expect(200);
  expect(calls).toBe(2);
});

test("loading the gateway's modules loads none that only other routes, S3, URL fetches or pretty logs need", () => {
  // What `node apps/gateway/src/main.ts` imports before it starts (server.ts is all of it but main's
  // own two lines), recorded by a resolve hook in a child process.
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.push(r.url); return r; } });
    await import(${JSON.stringify(path.join(ROOT, 'apps', 'gateway', 'src', 'server.ts'))});
    process.stdout.write(JSON.stringify(seen));
  `;
  const out = execFileSync(process.execPath, ['--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  const loaded: string[] = JSON.parse(out);
  expect(loaded.some((u) => u.endsWith('/apps/gateway/src/upload.ts'))).toBe(true);
  const unwanted = [/\/@aws-sdk\//, /\/@smithy\//, /\/zod-openapi\//, /\/undici\//, /\/pino-pretty\//, /\/gateway\/src\/(dashboard|turbofiles|openapi)\//];
  expect(loaded.filter((u) => unwanted.some((re) => re.test(u)))).toEqual([]);
});
