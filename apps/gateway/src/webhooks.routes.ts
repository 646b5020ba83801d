/**
 * `/api/webhooks` (Convertly's webhook contract, docs/webhooks.md): endpoints per API key, the key's
 * default secret for per-job webhookUrl deliveries, delivery history and replays. Request and response
 * shapes are the zod schemas in @kiln/contracts (webhooks.ts).
 */
import express, { Router, type Request } from 'express';
import { AppError, isUuid, listDeliveriesQuerySchema } from '@kiln/contracts';
import { deleteWebhookEndpoint, listWebhookDeliveries, listWebhookEndpoints, retryWebhookDelivery, rotateWebhookSecret, setWebhookKeySecret, getWebhookDelivery } from '@kiln/db';
import { newWebhookSecret } from '@kiln/webhooks';
import { apiKeyOf } from './auth.ts';
import type { GatewayDeps } from './deps.ts';
import { parseCreateWebhook, registerWebhook, toDelivery, toEndpoint } from './webhooks.service.ts';

function idParam(req: Request, what: string): string {
  const id = String(req.params.id ?? '');
  if (!isUuid(id)) throw new AppError('not_found', `No ${what} ${String(req.params.id).slice(0, 100)}.`);
  return id;
}

export function webhooksRouter(deps: GatewayDeps): Router {
  const r = Router();
  const json = express.json({ limit: '16kb' });

  r.post('/webhooks', json, async (req, res) => {
    const created = await registerWebhook(deps, apiKeyOf(req).id, parseCreateWebhook(req.body));
    res.status(201).json(created);
  });

  r.get('/webhooks', async (req, res) => {
    const rows = await listWebhookEndpoints(deps.pool, apiKeyOf(req).id);
    res.json({ webhooks: rows.map(toEndpoint) });
  });

  r.post('/webhooks/secret', async (req, res) => {
    const secret = newWebhookSecret();
    const { createdAt } = await setWebhookKeySecret(deps.pool, apiKeyOf(req).id, secret);
    res.status(201).json({ secret, created_at: createdAt.toISOString() });
  });

  r.get('/webhooks/deliveries', async (req, res) => {
    const q = listDeliveriesQuerySchema.safeParse(req.query);
    if (!q.success) throw new AppError('invalid_field', `limit: ${q.error.issues[0]!.message}.`, { detail: { field: 'limit' } });
    const rows = await listWebhookDeliveries(deps.pool, { apiKeyId: apiKeyOf(req).id, limit: q.data.limit });
    res.json({ deliveries: rows.map(toDelivery) });
  });

  r.post('/webhooks/deliveries/:id/retry', async (req, res) => {
    const id = idParam(req, 'delivery');
    const key = apiKeyOf(req).id;
    const outcome = await retryWebhookDelivery(deps.pool, id, key);
    if (outcome === 'not_found') throw new AppError('not_found', `No delivery ${id}.`);
    if (outcome === 'busy') throw new AppError('conflict', `Delivery ${id} is being sent right now; look at it again in a few seconds.`, { detail: { status: 'delivering' } });
    if (outcome === 'endpoint_gone') {
      throw new AppError('conflict', `Delivery ${id}'s endpoint is disabled or deleted; register the endpoint again (POST /api/webhooks) to receive new events.`, {
        detail: { reason: 'endpoint_disabled' },
      });
    }
    res.status(202).json(toDelivery((await getWebhookDelivery(deps.pool, id, key))!));
  });

  r.delete('/webhooks/:id', async (req, res) => {
    const id = idParam(req, 'webhook');
    if (!(await deleteWebhookEndpoint(deps.pool, id, apiKeyOf(req).id))) throw new AppError('not_found', `No webhook ${id}.`);
    res.json({ id, deleted: true });
  });

  r.post('/webhooks/:id/rotate', async (req, res) => {
    const id = idParam(req, 'webhook');
    const row = await rotateWebhookSecret(deps.pool, id, apiKeyOf(req).id, newWebhookSecret(), deps.config.WEBHOOK_SECRET_OVERLAP_HOURS);
    if (!row) throw new AppError('not_found', `No webhook ${id}.`);
    res.json({ ...toEndpoint(row), secret: row.secret });
  });

  return r;
}
