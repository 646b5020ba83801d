/**
 * The TurboFiles dialect's contract (API.md §3, JSON:API 1.1): the request documents, as strict zod
 * schemas whose first problem becomes an error naming the member by its JSON pointer; the page
 * parameters and cursors; the resource shapes; and the one mapping from a task's `settings` to the
 * file options every worker already reads. Request bodies are hostile input: every member is bounded,
 * unknown members are refused by name, and nothing here can throw anything but an AppError.
 */
import { z } from 'zod';
import { AppError } from './errors.ts';
import type { FileOptions } from './job-fields.ts';

export const JSONAPI_MEDIA_TYPE = 'application/vnd.api+json';
export const JSONAPI_VERSION = '1.1';

/** Largest width or height a task may ask for: far above any image Kiln decodes (IMAGE_MAX_PIXELS). */
export const MAX_RESIZE_DIMENSION = 100_000;
/** Longest format string (`image/png`, `jpg`) or id read from a request. */
const MAX_TEXT = 255;

/** "is required" when the member is absent, else what it must be. */
const expected =
  (what: string) =>
  (iss: { input?: unknown }): string =>
    iss.input === undefined ? 'is required' : `must be ${what}`;

const text = (what = 'a non-empty string of at most 255 characters') =>
  z
    .string({ error: expected(what) })
    .min(1, { error: `must be ${what}` })
    .max(MAX_TEXT, { error: `must be ${what}` });

const dimension = z
  .number({ error: expected(`an integer from 1 to ${MAX_RESIZE_DIMENSION}, or null`) })
  .int({ error: `must be an integer from 1 to ${MAX_RESIZE_DIMENSION}, or null` })
  .min(1, { error: `must be an integer from 1 to ${MAX_RESIZE_DIMENSION}, or null` })
  .max(MAX_RESIZE_DIMENSION, { error: `must be an integer from 1 to ${MAX_RESIZE_DIMENSION}, or null` })
  .nullable()
  .optional();

/** `meta` may carry anything (JSON:API); Kiln reads none of it. */
const anyMeta = z.record(z.string(), z.unknown(), { error: expected('an object') }).optional();
const object = <T extends z.core.$ZodLooseShape>(shape: T, what = 'an object') => z.strictObject(shape, { error: expected(what) });

/** The top-level members every request document may carry besides `data`. */
const documentMembers = { jsonapi: z.record(z.string(), z.unknown(), { error: expected('an object') }).optional(), meta: anyMeta };

/**
 * `type` and `id` of the primary resource are read loosely here and judged by the caller, because
 * JSON:API gives them their own statuses: a wrong type is 409, a client-generated id 403.
 */
const resourceMembers = { type: z.unknown().optional(), id: z.unknown().optional(), meta: anyMeta };

export const createFileDocument = object({
  data: object(
    {
      ...resourceMembers,
      attributes: object({
        format: text('a MIME type or extension, such as "image/png" or "png"'),
        size: z
          .number({ error: expected('the file size in bytes, an integer ≥ 1') })
          .int({ error: 'must be the file size in bytes, an integer ≥ 1' })
          .min(1, { error: 'must be the file size in bytes, an integer ≥ 1' })
          .max(Number.MAX_SAFE_INTEGER, { error: 'must be the file size in bytes, an integer ≥ 1' }),
      }),
    },
    'a resource object',
  ),
  ...documentMembers,
});
export type CreateFileDocument = z.infer<typeof createFileDocument>;

export const resizeSettings = object({ width: dimension, height: dimension, max_width: dimension, max_height: dimension });
export type ResizeSettings = z.infer<typeof resizeSettings>;

export const taskSettings = object({ resize: resizeSettings.optional() });
export type TaskSettings = z.infer<typeof taskSettings>;

const inputRelationship = object({
  input: object(
    {
      data: object(
        { type: z.literal('files', { error: expected('"files"') }).optional(), id: text('the id of a file'), meta: anyMeta },
        'a resource identifier {"type":"files","id":…}',
      ),
      meta: anyMeta,
    },
    'a relationship object {"data":{"type":"files","id":…}}',
  ),
});

export const createTaskDocument = object({
  data: object(
    {
      ...resourceMembers,
      attributes: object({
        format: object({ input: text('a MIME type or extension, such as "image/png"'), output: text('a MIME type or extension, such as "image/webp"') }),
        settings: taskSettings.optional(),
        // Shown on every hosted task; accepted so a client that echoes attributes back is not refused.
        public: z.boolean({ error: expected('a boolean') }).optional(),
        // Kiln's extension: the task's own webhook (docs/webhooks.md), sent every event of the task.
        webhook_url: z.string({ error: expected('a URL, such as "https://example.com/hooks/kiln"') }).optional(),
      }),
      relationships: inputRelationship.optional(),
      // The hosted service's own page (the seed) spells it in the singular.
      relationship: inputRelationship.optional(),
    },
    'a resource object',
  ),
  ...documentMembers,
});
export type CreateTaskDocument = z.infer<typeof createTaskDocument>;

/** `/data/attributes/format/input`, with `~` and `/` escaped as RFC 6901 says. */
export function jsonPointer(path: readonly PropertyKey[]): string {
  return path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/** The members a strict object at `path` of `schema` accepts, for the sentence that refuses another. */
function membersAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: z.ZodType | undefined = schema;
  for (const key of [...path, undefined]) {
    while (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodType;
    if (!(s instanceof z.ZodObject)) return [];
    if (key === undefined) return Object.keys(s.shape);
    s = s.shape[String(key)] as z.ZodType | undefined;
  }
  return [];
}

/**
 * Parses a request document, or throws the 400 for its first problem: `detail.pointer` names the
 * member (the JSON:API layer turns it into `source.pointer`) and the sentence says what it must be.
 */
export function parseDocument<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AppError('invalid_request', 'The request body must be a JSON:API document: an object with a "data" member.', { detail: { pointer: '' } });
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const pointer = jsonPointer([...issue.path, issue.keys[0]!]);
    const allowed = membersAt(schema, issue.path);
    throw new AppError(
      'invalid_field',
      `${pointer} is not a member Kiln reads here${allowed.length ? `; ${jsonPointer(issue.path) || 'the document'} may hold ${allowed.join(', ')}` : ''}.`,
      {
        detail: { pointer },
      },
    );
  }
  const pointer = jsonPointer(issue.path);
  throw new AppError('invalid_field', `${pointer || 'The document'} ${issue.message}.`, { detail: { pointer } });
}

/**
 * A task's resize settings as the options a worker reads. `width`/`height` and `max_width`/`max_height`
 * are all upper bounds (Kiln never upscales), so each side is the smaller of the two that are set;
 * one side set fits that side, both set fit inside the box.
 */
export function resizeOptionsFor(r: ResizeSettings | undefined): Pick<FileOptions, 'resize' | 'resizeWidth' | 'resizeHeight'> {
  const side = (a: number | null | undefined, b: number | null | undefined): number | null => (a && b ? Math.min(a, b) : (a ?? b ?? null));
  const w = side(r?.width, r?.max_width);
  const h = side(r?.height, r?.max_height);
  if (w && h) return { resize: 'box', resizeWidth: w, resizeHeight: h };
  if (w) return { resize: 'width', resizeWidth: w, resizeHeight: null };
  if (h) return { resize: 'height', resizeWidth: null, resizeHeight: h };
  return { resize: 'original', resizeWidth: null, resizeHeight: null };
}

export const TASK_STATUSES = { pending: 'PENDING', processing: 'PROCESSING', completed: 'COMPLETED', failed: 'FAILED' } as const;
export type TaskStatus = (typeof TASK_STATUSES)[keyof typeof TASK_STATUSES];
export type TurbofilesFileStatus = 'AWAITING_UPLOAD' | 'READY' | 'EXPIRED';

/** Page sizes (`page[size]`) the lists accept. */
export const PAGE_SIZE = { default: 10, min: 1, max: 100 } as const;

/** Where a list resumes: a creation time (to the microsecond) and, to break ties, the id there. */
export interface Cursor {
  at: string;
  id?: string;
}

const CURSOR = /^([1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z)(?:,([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}))?$/i;

/**
 * Reads a cursor: what Kiln's links carry (`2024-11-22T16:20:28.048315Z,<id>`), or a bare timestamp
 * as the hosted service's links do, which then compares by time alone. Undefined when it is neither,
 * or names no real instant (the database would refuse February 30th; this must refuse it first).
 */
export function parseCursor(value: string): Cursor | undefined {
  const m = CURSOR.exec(value);
  if (!m) return undefined;
  const at = m[1]!;
  const d = new Date(at);
  if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 19) !== at.slice(0, 19)) return undefined;
  return m[2] ? { at, id: m[2].toLowerCase() } : { at };
}

export const formatCursor = (c: Required<Cursor>): string => `${c.at},${c.id}`;

/** The page a list request asked for, already checked. */
export interface PageRequest {
  size: number;
  after?: Cursor;
  before?: Cursor;
}

/**
 * Reads `page[size]`, `page[after]` and `page[before]` from a query (Express's simple parser keeps the
 * brackets in the names). Any other `page[…]` is refused: JSON:API says a server must not ignore a
 * query parameter it does not understand. Errors carry `detail.parameter` (`source.parameter`).
 */
export function parsePageQuery(query: Record<string, unknown>): PageRequest {
  const one = (name: string): string | undefined => {
    const v = query[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new AppError('invalid_field', `${name} was sent more than once; send it once.`, { detail: { parameter: name } });
    return v;
  };
  for (const name of Object.keys(query)) {
    if (name.startsWith('page') && !['page[size]', 'page[after]', 'page[before]'].includes(name)) {
      throw new AppError('invalid_field', `${name} is not a page parameter Kiln reads; use page[size], page[after] and page[before] (cursor pagination).`, {
        detail: { parameter: name },
      });
    }
  }
  const rawSize = one('page[size]');
  let size: number = PAGE_SIZE.default;
  if (rawSize !== undefined) {
    size = /^\d{1,3}$/.test(rawSize) ? Number(rawSize) : Number.NaN;
    if (!(size >= PAGE_SIZE.min && size <= PAGE_SIZE.max)) {
      throw new AppError('invalid_field', `page[size] must be an integer from ${PAGE_SIZE.min} to ${PAGE_SIZE.max}; got ${JSON.stringify(rawSize.slice(0, 40))}.`, {
        detail: { parameter: 'page[size]', min: PAGE_SIZE.min, max: PAGE_SIZE.max },
      });
    }
  }
  const cursor = (name: 'page[after]' | 'page[before]'): Cursor | undefined => {
    const raw = one(name);
    if (raw === undefined) return undefined;
    const c = parseCursor(raw);
    if (!c) throw new AppError('invalid_field', `${name} is not a cursor: use the links.next / links.prev of a previous page.`, { detail: { parameter: name } });
    return c;
  };
  const after = cursor('page[after]');
  const before = cursor('page[before]');
  return { size, ...(after ? { after } : {}), ...(before ? { before } : {}) };
}

/** A JSON:API resource as the dialect writes it. */
export interface Resource<A extends object = object> {
  type: string;
  id: string;
  attributes: A;
  relationships?: Record<string, { data: { type: string; id: string } | null; links?: { self: string; related: string } }>;
  links: { self: string } & Record<string, string | null>;
  meta?: Record<string, unknown>;
}

export interface FileAttributes {
  format: string;
  size: number;
  status: TurbofilesFileStatus;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
}

export interface TaskAttributes {
  public: false;
  format: { input: string; output: string };
  settings: TaskSettings;
  status: TaskStatus;
  started_at: string | null;
  processed_at: string | null;
  processing_metadata: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}
