/**
 * `GET /openapi.json`: the OpenAPI 3.1 document of every route, generated from the route entries
 * (route-docs.ts) and the zod contracts they name. zod-openapi turns the zod schemas into JSON Schema
 * with zod 4's own `z.toJSONSchema` and adds what OpenAPI needs around it (paths, parameters, request
 * bodies, reusable components from `.meta({ id })`); we chose it over writing that layer ourselves
 * and over @asteasolutions/zod-to-openapi because it renders through zod's own converter, so the
 * schemas here are the ones `GET /api/media` already shows, and needs no extension of zod.
 */
import { createRequire } from 'node:module';
import { z } from 'zod';
import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject, type ZodOpenApiResponseObject, type ZodOpenApiResponsesObject } from 'zod-openapi';
import { ERROR_DESCRIPTIONS, ERROR_STATUS, errorBodySchema, errorCodeSchema, jsonApiErrorDocumentSchema, JSONAPI_MEDIA_TYPE, type ErrorCode } from '@kiln/contracts';
import { convertlyDocs } from './convertly.docs.ts';
import { dashboardDocs } from './dashboard.docs.ts';
import { openApiPath, type RouteDoc } from './route-docs.ts';
import { systemDocs } from './system.docs.ts';
import { turbofilesDocs } from './turbofiles.docs.ts';
import { webhooksDocs } from './webhooks.docs.ts';

/** Every documented route, in the order the reference shows them. */
export const ROUTE_DOCS: readonly RouteDoc[] = [...convertlyDocs, ...webhooksDocs, ...turbofilesDocs, ...systemDocs, ...dashboardDocs];

const TAGS = [
  { name: 'Jobs', description: 'Convertly dialect: asynchronous jobs of one or more files (multipart/form-data).' },
  { name: 'Media', description: 'Convertly dialect: synchronous convert and compress, and the media tools.' },
  { name: 'Files', description: 'Convertly dialect: signed downloads (no API key).' },
  { name: 'Catalog', description: 'What Kiln converts, and the media tools with their options. No API key.' },
  { name: 'Webhooks', description: 'Convertly dialect: signed event deliveries to your endpoints (docs/webhooks.md).' },
  { name: 'TurboFiles', description: 'TurboFiles dialect (JSON:API 1.1, application/vnd.api+json): declare a file, PUT its bytes, run a task.' },
  { name: 'Operations', description: 'Health, readiness, Prometheus metrics and this reference.' },
  { name: 'Dashboard', description: 'The operator dashboard (a browser UI behind ADMIN_PASSWORD), listed so the reference covers every route; not for API clients.' },
];

const SECURITY: Record<RouteDoc['auth'], Record<string, string[]>[]> = {
  apiKey: [{ bearerAuth: [] }, { apiKeyAuth: [] }],
  none: [],
  signed: [],
  metrics: [{ metricsToken: [] }, {}],
  dashboard: [{ dashboardSession: [] }],
};

/** Codes a route answers whatever it does, by how it is reached. */
function implicitErrors(doc: RouteDoc): ErrorCode[] {
  const codes: ErrorCode[] = ['internal_error'];
  if (doc.auth === 'apiKey') codes.push('unauthorized', 'rate_limited', 'unavailable');
  // A signed link reads the database and storage, either of which can be down.
  if (doc.auth === 'signed') codes.push('unavailable');
  if (doc.auth === 'metrics') codes.push('unauthorized');
  if (doc.errorBody === 'jsonapi' && doc.auth === 'apiKey') codes.push('not_acceptable');
  return codes;
}

const RETRY_AFTER = { description: 'Seconds to wait before retrying.' };

/** Response headers as OpenAPI header objects: every one is a string on the wire. */
const headerObjects = (headers: Record<string, { description: string }>) =>
  Object.fromEntries(Object.entries(headers).map(([name, h]) => [name, { description: h.description, schema: { type: 'string' as const } }]));

function errorResponses(doc: RouteDoc): Record<string, ZodOpenApiResponseObject> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set([...doc.errors, ...implicitErrors(doc)])) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, ZodOpenApiResponseObject> = {};
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    const description = codes.map((c) => `\`${c}\`: ${ERROR_DESCRIPTIONS[c]}`).join('\n\n');
    const codeEnum = z.enum(codes as [ErrorCode, ...ErrorCode[]]);
    const headers = status === 429 || status === 503 ? { 'Retry-After': RETRY_AFTER } : undefined;
    if (doc.errorBody === 'html') {
      // Pages answer errors as pages; the dashboard's JSON endpoints keep the API's body.
      out[String(status)] = { description, content: { 'text/html': { schema: z.string() } } };
      continue;
    }
    const schema =
      doc.errorBody === 'jsonapi'
        ? jsonApiErrorDocumentSchema.extend({ errors: z.array(jsonApiErrorDocumentSchema.shape.errors.element.extend({ code: codeEnum })) })
        : errorBodySchema.extend({ code: codeEnum });
    out[String(status)] = {
      description,
      ...(headers ? { headers: headerObjects(headers) } : {}),
      content: { [doc.errorBody === 'jsonapi' ? JSONAPI_MEDIA_TYPE : 'application/json']: { schema } },
    };
  }
  return out;
}

function operation(doc: RouteDoc): ZodOpenApiOperationObject {
  const responses: Record<string, ZodOpenApiResponseObject> = {};
  for (const [status, r] of Object.entries(doc.responses)) {
    responses[status] = {
      description: r.description,
      ...(r.headers ? { headers: headerObjects(r.headers) } : {}),
      ...(r.schema ? { content: { [r.contentType ?? 'application/json']: { schema: r.schema, ...(r.example === undefined ? {} : { example: r.example }) } } } : {}),
    };
  }
  Object.assign(responses, errorResponses(doc));
  const requestParams = {
    ...(doc.params ? { path: doc.params } : {}),
    ...(doc.query ? { query: doc.query } : {}),
    ...(doc.headers ? { header: doc.headers } : {}),
  };
  return {
    operationId: doc.operationId,
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: [doc.tag],
    security: SECURITY[doc.auth],
    ...(Object.keys(requestParams).length ? { requestParams } : {}),
    ...(doc.body
      ? {
          requestBody: {
            required: doc.body.required ?? true,
            ...(doc.body.description ? { description: doc.body.description } : {}),
            content: { [doc.body.contentType]: { schema: doc.body.schema } },
          },
        }
      : {}),
    responses: responses as ZodOpenApiResponsesObject,
  };
}

/**
 * Adjusts each JSON Schema zod writes: zod-openapi renders request bodies as zod's input view, where a
 * default on a preprocessed field is dropped (kept here); z.int()'s safe-integer bounds say nothing
 * a client needs (dropped); and a described field says its accepted values and default in words too,
 * since renderers show a multipart field's description but not its enum.
 */
const adjustSchema = (ctx: { zodSchema: unknown; jsonSchema: Record<string, unknown> }) => {
  const js = ctx.jsonSchema;
  const def = (ctx.zodSchema as { _zod?: { def?: { type?: string; defaultValue?: unknown } } })._zod?.def;
  if (def?.type === 'default' && js.default === undefined) js.default = def.defaultValue;
  if (js.maximum === Number.MAX_SAFE_INTEGER) delete js.maximum;
  if (js.minimum === Number.MIN_SAFE_INTEGER) delete js.minimum;
  if (typeof js.description === 'string') {
    const values = Array.isArray(js.enum) && js.enum.length <= 12 && !js.description.includes(' One of: ') ? ` One of: ${js.enum.join(', ')}.` : '';
    const dflt = js.default !== undefined && !js.description.includes(' Default: ') ? ` Default: ${JSON.stringify(js.default)}.` : '';
    js.description = `${js.description}${values}${dflt}`;
  }
};

export function buildOpenApiDocument(docs: readonly RouteDoc[] = ROUTE_DOCS, version = '0.1.0'): Record<string, unknown> {
  const paths: ZodOpenApiPathsObject = {};
  for (const doc of docs) {
    const p = openApiPath(doc);
    paths[p] ??= {};
    const item = paths[p] as Record<string, unknown>;
    if (item[doc.method]) throw new Error(`Two route docs for ${doc.method.toUpperCase()} ${p}`);
    item[doc.method] = operation(doc);
  }
  return createDocument(
    {
      openapi: '3.1.0',
      info: {
        title: 'Kiln API',
        version,
        description: [
          'Kiln is a self-hosted file conversion API. It speaks two dialects: **Convertly** (`/api/*`, multipart/form-data) and **TurboFiles** (`/v1/*`, JSON:API 1.1).',
          'This document is generated from the zod contracts the gateway validates with. The guides — the whole contract with examples, resize presets, limits and their settings — are `docs/api.md` in the Kiln repository.',
          'Authenticate with `Authorization: Bearer <key>` or `x-api-key: <key>`. Errors are `{"error", "code", "detail"}` in the Convertly dialect and JSON:API error documents under `/v1`, with the same codes and statuses.',
        ].join('\n\n'),
        license: { name: 'MIT', identifier: 'MIT' },
      },
      servers: [{ url: '/', description: 'The gateway serving this document' }],
      tags: TAGS,
      paths,
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key (`kiln_…`) as a bearer token.' },
          apiKeyAuth: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'The same API key in the x-api-key header.' },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN, when it is set; otherwise /metrics is open.' },
          dashboardSession: { type: 'apiKey', in: 'cookie', name: 'kiln_session', description: 'The dashboard sign-in session (POST /dashboard/login with ADMIN_PASSWORD).' },
        },
        schemas: { ErrorCode: errorCodeSchema, Error: errorBodySchema },
      },
    },
    { override: adjustSchema } as Parameters<typeof createDocument>[1],
  ) as unknown as Record<string, unknown>;
}

const GATEWAY_VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

let cached: string | undefined;
/** The document as served: built once per process (it depends on code only), versioned as the gateway is. */
export function openApiJson(): string {
  cached ??= JSON.stringify(buildOpenApiDocument(ROUTE_DOCS, GATEWAY_VERSION));
  return cached;
}
