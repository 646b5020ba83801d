/** The Convertly dialect's routes (`/api/*`) for the OpenAPI document: one entry per route. */
import { z } from 'zod';
import {
  jobEventFrameSchema,
  jobAcceptedSchema,
  jobCreatedSchema,
  jobDetailSchema,
  jobFormSchema,
  jobListResponseSchema,
  jobStatusSchema,
  jobSummarySchema,
  mediaToolResponseSchema,
  syncResponseSchema,
  TOOL_NAMES,
  TOOLS,
  type ErrorCode,
  type ToolName,
} from '@kiln/contracts';
import type { RouteDoc } from './route-docs.ts';

const jobId = z.object({ id: z.uuid().describe('The job id (jobId).') });
const idempotency = z.object({
  'Idempotency-Key': z.string().min(1).max(255).optional().describe('The same key with the same API key returns the same job instead of a second one.'),
});
const replayed = { 'Idempotent-Replayed': { description: '"true" when an Idempotency-Key matched an earlier job, which is answered instead.' } };

/** What a submission can be refused for: its fields, its files, the key's limits, its URL sources. */
const SUBMIT_ERRORS: readonly ErrorCode[] = [
  'invalid_field',
  'invalid_request',
  'url_not_allowed',
  'quota_exceeded',
  'format_not_allowed',
  'file_too_large',
  'too_many_files',
  'unsupported_format',
  'queue_full',
  'insufficient_storage',
];

const syncDescription = (what: string) =>
  `${what} The request is queued exactly like a job and held until the job ends (SYNC_TIMEOUT_SECONDS, default 60 s); past that the answer is 202 with the job id to poll. When every file fails, the call fails with the first file's error (detail.results lists them all). With ?download=1 (or Accept: application/octet-stream and not JSON) a request of one file is answered with the result's bytes instead (its Content-Type, Content-Disposition, and Kiln-Job-Id); several files are then refused with 400 invalid_field.`;

/** `?download=1` on the sync endpoints: the result's bytes as the answer (docs/api.md). */
const downloadQuery = z.object({
  download: z
    .enum(['1', 'true', '0', 'false'])
    .optional()
    .describe("1 or true: answer a request of one file with the result's bytes (one request instead of the JSON answer and a download)."),
});

const formatsBody = z
  .object({
    outputs: z.array(z.object({ format: z.string(), family: z.string(), mime: z.string(), extension: z.string() })),
    inputs: z.array(
      z.object({
        input: z.string(),
        family: z.string(),
        mime: z.string(),
        convertTo: z.array(z.string()),
        options: z.array(z.string()).describe('The job fields that apply to this input.'),
        compressTo: z.string().nullable(),
      }),
    ),
    aliases: z.record(z.string(), z.string()).describe('Other names `format` accepts (jpeg → jpg …).'),
    mediaTypes: z
      .object({ inputs: z.record(z.string(), z.string()), outputs: z.record(z.string(), z.string()) })
      .describe('MIME types and extensions the TurboFiles format members accept.'),
  })
  .meta({ id: 'FormatCatalog' });

const toolCatalogBody = z
  .object({
    tools: z.array(
      z.object({
        name: z.enum(TOOL_NAMES),
        summary: z.string(),
        endpoint: z.string(),
        inputs: z.union([z.array(z.string()), z.literal('any')]),
        multipleInputs: z.boolean(),
        overlayImage: z.boolean(),
        available: z.boolean(),
        unavailableReason: z.string().optional(),
        aliases: z.record(z.string(), z.string()),
        options: z.record(z.string(), z.unknown()).describe("The tool's options as JSON Schema."),
      }),
    ),
  })
  .meta({ id: 'MediaToolCatalog' });

const pascal = (name: string) => name.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase());

/** A media tool's form: its input part(s) or URL, the route's own fields, and the tool's options (its zod schema). */
function toolForm(name: ToolName): z.ZodObject {
  const spec = TOOLS[name];
  return spec.options.extend({
    file: z
      .string()
      .meta({ format: 'binary' })
      .optional()
      .describe(spec.multiple ? 'An image (repeat the part, or use files, for several pages).' : 'The input file (or send sourceUrl).'),
    files: z
      .array(z.string().meta({ format: 'binary' }))
      .optional()
      .describe('Kiln’s job field name for the input; file wins when both are sent.'),
    ...(spec.overlay ? { watermarkFile: z.string().meta({ format: 'binary' }).optional().describe('The image to draw (alias watermark).') } : {}),
    sourceUrl: z.string().optional().describe('The input by URL, fetched by a worker.'),
    async: z.enum(['true', 'false']).optional().describe('true: answer at once with the job (202-style body, status 200) and poll GET /api/jobs/{id}.'),
    background: z.enum(['true', 'false']).optional().describe('Convertly’s name for async.'),
    saveToStorage: z.enum(['true', 'false']).optional().describe('true: results stay stored and come back as signed URLs; else inline data: URLs.'),
    webhookUrl: z.string().optional().describe("Kiln's extension: this job's media.tool.* events are also POSTed here (docs/webhooks.md)."),
  });
}

function toolDoc(name: ToolName): RouteDoc {
  const spec = TOOLS[name];
  const aliases = Object.entries({ ...(spec.aliases ?? {}), ...(name === 'transform' ? { crop: 'cropLeft,cropTop,cropWidth,cropHeight' } : {}) });
  const base = {
    method: 'post' as const,
    route: '/api/media/:tool',
    path: `/api/media/${name}`,
    operationId: `media${pascal(name)}`,
    summary: `${name}: ${spec.summary}`,
    tag: 'Media',
    auth: 'apiKey' as const,
    errorBody: 'convertly' as const,
  };
  if (spec.unavailable) {
    return { ...base, description: spec.unavailable, responses: {}, errors: ['not_implemented'] };
  }
  return {
    ...base,
    description: [
      `${spec.summary} A tool run is a job of one file (visible in GET /api/jobs with its tool); without async=true the request waits like POST /api/convert.`,
      aliases.length ? `Aliases: ${aliases.map(([a, t]) => `\`${a}\` → \`${t}\``).join(', ')}.` : '',
    ]
      .filter(Boolean)
      .join('\n\n'),
    headers: idempotency,
    body: { contentType: 'multipart/form-data', schema: toolForm(name) },
    responses: {
      200: { description: 'The result (or, with async=true, the queued job as JobAccepted).', schema: z.union([mediaToolResponseSchema, jobAcceptedSchema]), headers: replayed },
      202: { description: 'Still running after SYNC_TIMEOUT_SECONDS: poll GET /api/jobs/{id}.', schema: jobAcceptedSchema },
    },
    errors: [...SUBMIT_ERRORS, 'not_found'],
  };
}

export const convertlyDocs: RouteDoc[] = [
  {
    method: 'post',
    route: '/api/jobs',
    operationId: 'createJob',
    summary: 'Create an async job',
    description:
      'Uploads one or more files with their settings and queues them. A singular field applies to every file; its plural (a JSON array) must have exactly one entry per file. Nothing is queued when any field is wrong.',
    tag: 'Jobs',
    auth: 'apiKey',
    errorBody: 'convertly',
    headers: idempotency,
    body: { contentType: 'multipart/form-data', schema: jobFormSchema('jobs').meta({ id: 'CreateJobRequest' }) },
    responses: { 200: { description: 'Queued job', schema: jobCreatedSchema, headers: replayed } },
    errors: SUBMIT_ERRORS,
  },
  {
    method: 'get',
    route: '/api/jobs',
    operationId: 'listJobs',
    summary: 'List jobs',
    description:
      "The key's own jobs, newest first. Deep pages: pass the previous page's pagination.nextAfter as `after` (keyset paging; `offset` then counts from it), which costs the same at any depth, where a large `offset` makes Postgres step over every job before the page.",
    tag: 'Jobs',
    auth: 'apiKey',
    errorBody: 'convertly',
    query: z.object({
      limit: z.int().min(1).max(100).default(20).optional(),
      offset: z.int().min(0).default(0).optional(),
      status: jobStatusSchema.optional(),
      after: z.uuid().optional().describe('Kiln: list the jobs after this one (a jobId from an earlier page, e.g. its pagination.nextAfter).'),
    }),
    responses: { 200: { description: 'Paginated jobs', schema: jobListResponseSchema } },
    errors: ['invalid_field'],
  },
  {
    method: 'get',
    route: '/api/jobs/:id',
    operationId: 'getJob',
    summary: 'Retrieve a job',
    tag: 'Jobs',
    auth: 'apiKey',
    errorBody: 'convertly',
    params: jobId,
    responses: { 200: { description: 'Job detail', schema: jobDetailSchema } },
    errors: ['not_found'],
  },
  {
    method: 'get',
    route: '/api/jobs/:id/events',
    operationId: 'getJobEvents',
    summary: "Follow a job's progress live (Server-Sent Events)",
    description:
      'A text/event-stream of the job: snapshot, then progress and file events, then completed or failed, after which the stream closes. Fed by Postgres NOTIFY on any gateway; reconnect with Last-Event-ID (or ?lastEventId=) to get exactly what was missed.',
    tag: 'Jobs',
    auth: 'apiKey',
    errorBody: 'convertly',
    params: jobId,
    query: z.object({ lastEventId: z.string().optional().describe('The same as the Last-Event-ID header, for clients that cannot set headers.') }),
    headers: z.object({ 'Last-Event-ID': z.string().optional().describe('The id of the last event received: resume after it instead of starting with a snapshot.') }),
    responses: { 200: { description: 'The event stream', contentType: 'text/event-stream', schema: jobEventFrameSchema } },
    errors: ['not_found', 'rate_limited', 'unavailable'],
  },
  {
    method: 'delete',
    route: '/api/jobs/:id',
    operationId: 'cancelJob',
    summary: 'Cancel a pending job',
    description: 'Only pending jobs can be cancelled; the job then reads status "failed", errorMessage "Job was cancelled.".',
    tag: 'Jobs',
    auth: 'apiKey',
    errorBody: 'convertly',
    params: jobId,
    responses: { 200: { description: 'The cancelled job', schema: jobSummarySchema } },
    errors: ['not_found', 'job_not_cancellable'],
  },
  {
    method: 'post',
    route: '/api/convert',
    operationId: 'convertFiles',
    summary: 'Convert files',
    description: syncDescription('Converts the uploaded files and answers with the results.'),
    tag: 'Media',
    auth: 'apiKey',
    errorBody: 'convertly',
    query: downloadQuery,
    headers: idempotency,
    body: { contentType: 'multipart/form-data', schema: jobFormSchema('convert').meta({ id: 'ConvertRequest' }) },
    responses: {
      200: { description: 'Converted files', schema: syncResponseSchema, headers: replayed },
      202: { description: 'Still running after SYNC_TIMEOUT_SECONDS', schema: jobAcceptedSchema },
    },
    errors: SUBMIT_ERRORS,
  },
  {
    method: 'post',
    route: '/api/compress',
    operationId: 'compressFiles',
    summary: 'Compress files',
    description: syncDescription('Compresses the uploaded files, keeping a compatible format (by quality, or to targetBytes).'),
    tag: 'Media',
    auth: 'apiKey',
    errorBody: 'convertly',
    query: downloadQuery,
    headers: idempotency,
    body: { contentType: 'multipart/form-data', schema: jobFormSchema('compress').meta({ id: 'CompressRequest' }) },
    responses: {
      200: { description: 'Compressed files', schema: syncResponseSchema, headers: replayed },
      202: { description: 'Still running after SYNC_TIMEOUT_SECONDS', schema: jobAcceptedSchema },
    },
    errors: SUBMIT_ERRORS,
  },
  ...TOOL_NAMES.map(toolDoc),
  {
    method: 'get',
    route: '/api/files/:id',
    operationId: 'downloadFile',
    summary: 'Download a result (signed link)',
    description:
      'The downloadUrl of a result or archive. The signature is the permission: no API key. A single Range is honoured (206); with DOWNLOAD_REDIRECT=s3 the answer is a 302 to a short-lived presigned GET.',
    tag: 'Files',
    auth: 'signed',
    errorBody: 'convertly',
    params: z.object({ id: z.uuid().describe('The storedFileId.') }),
    query: z.object({ exp: z.string().describe('Expiry, unix seconds.'), sig: z.string().describe('HMAC signature.') }),
    headers: z.object({ Range: z.string().optional().describe('One byte range, e.g. bytes=0-1023.') }),
    responses: {
      200: { description: 'The file', contentType: 'application/octet-stream', schema: z.string().meta({ format: 'binary' }) },
      206: { description: 'The requested range', contentType: 'application/octet-stream', schema: z.string().meta({ format: 'binary' }) },
      302: { description: 'DOWNLOAD_REDIRECT=s3: Location is a presigned S3 GET.', headers: { Location: { description: 'The presigned URL.' } } },
      416: { description: 'The range lies outside the file (Content-Range: bytes */size).' },
    },
    errors: ['not_found'],
  },
  {
    method: 'get',
    route: '/api/formats',
    operationId: 'listFormats',
    summary: 'What converts to what',
    description: "Generated from the codec's own format registry.",
    tag: 'Catalog',
    auth: 'none',
    errorBody: 'convertly',
    responses: { 200: { description: 'The format matrix', schema: formatsBody } },
    errors: [],
  },
  {
    method: 'get',
    route: '/api/media',
    operationId: 'listMediaTools',
    summary: 'The media tools and their options',
    tag: 'Catalog',
    auth: 'none',
    errorBody: 'convertly',
    responses: { 200: { description: 'Every tool, its options as JSON Schema, the inputs it takes', schema: toolCatalogBody } },
    errors: [],
  },
];
