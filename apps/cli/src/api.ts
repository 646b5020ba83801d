/**
 * The HTTP side of the CLI: one streamed multipart upload (bytes counted as the socket takes them),
 * JSON calls, a job's event stream with resumption, and downloads. Every failure becomes a CliError
 * whose exit code says what kind of failure it was.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createParser } from 'eventsource-parser';
import { JOB_EVENT_SCHEMAS, jobDetailSchema, type JobDetail, type JobEventName } from '@kiln/contracts';

/** The process's exit codes (README and `kiln --help` list them). */
export const EXIT = {
  ok: 0,
  /** The job failed, or some of its files did. */
  jobFailed: 1,
  /** Bad arguments, a missing file, no API key. */
  usage: 2,
  /** The server could not be reached (refused, unknown host, timed out, or it went away for good). */
  unreachable: 3,
  /** The key was refused (401) or may not do this (403). */
  auth: 4,
  /** The server refused the request for another reason (a bad field, an unsupported format, too large, rate limited, 5xx). */
  refused: 5,
  /** Anything unexpected (a bug, or an answer this CLI cannot read). */
  internal: 70,
} as const;

export class CliError extends Error {
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}

export interface Client {
  base: URL;
  key: string;
}

const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

function unreachable(base: URL, err: unknown): CliError {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e?.code ?? e?.cause?.code ?? '';
  return new CliError(
    EXIT.unreachable,
    `Cannot reach Kiln at ${base.origin} (${code || (err as Error).message}). Is the server running? Set KILN_URL or --url to where it listens.`,
  );
}

const isNetError = (err: unknown) => {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  return NET_CODES.has(e?.code ?? '') || NET_CODES.has(e?.cause?.code ?? '') || (err instanceof TypeError && /fetch failed/.test(err.message));
};

/** A non-2xx answer as a CliError, with the server's own sentence. */
async function refusal(status: number, body: string): Promise<CliError> {
  let message = body.trim().slice(0, 500) || `HTTP ${status}`;
  try {
    const j = JSON.parse(body) as { error?: string; code?: string };
    if (j.error) message = j.code ? `${j.error} (${j.code})` : j.error;
  } catch {
    // not JSON: keep the text
  }
  if (status === 401) return new CliError(EXIT.auth, `The API key was refused: ${message} Set KILN_API_KEY to a key from \`pnpm keys:create <name>\` or the dashboard.`);
  if (status === 403) return new CliError(EXIT.auth, `This key may not do that: ${message}`);
  return new CliError(EXIT.refused, `Kiln refused the request (HTTP ${status}): ${message}`);
}

export async function getJson<T>(c: Client, p: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(new URL(p, c.base), { headers: { Authorization: `Bearer ${c.key}`, accept: 'application/json' } });
  } catch (err) {
    throw isNetError(err) ? unreachable(c.base, err) : err;
  }
  const text = await res.text();
  if (!res.ok) throw await refusal(res.status, text);
  return JSON.parse(text) as T;
}

export async function getJob(c: Client, jobId: string): Promise<JobDetail> {
  return jobDetailSchema.parse(await getJson(c, `/api/jobs/${encodeURIComponent(jobId)}`)) as JobDetail;
}

export interface UploadFile {
  path: string;
  name: string;
  size: number;
}

const crlf = '\r\n';
const quote = (s: string) => s.replace(/["\r\n\\]/g, (ch) => encodeURIComponent(ch));

/**
 * POST /api/jobs as multipart/form-data, streamed from disk: fields first, then each file. The length
 * is known up front (so the server sees Content-Length), and `onBytes` hears each file chunk once the
 * socket has accepted it.
 */
export async function uploadJob(c: Client, fields: Record<string, string>, files: UploadFile[], onBytes: (n: number) => void): Promise<{ jobId: string; status: string }> {
  const boundary = `----kiln-cli-${Math.random().toString(16).slice(2)}${Date.now().toString(16)}`;
  const fieldParts = Object.entries(fields).map(([k, v]) => Buffer.from(`--${boundary}${crlf}Content-Disposition: form-data; name="${quote(k)}"${crlf}${crlf}${v}${crlf}`));
  const fileHeads = files.map((f) =>
    Buffer.from(`--${boundary}${crlf}Content-Disposition: form-data; name="files"; filename="${quote(f.name)}"${crlf}Content-Type: application/octet-stream${crlf}${crlf}`),
  );
  const tail = Buffer.from(`--${boundary}--${crlf}`);
  const length = fieldParts.reduce((n, b) => n + b.length, 0) + fileHeads.reduce((n, b) => n + b.length, 0) + files.reduce((n, f) => n + f.size + crlf.length, 0) + tail.length;

  const url = new URL('/api/jobs', c.base);
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, {
      method: 'POST',
      headers: { Authorization: `Bearer ${c.key}`, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': String(length), accept: 'application/json' },
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('error', (err) => reject(unreachable(c.base, err)));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) {
          try {
            resolve(JSON.parse(body) as { jobId: string; status: string });
          } catch {
            reject(new CliError(EXIT.refused, `Kiln answered with something that is not a job: ${body.slice(0, 200)}`));
          }
        } else {
          void refusal(res.statusCode ?? 0, body).then(reject);
        }
      });
    });
    req.on('error', (err) => {
      // An early refusal (too large, bad key) may close the socket while we still write: its answer wins.
      if (!answered) reject(unreachable(c.base, err));
    });
    const write = (b: Buffer) => new Promise<void>((r) => (req.write(b) ? r() : req.once('drain', r)));
    void (async () => {
      try {
        for (const p of fieldParts) await write(p);
        for (const [i, f] of files.entries()) {
          await write(fileHeads[i]!);
          for await (const chunk of fs.createReadStream(f.path)) {
            if (answered || req.destroyed) return;
            await write(chunk as Buffer);
            onBytes((chunk as Buffer).length);
          }
          await write(Buffer.from(crlf));
        }
        await write(tail);
        req.end();
      } catch (err) {
        req.destroy(err as Error);
      }
    })();
  });
}

export type JobEvent = { [K in JobEventName]: { event: K; data: import('zod').infer<(typeof JOB_EVENT_SCHEMAS)[K]> } }[JobEventName];

/**
 * Follows GET /api/jobs/:id/events until `completed` or `failed`, calling `onEvent` for each event.
 * A stream that ends early (the gateway restarted, the connection dropped) is reopened with
 * Last-Event-ID, so nothing is missed and nothing is repeated; the server being unreachable for
 * `giveUpMs` on end is a CliError(unreachable).
 */
export async function followJob(c: Client, jobId: string, onEvent: (e: JobEvent) => void, giveUpMs = 30_000): Promise<JobDetail> {
  let lastId: string | undefined;
  let retryMs = 1000;
  let downSince: number | undefined;
  for (;;) {
    let final: JobDetail | undefined;
    try {
      const headers: Record<string, string> = { Authorization: `Bearer ${c.key}`, accept: 'text/event-stream' };
      if (lastId) headers['Last-Event-ID'] = lastId;
      const res = await fetch(new URL(`/api/jobs/${encodeURIComponent(jobId)}/events`, c.base), { headers });
      if (!res.ok) {
        // A gateway at its stream limit says when to come back; anything else is final.
        if (res.status !== 503) throw await refusal(res.status, await res.text());
        await res.body?.cancel();
        throw Object.assign(new Error('busy'), { code: 'ECONNRESET' });
      }
      downSince = undefined;
      const parser = createParser({
        onRetry: (ms) => {
          retryMs = ms;
        },
        onEvent: (m) => {
          const name = (m.event ?? 'message') as JobEventName;
          const schema = JOB_EVENT_SCHEMAS[name];
          if (!schema) return; // an event this CLI does not know: newer servers may add some
          if (m.id) lastId = m.id;
          const data = schema.parse(JSON.parse(m.data));
          onEvent({ event: name, data } as JobEvent);
          if (name === 'completed' || name === 'failed') final = data as JobDetail;
        },
      });
      const decoder = new TextDecoder();
      for await (const chunk of res.body ?? []) {
        parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
        if (final) break;
      }
      if (final) return final;
    } catch (err) {
      if (err instanceof CliError) throw err;
      if (!isNetError(err)) throw err;
      downSince ??= Date.now();
      if (Date.now() - downSince > giveUpMs) throw unreachable(c.base, err);
    }
    await new Promise((r) => setTimeout(r, retryMs));
  }
}

/** Saves a download to `dir`, named by its basename only (a name from the server never leaves `dir`). */
export async function download(c: Client, url: string, dir: string, filename: string): Promise<string> {
  const target = path.join(dir, path.basename(filename) || 'download');
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw isNetError(err) ? unreachable(c.base, err) : err;
  }
  if (!res.ok || !res.body) throw await refusal(res.status, await res.text());
  await pipeline(res.body as unknown as NodeJS.ReadableStream, fs.createWriteStream(target));
  return target;
}
