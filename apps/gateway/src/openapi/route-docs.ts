/**
 * One entry per Express route: what the OpenAPI document says about it. The document
 * (`openapi.document.ts`) is generated from these entries and the zod contracts they name; the
 * route-coverage test walks createApp's router and fails when a route has no entry or an entry
 * names no route. To document a new route, add one `RouteDoc` to the list of its area
 * (convertly.docs.ts, turbofiles.docs.ts, system.docs.ts, dashboard.docs.ts) — that is all.
 */
import type { z } from 'zod';
import type { ErrorCode } from '@kiln/contracts';

export type HttpMethod = 'get' | 'post' | 'put' | 'delete' | 'patch';

/**
 * How a route is authorised: an API key (either header), nothing, a signed link (exp + sig in the
 * query), the METRICS_TOKEN bearer when set, or the dashboard's session cookie.
 */
export type RouteAuth = 'apiKey' | 'none' | 'signed' | 'metrics' | 'dashboard';

export interface ResponseDoc {
  description: string;
  /** Default `application/json`, or the dialect's media type. */
  contentType?: string;
  schema?: z.ZodType;
  /** A realistic body for the reference (renderers otherwise invent one from the schema). */
  example?: unknown;
  /** Response headers (all strings on the wire). */
  headers?: Record<string, { description: string }>;
}

export interface RouteDoc {
  method: HttpMethod;
  /** The Express route it documents, exactly as mounted: `/api/jobs/:id`. */
  route: string;
  /** The documented path when it is one value of the route's parameter (`/api/media/thumbnail` of `/api/media/:tool`). */
  path?: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  auth: RouteAuth;
  /** The error body shape: Convertly's `{error, code, detail}`, TurboFiles' JSON:API error document, or an HTML page. */
  errorBody: 'convertly' | 'jsonapi' | 'html';
  params?: z.ZodObject;
  query?: z.ZodObject;
  headers?: z.ZodObject;
  body?: { contentType: string; schema: z.ZodType; required?: boolean; description?: string; example?: unknown };
  responses: Record<number, ResponseDoc>;
  /**
   * Codes this route answers besides the ones every route of its kind does (the document adds
   * internal_error everywhere, and unauthorized + rate_limited to API-key routes).
   */
  errors: readonly ErrorCode[];
}

/** `/api/jobs/:id` → `/api/jobs/{id}`. */
export const openApiPath = (doc: Pick<RouteDoc, 'route' | 'path'>): string => (doc.path ?? doc.route).replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
