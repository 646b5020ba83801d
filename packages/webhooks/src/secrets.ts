/**
 * Webhook secrets: `whsec_` and 32 random bytes in base64. The same string serves both formats:
 * Convertly's verifier uses the whole string as its HMAC key, the Standard Webhooks libraries use the
 * bytes the base64 part decodes to.
 */
import crypto from 'node:crypto';
import { WEBHOOK_SECRET_PREFIX } from '@kiln/contracts';

export function newWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + crypto.randomBytes(32).toString('base64');
}
