/**
 * Endpoint management shared by `/api/webhooks`, the dashboard and `pnpm keys:webhooks`: the URL
 * check (the SSRF guard of @kiln/outbound, at registration: a refusal is `400 url_not_allowed` naming
 * the field, before anything is stored), registration under WEBHOOK_MAX_ENDPOINTS, and the public
 * shapes of endpoints and deliveries (@kiln/contracts' webhooks.ts).
 */
import { AppError, createWebhookRequestSchema, type CreateWebhookRequest, type WebhookDelivery, type WebhookEndpoint, type WebhookEndpointWithSecret } from '@kiln/contracts';
import { countWebhookEndpoints, createWebhookEndpoint, type Queryable, type WebhookDeliveryRow, type WebhookEndpointRow } from '@kiln/db';
import { isOutboundError, type Outbound } from '@kiln/outbound';
import { newWebhookSecret } from './secrets.ts';

const MAX_URL_LENGTH = 2048;
const iso = (d: Date | null | undefined) => (d ? new Date(d).toISOString() : null);

/** Checks a webhook URL with the SSRF guard; `field` names it in the refusal. */
export async function checkWebhookUrl(deps: { outbound: Pick<Outbound, 'checkUrl'> }, value: unknown, field: string): Promise<string> {
  if (typeof value !== 'string' || value.trim() === '')
    throw new AppError('invalid_field', `${field} must be a URL (text), e.g. https://example.com/hooks/kiln.`, { detail: { field } });
  if (value.length > MAX_URL_LENGTH) throw new AppError('invalid_field', `${field} is longer than ${MAX_URL_LENGTH} characters.`, { detail: { field } });
  try {
    return (await deps.outbound.checkUrl(value.trim())).url.href;
  } catch (e) {
    if (!isOutboundError(e)) throw e;
    if (e.kind === 'url_not_allowed') throw new AppError('url_not_allowed', `${field}: ${e.message}`, { detail: { field, reason: e.reason ?? e.message } });
    // Not resolvable right now: not a refusal (the workers check again at every delivery).
    return new URL(value.trim()).href;
  }
}

export function parseCreateWebhook(body: unknown): CreateWebhookRequest {
  const parsed = createWebhookRequestSchema.safeParse(body ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join('.') || 'body';
    throw new AppError('invalid_field', `${field}: ${issue.message}.`, { detail: { field } });
  }
  return parsed.data;
}

export async function registerWebhook(
  deps: { outbound: Pick<Outbound, 'checkUrl'>; pool: Queryable; config: { WEBHOOK_MAX_ENDPOINTS: number } },
  apiKeyId: string,
  req: CreateWebhookRequest,
): Promise<WebhookEndpointWithSecret> {
  const url = await checkWebhookUrl(deps, req.url, 'url');
  if ((await countWebhookEndpoints(deps.pool, apiKeyId)) >= deps.config.WEBHOOK_MAX_ENDPOINTS) {
    throw new AppError(
      'invalid_request',
      `This API key already has ${deps.config.WEBHOOK_MAX_ENDPOINTS} webhook endpoints (WEBHOOK_MAX_ENDPOINTS); delete one first, or ask the operator to raise the limit.`,
      { detail: { limit: 'WEBHOOK_MAX_ENDPOINTS', max: deps.config.WEBHOOK_MAX_ENDPOINTS } },
    );
  }
  const row = await createWebhookEndpoint(deps.pool, { apiKeyId, url, eventTypes: req.event_types, format: req.format, secret: newWebhookSecret() });
  return { ...toEndpoint(row), secret: row.secret };
}

export function toEndpoint(row: WebhookEndpointRow): WebhookEndpoint {
  const overlap = row.previousExpiresAt && new Date(row.previousExpiresAt).getTime() > Date.now();
  return {
    id: row.id,
    url: row.url,
    event_types: row.eventTypes as WebhookEndpoint['event_types'],
    format: row.format,
    status: row.disabledAt ? 'disabled' : 'active',
    disabled_reason: row.disabledReason,
    created_at: iso(row.createdAt)!,
    previous_secret_expires_at: overlap ? iso(row.previousExpiresAt) : null,
  };
}

export function toDelivery(row: WebhookDeliveryRow): WebhookDelivery {
  return {
    id: row.id,
    endpoint_id: row.endpointId,
    url: row.url,
    event_id: `evt_${row.eventId}`,
    event_type: row.eventType as WebhookDelivery['event_type'],
    job_id: row.jobId,
    status: row.status,
    http_status: row.httpStatus,
    response_preview: row.responsePreview,
    error: row.lastError,
    attempts: row.attempts,
    created_at: iso(row.createdAt)!,
    updated_at: iso(row.updatedAt)!,
    last_attempt_at: iso(row.lastAttemptAt),
    next_attempt_at: row.status === 'pending' ? iso(row.nextAttemptAt) : null,
    completed_at: iso(row.completedAt),
  };
}
