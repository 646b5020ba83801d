/**
 * The single catalog of error codes Kiln answers with, and the HTTP status each maps to. Codes are
 * stable and part of the public contract (API.md §2.7); messages are sentences that say how to fix it.
 */
export const ERROR_STATUS = {
  invalid_field: 400,
  invalid_request: 400,
  /** An upload whose length is not the size its file was declared with. */
  size_mismatch: 400,
  /** A URL source refused: bad scheme, credentials, a private address, or URL sources turned off (URL_IMPORT). */
  url_not_allowed: 400,
  unauthorized: 401,
  quota_exceeded: 402,
  format_not_allowed: 403,
  forbidden: 403,
  not_found: 404,
  /** The client accepts only media types Kiln cannot answer with (JSON:API content negotiation). */
  not_acceptable: 406,
  job_not_cancellable: 409,
  conflict: 409,
  /** A file used as a task's input before its bytes have arrived, or after it expired. */
  file_not_ready: 409,
  file_too_large: 413,
  too_many_files: 413,
  /** A request body (not an upload) larger than its limit. */
  request_too_large: 413,
  unsupported_format: 415,
  /** Bytes that are not the format they were declared as. */
  format_mismatch: 415,
  /** A request body in a media type the endpoint does not read. */
  unsupported_media_type: 415,
  rate_limited: 429,
  /** A class of work (media, image, document) has more waiting, or has waited longer, than its limit (QUEUE_MAX_*): retry after Retry-After. */
  queue_full: 429,
  internal_error: 500,
  /** A documented route Kiln cannot offer (remove-background: no model that may ship with it runs offline). */
  not_implemented: 501,
  unavailable: 503,
  /** Kiln's own storage is full (ENOSPC): not the client's fault, and not fixed by retrying at once. */
  insufficient_storage: 507,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

/** What each code means, one sentence, for the OpenAPI document and docs/api.md's table. */
export const ERROR_DESCRIPTIONS: Readonly<Record<ErrorCode, string>> = {
  invalid_field: 'A field, parameter or header has a bad value; detail names it (field, pointer or parameter) and what it accepts.',
  invalid_request: 'The request cannot be read (not multipart, bad JSON, no file) or its file is unreadable.',
  size_mismatch: 'An upload whose length is not the size its file was declared with.',
  url_not_allowed: 'A URL source refused: bad scheme, credentials, a private address, or URL sources turned off (URL_IMPORT).',
  unauthorized: 'The API key (or metrics token, or dashboard session) is missing or not valid.',
  quota_exceeded: "The key's monthly job quota is used up.",
  format_not_allowed: 'The output format is not allowed for this key.',
  forbidden: 'Refused for what it asks: a client-generated id, an upload link for another file, a form without its CSRF token.',
  not_found: "No such route, job, file or task — or it is someone else's.",
  not_acceptable: 'The client accepts only media types Kiln cannot answer with (JSON:API content negotiation).',
  job_not_cancellable: 'Only pending jobs can be cancelled; detail.status says what the job is.',
  conflict:
    'A state conflict: a wrong JSON:API type, an upload to a file that already has its bytes, a file still in use by a task, an Idempotency-Key already used for a job that is not a task.',
  file_not_ready: 'A file used as a task input before its bytes have arrived, or after it expired.',
  file_too_large: 'An upload larger than MAX_UPLOAD_BYTES or the key limit; detail names the limit and its setting.',
  too_many_files: 'More files than MAX_FILES_PER_JOB or the key limit in one request.',
  request_too_large: 'A request body (not an upload) larger than its limit, e.g. TURBOFILES_MAX_BODY_BYTES.',
  unsupported_format: 'A format Kiln does not read or write, or a pair it does not convert (GET /api/formats lists them).',
  format_mismatch: 'Bytes that are not the format they were declared as.',
  unsupported_media_type: 'A request body in a media type the endpoint does not read.',
  rate_limited: "Over the key's requests per minute (or dashboard sign-in attempts); Retry-After says when to come back.",
  queue_full: 'A class of work (media, image, document) has more waiting, or has waited longer, than its limit (QUEUE_MAX_* settings); Retry-After says when to come back.',
  internal_error: 'Something failed on our side; the sentence quotes a request id, the cause is in the logs.',
  not_implemented: 'A documented route Kiln cannot offer (remove-background).',
  unavailable: 'The database, queue or storage is unreachable right now; retry after Retry-After seconds.',
  insufficient_storage: "Kiln's own storage is full (ENOSPC): nothing was kept; not the client's fault, and not fixed by retrying at once.",
};

/** Codes recorded on a single file's result when its conversion fails. */
export const FILE_ERROR_CODES = ['invalid_input', 'unsupported_format', 'limit_exceeded', 'timeout', 'engine_failed', 'cancelled', 'url_not_allowed', 'fetch_failed'] as const;
export type FileErrorCode = (typeof FILE_ERROR_CODES)[number];

export const isFileErrorCode = (code: unknown): code is FileErrorCode => (FILE_ERROR_CODES as readonly unknown[]).includes(code);

/**
 * The request error a file's failure becomes when a whole call fails with it (a synchronous convert
 * whose every file failed): what was wrong with the file is the client's 4xx; our failures are a 500.
 */
export const FILE_ERROR_REQUEST_CODES: Readonly<Record<FileErrorCode, ErrorCode>> = {
  invalid_input: 'invalid_request',
  unsupported_format: 'unsupported_format',
  limit_exceeded: 'file_too_large',
  timeout: 'internal_error',
  engine_failed: 'internal_error',
  cancelled: 'internal_error',
  url_not_allowed: 'url_not_allowed',
  // The URL answered 404, refused the connection, …: what the client asked for cannot be had.
  fetch_failed: 'invalid_request',
};

/** A stored file error code (a row may predate a code, or hold none) as a request error code. */
export function requestCodeForFileError(code: string | null | undefined): ErrorCode {
  return isFileErrorCode(code) ? FILE_ERROR_REQUEST_CODES[code] : 'internal_error';
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly detail: Record<string, unknown> | undefined;
  readonly headers: Record<string, string> | undefined;
  constructor(code: ErrorCode, message: string, opts: { detail?: Record<string, unknown>; cause?: unknown; headers?: Record<string, string> } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.detail = opts.detail;
    this.headers = opts.headers;
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
  toBody(): ErrorBody {
    return this.detail ? { error: this.message, code: this.code, detail: this.detail } : { error: this.message, code: this.code };
  }
}

export interface ErrorBody {
  error: string;
  code: string;
  detail?: Record<string, unknown>;
}

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;
