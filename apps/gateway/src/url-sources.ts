/**
 * Inputs given by URL (`sourceUrl`, `sourceUrls`) instead of uploaded. The gateway never fetches
 * them: it reads the fields, refuses what it can refuse now — the feature turned off (URL_IMPORT),
 * a URL that does not parse, a scheme other than http(s), credentials, a host that resolves to a
 * private address — with the outbound module's own check (no connection is made), and leaves the
 * fetch to a worker. A check that cannot be made now (the name does not resolve yet, DNS is slow)
 * is not a refusal: the worker checks again before it connects, and fails the file if it must.
 *
 * Order: `sourceUrl` fields first, in the order sent (a repeated field is several URLs), then the
 * entries of the `sourceUrls` JSON array. Together they come after the request's uploaded files.
 */
import { AppError } from '@kiln/contracts';
import { isOutboundError, type Outbound } from '@kiln/outbound';

export interface UrlSource {
  url: string;
  /** The URL's last path segment, decoded and made safe; `download` when it has none. */
  filename: string;
  /** The field it came from, for messages: `sourceUrl` or `sourceUrls[2]`. */
  field: string;
}

/** Longest URL accepted (browsers and CDNs cut off around there too). */
export const MAX_URL_LENGTH = 8192;

export function filenameFromUrl(url: URL): string {
  const last = url.pathname.split('/').filter(Boolean).pop() ?? '';
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    name = last;
  }
  // A name, never a path: no separators, no control characters, no leading dots.
  name = [...name]
    .map((c) => (c === '/' || c === '\\' || c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f ? '_' : c))
    .join('')
    .replace(/^\.+/, '')
    .trim();
  return name.slice(0, 255) || 'download';
}

function rawUrls(fields: Record<string, unknown>): { value: unknown; field: string }[] {
  const out: { value: unknown; field: string }[] = [];
  const single = fields.sourceUrl;
  for (const v of Array.isArray(single) ? single : single === undefined || single === '' ? [] : [single]) out.push({ value: v, field: 'sourceUrl' });
  const plural = Array.isArray(fields.sourceUrls) ? fields.sourceUrls.at(-1) : fields.sourceUrls;
  if (plural !== undefined && plural !== '') {
    let list: unknown;
    try {
      list = JSON.parse(String(plural));
    } catch {
      throw new AppError('invalid_field', 'sourceUrls must be a JSON array of URLs, e.g. ["https://example.com/a.png"]; it is not valid JSON.', {
        detail: { field: 'sourceUrls' },
      });
    }
    if (!Array.isArray(list)) throw new AppError('invalid_field', 'sourceUrls must be a JSON array of URLs.', { detail: { field: 'sourceUrls' } });
    for (const [i, value] of list.entries()) out.push({ value, field: `sourceUrls[${i}]` });
  }
  return out;
}

/**
 * The request's URL sources, each checked as far as it can be before any fetch. Refusals are
 * `400 url_not_allowed` naming the field and the reason.
 */
export async function urlSourcesOf(deps: { outbound: Pick<Outbound, 'checkUrl'>; config: { URL_IMPORT: boolean } }, fields: Record<string, unknown>): Promise<UrlSource[]> {
  const raw = rawUrls(fields);
  if (raw.length === 0) return [];
  if (!deps.config.URL_IMPORT) {
    throw new AppError('url_not_allowed', 'URL sources are turned off on this server (URL_IMPORT=false); upload the file instead, or ask the operator to set URL_IMPORT=true.', {
      detail: { field: raw[0]!.field, setting: 'URL_IMPORT' },
    });
  }
  const out: UrlSource[] = [];
  for (const { value, field } of raw) {
    if (typeof value !== 'string' || value.trim() === '') throw new AppError('invalid_field', `${field} must be a URL (text).`, { detail: { field } });
    if (value.length > MAX_URL_LENGTH) throw new AppError('invalid_field', `${field} is longer than ${MAX_URL_LENGTH} characters.`, { detail: { field } });
    let checked: URL;
    try {
      checked = (await deps.outbound.checkUrl(value.trim())).url;
    } catch (e) {
      if (!isOutboundError(e)) throw e;
      if (e.kind === 'url_not_allowed') {
        throw new AppError('url_not_allowed', `${field}: ${e.message}`, { detail: { field, reason: e.reason ?? e.message } });
      }
      // Not resolvable now, or DNS too slow: not a refusal; the worker checks again and may fail the file.
      checked = new URL(value.trim());
    }
    out.push({ url: checked.href, filename: filenameFromUrl(checked), field });
  }
  return out;
}
