/**
 * The headers that sign one delivery, in either format. `secrets` is the endpoint's current secret,
 * then (during a rotation's overlap) the previous one.
 *
 * - `convertly` (Convertly's guide): `convertly-signature: t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<raw body>">`
 *   keyed by the whole `whsec_…` string, plus `convertly-event` and `convertly-timestamp`. With two
 *   secrets the header carries one `v1=` per secret, the current one LAST: the guide's verifier reads
 *   the pairs into an object, so it checks the last `v1`, and a receiver that has switched to the new
 *   secret verifies at once; a verifier that tries every `v1` accepts either secret.
 * - `standard` (the Standard Webhooks specification): `webhook-id`, `webhook-timestamp`,
 *   `webhook-signature: v1,<base64>` (space-separated, one per secret), signed by the
 *   specification's own reference library, `standardwebhooks`.
 */
import crypto from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { WebhookFormat } from '@kiln/contracts';

export const WEBHOOK_USER_AGENT = 'Kiln-Webhooks/1.0';

export interface SignInput {
  format: WebhookFormat;
  /** Current secret first, then any previous one still in its overlap window. */
  secrets: readonly string[];
  eventId: string;
  eventType: string;
  /** Unix seconds. */
  timestamp: number;
  body: string;
}

export function convertlySignature(secret: string, timestamp: number, body: string): string {
  return crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export function signatureHeaders(s: SignInput): Record<string, string> {
  const common = { 'content-type': 'application/json', 'user-agent': WEBHOOK_USER_AGENT };
  if (s.format === 'convertly') {
    // Current secret last (see above).
    const v1 = [...s.secrets].reverse().map((secret) => `v1=${convertlySignature(secret, s.timestamp, s.body)}`);
    return {
      ...common,
      'convertly-event': s.eventType,
      'convertly-timestamp': String(s.timestamp),
      'convertly-signature': [`t=${s.timestamp}`, ...v1].join(','),
    };
  }
  const when = new Date(s.timestamp * 1000);
  return {
    ...common,
    'webhook-id': s.eventId,
    'webhook-timestamp': String(s.timestamp),
    'webhook-signature': s.secrets.map((secret) => new Webhook(secret).sign(s.eventId, when, s.body)).join(' '),
  };
}
