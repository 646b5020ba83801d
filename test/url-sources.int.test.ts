/**
 * URL sources through the real pipeline: gateway, pg-boss, a convert worker fetching with
 * @kiln/outbound, and a real HTTP server on this machine that Kiln may reach only because
 * URL_IMPORT_ALLOWED_HOSTS lists the name `localhost` (the address 127.0.0.1 itself stays refused,
 * so a redirect to it is a redirect to a private address). Slow and oversized answers are bounded
 * and fail their file with a code and a sentence, and the worker goes on converting afterwards.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { PDFDocument } from 'pdf-lib';
import { sniff } from '@kiln/formats';
import pg from 'pg';
import { createApiKey } from '@kiln/db';
import { form, startKiln, until, waitForJob, type Kiln } from './helpers/kiln.ts';
import { convertlyWire, dataUrlBytes, WireError } from './helpers/convertly-wire.ts';

let kiln: Kiln;
let server: http.Server;
let port: number;
const seen: string[] = [];
let png: Buffer;
const MAX_UPLOAD_BYTES = 2_000_000;

beforeAll(async () => {
  png = await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 20, g: 120, b: 220 } } })
    .png()
    .toBuffer();
  server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    switch (req.url) {
      case '/photos/photo.png':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png);
        return;
      case '/slow.png':
        // Headers and a first chunk, then nothing: the idle timeout must end it.
        res.writeHead(200, { 'content-type': 'image/png' });
        res.write(png.subarray(0, 100));
        return;
      case '/huge.bin': {
        // No Content-Length: the limit is found while reading, and the body is cut.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(256 * 1024, 1);
        let sent = 0;
        const pump = () => {
          while (sent < 3 * MAX_UPLOAD_BYTES) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => undefined);
        pump();
        return;
      }
      case '/declared.png':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(3 * MAX_UPLOAD_BYTES) });
        res.end();
        return;
      case '/to-private':
        res.writeHead(302, { location: `http://127.0.0.1:${port}/secret` }).end();
        return;
      case '/notes.txt':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('just some text, not a picture');
        return;
      default:
        res.writeHead(404).end('no such file');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  kiln = await startKiln({
    apps: ['gateway', 'convert-worker'],
    env: {
      URL_IMPORT_ALLOWED_HOSTS: 'localhost',
      URL_IMPORT_IDLE_TIMEOUT_SECONDS: '2',
      URL_IMPORT_TIMEOUT_SECONDS: '20',
      MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES),
      JOB_RETRY_LIMIT: '0',
    },
  });
}, 120_000);

afterAll(async () => {
  await kiln?.stop();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

const url = (p: string) => `http://localhost:${port}${p}`;

async function failedFile(p: string): Promise<{ code: string; message: string }> {
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([], { format: 'webp', sourceUrl: url(p) }) });
  expect(r.status).toBe(200);
  const job = await waitForJob(kiln, ((await r.json()) as { jobId: string }).jobId);
  expect(job.status).toBe('failed');
  return job.results[0]!.error!;
}

test('media.convert({file: "<url>"}) sends sourceUrl; the worker fetches and converts it (synchronous answer)', async () => {
  const sdk = convertlyWire(kiln.url, kiln.key);
  const out = await sdk.media.convert({ file: url('/photos/photo.png'), format: 'webp' });
  expect(out.files).toHaveLength(1);
  expect(out.files[0]).toMatchObject({ filename: 'photo.webp', mimeType: 'image/webp', originalSize: png.length, width: 300, height: 200 });
  const bytes = dataUrlBytes(out.files[0]!.downloadUrl);
  expect(sniff(bytes)).toBe('webp');
  expect(await sharp(bytes).metadata()).toMatchObject({ width: 300, height: 200 });
});

test('uploads and URL sources mix in one job: uploads first, then URLs, each with its own format', async () => {
  const r = await kiln.api('/api/jobs', {
    method: 'POST',
    body: form([{ data: png, filename: 'up.png' }], { formats: JSON.stringify(['jpg', 'avif']), sourceUrls: JSON.stringify([url('/photos/photo.png')]) }),
  });
  const job = await waitForJob(kiln, ((await r.json()) as { jobId: string }).jobId);
  expect(job.status).toBe('completed');
  expect(job.results.map((x) => [x.filename, x.format, x.status, x.originalSize])).toEqual([
    ['up.jpg', 'jpg', 'completed', png.length],
    ['photo.avif', 'avif', 'completed', png.length],
  ]);
});

test('a redirect from the allowed host to a private address fails the file; the private address is never contacted', async () => {
  const before = seen.length;
  const e = await failedFile('/to-private');
  expect(e.code).toBe('url_not_allowed');
  expect(e.message).toMatch(/^URL not allowed: it redirects to http:\/\/127\.0\.0\.1:\d+\/secret, and 127\.0\.0\.1 is a loopback address/);
  expect(seen.slice(before)).toEqual(['/to-private']);
  // The same, synchronously: the call answers with the file's code.
  const sdk = convertlyWire(kiln.url, kiln.key);
  const err = await sdk.media.convert({ file: url('/to-private'), format: 'webp' }).catch((x: unknown) => x);
  expect(err).toBeInstanceOf(WireError);
  expect(err).toMatchObject({ status: 400, body: { code: 'url_not_allowed' } });
});

test('a slow answer fails its file with timeout naming the setting, an oversized one with limit_exceeded, and the worker goes on', async () => {
  const slow = await failedFile('/slow.png');
  expect(slow.code).toBe('timeout');
  expect(slow.message).toMatch(/stopped sending its body for 2 s; raise URL_IMPORT_IDLE_TIMEOUT_SECONDS/);
  const huge = await failedFile('/huge.bin');
  expect(huge).toMatchObject({ code: 'limit_exceeded', message: expect.stringMatching(/over the limit of 2000000 bytes; raise MAX_UPLOAD_BYTES to allow it/) });
  const declared = await failedFile('/declared.png');
  expect(declared).toMatchObject({ code: 'limit_exceeded', message: expect.stringMatching(/is 6000000 bytes, over the limit of 2000000 bytes/) });
  // Healthy after: the next URL converts.
  const sdk = convertlyWire(kiln.url, kiln.key);
  const ok = await sdk.media.convert({ file: url('/photos/photo.png'), format: 'png' });
  expect(sniff(dataUrlBytes(ok.files[0]!.downloadUrl))).toBe('png');
  expect(kiln.procs.get('convert-worker')?.exitCode).toBeNull();
}, 90_000);

test('what the fetched bytes are decides: not a known type, or a pair the registry does not convert, fails with its sentence', async () => {
  const text = await failedFile('/notes.txt');
  expect(text).toEqual({ code: 'unsupported_format', message: expect.stringMatching(/^The fetched file \("notes\.txt"\) is not a file type Kiln recognises/) });
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([], { format: 'mp3', sourceUrl: url('/photos/photo.png') }) });
  const job = await waitForJob(kiln, ((await r.json()) as { jobId: string }).jobId);
  expect(job.results[0]!.error).toEqual({
    code: 'unsupported_format',
    message: expect.stringMatching(/^The fetched file \("photo\.png"\) is png, which cannot be converted to mp3; it converts to jpg, png, webp/),
  });
  const missing = await failedFile('/nope.png');
  expect(missing).toEqual({ code: 'fetch_failed', message: expect.stringMatching(/answered HTTP 404/) });
});

test("an API key's own lower upload limit bounds its URL sources too, and the message names it", async () => {
  const client = new pg.Client({ connectionString: kiln.db.url });
  await client.connect();
  const { key } = await createApiKey(client, 'small uploads', { maxUploadBytes: 50_000 });
  await client.end();
  const r = await kiln.api('/api/jobs', { method: 'POST', body: form([], { format: 'webp', sourceUrl: url('/huge.bin') }), key });
  const { jobId } = (await r.json()) as { jobId: string };
  const job = await until('the job to fail', async () => {
    const j = (await (await kiln.api(`/api/jobs/${jobId}`, { key })).json()) as { status: string; results: { error?: { code: string; message: string } }[] };
    return j.status === 'failed' ? j : undefined;
  });
  expect(job.results[0]!.error).toEqual({
    code: 'limit_exceeded',
    message: expect.stringMatching(/over the limit of 50000 bytes; raise the API key's maxUploadBytes to allow it/),
  });
});

test('a media tool takes its inputs by URL too: image-to-pdf pages from sourceUrls, a type the tool refuses found after fetching', async () => {
  const fd = new FormData();
  fd.append('sourceUrls', JSON.stringify([url('/photos/photo.png'), url('/photos/photo.png')]));
  fd.append('pageSize', 'letter');
  const r = await kiln.api('/api/media/image-to-pdf', { method: 'POST', body: fd });
  expect(r.status).toBe(200);
  const body = (await r.json()) as { tool: string; files: { downloadUrl: string; mimeType: string }[] };
  expect(body.tool).toBe('image-to-pdf');
  const pdf = dataUrlBytes(body.files[0]!.downloadUrl);
  expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
  expect((await PDFDocument.load(pdf)).getPageCount()).toBe(2);
  const sdk = convertlyWire(kiln.url, kiln.key);
  const e = await sdk.media.posterFrame({ sourceUrl: url('/photos/photo.png') }).catch((x: unknown) => x);
  expect(e).toMatchObject({ status: 415, body: { code: 'unsupported_format' } });
  expect((e as Error).message).toBe('poster-frame takes video; the fetched file ("photo.png") is png (images).');
});
