/** The TurboFiles dialect's routes (`/v1/*`, JSON:API 1.1) for the OpenAPI document: one entry per route. */
import { z } from 'zod';
import {
  createFileDocument,
  createTaskDocument,
  fileResourceSchema,
  JSONAPI_MEDIA_TYPE,
  jsonApiDocument,
  PAGE_SIZE,
  taskResourceSchema,
  userResourceSchema,
  type ErrorCode,
} from '@kiln/contracts';
import type { RouteDoc } from './route-docs.ts';

const J = JSONAPI_MEDIA_TYPE;
const id = (what: string) => z.object({ id: z.uuid().describe(`The ${what} id.`) });
const page = {
  'page[size]': z.int().min(PAGE_SIZE.min).max(PAGE_SIZE.max).default(PAGE_SIZE.default).optional(),
  'page[after]': z.string().optional().describe('A cursor: links.next of the previous page.'),
  'page[before]': z.string().optional().describe('A cursor: links.prev of the previous page.'),
};
const include = z.string().optional().describe('Which related files to include: input, output, or input,output (default both).');
const common = { tag: 'TurboFiles', errorBody: 'jsonapi' as const };
const keyed = { ...common, auth: 'apiKey' as const };
/** Every keyed /v1 route refuses query parameters it does not read (JSON:API 1.1). */
const QUERY: readonly ErrorCode[] = ['invalid_field'];
const BODY: readonly ErrorCode[] = ['invalid_field', 'invalid_request', 'unsupported_media_type', 'request_too_large', 'conflict', 'forbidden'];
const signedQuery = z.object({ exp: z.string().describe('Expiry, unix seconds.'), sig: z.string().describe('HMAC signature.') });
const relationshipDoc = z.object({
  jsonapi: z.object({ version: z.literal('1.1') }),
  links: z.object({ self: z.string(), related: z.string() }),
  data: z.object({ type: z.literal('files'), id: z.uuid() }).nullable(),
});

export const turbofilesDocs: RouteDoc[] = [
  {
    ...keyed,
    method: 'post',
    route: '/v1/files',
    operationId: 'createFile',
    summary: 'Declare a file',
    description: 'Declares a file by its format and exact size; PUT its bytes to links.upload. Files expire after TURBOFILES_FILE_TTL_HOURS (48).',
    body: { contentType: J, schema: createFileDocument, example: { data: { type: 'files', attributes: { format: 'image/png', size: 504233 } } } },
    responses: {
      201: { description: 'The file, AWAITING_UPLOAD', contentType: J, schema: jsonApiDocument(fileResourceSchema), headers: { Location: { description: 'links.self' } } },
    },
    errors: [...BODY, 'file_too_large', 'unsupported_format'],
  },
  {
    ...keyed,
    method: 'get',
    route: '/v1/files',
    operationId: 'listFiles',
    summary: 'List files',
    description: 'Declared files and task outputs, newest first, cursor-paginated.',
    query: z.object(page),
    responses: { 200: { description: 'A page of files', contentType: J, schema: jsonApiDocument(fileResourceSchema, { list: true }) } },
    errors: QUERY,
  },
  {
    ...keyed,
    method: 'get',
    route: '/v1/files/:id',
    operationId: 'getFile',
    summary: 'Retrieve a file',
    params: id('file'),
    responses: { 200: { description: 'The file', contentType: J, schema: jsonApiDocument(fileResourceSchema) } },
    errors: [...QUERY, 'not_found'],
  },
  {
    ...keyed,
    method: 'delete',
    route: '/v1/files/:id',
    operationId: 'deleteFile',
    summary: 'Delete a file',
    params: id('file'),
    responses: { 204: { description: 'Deleted' } },
    errors: [...QUERY, 'not_found', 'conflict'],
  },
  {
    ...common,
    auth: 'signed',
    method: 'put',
    route: '/v1/files/:id/upload',
    operationId: 'uploadFile',
    summary: "Upload a file's bytes (signed link)",
    description: 'links.upload of a declared file. Exactly the declared size and type (detected from the bytes); otherwise nothing is stored and the file keeps waiting.',
    params: id('file'),
    query: signedQuery,
    body: { contentType: 'application/octet-stream', schema: z.string().meta({ format: 'binary' }) },
    responses: { 200: { description: 'The file, READY', contentType: J, schema: jsonApiDocument(fileResourceSchema) } },
    errors: ['not_found', 'forbidden', 'conflict', 'size_mismatch', 'format_mismatch', 'file_too_large', 'invalid_request', 'insufficient_storage'],
  },
  {
    ...common,
    auth: 'signed',
    method: 'get',
    route: '/v1/files/:id/download',
    operationId: 'downloadTurbofilesFile',
    summary: "Download a declared file's bytes (signed link)",
    params: id('file'),
    query: signedQuery,
    responses: {
      200: { description: 'The bytes', contentType: 'application/octet-stream', schema: z.string().meta({ format: 'binary' }) },
      206: { description: 'The requested range', contentType: 'application/octet-stream', schema: z.string().meta({ format: 'binary' }) },
      302: { description: 'DOWNLOAD_REDIRECT=s3: a presigned S3 GET.' },
      416: { description: 'The range lies outside the file.' },
    },
    errors: ['not_found'],
  },
  {
    ...keyed,
    method: 'post',
    route: '/v1/tasks',
    operationId: 'createTask',
    summary: 'Start a task',
    description:
      'Converts one declared file. Accepts `relationship` (the hosted example) and `relationships`, MIME types and bare extensions. settings.resize width/max_width and height/max_height are upper bounds; never upscales.',
    headers: z.object({ 'Idempotency-Key': z.string().min(1).max(255).optional() }),
    body: {
      contentType: J,
      schema: createTaskDocument,
      example: {
        data: {
          type: 'tasks',
          attributes: { format: { input: 'image/png', output: 'image/webp' }, settings: { resize: { width: 640, height: 640, max_width: 1280, max_height: 1280 } } },
          relationships: { input: { data: { type: 'files', id: '8d3f2c1e-5b7a-4c9d-9e0f-1a2b3c4d5e6f' } } },
        },
      },
    },
    responses: {
      201: { description: 'The task, PENDING, with its input file in included', contentType: J, schema: jsonApiDocument(taskResourceSchema, { included: true }) },
      200: { description: 'A replayed Idempotency-Key: the existing task', contentType: J, schema: jsonApiDocument(taskResourceSchema, { included: true }) },
    },
    errors: [...BODY, 'not_found', 'file_not_ready', 'unsupported_format', 'format_mismatch', 'format_not_allowed', 'quota_exceeded', 'queue_full'],
  },
  {
    ...keyed,
    method: 'get',
    route: '/v1/tasks',
    operationId: 'listTasks',
    summary: 'List tasks',
    query: z.object({ ...page, include }),
    responses: { 200: { description: 'A page of tasks', contentType: J, schema: jsonApiDocument(taskResourceSchema, { list: true, included: true }) } },
    errors: QUERY,
  },
  {
    ...keyed,
    method: 'get',
    route: '/v1/tasks/:id',
    operationId: 'getTask',
    summary: 'Retrieve a task',
    description: 'PENDING → PROCESSING → COMPLETED or FAILED; the output file is in included with a signed links.download.',
    params: id('task'),
    query: z.object({ include }),
    responses: { 200: { description: 'The task', contentType: J, schema: jsonApiDocument(taskResourceSchema, { included: true }) } },
    errors: [...QUERY, 'not_found'],
  },
  ...(['input', 'output'] as const).flatMap((name): RouteDoc[] => [
    {
      ...keyed,
      method: 'get',
      route: `/v1/tasks/:id/${name}`,
      operationId: `getTask${name === 'input' ? 'Input' : 'Output'}`,
      summary: `The task's ${name} file`,
      params: id('task'),
      responses: { 200: { description: `The ${name} file, or null`, contentType: J, schema: jsonApiDocument(fileResourceSchema.nullable()) } },
      errors: [...QUERY, 'not_found'],
    },
    {
      ...keyed,
      method: 'get',
      route: `/v1/tasks/:id/relationships/${name}`,
      operationId: `getTask${name === 'input' ? 'Input' : 'Output'}Relationship`,
      summary: `The task's ${name} relationship`,
      params: id('task'),
      responses: { 200: { description: 'The resource identifier, or null', contentType: J, schema: relationshipDoc } },
      errors: [...QUERY, 'not_found'],
    },
  ]),
  {
    ...keyed,
    method: 'get',
    route: '/v1/users/me',
    operationId: 'getCurrentUser',
    summary: 'The API key as a user',
    description: 'Its name, its effective limits (null = unlimited) and what it used this month.',
    responses: { 200: { description: 'The user', contentType: J, schema: jsonApiDocument(userResourceSchema) } },
    errors: QUERY,
  },
];
