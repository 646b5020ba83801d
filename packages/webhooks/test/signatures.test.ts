/**
 * The signature headers against the verifiers receivers actually run: Convertly's guide's own
 * verifier (copied as the guide prints it) and the Standard Webhooks reference library.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { envelopeBody, newWebhookSecret, retryDelayMs, signatureHeaders, WEBHOOK_USER_AGENT } from '../src/index.ts';

/** docs.convertly.sh, "Verify signatures" — verbatim apart from the types. */
function verifyConvertlyWebhook(rawBody: string, header: string, secret: string) {
  const parts = Object.fromEntries(header.split(',').map((part) => part.split('=')));
  const payload = `${parts.t}.${rawBody}`;
  const expected = createHmac('sha256', secret).update(payload).digest('hex');
  return timingSafeEqual(Buffer.from(parts.v1), Buffer.from(expected));
}

const body = envelopeBody({ eventId: '2d44218f-1a79-46af-b6a8-34a0c50f1e8d', eventType: 'conversion.completed', eventCreatedAt: new Date(1778320800_000), data: { jobId: 'j' } });
const now = Math.floor(Date.now() / 1000);

describe('convertly format', () => {
  test('the guide verifier accepts the headers, with the secret and the raw body', () => {
    const secret = newWebhookSecret();
    const h = signatureHeaders({ format: 'convertly', secrets: [secret], eventId: 'evt_1', eventType: 'conversion.completed', timestamp: now, body });
    expect(h['user-agent']).toBe(WEBHOOK_USER_AGENT);
    expect(h['convertly-event']).toBe('conversion.completed');
    expect(h['convertly-timestamp']).toBe(String(now));
    expect(h['convertly-signature']).toMatch(new RegExp(`^t=${now},v1=[0-9a-f]{64}$`));
    expect(verifyConvertlyWebhook(body, h['convertly-signature']!, secret)).toBe(true);
    expect(verifyConvertlyWebhook(body.replace('"j"', '"k"'), h['convertly-signature']!, secret)).toBe(false);
    expect(verifyConvertlyWebhook(body, h['convertly-signature']!, newWebhookSecret())).toBe(false);
  });

  test('during a rotation both secrets sign, the new one last (the one the guide verifier reads)', () => {
    const [fresh, old] = [newWebhookSecret(), newWebhookSecret()];
    const h = signatureHeaders({ format: 'convertly', secrets: [fresh, old], eventId: 'evt_1', eventType: 'file.uploaded', timestamp: now, body });
    const v1s = h['convertly-signature']!.split(',').filter((p) => p.startsWith('v1='));
    expect(v1s).toHaveLength(2);
    expect(verifyConvertlyWebhook(body, h['convertly-signature']!, fresh)).toBe(true);
    // A verifier that tries every v1 (Stripe-style) accepts the old secret too.
    const oldSig = createHmac('sha256', old).update(`${now}.${body}`).digest('hex');
    expect(v1s).toContain(`v1=${oldSig}`);
  });
});

describe('standard format', () => {
  test('the standardwebhooks library verifies the headers', () => {
    const secret = newWebhookSecret();
    const h = signatureHeaders({ format: 'standard', secrets: [secret], eventId: 'evt_abc', eventType: 'conversion.completed', timestamp: now, body });
    expect(h['webhook-id']).toBe('evt_abc');
    expect(h['webhook-timestamp']).toBe(String(now));
    expect(h['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    expect(new Webhook(secret).verify(body, h)).toEqual(JSON.parse(body));
    expect(() => new Webhook(newWebhookSecret()).verify(body, h)).toThrow(/signature/i);
  });

  test('with two secrets either one verifies', () => {
    const [fresh, old] = [newWebhookSecret(), newWebhookSecret()];
    const h = signatureHeaders({ format: 'standard', secrets: [fresh, old], eventId: 'evt_abc', eventType: 'file.uploaded', timestamp: now, body });
    expect(h['webhook-signature']!.split(' ')).toHaveLength(2);
    expect(new Webhook(fresh).verify(body, h)).toBeTruthy();
    expect(new Webhook(old).verify(body, h)).toBeTruthy();
  });
});

test('the envelope is {id: evt_…, type, created in unix seconds, data}', () => {
  expect(JSON.parse(body)).toEqual({ id: 'evt_2d44218f-1a79-46af-b6a8-34a0c50f1e8d', type: 'conversion.completed', created: 1778320800, data: { jobId: 'j' } });
});

test('retries wait the base first, then twice as long each time, plus at most 20 % jitter', () => {
  expect([1, 2, 3, 4].map((n) => retryDelayMs(5000, n, () => 0))).toEqual([5000, 10_000, 20_000, 40_000]);
  expect(retryDelayMs(5000, 1, () => 0.999)).toBeLessThanOrEqual(6000);
});
