/**
 * The response bodies of both dialects as zod schemas, for the OpenAPI document (`GET /openapi.json`).
 * The TypeScript shapes the gateway builds (dto.ts, turbofiles.ts) are checked against these at
 * compile time below, so a field added to one and not the other fails `pnpm typecheck`; the http
 * tests validate real answers against the generated document. Names follow Convertly's published
 * spec where it describes the same thing (JobStatus, JobSummary, JobDetail, JobListResponse, Error).
 * `.meta({ id })` makes a schema a reusable component (`#/components/schemas/<id>`).
 */
import { z } from 'zod';
import { ERROR_STATUS, FILE_ERROR_CODES, type ErrorCode } from './errors.ts';
import { fileResultSchema, FILE_RESULT_EXTRAS } from './file-result.ts';
import { JOB_TYPES } from './job-fields.ts';
import { TOOL_NAMES } from './media-tools.ts';
import type { FileResult, JobDetail, JobSummary, SyncFile } from './dto.ts';
import type { FileAttributes, Resource, TaskAttributes } from './turbofiles.ts';

const isoTime = z.iso.datetime({ offset: true }).meta({ examples: ['2026-05-01T12:00:00.000Z'] });

export const errorCodeSchema = z
  .enum(Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]])
  .meta({ id: 'ErrorCode', description: 'Stable error codes (one catalog for both dialects).' });

/** Convertly's error body; `code` narrowed per response status by the document builder. */
export const errorBodySchema = z
  .object({
    error: z.string().describe('A sentence that says what to do.'),
    code: errorCodeSchema,
    detail: z.record(z.string(), z.unknown()).optional().describe('What the sentence names: field, index, accepted values, limit and its setting.'),
  })
  .meta({ id: 'Error' });

export const jobStatusSchema = z.enum(['pending', 'processing', 'completed', 'failed']).meta({ id: 'JobStatus' });

export const fileErrorSchema = z
  .object({ code: z.enum(FILE_ERROR_CODES), message: z.string() })
  .meta({ id: 'FileError', description: 'Why one file failed; the rest of the job goes on.' });

const extras = fileResultSchema.pick(Object.fromEntries(FILE_RESULT_EXTRAS.map((k) => [k, true])) as Record<(typeof FILE_RESULT_EXTRAS)[number], true>).shape;

export const fileResultResponseSchema = z
  .object({
    index: z.int().nonnegative(),
    filename: z.string(),
    status: jobStatusSchema,
    mimeType: z.string().nullable(),
    format: z.string().nullable(),
    originalSize: z.int().nonnegative(),
    finalSize: z.int().nonnegative().nullable(),
    savedPercent: z.number().nullable(),
    appliedQuality: z.number().nullable(),
    storedFileId: z.uuid().nullable(),
    downloadUrl: z.string().nullable().describe('Absolute, signed, expiring; needs no API key.'),
    progress: z.number().min(0).max(100),
    ...extras,
    error: fileErrorSchema.optional(),
  })
  .meta({ id: 'FileResult' });

const jobSummaryShape = {
  jobId: z.uuid(),
  jobType: z.enum(JOB_TYPES),
  tool: z.enum(TOOL_NAMES).optional().describe('The media tool the job runs; absent for conversions.'),
  status: jobStatusSchema,
  totalFiles: z.int().nonnegative(),
  completedFiles: z.int().nonnegative(),
  failedFiles: z.int().nonnegative(),
  progress: z.number().min(0).max(100),
  errorMessage: z.string().nullable(),
  createdAt: isoTime,
  startedAt: isoTime.nullable(),
  completedAt: isoTime.nullable(),
  expiresAt: isoTime.nullable(),
};

export const jobSummarySchema = z.object(jobSummaryShape).meta({ id: 'JobSummary' });

export const jobDetailSchema = z
  .object({
    ...jobSummaryShape,
    results: z.array(fileResultResponseSchema),
    archive: z.object({ filename: z.string(), size: z.int().nonnegative(), downloadUrl: z.string() }).nullable(),
  })
  .meta({ id: 'JobDetail' });

export const jobListResponseSchema = z
  .object({
    jobs: z.array(jobSummarySchema),
    pagination: z.object({
      limit: z.int(),
      offset: z.int(),
      total: z.int(),
      hasMore: z.boolean(),
      nextAfter: z.uuid().nullable().describe('Kiln: the last listed jobId while hasMore; pass it as `after` for the next page (keyset paging, as fast at any depth).'),
      after: z.uuid().optional().describe('Kiln: the `after` this page was asked for.'),
    }),
  })
  .meta({ id: 'JobListResponse' });

export const jobCreatedSchema = z
  .object({ jobId: z.uuid(), status: jobStatusSchema.describe('pending for a new job; a replayed Idempotency-Key answers the job as it is now.') })
  .meta({ id: 'JobCreated' });

/** 202 from a request that waited past SYNC_TIMEOUT_SECONDS, and a media tool's async=true answer. */
export const jobAcceptedSchema = z
  .object({ jobId: z.uuid(), status: jobStatusSchema, tool: z.enum(TOOL_NAMES).optional(), notice: z.string().optional().describe('Where to poll.') })
  .meta({ id: 'JobAccepted' });

export const syncFileSchema = z
  .object({
    filename: z.string(),
    originalSize: z.int().nonnegative(),
    finalSize: z.int().nonnegative(),
    savedPercent: z.number(),
    mimeType: z.string(),
    downloadUrl: z.string().describe('A data: URL (base64) unless saveToStorage=true or the result is over SYNC_INLINE_MAX_BYTES; then a signed URL.'),
    appliedQuality: z.number().nullable(),
    storedFileId: z.uuid().nullable(),
    ...extras,
    error: fileErrorSchema.optional(),
  })
  .meta({ id: 'SyncFile' });

export const syncResponseSchema = z
  .object({
    files: z.array(syncFileSchema),
    storage: z.object({ saved: z.boolean(), notice: z.string() }),
  })
  .meta({ id: 'ConvertResponse' });

export const mediaToolResponseSchema = syncResponseSchema
  .extend({
    tool: z.enum(TOOL_NAMES),
    metadata: z.record(z.string(), z.unknown()).optional().describe('inspect: the facts it read.'),
    storyboard: fileResultSchema.shape.storyboard,
  })
  .meta({ id: 'MediaToolResponse' });

// ---- TurboFiles (JSON:API 1.1) ----

const jsonapiMember = z.object({ version: z.literal('1.1') });

export const jsonApiErrorDocumentSchema = z
  .object({
    jsonapi: jsonapiMember,
    errors: z.array(
      z.object({
        id: z.string().optional().describe('The request id.'),
        status: z.string().describe('The HTTP status, as a string.'),
        code: errorCodeSchema,
        title: z.string(),
        detail: z.string().describe('A sentence that says what to do.'),
        source: z.object({ pointer: z.string().optional(), parameter: z.string().optional(), header: z.string().optional() }).optional(),
        meta: z.record(z.string(), z.unknown()).optional(),
      }),
    ),
  })
  .meta({ id: 'JsonApiErrorDocument' });

const relationship = z.object({
  data: z.object({ type: z.literal('files'), id: z.uuid() }).nullable(),
  links: z.object({ self: z.string(), related: z.string() }).optional(),
});

export const fileResourceSchema = z
  .object({
    type: z.literal('files'),
    id: z.uuid(),
    attributes: z.object({
      format: z.string().describe('As declared (a MIME type or extension); an output file shows its MIME type.'),
      size: z.int().nonnegative(),
      status: z.enum(['AWAITING_UPLOAD', 'READY', 'EXPIRED']),
      created_at: isoTime,
      updated_at: isoTime,
      expires_at: isoTime.nullable(),
    }),
    links: z.object({
      self: z.string(),
      upload: z.string().optional().describe('AWAITING_UPLOAD: PUT the declared bytes here (signed, no key).'),
      download: z.string().optional().describe('READY: signed download link (no key).'),
    }),
    meta: z.object({ upload_error: z.string().optional() }).optional(),
  })
  .meta({ id: 'File' });

export const taskResourceSchema = z
  .object({
    type: z.literal('tasks'),
    id: z.uuid(),
    attributes: z.object({
      public: z.literal(false),
      format: z.object({ input: z.string(), output: z.string() }),
      settings: z.object({
        resize: z
          .object({
            width: z.int().nullable().optional(),
            height: z.int().nullable().optional(),
            max_width: z.int().nullable().optional(),
            max_height: z.int().nullable().optional(),
          })
          .optional(),
      }),
      status: z.enum(['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED']),
      started_at: isoTime.nullable(),
      processed_at: isoTime.nullable(),
      processing_metadata: z
        .record(z.string(), z.unknown())
        .describe(
          'progress while running; engine, format, mime_type, width, height, duration_seconds, sizes, saved_percent, applied_quality, notes when done; error {code, message} when failed.',
        ),
      created_at: isoTime,
      updated_at: isoTime,
    }),
    relationships: z.object({ input: relationship, output: relationship }),
    links: z.object({ self: z.string() }),
  })
  .meta({ id: 'Task' });

export const userResourceSchema = z
  .object({
    type: z.literal('users'),
    id: z.uuid(),
    attributes: z.object({
      name: z.string(),
      key_prefix: z.string(),
      created_at: isoTime,
      limits: z.object({
        requests_per_minute: z.int().nullable(),
        max_upload_bytes: z.int(),
        max_concurrent_tasks: z.int().nullable(),
        monthly_task_quota: z.int().nullable(),
        allowed_formats: z.array(z.string()).nullable(),
        retention_hours: z.number(),
        file_ttl_hours: z.number(),
      }),
      usage: z.object({ jobs_this_month: z.int(), active_jobs: z.int(), month_resets_at: isoTime }),
    }),
    links: z.object({ self: z.string() }),
  })
  .meta({ id: 'User' });

const pageLinks = z.object({ self: z.string(), first: z.string(), next: z.string().nullable(), prev: z.string().nullable() });

/** `{jsonapi, links, data, included?, meta?}`: one resource (or null), or a cursor page of them. */
export function jsonApiDocument(data: z.ZodType, opts: { list?: boolean; included?: boolean } = {}) {
  return z.object({
    jsonapi: jsonapiMember,
    links: opts.list ? pageLinks : z.object({ self: z.string(), related: z.string().optional() }),
    data: opts.list ? z.array(data) : data,
    ...(opts.included ? { included: z.array(fileResourceSchema).optional() } : {}),
    ...(opts.list ? { meta: z.object({ rangeTruncated: z.boolean() }) } : {}),
  });
}

// ---- compile-time agreement with the shapes the gateway builds ----
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const agree = <T extends true>(_: T) => undefined;
// `tool` is a ToolName in the document and a string on the row: the one direction that matters is checked.
agree<Same<Omit<z.infer<typeof jobSummarySchema>, 'tool'>, Omit<JobSummary, 'tool'>>>(true);
agree<z.infer<typeof jobSummarySchema>['tool'] extends JobSummary['tool'] ? true : false>(true);
agree<Same<z.infer<typeof jobDetailSchema>['archive'], JobDetail['archive']>>(true);
agree<Same<Omit<z.infer<typeof fileResultResponseSchema>, 'storedFileId'>, Omit<FileResult, 'storedFileId'>>>(true);
agree<Same<Omit<z.infer<typeof syncFileSchema>, 'error'>, SyncFile>>(true);
agree<Same<z.infer<typeof fileResourceSchema>['attributes'], FileAttributes>>(true);
agree<Same<z.infer<typeof taskResourceSchema>['attributes']['status'], TaskAttributes['status']>>(true);
export type _ResourceShape = Resource;
