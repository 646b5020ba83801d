/**
 * The requests the published Convertly SDK (`@convertly-sh/sdk`) sends, rebuilt with plain
 * fetch/FormData so tests can drive Kiln exactly as that SDK would. The SDK itself is not on the
 * npm registry this project can reach (`npm view @convertly-sh/sdk` answers 404), so its wire
 * format was read from its source (github.com/convertly-sh/sdk, src/index.ts and
 * src/internal/form.ts) and is reproduced here field for field — none of its code is copied:
 *
 * - `media.convert(o)` / `media.compress(o)`: POST /api/convert or /api/compress; the input first —
 *   `sourceUrl` when given, a string `file` also as `sourceUrl`, else one part `files` named
 *   `o.filename ?? "upload"` — then its fixed option list in order, each only when set.
 * - `media.<tool>(o)`: POST /api/media/<tool>; the input as above but in a part named `file`, then
 *   every other own property of `o` in insertion order except file, sourceUrl, filename and
 *   contentType (so `async`/`background` too).
 * - Values: booleans as "true"/"false", numbers as String(n), strings as they are; null, undefined,
 *   objects and arrays are left out.
 * - `Authorization: Bearer <key>`; a JSON body is parsed when the content type says JSON; a non-2xx
 *   answer throws with the status and the body (its `error` as the message).
 * - `jobs.wait(id)`: GET /api/jobs/:id until status is completed or failed.
 */
export type WireInput = { file?: Buffer | Uint8Array | string; sourceUrl?: string; filename?: string; contentType?: string };

export class WireError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(message: string, status: number, body: unknown) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function appendValue(form: FormData, key: string, value: unknown): void {
  if (value === undefined || value === null) return;
  if (typeof value === 'boolean') form.append(key, value ? 'true' : 'false');
  else if (typeof value === 'number') form.append(key, String(value));
  else if (typeof value === 'string') form.append(key, value);
}

function appendInputAs(form: FormData, input: WireInput, part: 'files' | 'file'): void {
  if (input.sourceUrl) form.append('sourceUrl', input.sourceUrl);
  else if (input.file === undefined) throw new Error('Provide either file or sourceUrl.');
  else if (typeof input.file === 'string') form.append('sourceUrl', input.file);
  else form.append(part, new Blob([new Uint8Array(input.file)], input.contentType ? { type: input.contentType } : {}), input.filename ?? 'upload');
}

const CONVERT_FIELDS = ['format', 'compression', 'resize', 'resizeWidth', 'resizeHeight', 'autoOrient', 'mono', 'saveToStorage'] as const;
const COMPRESS_FIELDS = ['mode', 'quality', 'targetBytes', 'lossless', 'stripMetadata', 'saveToStorage'] as const;
const INPUT_KEYS = new Set(['file', 'sourceUrl', 'filename', 'contentType']);

export function convertlyWire(baseUrl: string, apiKey: string) {
  const base = baseUrl.replace(/\/$/, '');
  async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await fetch(`${base}${path}`, { ...init, headers: { Authorization: `Bearer ${apiKey}`, ...((init.headers as Record<string, string>) ?? {}) } });
    const type = res.headers.get('content-type') ?? '';
    const body = type.includes('application/json') ? await res.json() : await res.text();
    if (!res.ok) {
      const message = typeof body === 'object' && body && 'error' in body ? String((body as { error: unknown }).error) : res.statusText;
      throw new WireError(message, res.status, body);
    }
    return body as T;
  }
  const fixed = (path: string, fields: readonly string[]) => (o: WireInput & Record<string, unknown>) => {
    const form = new FormData();
    appendInputAs(form, o, 'files');
    for (const f of fields) appendValue(form, f, o[f]);
    return request<SyncAnswer>(path, { method: 'POST', body: form });
  };
  const tool =
    (name: string) =>
    <T = SyncAnswer>(o: WireInput & Record<string, unknown>) => {
      const form = new FormData();
      appendInputAs(form, o, 'file');
      for (const [k, v] of Object.entries(o)) if (!INPUT_KEYS.has(k)) appendValue(form, k, v);
      return request<T>(`/api/media/${name}`, { method: 'POST', body: form });
    };
  return {
    media: {
      convert: fixed('/api/convert', CONVERT_FIELDS),
      compress: fixed('/api/compress', COMPRESS_FIELDS),
      thumbnail: tool('thumbnail'),
      pdfPreview: tool('pdf-preview'),
      imageToPdf: tool('image-to-pdf'),
      stripMetadata: tool('strip-metadata'),
      posterFrame: tool('poster-frame'),
      extractAudio: tool('extract-audio'),
      watermark: tool('watermark'),
      inspect: tool('inspect'),
      trim: tool('trim'),
      gif: tool('gif'),
      storyboard: tool('storyboard'),
      transform: tool('transform'),
      removeBackground: tool('remove-background'),
    },
    jobs: {
      get: <T = JobAnswer>(id: string) => request<T>(`/api/jobs/${encodeURIComponent(id)}`),
      list: <T = { jobs: JobAnswer[] }>() => request<T>('/api/jobs'),
      async wait(id: string, o: { intervalMs?: number; timeoutMs?: number } = {}): Promise<JobAnswer> {
        const start = Date.now();
        for (;;) {
          const job = await request<JobAnswer>(`/api/jobs/${encodeURIComponent(id)}`);
          if (job.status === 'completed' || job.status === 'failed') return job;
          if (Date.now() - start > (o.timeoutMs ?? 120_000)) throw new Error(`Timed out waiting for job ${id}.`);
          await new Promise((r) => setTimeout(r, o.intervalMs ?? 200));
        }
      },
    },
    /** A tool the SDK has no method for (convert, adjust, vectorize), sent the same way. */
    tool,
  };
}

export interface SyncFile {
  filename: string;
  originalSize: number;
  finalSize: number;
  mimeType: string;
  downloadUrl: string;
  width?: number;
  height?: number;
  durationSeconds?: number;
  notes?: string[];
  error?: { code: string; message: string };
}
export interface SyncAnswer {
  files: SyncFile[];
  storage: { saved: boolean; notice: string };
  tool?: string;
  metadata?: Record<string, unknown>;
  storyboard?: { vtt: string; columns: number; rows: number; tileWidth: number; tileHeight: number; frames: number };
}
export interface JobAnswer {
  jobId: string;
  status: string;
  tool?: string;
  results: (SyncFile & { status: string; downloadUrl: string | null; index: number })[];
}

/** The bytes of a `data:` URL (sync answers without saveToStorage). */
export function dataUrlBytes(url: string): Buffer {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  if (!m) throw new Error(`not a base64 data: URL: ${url.slice(0, 60)}`);
  return Buffer.from(m[2]!, 'base64');
}
