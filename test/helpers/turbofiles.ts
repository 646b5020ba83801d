/** A TurboFiles client for integration tests: the four calls of the dialect, as a user's code makes them. */
import { until, type Kiln } from './kiln.ts';

export const JSONAPI = 'application/vnd.api+json';

export interface TfResource {
  type: string;
  id: string;
  /** What the tests read; the rest of each resource's attributes as they come. */
  attributes: { status: string; started_at: string; processed_at: string; processing_metadata: Record<string, unknown>; [name: string]: unknown };
  relationships?: Record<string, { data: { type: string; id: string } | null }>;
  links: Record<string, string>;
  meta?: Record<string, unknown>;
}
export interface TfDocument {
  data: TfResource;
  included?: TfResource[];
  errors?: { status: string; code: string; detail: string; source?: Record<string, string> }[];
}

export function turbofiles(kiln: Kiln) {
  const call = async (method: string, p: string, body?: unknown): Promise<{ status: number; doc: TfDocument }> => {
    const r = await kiln.api(p, { method, headers: { 'Content-Type': JSONAPI, Accept: JSONAPI }, ...(body ? { body: JSON.stringify(body) } : {}) });
    return { status: r.status, doc: (await r.json()) as TfDocument };
  };
  return {
    call,
    /** POST /v1/files: the file resource (AWAITING_UPLOAD, with links.upload). */
    declare: async (format: string, size: number) => {
      const r = await call('POST', '/v1/files', { data: { type: 'files', attributes: { format, size } } });
      if (r.status !== 201) throw new Error(`POST /v1/files → ${r.status} ${JSON.stringify(r.doc)}`);
      return r.doc.data;
    },
    /** PUT the bytes to a file's upload link, as `curl -T` does: no API key. */
    put: async (link: string, bytes: Buffer) => {
      const r = await fetch(link, { method: 'PUT', body: new Uint8Array(bytes) });
      return { status: r.status, text: await r.text() };
    },
    file: async (id: string) => (await call('GET', `/v1/files/${id}`)).doc.data,
    task: async (body: unknown) => call('POST', '/v1/tasks', body),
    /** Polls GET /v1/tasks/:id until COMPLETED or FAILED. */
    waitForTask: (id: string, timeoutMs = 60_000) =>
      until(
        `task ${id} to finish`,
        async () => {
          const { doc } = await call('GET', `/v1/tasks/${id}`);
          return ['COMPLETED', 'FAILED'].includes(doc.data.attributes.status) ? doc : undefined;
        },
        timeoutMs,
        100,
      ),
  };
}

/** The body of the hosted service's own "Initiate a task" page, its input id filled in. */
export const seedTask = (inputId: string) => ({
  data: {
    attributes: {
      format: { input: 'image/png', output: 'image/webp' },
      settings: { resize: { width: 640, height: 640, max_width: 1280, max_height: 1280 } },
    },
    relationship: { input: { data: { id: inputId } } },
  },
});
