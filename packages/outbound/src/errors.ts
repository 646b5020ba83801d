/**
 * The outbound module's bounded failure kinds. Callers map them with an exhaustive switch:
 * - `url_not_allowed`: the URL or what it resolves to is refused (scheme, credentials, address). Permanent;
 *   the gateway answers 400 with the message, a worker records it on the file.
 * - `fetch_failed`: the peer could not be reached, or answered badly (non-2xx, broken body). `retryable`
 *   says whether trying again later can help (network errors, 408/429/5xx) or not (404, TLS certificate).
 * - `limit_exceeded`: a named limit was hit (the caller's byte limit, URL_IMPORT_MAX_REDIRECTS). Permanent.
 * - `timeout`: a connect, idle or total timeout fired. Retryable.
 */
export type OutboundErrorKind = 'url_not_allowed' | 'fetch_failed' | 'limit_exceeded' | 'timeout';

export interface OutboundErrorDetail {
  /** Whether a later attempt may succeed (the worker retries with backoff only then). */
  retryable?: boolean;
  /** HTTP status of the answer that failed the request, when there was one. */
  status?: number;
  /** The setting that changes the limit or timeout that was hit. */
  setting?: string;
  /** For url_not_allowed: the reason alone ("scheme ftp is not allowed"), without the sentence around it. */
  reason?: string;
  /** For url_not_allowed: refused for where it points (URL_IMPORT_ALLOWED_HOSTS can lift it), not how it is written. */
  addressRefusal?: boolean;
  cause?: unknown;
}

export class OutboundError extends Error {
  readonly kind: OutboundErrorKind;
  readonly retryable: boolean;
  readonly status: number | undefined;
  readonly setting: string | undefined;
  readonly reason: string | undefined;
  readonly addressRefusal: boolean;
  constructor(kind: OutboundErrorKind, message: string, detail: OutboundErrorDetail = {}) {
    super(message, { cause: detail.cause });
    this.name = 'OutboundError';
    this.kind = kind;
    this.retryable = detail.retryable ?? kind === 'timeout';
    this.status = detail.status;
    this.setting = detail.setting;
    this.reason = detail.reason;
    this.addressRefusal = detail.addressRefusal ?? false;
  }
}

export const isOutboundError = (e: unknown): e is OutboundError => e instanceof OutboundError;

/** The hint every address refusal ends with: the one knob that lets an operator allow an intranet host. */
export const ALLOWED_HOSTS_SETTING = 'URL_IMPORT_ALLOWED_HOSTS';

/**
 * `address`: the refusal is about where the URL points (not its spelling), so the message names the
 * setting that can lift it. `redirectedTo`: the refused URL was reached through a redirect.
 */
export function urlNotAllowed(reason: string, opts: { address?: boolean; redirectedTo?: string } = {}): OutboundError {
  const via = opts.redirectedTo ? `it redirects to ${opts.redirectedTo}, and ` : '';
  const hint = opts.address ? ` Only public addresses are contacted; an operator can allow a host with ${ALLOWED_HOSTS_SETTING}.` : '';
  return new OutboundError('url_not_allowed', `URL not allowed: ${via}${reason}.${hint}`, { reason, addressRefusal: opts.address });
}

/** The same refusal, told as the end of a redirect chain. */
export function viaRedirect(err: OutboundError, target: string): OutboundError {
  return urlNotAllowed(err.reason ?? err.message, { address: err.addressRefusal, redirectedTo: target });
}
