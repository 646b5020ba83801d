/**
 * Webhook endpoints, the event outbox and its deliveries (migration 0011). Events are inserted by the
 * same transaction as the job change they describe, together with one delivery row per recipient; the
 * workers claim due deliveries with SKIP LOCKED, one recipient's deliveries of one job strictly in
 * event order, and a claim is a lease: a worker that dies mid-send leaves a row another one takes
 * again once the lease has run out.
 */
import { named, type Queryable } from './pool.ts';

export interface WebhookEndpointRow {
  id: string;
  apiKeyId: string;
  url: string;
  eventTypes: string[];
  format: 'convertly' | 'standard';
  secret: string;
  previousSecret: string | null;
  previousExpiresAt: Date | null;
  createdAt: Date;
  disabledAt: Date | null;
  disabledReason: string | null;
}

const ENDPOINT_COLS = `id, api_key_id AS "apiKeyId", url, event_types AS "eventTypes", format, secret, previous_secret AS "previousSecret",
  previous_expires_at AS "previousExpiresAt", created_at AS "createdAt", disabled_at AS "disabledAt", disabled_reason AS "disabledReason"`;

export async function createWebhookEndpoint(
  db: Queryable,
  e: { apiKeyId: string; url: string; eventTypes: readonly string[]; format: 'convertly' | 'standard'; secret: string },
): Promise<WebhookEndpointRow> {
  const r = await db.query<WebhookEndpointRow>(
    `INSERT INTO webhook_endpoints (api_key_id, url, event_types, format, secret) VALUES ($1, $2, $3, $4, $5) RETURNING ${ENDPOINT_COLS}`,
    [e.apiKeyId, e.url, e.eventTypes, e.format, e.secret],
  );
  return r.rows[0]!;
}

/** A key's endpoints (all keys' when apiKeyId is undefined: the dashboard), oldest first. */
export async function listWebhookEndpoints(db: Queryable, apiKeyId?: string): Promise<WebhookEndpointRow[]> {
  const r = apiKeyId
    ? await db.query<WebhookEndpointRow>(`SELECT ${ENDPOINT_COLS} FROM webhook_endpoints WHERE api_key_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, [apiKeyId])
    : await db.query<WebhookEndpointRow>(`SELECT ${ENDPOINT_COLS} FROM webhook_endpoints WHERE deleted_at IS NULL ORDER BY created_at, id`);
  return r.rows;
}

export async function getWebhookEndpoint(db: Queryable, id: string, apiKeyId?: string): Promise<WebhookEndpointRow | undefined> {
  const r = await db.query<WebhookEndpointRow>(
    `SELECT ${ENDPOINT_COLS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL ${apiKeyId ? 'AND api_key_id = $2' : ''}`,
    apiKeyId ? [id, apiKeyId] : [id],
  );
  return r.rows[0];
}

/** Deletes an endpoint; its deliveries not yet sent are marked failed (the history stays). */
export async function deleteWebhookEndpoint(db: Queryable, id: string, apiKeyId?: string): Promise<boolean> {
  const r = await db.query(
    `UPDATE webhook_endpoints SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL ${apiKeyId ? 'AND api_key_id = $2' : ''}`,
    apiKeyId ? [id, apiKeyId] : [id],
  );
  if (!r.rowCount) return false;
  await failOpenDeliveries(db, { endpointId: id }, 'The endpoint was deleted.');
  return true;
}

/** A new secret; the current one becomes the previous, signing alongside for `overlapHours`. */
export async function rotateWebhookSecret(db: Queryable, id: string, apiKeyId: string | undefined, secret: string, overlapHours: number): Promise<WebhookEndpointRow | undefined> {
  const r = await db.query<WebhookEndpointRow>(
    `UPDATE webhook_endpoints SET previous_secret = secret, secret = $2,
            previous_expires_at = now() + make_interval(secs => $3::float8 * 3600)
      WHERE id = $1 AND deleted_at IS NULL ${apiKeyId ? 'AND api_key_id = $4' : ''} RETURNING ${ENDPOINT_COLS}`,
    apiKeyId ? [id, secret, overlapHours, apiKeyId] : [id, secret, overlapHours],
  );
  return r.rows[0];
}

export async function countWebhookEndpoints(db: Queryable, apiKeyId: string): Promise<number> {
  const r = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_endpoints WHERE api_key_id = $1 AND deleted_at IS NULL`, [apiKeyId]);
  return r.rows[0]!.n;
}

/** Sets (or replaces) the key's default secret for per-job webhookUrl deliveries. */
export async function setWebhookKeySecret(db: Queryable, apiKeyId: string, secret: string): Promise<{ createdAt: Date }> {
  const r = await db.query<{ createdAt: Date }>(
    `INSERT INTO webhook_key_secrets (api_key_id, secret) VALUES ($1, $2)
     ON CONFLICT (api_key_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = now() RETURNING created_at AS "createdAt"`,
    [apiKeyId, secret],
  );
  return r.rows[0]!;
}

/**
 * What signs a job's own webhookUrl deliveries: the key's first endpoint (its secrets and format),
 * else the key's default secret (format convertly); undefined when the key has neither.
 */
export async function jobWebhookSigner(
  db: Queryable,
  apiKeyId: string,
): Promise<{ secret: string; previousSecret: string | null; previousExpiresAt: Date | null; format: 'convertly' | 'standard' } | undefined> {
  const r = await db.query<{ secret: string; previousSecret: string | null; previousExpiresAt: Date | null; format: 'convertly' | 'standard' }>(
    `SELECT secret, "previousSecret", "previousExpiresAt", format FROM (
       (SELECT secret, previous_secret AS "previousSecret", previous_expires_at AS "previousExpiresAt", format, 0 AS rank, created_at
          FROM webhook_endpoints WHERE api_key_id = $1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT 1)
       UNION ALL
       SELECT secret, NULL, NULL, 'convertly', 1, created_at FROM webhook_key_secrets WHERE api_key_id = $1) s
     ORDER BY rank LIMIT 1`,
    [apiKeyId],
  );
  return r.rows[0];
}

/** Whether an event of `type` for this job would go anywhere (so nothing is rendered for nobody). */
export async function hasWebhookRecipients(db: Queryable, apiKeyId: string, jobId: string, type: string): Promise<boolean> {
  const r = await db.query<{ any: boolean }>(
    named(
      'webhook_recipients',
      `SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE api_key_id = $1 AND deleted_at IS NULL AND disabled_at IS NULL AND $3 = ANY(event_types))
           OR EXISTS (SELECT 1 FROM jobs WHERE id = $2 AND webhook_url IS NOT NULL) AS any`,
      [apiKeyId, jobId, type],
    ),
  );
  return r.rows[0]!.any;
}

/**
 * Inserts one event and a delivery for each recipient: every active endpoint of the key subscribed to
 * the type, and the job's own webhookUrl (all types). Call it inside the transaction of the change.
 */
export async function insertWebhookEvent(db: Queryable, e: { apiKeyId: string; jobId: string; type: string; data: unknown }): Promise<{ eventId: string; deliveries: number }> {
  const r = await db.query<{ event_id: string; n: number }>(
    named(
      'webhook_event',
      `WITH e AS (
         INSERT INTO webhook_events (api_key_id, job_id, type, data) VALUES ($1, $2, $3, $4::jsonb) RETURNING id, seq),
       d AS (
         INSERT INTO webhook_deliveries (event_id, event_seq, api_key_id, job_id, endpoint_id, url)
         SELECT e.id, e.seq, $1, $2, r.endpoint_id, r.url FROM e, (
             SELECT id AS endpoint_id, url FROM webhook_endpoints
              WHERE api_key_id = $1 AND deleted_at IS NULL AND disabled_at IS NULL AND $3 = ANY(event_types)
             UNION ALL
             SELECT NULL::uuid, webhook_url FROM jobs WHERE id = $2 AND webhook_url IS NOT NULL) r
         RETURNING 1)
       SELECT (SELECT id FROM e) AS event_id, (SELECT count(*)::int FROM d) AS n`,
      [e.apiKeyId, e.jobId, e.type, JSON.stringify(e.data)],
    ),
  );
  return { eventId: r.rows[0]!.event_id, deliveries: r.rows[0]!.n };
}

/** When this job last had an event of `type` (the progress throttle). */
export async function lastWebhookEventAt(db: Queryable, jobId: string, type: string): Promise<Date | undefined> {
  const r = await db.query<{ at: Date | null }>(named('webhook_last_event', `SELECT max(created_at) AS at FROM webhook_events WHERE job_id = $1 AND type = $2`, [jobId, type]));
  return r.rows[0]?.at ?? undefined;
}

export interface ClaimedDelivery {
  id: string;
  apiKeyId: string;
  jobId: string | null;
  endpointId: string | null;
  url: string;
  attempts: number;
  windowStart: Date;
  eventId: string;
  eventType: string;
  eventCreatedAt: Date;
  data: unknown;
}

/**
 * Takes up to `limit` due deliveries for `leaseSeconds`: pending ones whose time has come, and
 * delivering ones whose lease ran out (their worker died mid-send). A delivery waits while an earlier
 * event of the same job to the same URL is still unfinished, so each receiver sees a job's events in
 * order, even across retries.
 */
export async function claimWebhookDeliveries(db: Queryable, limit: number, leaseSeconds: number): Promise<ClaimedDelivery[]> {
  const r = await db.query<ClaimedDelivery>(
    named(
      'webhook_claim',
      `WITH c AS (
         SELECT d.id FROM webhook_deliveries d
          WHERE d.status IN ('pending', 'delivering') AND d.next_attempt_at <= now()
            AND (d.status = 'pending' OR d.lease_until < now())
            AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                             WHERE p.url = d.url AND p.job_id = d.job_id AND p.event_seq < d.event_seq AND p.status IN ('pending', 'delivering'))
          ORDER BY d.next_attempt_at, d.event_seq
          LIMIT $1 FOR UPDATE OF d SKIP LOCKED)
       UPDATE webhook_deliveries d SET status = 'delivering', attempts = d.attempts + 1, lease_until = now() + make_interval(secs => $2::float8),
              last_attempt_at = now(), updated_at = now()
         FROM c, webhook_events e
        WHERE d.id = c.id AND e.id = d.event_id
        RETURNING d.id, d.api_key_id AS "apiKeyId", d.job_id AS "jobId", d.endpoint_id AS "endpointId", d.url, d.attempts,
                  d.window_start AS "windowStart", e.id AS "eventId", e.type AS "eventType", e.created_at AS "eventCreatedAt", e.data`,
      [limit, leaseSeconds],
    ),
  );
  return r.rows;
}

/**
 * For the delivery loop's sleep: when the next delivery becomes due that is not due yet (the earliest
 * future retry, or the end of the earliest lease of one being sent: its worker may die), undefined
 * when there is none; and whether one is due already that the last claim did not take (it waits
 * behind an earlier event of its job to the same receiver, or another worker has it locked).
 */
export async function nextWebhookDue(db: Queryable): Promise<{ at: Date | undefined; dueNow: boolean }> {
  const r = await db.query<{ at: Date | null; due_now: boolean }>(
    named(
      'webhook_next_due',
      `SELECT LEAST(
         (SELECT min(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at > now()),
         (SELECT min(lease_until) FROM webhook_deliveries WHERE status = 'delivering' AND lease_until > now())) AS at,
         EXISTS (SELECT 1 FROM webhook_deliveries WHERE status IN ('pending', 'delivering') AND next_attempt_at <= now()
                    AND (status = 'pending' OR lease_until <= now())) AS due_now`,
      [],
    ),
  );
  return { at: r.rows[0]?.at ?? undefined, dueNow: r.rows[0]?.due_now ?? false };
}

export type DeliveryOutcome =
  | { status: 'succeeded'; httpStatus: number; preview: string }
  | { status: 'retry'; httpStatus: number | null; preview: string | null; error: string; nextAttemptAt: Date }
  | { status: 'failed'; httpStatus: number | null; preview: string | null; error: string };

/** Records an attempt's outcome; only the claim that holds the row (same attempt count) may. */
export async function finishWebhookDelivery(db: Queryable, id: string, attempts: number, o: DeliveryOutcome): Promise<boolean> {
  const r = await db.query(
    named(
      'webhook_finish',
      `UPDATE webhook_deliveries SET status = $3, http_status = $4, response_preview = $5, last_error = $6,
              next_attempt_at = coalesce($7, next_attempt_at), lease_until = NULL, updated_at = now(),
              completed_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
        WHERE id = $1 AND attempts = $2 AND status = 'delivering'`,
      [
        id,
        attempts,
        o.status === 'retry' ? 'pending' : o.status,
        o.httpStatus,
        o.preview,
        o.status === 'succeeded' ? null : o.error,
        o.status === 'retry' ? o.nextAttemptAt : null,
      ],
    ),
  );
  return (r.rowCount ?? 0) > 0;
}

/** Marks unfinished deliveries to an endpoint (or to a job's own URL) failed with `reason`. */
export async function failOpenDeliveries(db: Queryable, to: { endpointId: string } | { jobId: string; url: string }, reason: string): Promise<number> {
  const r =
    'endpointId' in to
      ? await db.query(
          `UPDATE webhook_deliveries SET status = 'failed', last_error = $2, lease_until = NULL, updated_at = now(), completed_at = now()
            WHERE endpoint_id = $1 AND status IN ('pending', 'delivering')`,
          [to.endpointId, reason],
        )
      : await db.query(
          `UPDATE webhook_deliveries SET status = 'failed', last_error = $3, lease_until = NULL, updated_at = now(), completed_at = now()
            WHERE endpoint_id IS NULL AND job_id = $1 AND url = $2 AND status IN ('pending', 'delivering')`,
          [to.jobId, to.url, reason],
        );
  return r.rowCount ?? 0;
}

/** The receiver answered 410 Gone: the endpoint gets no more deliveries. */
export async function disableWebhookEndpoint(db: Queryable, id: string, reason: string): Promise<void> {
  await db.query(`UPDATE webhook_endpoints SET disabled_at = coalesce(disabled_at, now()), disabled_reason = $2 WHERE id = $1`, [id, reason]);
  await failOpenDeliveries(db, { endpointId: id }, reason);
}

export interface WebhookDeliveryRow {
  id: string;
  endpointId: string | null;
  url: string;
  eventId: string;
  eventType: string;
  jobId: string | null;
  status: 'pending' | 'delivering' | 'succeeded' | 'failed';
  httpStatus: number | null;
  responsePreview: string | null;
  lastError: string | null;
  attempts: number;
  createdAt: Date;
  updatedAt: Date;
  lastAttemptAt: Date | null;
  nextAttemptAt: Date;
  completedAt: Date | null;
}

const DELIVERY_COLS = `d.id, d.endpoint_id AS "endpointId", d.url, d.event_id AS "eventId", e.type AS "eventType", d.job_id AS "jobId", d.status,
  d.http_status AS "httpStatus", d.response_preview AS "responsePreview", d.last_error AS "lastError", d.attempts, d.created_at AS "createdAt",
  d.updated_at AS "updatedAt", d.last_attempt_at AS "lastAttemptAt", d.next_attempt_at AS "nextAttemptAt", d.completed_at AS "completedAt"`;

/** Newest first; a key's own (all keys' when apiKeyId is undefined: the dashboard). */
export async function listWebhookDeliveries(db: Queryable, q: { apiKeyId?: string; endpointId?: string; limit: number }): Promise<WebhookDeliveryRow[]> {
  const where: string[] = [];
  const args: unknown[] = [];
  if (q.apiKeyId) where.push(`d.api_key_id = $${args.push(q.apiKeyId)}`);
  if (q.endpointId) where.push(`d.endpoint_id = $${args.push(q.endpointId)}`);
  const r = await db.query<WebhookDeliveryRow>(
    `SELECT ${DELIVERY_COLS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY d.created_at DESC, d.event_seq DESC LIMIT $${args.push(q.limit)}`,
    args,
  );
  return r.rows;
}

export async function getWebhookDelivery(db: Queryable, id: string, apiKeyId?: string): Promise<WebhookDeliveryRow | undefined> {
  const r = await db.query<WebhookDeliveryRow>(
    `SELECT ${DELIVERY_COLS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id WHERE d.id = $1 ${apiKeyId ? 'AND d.api_key_id = $2' : ''}`,
    apiKeyId ? [id, apiKeyId] : [id],
  );
  return r.rows[0];
}

/**
 * Sends a delivery again as soon as a worker is free, with a fresh retry window (Convertly's replay).
 * A delivery being sent right now is left alone (`busy`); one whose endpoint is disabled or deleted is
 * refused (`endpoint_gone`).
 */
export async function retryWebhookDelivery(db: Queryable, id: string, apiKeyId?: string): Promise<'queued' | 'not_found' | 'busy' | 'endpoint_gone'> {
  const found = await getWebhookDelivery(db, id, apiKeyId);
  if (!found) return 'not_found';
  if (found.status === 'delivering') return 'busy';
  if (found.endpointId) {
    const ep = await db.query<{ ok: boolean }>(`SELECT deleted_at IS NULL AND disabled_at IS NULL AS ok FROM webhook_endpoints WHERE id = $1`, [found.endpointId]);
    if (!ep.rows[0]?.ok) return 'endpoint_gone';
  }
  const r = await db.query(
    `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), window_start = now(), completed_at = NULL, updated_at = now()
      WHERE id = $1 AND status <> 'delivering'`,
    [id],
  );
  return r.rowCount ? 'queued' : 'busy';
}

/** Deletes events (and, by cascade, their deliveries) older than `days` whose deliveries are all final. */
export async function pruneWebhookHistory(db: Queryable, days: number, limit = 1000): Promise<number> {
  const r = await db.query(
    `DELETE FROM webhook_events WHERE id IN (
       SELECT e.id FROM webhook_events e
        WHERE e.created_at < now() - make_interval(secs => $1::float8 * 86400)
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status IN ('pending', 'delivering'))
        ORDER BY e.created_at LIMIT $2)`,
    [days, limit],
  );
  return r.rowCount ?? 0;
}

/** Every key that has an active webhook endpoint, with the event types its endpoints take (the recipient cache's load). */
export async function activeEndpointTypes(db: Queryable): Promise<Map<string, Set<string>>> {
  const r = await db.query<{ apiKeyId: string; types: string[] }>(
    `SELECT api_key_id AS "apiKeyId", array_agg(DISTINCT t) AS types
       FROM webhook_endpoints, unnest(event_types) t
      WHERE deleted_at IS NULL AND disabled_at IS NULL
      GROUP BY api_key_id`,
  );
  return new Map(r.rows.map((row) => [row.apiKeyId, new Set(row.types)]));
}
