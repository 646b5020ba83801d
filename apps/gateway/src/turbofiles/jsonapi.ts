/**
 * JSON:API 1.1 at the HTTP edge of the TurboFiles dialect: content negotiation, the bounded request
 * body, documents (`jsonapi`, `links.self`), error objects for every failure, and cursor-page links.
 * The rest of the dialect builds resources and hands them here; nothing else writes a /v1 body.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { AppError, JSONAPI_MEDIA_TYPE, JSONAPI_VERSION, formatCursor, type Cursor, type PageRequest, type Resource } from '@kiln/contracts';
import type { Config } from '@kiln/config';
import type { Page } from '@kiln/db';
import { publicBaseUrl } from '../job-responses.ts';
import { drainUnreadBody, toAppError } from '../errors.ts';
import { http } from '../node-http.ts';

interface MediaRange {
  type: string;
  params: Record<string, string>;
}

/** `application/vnd.api+json; ext="a b", q=0.5` → type and parameters (names lower-cased, quotes removed). */
function mediaRanges(header: string): MediaRange[] {
  return header
    .split(',')
    .map((part) => {
      const [type = '', ...params] = part.split(';');
      return {
        type: type.trim().toLowerCase(),
        params: Object.fromEntries(
          params
            .map((p) => p.split('='))
            .filter(([name]) => name?.trim())
            .map(([name, ...value]) => [
              name!.trim().toLowerCase(),
              value
                .join('=')
                .trim()
                .replace(/^"(.*)"$/, '$1'),
            ]),
        ),
      };
    })
    .filter((m) => m.type);
}

/** JSON:API allows the media type only bare or with `ext` and `profile`; Kiln implements no extension. */
const foreignParams = (m: MediaRange, alsoAllowed: string[] = []) => Object.keys(m.params).filter((p) => !['profile', ...alsoAllowed].includes(p));

/**
 * Content negotiation as JSON:API 1.1 asks: a request body in the JSON:API media type with any
 * parameter but `profile` (an `ext` Kiln does not implement included) is 415; an Accept header whose
 * every JSON:API entry carries such a parameter is 406. Bodies may also be plain `application/json`,
 * as the hosted service's own examples sometimes send.
 */
export function negotiate(): RequestHandler {
  return (req, _res, next) => {
    const accept = req.get('accept');
    if (accept) {
      const ours = mediaRanges(accept).filter((m) => m.type === JSONAPI_MEDIA_TYPE);
      if (ours.length && ours.every((m) => foreignParams(m, ['q']).length > 0)) {
        throw new AppError('not_acceptable', `Accept asks for ${JSONAPI_MEDIA_TYPE} only with parameters Kiln does not implement; send Accept: ${JSONAPI_MEDIA_TYPE}.`, {
          detail: { header: 'Accept' },
        });
      }
    }
    const hasBody = req.method === 'POST' || req.method === 'PATCH';
    if (hasBody) {
      const ct = req.get('content-type');
      const m = ct ? mediaRanges(ct)[0] : undefined;
      const usable = m && ((m.type === JSONAPI_MEDIA_TYPE && foreignParams(m).length === 0) || (m.type === 'application/json' && foreignParams(m, ['charset']).length === 0));
      if (!usable) {
        throw new AppError(
          'unsupported_media_type',
          m?.type === JSONAPI_MEDIA_TYPE
            ? `Content-Type ${JSONAPI_MEDIA_TYPE} may carry no parameter but profile (no JSON:API extension is implemented); send it bare.`
            : `Send the body as a JSON:API document with Content-Type: ${JSONAPI_MEDIA_TYPE} (application/json is accepted too); got ${ct ? JSON.stringify(ct.slice(0, 100)) : 'none'}.`,
          { detail: { header: 'Content-Type' } },
        );
      }
    }
    next();
  };
}

/** The request body, parsed only up to TURBOFILES_MAX_BODY_BYTES: a document is small, an upload goes elsewhere. */
export function jsonBody(config: Pick<Config, 'TURBOFILES_MAX_BODY_BYTES'>): RequestHandler {
  return express.json({ type: [JSONAPI_MEDIA_TYPE, 'application/json'], limit: config.TURBOFILES_MAX_BODY_BYTES, strict: true });
}

/** Where this request was sent, as an absolute URL: every document's `links.self`. */
export function selfLink(config: Pick<Config, 'PUBLIC_URL' | 'PORT'>, req: Request): string {
  return publicBaseUrl(config, req) + req.originalUrl;
}

/** Writes a document in the JSON:API media type, with no parameter on it (JSON:API forbids charset). */
export function sendDocument(res: Response, status: number, doc: Record<string, unknown>): void {
  // A Buffer, not a string: Express would append "; charset=utf-8" to the type of a string body.
  res
    .status(status)
    .type(JSONAPI_MEDIA_TYPE)
    .send(Buffer.from(JSON.stringify({ jsonapi: { version: JSONAPI_VERSION }, ...doc })));
}

export interface ErrorObject {
  id?: string;
  status: string;
  code: string;
  title: string;
  detail: string;
  source?: { pointer?: string; parameter?: string; header?: string };
  meta?: Record<string, unknown>;
}

/**
 * One AppError as a JSON:API error object: `status` as a string, Kiln's stable `code`, the reason
 * phrase as `title`, the sentence as `detail`, `source` from the member, parameter or header the error
 * names, and the rest of its detail (limits, allowed values) under `meta`. `id` is the request id.
 */
export function errorObject(e: AppError, requestId: string | undefined): ErrorObject {
  const { pointer, parameter, header, ...rest } = e.detail ?? {};
  const source = {
    ...(typeof pointer === 'string' ? { pointer } : {}),
    ...(typeof parameter === 'string' ? { parameter } : {}),
    ...(typeof header === 'string' ? { header } : {}),
  };
  return {
    ...(requestId ? { id: requestId } : {}),
    status: String(e.status),
    code: e.code,
    title: http.STATUS_CODES[e.status] ?? 'Error',
    detail: e.message,
    ...(Object.keys(source).length ? { source } : {}),
    ...(Object.keys(rest).length ? { meta: rest } : {}),
  };
}

/** The /v1 error handler: anything thrown becomes `{jsonapi, errors:[…]}`, with the same statuses as Convertly's. */
export function jsonApiErrors(config: Pick<Config, 'TURBOFILES_MAX_BODY_BYTES'>) {
  return async (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const type = (err as { type?: unknown } | null)?.type;
    const e =
      type === 'entity.too.large'
        ? new AppError(
            'request_too_large',
            `The request body is larger than ${config.TURBOFILES_MAX_BODY_BYTES} bytes (TURBOFILES_MAX_BODY_BYTES); upload file bytes to the file's links.upload instead.`,
            {
              detail: { limit: 'TURBOFILES_MAX_BODY_BYTES', maxBytes: config.TURBOFILES_MAX_BODY_BYTES },
            },
          )
        : type === 'entity.parse.failed'
          ? new AppError('invalid_request', 'The request body is not valid JSON.', { detail: { pointer: '' } })
          : type === 'charset.unsupported' || type === 'encoding.unsupported'
            ? new AppError('unsupported_media_type', 'The request body must be UTF-8 JSON, without a content encoding.', { detail: { header: 'Content-Type' } })
            : toAppError(err, req, req.log);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    await drainUnreadBody(req, res);
    if (e.headers) res.set(e.headers);
    sendDocument(res, e.status, { errors: [errorObject(e, req.requestId)] });
  };
}

export function jsonApiNotFound(req: Request): never {
  throw new AppError('not_found', `No route ${req.method} ${req.path} in the TurboFiles dialect; GET /docs (or GET /openapi.json) lists /v1/files, /v1/tasks and /v1/users/me.`);
}

/**
 * Refuses query parameters an endpoint does not read. JSON:API 1.1: a server must answer 400 to a
 * parameter it does not know how to process, rather than quietly ignoring it.
 */
export function onlyParameters(req: Request, allowed: readonly string[]): void {
  for (const name of Object.keys(req.query)) {
    if (!allowed.includes(name)) {
      throw new AppError('invalid_field', `Query parameter ${name} is not supported here${allowed.length ? `; this endpoint reads ${allowed.join(', ')}` : ''}.`, {
        detail: { parameter: name },
      });
    }
  }
}

/**
 * `links` and `meta` of a list page. `next` resumes after the page's last (older) row, `prev` before
 * its first (newer) one, each null when nothing lies that way; `meta.rangeTruncated` is true when the
 * range asked for holds more rows than `page[size]` (the hosted service shows it on every list).
 */
export function pageLinks<R extends { cursor: Required<Cursor> }>(
  config: Pick<Config, 'PUBLIC_URL' | 'PORT'>,
  req: Request,
  page: PageRequest,
  facts: Page<R>,
  keep: Record<string, string | undefined> = {},
): { links: Record<string, string | null>; meta: { rangeTruncated: boolean } } {
  const base = publicBaseUrl(config, req) + req.baseUrl + req.path.replace(/\/$/, '');
  const url = (extra: Record<string, string>) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(keep)) if (v !== undefined) q.set(k, v);
    if (req.query['page[size]'] !== undefined) q.set('page[size]', String(page.size));
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    const s = q.toString();
    return s ? `${base}?${s}` : base;
  };
  const first = facts.rows[0]?.cursor;
  const last = facts.rows[facts.rows.length - 1]?.cursor;
  const nextFrom = last ?? (page.before?.id ? (page.before as Required<Cursor>) : undefined);
  const prevFrom = first ?? (page.after?.id ? (page.after as Required<Cursor>) : undefined);
  return {
    links: {
      self: selfLink(config, req),
      first: url({}),
      next: facts.older && nextFrom ? url({ 'page[after]': formatCursor(nextFrom) }) : null,
      prev: facts.newer && prevFrom ? url({ 'page[before]': formatCursor(prevFrom) }) : null,
    },
    meta: { rangeTruncated: facts.truncated },
  };
}

/**
 * The primary resource of a create request, as JSON:API judges it: a `type` other than the
 * collection's is 409 Conflict, a client-generated `id` 403 (Kiln makes its own ids). A missing
 * `type` is accepted: the hosted service's own example omits it.
 */
export function checkPrimaryResource(data: { type?: unknown; id?: unknown }, type: 'files' | 'tasks'): void {
  if (data.type !== undefined && data.type !== type) {
    throw new AppError('conflict', `/data/type must be "${type}" for this collection; got ${JSON.stringify(data.type)?.slice(0, 60)}.`, { detail: { pointer: '/data/type' } });
  }
  if (data.id !== undefined) {
    throw new AppError('forbidden', `/data/id must not be sent: Kiln assigns ${type} their ids.`, { detail: { pointer: '/data/id' } });
  }
}

/** `{data, included?, links:{self}}` for one resource. */
export function resourceDocument(config: Pick<Config, 'PUBLIC_URL' | 'PORT'>, req: Request, data: Resource | null, included?: Resource[]): Record<string, unknown> {
  return { links: { self: selfLink(config, req) }, data, ...(included ? { included } : {}) };
}
