/**
 * The per-job `webhookUrl` (Kiln's extension) as the job-creating routes read it. Endpoint management
 * itself is @kiln/webhooks' endpoints.ts, shared with the dashboard and `pnpm keys:webhooks`.
 */
import { AppError, WEBHOOK_URL_FIELD } from '@kiln/contracts';
import { jobWebhookSigner, type Queryable } from '@kiln/db';
import type { Outbound } from '@kiln/outbound';
import { checkWebhookUrl } from '@kiln/webhooks';

export { checkWebhookUrl, parseCreateWebhook, registerWebhook, toDelivery, toEndpoint } from '@kiln/webhooks';

/**
 * The job's own webhookUrl from a request's fields (undefined when none was sent). It is signed with
 * the key's first endpoint's secret or its default secret, so one of them must exist.
 */
export async function jobWebhookUrlOf(
  deps: { outbound: Pick<Outbound, 'checkUrl'>; pool: Queryable },
  apiKeyId: string,
  value: unknown,
  field: string = WEBHOOK_URL_FIELD,
): Promise<string | undefined> {
  const raw = Array.isArray(value) ? value.at(-1) : value;
  if (raw === undefined || raw === null || raw === '') return undefined;
  const url = await checkWebhookUrl(deps, raw, field);
  if (!(await jobWebhookSigner(deps.pool, apiKeyId))) {
    throw new AppError(
      'invalid_field',
      `${field} needs a signing secret: register an endpoint with POST /api/webhooks, or create the key's default secret with POST /api/webhooks/secret, then send the job again.`,
      { detail: { field } },
    );
  }
  return url;
}
