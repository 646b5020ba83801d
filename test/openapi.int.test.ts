/**
 * The OpenAPI document against what only a running system answers: completed and partly failed jobs
 * (results with their extras, the archive), sync convert and compress, a media tool's facts, a
 * finished TurboFiles task with its output file — all produced by real workers and validated against
 * GET /openapi.json. And GET /docs in a real browser (Debian's Chromium through playwright-core):
 * the reference renders every operation of the document, with no request to any other origin and
 * no console error (the page's CSP would report any load from elsewhere). A screenshot goes to
 * test-output/screenshots/docs-1280.png for review.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { form, startKiln, until, waitForJob, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';
import { openApiChecker, type OpenApiDoc } from './helpers/openapi.ts';
import { JSONAPI, seedTask, turbofiles } from './helpers/turbofiles.ts';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SHOTS = path.join(ROOT, 'test-output', 'screenshots');
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium) console.warn(`openapi.int.test.ts: the browser test is skipped because ${CHROMIUM} is missing; install it with \`apt-get install -y chromium\` (CI does).`);

let kiln: Kiln;
let doc: OpenApiDoc;
let check: ReturnType<typeof openApiChecker>;
let png: Buffer;

beforeAll(async () => {
  kiln = await startKiln({ apps: ['gateway', 'convert-worker', 'compress-worker'] });
  doc = (await (await fetch(`${kiln.url}/openapi.json`)).json()) as OpenApiDoc;
  check = openApiChecker(doc);
  png = await photo(400, 300, { format: 'png' });
}, 90_000);
afterAll(async () => {
  await kiln?.stop();
});

/** Calls the API and checks the answer against the document's operation. */
async function call(method: string, url: string, docPath: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  const r = await kiln.api(url, { method: method.toUpperCase(), ...init });
  const type = r.headers.get('content-type');
  const text = await r.text();
  const body = type && /json/.test(type) ? JSON.parse(text) : text;
  check(method, docPath, { status: r.status, contentType: type, body });
  return { status: r.status, body };
}

test('finished jobs, sync calls and media tools answer what the document says', async () => {
  // Two files, one of them not an image at all (fails on its own), plus the archive of the outputs.
  const created = await call('post', '/api/jobs', '/api/jobs', {
    body: form(
      [
        { data: png, filename: 'a.png' },
        { data: Buffer.from('%PDF-1.7\nnot really\n'), filename: 'b.pdf' },
      ],
      { formats: '["webp","png"]', createArchive: 'true' },
    ),
  });
  expect(created.status).toBe(200);
  const jobId = (created.body as { jobId: string }).jobId;
  const done = await waitForJob(kiln, jobId, 120_000);
  expect(done.results.map((r) => r.status).sort()).toEqual(['completed', 'failed']);
  const detail = await call('get', `/api/jobs/${jobId}`, '/api/jobs/{id}');
  expect((detail.body as { archive: unknown }).archive).not.toBeNull();
  await call('get', '/api/jobs?status=completed', '/api/jobs');

  const converted = await call('post', '/api/convert', '/api/convert', { body: form([{ data: png, filename: 'c.png' }], { format: 'avif', resize: 'email' }) });
  expect(converted.status).toBe(200);
  const compressed = await call('post', '/api/compress', '/api/compress', {
    body: form([{ data: png, filename: 'd.png' }], { mode: 'target-size', targetBytes: '60000', saveToStorage: 'true' }),
  });
  expect(compressed.status).toBe(200);
  // Every file failed: the call fails as its first file did.
  const failed = await call('post', '/api/convert', '/api/convert', { body: form([{ data: Buffer.from('%PDF-1.7\nbroken\n'), filename: 'x.pdf' }], { format: 'png' }) });
  expect(failed.status).toBeGreaterThanOrEqual(400);

  const inspected = await call('post', '/api/media/inspect', '/api/media/inspect', { body: form([{ data: png, filename: 'e.png', field: 'file' }]) });
  expect((inspected.body as { metadata?: unknown }).metadata).toBeDefined();
  const thumb = await call('post', '/api/media/thumbnail', '/api/media/thumbnail', {
    body: form([{ data: png, filename: 'f.png', field: 'file' }], { width: '64', saveToStorage: 'true' }),
  });
  expect(thumb.status).toBe(200);
}, 180_000);

test('a finished TurboFiles task and its output file answer what the document says', async () => {
  const tf = turbofiles(kiln);
  const file = await tf.declare('image/png', png.length);
  expect((await tf.put(file.links.upload!, png)).status).toBe(200);
  const started = await tf.task(seedTask(file.id));
  expect(started.status).toBe(201);
  const taskId = started.doc.data.id;
  await tf.waitForTask(taskId, 120_000);
  const headers = { Accept: JSONAPI };
  const task = await call('get', `/v1/tasks/${taskId}`, '/v1/tasks/{id}', { headers });
  expect((task.body as { data: { attributes: { status: string } } }).data.attributes.status).toBe('COMPLETED');
  await call('get', `/v1/tasks/${taskId}/output`, '/v1/tasks/{id}/output', { headers });
  await call('get', `/v1/tasks/${taskId}/relationships/output`, '/v1/tasks/{id}/relationships/output', { headers });
  await call('get', '/v1/tasks?include=output', '/v1/tasks', { headers });
  const output = (task.body as { included: { id: string; attributes: { status: string } }[] }).included.find((f) => f.attributes.status === 'READY' && f.id !== file.id)!;
  await call('get', `/v1/files/${output.id}`, '/v1/files/{id}', { headers });
  await call('get', '/v1/files', '/v1/files', { headers });
  const deleted = await call('delete', `/v1/files/${output.id}`, '/v1/files/{id}', { headers });
  expect(deleted.status).toBe(204);
}, 180_000);

(hasChromium ? test : test.skip)(
  'GET /docs renders every operation of the document in a browser, loading nothing from another origin',
  async () => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const foreign: string[] = [];
      // Anything not from the gateway is recorded and refused: the page must not need it.
      await context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(`${kiln.url}/`) || url.startsWith('data:')) return route.continue();
        foreign.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      await page.goto(`${kiln.url}/docs`);
      await page.getByRole('heading', { name: /Kiln API/ }).waitFor({ timeout: 60_000 });
      const operations = Object.values(doc.paths as Record<string, Record<string, unknown>>).reduce((n, item) => n + Object.keys(item).length, 0);
      await until('every operation to render', async () => (await page.locator('.opblock').count()) === operations, 60_000, 100);
      // One operation opened: its parameters and responses render from the document.
      await page.locator('#operations-Jobs-createJob .opblock-summary').click();
      await page.locator('#operations-Jobs-createJob').getByText('formats', { exact: true }).first().waitFor({ timeout: 60_000 });
      fs.mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SHOTS, 'docs-1280.png') });
      expect(foreign).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  },
  240_000,
);
