/**
 * Scrubs secrets out of a finished log line, whatever field, message or stack they hide in. pino's own
 * `redact` option only knows paths (`req.headers.authorization`); a signed URL inside an error message,
 * a key echoed in a stack or a webhook secret under an unexpected name would pass it. This runs on the
 * serialised line instead (pino's `streamWrite` hook), so the guarantee is "no line", not "no field we
 * thought of". A cheap test skips the replacements for the common line that holds nothing suspicious.
 */

const MASK = '[redacted]';

/** Any of these in a line means it may hold a secret; most lines hold none and are returned as they are. */
const SUSPECT = /sig|secret|token|passw|authoriz|api.?key|cookie|bearer|basic |whsec_|kiln_|credential|x-amz|akia|@/i;

/** A JSON member whose name says its value is a secret, at any depth: `"authorization":"…"`, `"S3_SECRET_ACCESS_KEY":"…"`. */
const SECRET_MEMBER = /"([^"\\]*(?:authorization|api[-_]?key|secret|passw(?:or)?d|token|cookie|signature|credential)[^"\\]*|sig)":"(?:[^"\\]|\\.)*"/gi;

/** Signature-bearing query parameters: Kiln's download links (`sig`) and presigned S3 URLs. */
const SECRET_PARAM = /([?&](?:sig|signature|token|api[-_]?key|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&"\s#\\]+/gi;

/** Credentials in an Authorization header's value, wherever the value ended up. */
const AUTH_VALUE = /\b(Bearer|Basic)\s+[^\s"\\,;]+/gi;

/** Webhook signing secrets (`whsec_…`, Standard Webhooks' and Convertly's shape) and Kiln API keys (`kiln_` + 43 characters). */
const TOKENS = /\b(whsec_|kiln_)[A-Za-z0-9+/=_-]{16,}/g;

/** `scheme://user:password@host`: DATABASE_URL, S3 endpoints, source URLs. */
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)[^/\s:@"\\]+:[^/\s@"\\]+@/gi;

/** AWS access key ids (the half of an S3 credential that has a recognisable shape). */
const AWS_KEY_ID = /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g;

/**
 * Makes a scrubber. `secrets` are literal values known to be secret (the configured S3 secret, signing
 * secret, admin password, metrics token, bootstrap key): each is masked wherever it appears, in any shape.
 */
export function createScrubber(secrets: readonly (string | undefined)[] = []): (line: string) => string {
  // Longest first, so a secret that contains another is masked whole. Short values would mask
  // ordinary words; the settings that hold secrets all require at least 8 characters.
  const literals = [...new Set(secrets.filter((s): s is string => typeof s === 'string' && s.length >= 8))]
    .flatMap((s) => [s, JSON.stringify(s).slice(1, -1)])
    .sort((a, b) => b.length - a.length);
  return (line) => {
    let out = line;
    for (const s of literals) if (out.includes(s)) out = out.split(s).join(MASK);
    if (!SUSPECT.test(out)) return out;
    return out
      .replace(SECRET_MEMBER, (_m, name: string) => `"${name}":"${MASK}"`)
      .replace(SECRET_PARAM, `$1${MASK}`)
      .replace(AUTH_VALUE, `$1 ${MASK}`)
      .replace(TOKENS, `$1${MASK}`)
      .replace(URL_USERINFO, `$1${MASK}@`)
      .replace(AWS_KEY_ID, MASK);
  };
}
