/**
 * The file handler's "fetch the source first" step for inputs given by URL (`sourceUrl`). The bytes
 * stream from @kiln/outbound (every address checked, redirects re-checked, connect/idle/total
 * timeouts, the byte limit cutting the body) straight into the blob store under the file's source
 * key, then the first bytes are sniffed like an upload's and the row learns the kind and size, so a
 * retried conversion does not fetch again. Failures are the outbound module's kinds, mapped here to
 * the file's error codes: which are permanent and which pg-boss retries.
 */
import type { FileErrorCode } from '@kiln/contracts';
import { SNIFF_BYTES, sniff, type InputKind } from '@kiln/formats';
import type { ExtraSource } from '@kiln/db';
import type { BlobStore } from '@kiln/storage';
import { describeUrl, isOutboundError, type Outbound, type OutboundError } from '@kiln/outbound';

export interface FetchedSource {
  kind: InputKind | undefined;
  size: number;
}

export interface UrlFetchSettings {
  /** URL_IMPORT: false refuses sources queued before it was turned off. */
  enabled: boolean;
  /** MAX_UPLOAD_BYTES: a row's lower limit came from its API key. */
  maxUploadBytes: number;
}

/** Why a URL source was not fetched, as the file's error: permanent ones are recorded at once. */
export class SourceFetchError extends Error {
  readonly code: FileErrorCode;
  readonly permanent: boolean;
  constructor(code: FileErrorCode, message: string, permanent: boolean, cause?: unknown) {
    super(message, { cause });
    this.name = 'SourceFetchError';
    this.code = code;
    this.permanent = permanent;
  }
}

/** The outbound kinds as file outcomes: refused and over-limit are final; network trouble and timeouts are retried. */
function classifyOutbound(e: OutboundError): SourceFetchError {
  switch (e.kind) {
    case 'url_not_allowed':
      return new SourceFetchError('url_not_allowed', e.message, true, e);
    case 'limit_exceeded':
      return new SourceFetchError('limit_exceeded', e.message, true, e);
    case 'fetch_failed':
      return new SourceFetchError('fetch_failed', e.message, !e.retryable, e);
    case 'timeout':
      return new SourceFetchError('timeout', e.message, false, e);
    default: {
      const never: never = e.kind;
      throw new Error(`unhandled outbound error kind ${String(never)}`);
    }
  }
}

async function readHead(store: BlobStore, key: string, size: number): Promise<Buffer> {
  if (size === 0) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const c of await store.open(key, { start: 0, end: Math.min(size, SNIFF_BYTES) - 1 })) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Fetches `url` into `key` under `maxBytes`; resolves with what the bytes are. */
export async function fetchUrlSource(
  deps: { store: BlobStore; outbound: Pick<Outbound, 'fetchToStream'>; settings: UrlFetchSettings },
  source: { url: string; key: string; maxBytes: number | null },
  signal?: AbortSignal,
): Promise<FetchedSource> {
  if (!deps.settings.enabled) {
    throw new SourceFetchError('url_not_allowed', 'URL sources are turned off on this server (URL_IMPORT=false); upload the file instead.', true);
  }
  const maxBytes = source.maxBytes ?? deps.settings.maxUploadBytes;
  const maxBytesSetting = maxBytes < deps.settings.maxUploadBytes ? "the API key's maxUploadBytes" : 'MAX_UPLOAD_BYTES';
  let size: number;
  try {
    const res = await deps.outbound.fetchToStream(source.url, { maxBytes, maxBytesSetting, ...(signal ? { signal } : {}) });
    ({ size } = await deps.store.put(source.key, res.body));
  } catch (e) {
    if (isOutboundError(e)) throw classifyOutbound(e);
    // The store's own failures (unavailable, …) and our abort are the caller's to handle as usual.
    throw e;
  }
  if (size === 0) throw new SourceFetchError('invalid_input', `${describeUrl(new URL(source.url))} answered with an empty body; there is nothing to convert.`, true);
  return { kind: sniff(await readHead(deps.store, source.key, size)), size };
}

/** Extra sources (image-to-pdf pages, a watermark overlay) given by URL, fetched in order; the list as it is now. */
export async function fetchExtraSources(
  deps: Parameters<typeof fetchUrlSource>[0],
  extras: readonly ExtraSource[],
  maxBytes: number | null,
  signal?: AbortSignal,
): Promise<ExtraSource[]> {
  const out: ExtraSource[] = [];
  for (const e of extras) {
    if (!e.url || (e.size !== undefined && e.size !== null)) {
      out.push(e);
      continue;
    }
    const got = await fetchUrlSource(deps, { url: e.url, key: e.key, maxBytes }, signal);
    out.push({ ...e, kind: got.kind ?? null, size: got.size });
  }
  return out;
}
