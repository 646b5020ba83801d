/**
 * What a URL must look like before anything is resolved: parsed by WHATWG URL (the parser browsers and
 * Node's fetch use, so `HTTP://`, `0x7f.1` or `2130706433` mean what they mean everywhere), http or https,
 * no credentials. Where it points is judged later, on resolved addresses (address-policy.ts).
 */
import { urlNotAllowed } from './errors.ts';

/**
 * Parses and checks a URL's shape. Credentials are refused rather than stripped: a URL carrying
 * `user:password@` (or the `http://trusted@evil/` trick) says something the fetch would silently not do,
 * and refusing tells the client why instead of fetching something else than they meant.
 */
export function parseTarget(input: string | URL): URL {
  let url: URL;
  try {
    url = new URL(String(input));
  } catch {
    throw urlNotAllowed(`${quote(String(input))} is not an absolute URL`);
  }
  const scheme = url.protocol.slice(0, -1);
  if (scheme !== 'http' && scheme !== 'https') throw urlNotAllowed(`the scheme ${scheme} is not allowed (only http and https are)`);
  if (url.username || url.password) throw urlNotAllowed('credentials in URLs are not allowed (remove the user:password@ part)');
  if (!url.hostname) throw urlNotAllowed('the URL has no host');
  return url;
}

/** How a URL is named in messages: scheme, host and path, never the query (signed URLs carry tokens there). */
export function describeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s);
}
