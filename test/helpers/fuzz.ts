/**
 * Helpers for fuzzing the gateway over real sockets: a seeded PRNG (so a failing run can be replayed
 * with KILN_FUZZ_SEED), generators of hostile multipart and JSON bodies, a raw HTTP/1.1 client that
 * sends exactly the bytes it is given (a Content-Length that lies, a body cut short, a socket closed
 * mid-part: things fetch refuses to do), and the leak probes the fuzz tests compare before and after.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

/** mulberry32: tiny, fast and good enough to pick cases; the point is that a seed replays a run. */
export class Rng {
  #s: number;
  readonly seed: number;
  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#s = this.seed;
  }
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
  /** Printable-ish text, sometimes with the characters parsers trip on. */
  text(n: number): string {
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.';
    const nasty = ['"', "'", '\\', '\r', '\n', ';', '=', '%', '[', ']', '{', '}', '\u0000', 'é', '\u202e', '../'];
    let s = '';
    for (let i = 0; i < n; i++) s += this.chance(0.08) ? this.pick(nasty) : alphabet[this.int(0, alphabet.length - 1)];
    return s;
  }
}

/** The seed from KILN_FUZZ_SEED, else a fresh one; the caller prints it. */
export function fuzzSeed(): number {
  const env = process.env.KILN_FUZZ_SEED;
  if (env && /^\d+$/.test(env)) return Number(env) >>> 0;
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}

/** A random JSON value: nested, with the shapes validators meet (huge numbers, nulls, wrong types). */
export function randomJson(rng: Rng, depth = 0): unknown {
  const k = rng.int(0, depth > 2 ? 4 : 7);
  switch (k) {
    case 0:
      return null;
    case 1:
      return rng.pick([0, -1, 1, 1e308, -1e-308, 2 ** 53 + 1, 0.5, 255, 65536]);
    case 2:
      return rng.chance(0.5);
    case 3:
      return rng.text(rng.int(0, 40));
    case 4:
      return rng.pick(['png', 'jpg', 'webp', 'mp4', 'convert', 'compress', 'zip', '', 'files', 'data', 'attributes']);
    case 5:
      return Array.from({ length: rng.int(0, 5) }, () => randomJson(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const keys = ['data', 'type', 'id', 'attributes', 'relationships', 'format', 'filename', 'size', 'input', 'files', 'options', 'quality', 'jobType', rng.text(8)];
      for (let i = rng.int(0, 5); i > 0; i--) o[rng.pick(keys)] = randomJson(rng, depth + 1);
      return o;
    }
  }
}

export interface MultipartPart {
  name: string;
  filename?: string;
  contentType?: string;
  data: Buffer | string;
  /** Raw header lines to use instead of the well-formed ones. */
  rawHeaders?: string;
}

export function multipartBody(boundary: string, parts: MultipartPart[], opts: { close?: boolean } = {}): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const headers =
      p.rawHeaders ??
      `Content-Disposition: form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}\r\n` +
        (p.contentType ? `Content-Type: ${p.contentType}\r\n` : '');
    chunks.push(Buffer.from(`--${boundary}\r\n${headers}\r\n`), Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data), Buffer.from('\r\n'));
  }
  if (opts.close !== false) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

export interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Send only this many bytes of the body, then close the socket (a client that went away). */
  sendBytes?: number;
}

export interface RawResponse {
  /** The HTTP status, or undefined when the server closed without answering (or the client hung up). */
  status: number | undefined;
  headers: Record<string, string>;
  body: string;
}

/**
 * One request on a fresh connection, bytes exactly as given (no Content-Length is added: set it in
 * `headers` — or leave it out — deliberately). Resolves when the server answers and closes, or on
 * `timeoutMs` (rejects: a hang is a finding).
 */
export function rawRequest(baseUrl: string, r: RawRequest, timeoutMs = 20_000): Promise<RawResponse> {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port) });
    const got: Buffer[] = [];
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) return reject(err);
      resolve(parseResponse(Buffer.concat(got)));
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms to ${r.method} ${r.path}`)), timeoutMs);
    sock.on('data', (b) => got.push(b));
    sock.on('error', () => finish());
    sock.on('close', () => finish());
    sock.on('connect', () => {
      const head = `${r.method} ${r.path} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n${Object.entries(r.headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`;
      sock.write(head);
      const body = r.body ?? Buffer.alloc(0);
      if (r.sendBytes !== undefined) {
        sock.write(body.subarray(0, r.sendBytes), () => {
          // Give the server a moment to start on the part, then vanish mid-body.
          setTimeout(() => finish(), 30);
        });
      } else if (body.length) {
        sock.write(body);
      }
    });
  });
}

function parseResponse(buf: Buffer): RawResponse {
  const text = buf.toString('latin1');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  const end = text.indexOf('\r\n\r\n');
  const headers: Record<string, string> = {};
  if (end > 0) {
    for (const line of text.slice(0, end).split('\r\n').slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
  }
  return { status: m ? Number(m[1]) : undefined, headers, body: end > 0 ? buf.subarray(end + 4).toString() : '' };
}

/** Open descriptors of a process (Linux /proc). */
export async function openFds(pid: number): Promise<string[]> {
  const dir = `/proc/${pid}/fd`;
  const names = await fs.readdir(dir);
  const out: string[] = [];
  for (const n of names) out.push(await fs.readlink(path.join(dir, n)).catch(() => 'gone'));
  return out;
}

/** Entries under a directory, recursively, relative to it (missing directory: none). */
export async function listTree(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { recursive: true }).catch(() => [] as string[]);
  return entries.map(String).sort();
}
