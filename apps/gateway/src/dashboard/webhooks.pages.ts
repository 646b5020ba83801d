/**
 * The dashboard's webhooks page: every key's endpoints (register one for a key, rotate its secret,
 * delete it) and the latest deliveries with a replay button. A new or rotated secret is shown in the
 * POST response itself, once, like a new API key. The same service functions as `/api/webhooks`
 * (webhooks.service.ts), so the dashboard's checks are the API's.
 */
import type { Router, Request, RequestHandler, Response } from 'express';
import { AppError, isAppError, isUuid, WEBHOOK_EVENT_TYPES, WEBHOOK_FORMATS } from '@kiln/contracts';
import { deleteWebhookEndpoint, getApiKey, listApiKeys, listWebhookDeliveries, listWebhookEndpoints, retryWebhookDelivery, rotateWebhookSecret } from '@kiln/db';
import { newWebhookSecret } from '@kiln/webhooks';
import type { GatewayDeps } from '../deps.ts';
import { parseCreateWebhook, registerWebhook } from '../webhooks.service.ts';
import { html, raw } from './html.ts';
import { layout } from './views.ts';

export interface DashboardHelpers {
  signedIn: (kind: 'page') => RequestHandler;
  csrfOf: (req: Request) => string;
  page: (res: Response, status: number, body: string) => unknown;
}

const when = (d: Date | string | null | undefined) =>
  d ? html`<time datetime="${new Date(d).toISOString()}">${new Date(d).toISOString().replace('T', ' ').slice(0, 19)} UTC</time>` : html`<span class="muted">—</span>`;

interface PageData {
  csrf: string;
  keys: Awaited<ReturnType<typeof listApiKeys>>;
  endpoints: Awaited<ReturnType<typeof listWebhookEndpoints>>;
  deliveries: Awaited<ReturnType<typeof listWebhookDeliveries>>;
  secret?: { endpointId: string; url: string; secret: string; rotated: boolean };
  notice?: string;
  error?: string;
}

export function webhooksPage(d: PageData): string {
  const keyName = (id: string) => d.keys.find((k) => k.id === id)?.name ?? id.slice(0, 8);
  const body = html`
<h1>Webhooks</h1>
${d.notice ? html`<p class="notice" role="status">${d.notice}</p>` : ''}
${
  d.secret
    ? html`<section class="card secret" aria-labelledby="secret-title">
  <h2 id="secret-title">${d.secret.rotated ? 'New secret' : 'Signing secret'} for ${d.secret.url} — copy it now</h2>
  <p>This is the only time it is shown.${d.secret.rotated ? ' The previous secret keeps signing alongside it for the overlap window (WEBHOOK_SECRET_OVERLAP_HOURS).' : ''}</p>
  <div class="keyline"><code id="new-secret" data-testid="new-secret">${d.secret.secret}</code>
    <button type="button" class="secondary" data-copy-target="new-secret" hidden>Copy</button></div>
</section>`
    : ''
}
<section class="card" aria-labelledby="wh-create-title">
  <h2 id="wh-create-title">Register an endpoint</h2>
  ${d.error ? html`<p class="error" role="alert">${d.error}</p>` : ''}
  <form method="post" action="/dashboard/webhooks">
    <input type="hidden" name="_csrf" value="${d.csrf}">
    <div class="grid">
      <div><label for="wh-key">API key</label>
        <select id="wh-key" name="key" required>${d.keys.filter((k) => !k.revokedAt).map((k) => html`<option value="${k.id}">${k.name} (${k.prefix}…)</option>`)}</select></div>
      <div class="wide"><label for="wh-url">URL <span class="hint">Kiln POSTs signed events here.</span></label>
        <input id="wh-url" name="url" type="url" required maxlength="2048" placeholder="https://example.com/hooks/kiln"></div>
      <div><label for="wh-format">Format</label>
        <select id="wh-format" name="format">${WEBHOOK_FORMATS.map((f) => html`<option value="${f}">${f}</option>`)}</select></div>
    </div>
    <fieldset><legend>Events <span class="hint inline">(none ticked = all)</span></legend>
      ${WEBHOOK_EVENT_TYPES.map((t) => html`<label class="inline"><input type="checkbox" name="event_types" value="${t}"> <code>${t}</code></label> `)}
    </fieldset>
    <button type="submit">Register endpoint</button>
  </form>
</section>
<section class="card" aria-labelledby="wh-list-title">
  <h2 id="wh-list-title">Endpoints</h2>
  ${
    d.endpoints.length === 0
      ? html`<p class="muted">No endpoints yet.</p>`
      : html`<div class="table-wrap"><table class="stack">
    <thead><tr><th scope="col">Key</th><th scope="col">URL</th><th scope="col">Events</th><th scope="col">Format</th><th scope="col">Status</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
    <tbody>${d.endpoints.map(
      (e) => html`<tr data-endpoint-id="${e.id}">
      <td data-label="Key">${keyName(e.apiKeyId)}</td>
      <td data-label="URL"><code>${e.url}</code></td>
      <td data-label="Events" class="small">${e.eventTypes.length === WEBHOOK_EVENT_TYPES.length ? 'all' : e.eventTypes.join(', ')}</td>
      <td data-label="Format">${e.format}</td>
      <td data-label="Status">${e.disabledAt ? html`<span class="badge revoked" title="${e.disabledReason ?? ''}">disabled</span>` : html`<span class="badge active">active</span>`}</td>
      <td data-label="Actions"><div class="row-actions">
        <form method="post" action="/dashboard/webhooks/${e.id}/rotate"><input type="hidden" name="_csrf" value="${d.csrf}"><button type="submit" class="secondary" aria-label="Rotate the secret of ${e.url}">Rotate secret</button></form>
        <form method="post" action="/dashboard/webhooks/${e.id}/delete"><input type="hidden" name="_csrf" value="${d.csrf}"><button type="submit" class="danger" aria-label="Delete ${e.url}">Delete</button></form>
      </div></td>
    </tr>`,
    )}</tbody></table></div>`
  }
</section>
<section class="card" aria-labelledby="wh-deliveries-title">
  <h2 id="wh-deliveries-title">Latest deliveries</h2>
  ${
    d.deliveries.length === 0
      ? html`<p class="muted">Nothing delivered yet.</p>`
      : html`<div class="table-wrap"><table class="stack">
    <thead><tr><th scope="col">Event</th><th scope="col">URL</th><th scope="col">Status</th><th scope="col">HTTP</th><th scope="col">Attempts</th><th scope="col">Last attempt</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
    <tbody>${d.deliveries.map(
      (x) => html`<tr data-delivery-id="${x.id}">
      <td data-label="Event"><code>${x.eventType}</code>${x.jobId ? html` <a class="small" href="/dashboard/jobs/${x.jobId}">job</a>` : ''}</td>
      <td data-label="URL" class="small"><code>${x.url}</code></td>
      <td data-label="Status"><span class="badge ${x.status === 'succeeded' ? 'completed' : x.status === 'failed' ? 'failed' : 'pending'}" title="${x.lastError ?? ''}">${x.status}</span></td>
      <td data-label="HTTP">${x.httpStatus ?? raw('<span class="muted">—</span>')}</td>
      <td data-label="Attempts">${x.attempts}</td>
      <td data-label="Last attempt">${when(x.lastAttemptAt)}</td>
      <td data-label="Actions">${
        x.status === 'delivering'
          ? ''
          : html`<form method="post" action="/dashboard/webhooks/deliveries/${x.id}/retry"><input type="hidden" name="_csrf" value="${d.csrf}"><button type="submit" class="secondary">Send again</button></form>`
      }</td>
    </tr>`,
    )}</tbody></table></div>`
  }
</section>`;
  return layout({ title: 'Webhooks', tab: 'webhooks', csrf: d.csrf, body });
}

export function webhookPages(r: Router, deps: GatewayDeps, h: DashboardHelpers): void {
  const { pool } = deps;
  const render = async (req: Request, res: Response, status: number, extra: Partial<PageData> = {}) => {
    const [keys, endpoints, deliveries] = await Promise.all([listApiKeys(pool), listWebhookEndpoints(pool), listWebhookDeliveries(pool, { limit: 50 })]);
    h.page(res, status, webhooksPage({ csrf: h.csrfOf(req), keys, endpoints, deliveries, ...extra }));
  };
  const idOf = (req: Request) => {
    const id = String(req.params.id ?? '');
    if (!isUuid(id)) throw new AppError('not_found', 'There is no such webhook endpoint.');
    return id;
  };

  r.get('/webhooks', h.signedIn('page'), async (req, res) => {
    await render(req, res, 200);
  });

  r.post('/webhooks', h.signedIn('page'), async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    try {
      const key = await getApiKey(pool, String(body.key ?? ''));
      if (!key || key.revokedAt) throw new AppError('invalid_field', 'Choose an active API key for the endpoint.', { detail: { field: 'key' } });
      const types = body.event_types === undefined ? [] : Array.isArray(body.event_types) ? body.event_types : [body.event_types];
      const created = await registerWebhook(deps, key.id, parseCreateWebhook({ url: body.url, format: body.format, ...(types.length ? { event_types: types } : {}) }));
      req.log.info('webhook endpoint registered from the dashboard', { endpointId: created.id, keyId: key.id });
      await render(req, res, 201, { secret: { endpointId: created.id, url: created.url, secret: created.secret, rotated: false } });
    } catch (err) {
      if (!isAppError(err)) throw err;
      await render(req, res, err.status, { error: err.message });
    }
  });

  r.post('/webhooks/:id/rotate', h.signedIn('page'), async (req, res) => {
    const row = await rotateWebhookSecret(pool, idOf(req), undefined, newWebhookSecret(), deps.config.WEBHOOK_SECRET_OVERLAP_HOURS);
    if (!row) throw new AppError('not_found', 'There is no such webhook endpoint; it may have been deleted.');
    await render(req, res, 200, { secret: { endpointId: row.id, url: row.url, secret: row.secret, rotated: true } });
  });

  r.post('/webhooks/:id/delete', h.signedIn('page'), async (req, res) => {
    if (!(await deleteWebhookEndpoint(pool, idOf(req)))) throw new AppError('not_found', 'There is no such webhook endpoint; it may have been deleted.');
    await render(req, res, 200, { notice: 'Endpoint deleted; its unsent deliveries were marked failed.' });
  });

  r.post('/webhooks/deliveries/:id/retry', h.signedIn('page'), async (req, res) => {
    const outcome = await retryWebhookDelivery(pool, idOf(req));
    const notice = {
      queued: 'Delivery queued again; a worker sends it within a moment.',
      not_found: 'There is no such delivery.',
      busy: 'That delivery is being sent right now.',
      endpoint_gone: 'That delivery’s endpoint is disabled or deleted; register it again to receive events.',
    }[outcome];
    await render(req, res, outcome === 'queued' ? 200 : outcome === 'not_found' ? 404 : 409, { notice });
  });
}
