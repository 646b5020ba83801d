/** Health, readiness, metrics and this reference, for the OpenAPI document: one entry per route. */
import { z } from 'zod';
import type { RouteDoc } from './route-docs.ts';

const check = z.object({ ok: z.boolean(), ms: z.number().optional(), error: z.string().optional() });
const readiness = z
  .object({
    status: z.enum(['ready', 'unavailable']),
    checks: z
      .object({
        database: check,
        queue: check,
        storage: check.extend({ driver: z.string() }).catchall(z.unknown()).describe('The driver, and for S3 which bucket answered.'),
      })
      .optional()
      .describe('Only with Authorization: Bearer <METRICS_TOKEN>.'),
    workers: z
      .array(z.object({ service: z.string(), lastSeenSeconds: z.number(), stale: z.boolean() }))
      .optional()
      .describe('Only with Authorization: Bearer <METRICS_TOKEN>.'),
    engines: z
      .record(z.string(), z.unknown())
      .nullable()
      .optional()
      .describe('What the freshest worker resolved at start-up (ffmpeg, 7-Zip…). Only with Authorization: Bearer <METRICS_TOKEN>.'),
  })
  .meta({ id: 'Readiness' });

const ops = { tag: 'Operations', auth: 'none' as const, errorBody: 'convertly' as const, errors: [] };

export const systemDocs: RouteDoc[] = [
  {
    ...ops,
    method: 'get',
    route: '/healthz',
    operationId: 'health',
    summary: 'Liveness',
    responses: { 200: { description: 'The process answers', schema: z.object({ status: z.literal('ok') }) } },
  },
  {
    ...ops,
    method: 'get',
    route: '/readyz',
    operationId: 'readiness',
    summary: 'Readiness',
    description:
      'Database, queue and storage checked (3 s each). Anyone sees `status`; the checks, storage location, worker heartbeats and engines only a caller holding METRICS_TOKEN (as a bearer token). For load-balancer health checks.',
    responses: { 200: { description: 'Ready', schema: readiness }, 503: { description: 'A dependency is unreachable', schema: readiness } },
  },
  {
    ...ops,
    auth: 'metrics',
    method: 'get',
    route: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics',
    description: "The gateway's own counters plus the whole system's queue depths and job totals. With METRICS_TOKEN set it needs that bearer token.",
    responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain', schema: z.string() } },
    errors: ['unauthorized'],
  },
  {
    ...ops,
    method: 'get',
    route: '/openapi.json',
    operationId: 'openApiDocument',
    summary: 'This OpenAPI 3.1 document',
    responses: { 200: { description: 'The document', schema: z.record(z.string(), z.unknown()) } },
  },
  {
    ...ops,
    errorBody: 'html',
    method: 'get',
    route: '/docs',
    operationId: 'apiReference',
    summary: 'The API reference (this document rendered)',
    description: 'Swagger UI served from the gateway itself (the swagger-ui-dist package): no CDN, works offline.',
    responses: { 200: { description: 'An HTML page', contentType: 'text/html', schema: z.string() } },
  },
  {
    ...ops,
    method: 'get',
    route: '/docs/assets/:file',
    operationId: 'apiReferenceAsset',
    summary: "The reference page's scripts and styles",
    params: z.object({ file: z.enum(['swagger-ui.css', 'swagger-ui-bundle.js', 'docs.js', 'favicon-32x32.png']) }),
    responses: { 200: { description: 'The file', contentType: 'application/octet-stream', schema: z.string().meta({ format: 'binary' }) } },
    errors: ['not_found'],
  },
];
