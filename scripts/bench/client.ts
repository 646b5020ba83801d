/**
 * A lean HTTP client for the benchmark: node:http with keep-alive, multipart bodies built once per
 * input and reused, responses drained without keeping them. The client runs on the same two cores
 * as Kiln, so it must cost as little as possible.
 */
import crypto from 'node:crypto';
import http from 'node:http';

export const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

export interface HttpResult {
  status: number;
  body: Buffer;
  headers: http.IncomingHttpHeaders;
}

export function multipart(fields: Record<string, string>, file: { data: Buffer; filename: string }): { body: Buffer; contentType: string } {
  const boundary = `----kilnbench${crypto.randomBytes(12).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  }
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${file.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`));
  parts.push(file.data, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer; discardBody?: boolean } = {},
): Promise<HttpResult & { bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: opts.method ?? 'GET', agent, headers: { ...opts.headers, ...(opts.body ? { 'content-length': String(opts.body.length) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (!opts.discardBody) chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), bytes }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

export interface SyncConvert {
  /** Submit → the sync endpoint answered (the job is completed). */
  completedMs: number;
  /** Submit → result downloaded. */
  totalMs: number;
  resultBytes: number;
}

/**
 * What a client that wants the converted file does: POST /api/convert (the gateway holds the request
 * until the job ends, woken by NOTIFY) with saveToStorage=true, then GET the signed downloadUrl.
 */
export async function convertViaApi(base: string, key: string, form: { body: Buffer; contentType: string }): Promise<SyncConvert> {
  const t0 = performance.now();
  const r = await request(`${base}/api/convert`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': form.contentType }, body: form.body });
  const completedMs = performance.now() - t0;
  if (r.status !== 200) throw new ApiError(r.status, r.body.toString('utf8').slice(0, 2000));
  const j = JSON.parse(r.body.toString('utf8')) as { files: { downloadUrl: string; finalSize: number; error?: unknown }[] };
  const f = j.files[0];
  if (!f?.downloadUrl) throw new ApiError(r.status, `no result: ${r.body.toString('utf8').slice(0, 2000)}`);
  const d = await request(f.downloadUrl, { discardBody: true });
  if (d.status !== 200) throw new ApiError(d.status, `download failed: ${d.body.toString('utf8')}`);
  return { completedMs, totalMs: performance.now() - t0, resultBytes: d.bytes };
}

export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, body: string) {
    super(`HTTP ${status}: ${body}`);
    this.status = status;
  }
}

/**
 * Streams one multipart upload of `bytes` file bytes (a PNG signature + header, then junk) from a
 * reused 1 MiB buffer with backpressure: the body never exists in memory.
 */
export async function streamUpload(
  base: string,
  key: string,
  bytes: number,
  fields: Record<string, string>,
  onProgress?: (sent: number) => void,
): Promise<HttpResult & { seconds: number }> {
  const boundary = `----kilnbench${crypto.randomBytes(12).toString('hex')}`;
  const head = Buffer.from(
    Object.entries(fields)
      .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
      .join('') + `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="huge.png"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  // PNG signature and an IHDR for 40000×50000 RGB: sniffed as PNG, refused by the worker's pixel limit.
  const ihdr = Buffer.alloc(25);
  ihdr.writeUInt32BE(13, 0);
  ihdr.write('IHDR', 4, 'latin1');
  ihdr.writeUInt32BE(40_000, 8);
  ihdr.writeUInt32BE(50_000, 12);
  ihdr.set([8, 2, 0, 0, 0], 16);
  ihdr.writeUInt32BE(0, 21);
  const fileHead = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr]);
  const junk = crypto.randomBytes(1 << 20);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}/api/jobs`,
      {
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + bytes + tail.length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), seconds: (performance.now() - t0) / 1000 }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    void (async () => {
      req.write(head);
      req.write(fileHead);
      let sent = fileHead.length;
      let lastReport = 0;
      while (sent < bytes) {
        const n = Math.min(junk.length, bytes - sent);
        sent += n;
        if (req.destroyed) return;
        // The server may answer (e.g. 413) and close before the body is sent: stop waiting then too.
        if (!req.write(n === junk.length ? junk : junk.subarray(0, n))) await drainOrClose(req);
        if (onProgress && sent - lastReport > 64 << 20) {
          lastReport = sent;
          onProgress(sent);
        }
      }
      req.end(tail);
    })().catch(reject);
  });
}

function drainOrClose(req: http.ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.on('drain', done);
    req.on('close', done);
  });
}

/** A multipart body of several files (the same field name, `files`, for each). */
export function multipartFiles(fields: Record<string, string>, files: { data: Buffer; filename: string }[]): { body: Buffer; contentType: string } {
  const boundary = `----kilnbench${crypto.randomBytes(12).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  for (const f of files) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${f.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`));
    parts.push(f.data, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** POST /api/convert?download=1: the result's bytes as the answer, one request instead of two. */
export async function convertBytesViaApi(base: string, key: string, form: { body: Buffer; contentType: string }): Promise<SyncConvert> {
  const t0 = performance.now();
  const r = await request(`${base}/api/convert?download=1`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': form.contentType },
    body: form.body,
    discardBody: true,
  });
  if (r.status !== 200 || String(r.headers['content-type']).startsWith('application/json'))
    throw new ApiError(r.status, `download=1 did not answer with the file (content-type ${r.headers['content-type']})`);
  const ms = performance.now() - t0;
  return { completedMs: ms, totalMs: ms, resultBytes: r.bytes };
}

/** A sync job of several files (saveToStorage=true): the answer's JSON, every file checked. */
export async function convertManyViaApi(base: string, key: string, form: { body: Buffer; contentType: string }, files: number): Promise<void> {
  const r = await request(`${base}/api/convert`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': form.contentType }, body: form.body });
  if (r.status !== 200) throw new ApiError(r.status, r.body.toString('utf8').slice(0, 2000));
  const j = JSON.parse(r.body.toString('utf8')) as { files: { downloadUrl: string }[] };
  if (j.files.length !== files || j.files.some((f) => !f.downloadUrl)) throw new ApiError(r.status, `expected ${files} results: ${r.body.toString('utf8').slice(0, 2000)}`);
}
