/**
 * Webhooks: Convertly's event names, the envelope every delivery carries, and the request/response
 * shapes of `/api/webhooks` (docs/webhooks.md). Field names follow Convertly's guide (`url`,
 * `event_types`, the `whsec_` secret, delivery history fields); `format` and the per-job
 * `webhookUrl` are Kiln's.
 */
import { z } from 'zod';

export const WEBHOOK_EVENT_TYPES = [
  'conversion.started',
  'conversion.progress',
  'conversion.completed',
  'conversion.failed',
  'file.uploaded',
  'media.tool.completed',
  'media.tool.failed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export const WEBHOOK_FORMATS = ['convertly', 'standard'] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

/** What the receiver gets: `id` is `evt_<uuid>`, `created` unix seconds, `data` the job as GET returns it. */
export interface WebhookEnvelope<D = unknown> {
  id: string;
  type: WebhookEventType;
  created: number;
  data: D;
}

/** The envelope as a schema (OpenAPI's `webhooks` section); `data` is the JobDetail of GET /api/jobs/:id. */
export const webhookEnvelopeSchema = z.object({
  id: z.string().regex(/^evt_/),
  type: z.enum(WEBHOOK_EVENT_TYPES),
  created: z.number().int(),
  data: z.record(z.string(), z.unknown()),
});

export const WEBHOOK_EVENT_PREFIX = 'evt_';
export const WEBHOOK_SECRET_PREFIX = 'whsec_';

const eventType = z.enum(WEBHOOK_EVENT_TYPES, {
  error: () => `must be one of ${WEBHOOK_EVENT_TYPES.join(', ')}`,
});

/** POST /api/webhooks. `events` is accepted as an alias of `event_types`; none given means every event. */
export const createWebhookRequestSchema = z
  .object({
    url: z.string({ error: 'url is required: the https:// address Kiln should POST events to' }).trim().min(1).max(2048),
    event_types: z.array(eventType).min(1).optional(),
    events: z.array(eventType).min(1).optional(),
    format: z.enum(WEBHOOK_FORMATS, { error: () => `format must be one of ${WEBHOOK_FORMATS.join(', ')}` }).default('convertly'),
  })
  .transform(({ events, event_types, ...rest }) => ({ ...rest, event_types: [...new Set(event_types ?? events ?? WEBHOOK_EVENT_TYPES)] }));
export type CreateWebhookRequest = z.output<typeof createWebhookRequestSchema>;

/** An endpoint as listed: never its secret. */
export const webhookEndpointSchema = z.object({
  id: z.string(),
  url: z.string(),
  event_types: z.array(eventType),
  format: z.enum(WEBHOOK_FORMATS),
  status: z.enum(['active', 'disabled']),
  disabled_reason: z.string().nullable(),
  created_at: z.string(),
  /** While a rotation's overlap lasts, the old secret still signs alongside; this is when it stops. */
  previous_secret_expires_at: z.string().nullable(),
});
export type WebhookEndpoint = z.infer<typeof webhookEndpointSchema>;

/** POST /api/webhooks and POST /api/webhooks/:id/rotate: the endpoint and its secret, shown this once. */
export const webhookEndpointWithSecretSchema = webhookEndpointSchema.extend({ secret: z.string() });
export type WebhookEndpointWithSecret = z.infer<typeof webhookEndpointWithSecretSchema>;

export const listWebhooksResponseSchema = z.object({ webhooks: z.array(webhookEndpointSchema) });

/** DELETE /api/webhooks/:id */
export const deleteWebhookResponseSchema = z.object({ id: z.string(), deleted: z.literal(true) });

/** POST /api/webhooks/secret: the key's default secret for per-job webhookUrl deliveries (new each call). */
export const webhookKeySecretResponseSchema = z.object({ secret: z.string(), created_at: z.string() });

export const WEBHOOK_DELIVERY_STATUSES = ['pending', 'delivering', 'succeeded', 'failed'] as const;

/** One row of GET /api/webhooks/deliveries (Convertly: endpoint, event type, status, HTTP status, preview, attempts, timestamps). */
export const webhookDeliverySchema = z.object({
  id: z.string(),
  endpoint_id: z.string().nullable(),
  url: z.string(),
  event_id: z.string(),
  event_type: eventType,
  job_id: z.string().nullable(),
  status: z.enum(WEBHOOK_DELIVERY_STATUSES),
  http_status: z.number().int().nullable(),
  response_preview: z.string().nullable(),
  error: z.string().nullable(),
  attempts: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
  last_attempt_at: z.string().nullable(),
  next_attempt_at: z.string().nullable(),
  completed_at: z.string().nullable(),
});
export type WebhookDelivery = z.infer<typeof webhookDeliverySchema>;

export const listDeliveriesQuerySchema = z.object({
  limit: z.coerce
    .number({ error: 'limit must be a whole number from 1 to 100' })
    .int('limit must be a whole number from 1 to 100')
    .min(1, 'limit must be a whole number from 1 to 100')
    .max(100, 'limit must be a whole number from 1 to 100')
    .default(25),
});
export const listDeliveriesResponseSchema = z.object({ deliveries: z.array(webhookDeliverySchema) });

/** `webhookUrl` on a job-creating request (Kiln's extension): checked like a source URL. */
export const WEBHOOK_URL_FIELD = 'webhookUrl';
