/**
 * The codec's bounded failure kinds. Workers map them with an exhaustive switch:
 * invalid_input / unsupported / limit_exceeded are permanent (recorded on the file, never retried);
 * timeout / engine_failed are retried with backoff.
 */
import type { Limit } from './engine.ts';

export type CodecErrorKind = 'invalid_input' | 'unsupported' | 'limit_exceeded' | 'timeout' | 'engine_failed' | 'cancelled';

export class CodecError extends Error {
  readonly kind: CodecErrorKind;
  /** Details for logs only (stderr tail, engine message). Never shown to clients. */
  readonly internal: string | undefined;
  constructor(kind: CodecErrorKind, message: string, opts: { cause?: unknown; internal?: string } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'CodecError';
    this.kind = kind;
    this.internal = opts.internal;
  }
}

export function isCodecError(e: unknown): e is CodecError {
  return e instanceof CodecError;
}

/**
 * A limit was hit: the message names what was measured, the limit's value (with `unit`, e.g. ' pixels')
 * and the setting that changes it.
 */
export function limitExceeded(what: string, actual: string | number, limit: Limit, unit = ''): CodecError {
  return new CodecError('limit_exceeded', `${what} is ${actual}, over the limit of ${limit.max}${unit}; raise ${limit.setting} to allow it.`);
}
