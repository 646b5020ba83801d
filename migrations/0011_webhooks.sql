-- Up Migration
-- Webhooks (docs/webhooks.md). Endpoints belong to an API key; events are an outbox written in the
-- same transaction as the job change they describe, so an event exists exactly when its change
-- committed; deliveries are one row per (event, recipient), claimed by the workers with SKIP LOCKED.

CREATE TABLE webhook_endpoints (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  api_key_id           uuid NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
  url                  text NOT NULL,
  event_types          text[] NOT NULL,
  format               text NOT NULL DEFAULT 'convertly' CHECK (format IN ('convertly', 'standard')),
  -- The signing secret has to be kept readable: an HMAC is computed with it on every delivery.
  secret               text NOT NULL,
  -- After a rotation the previous secret keeps signing alongside until previous_expires_at.
  previous_secret      text,
  previous_expires_at  timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  -- Set when the receiver answered 410 Gone (or an operator disabled it); no more deliveries.
  disabled_at          timestamptz,
  disabled_reason      text,
  deleted_at           timestamptz
);
CREATE INDEX webhook_endpoints_key ON webhook_endpoints (api_key_id, created_at) WHERE deleted_at IS NULL;

-- A key's default secret for per-job webhookUrl deliveries when it has no endpoint (POST /api/webhooks/secret).
CREATE TABLE webhook_key_secrets (
  api_key_id  uuid PRIMARY KEY REFERENCES api_keys(id) ON DELETE CASCADE,
  secret      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- The per-job webhookUrl (Kiln's extension): delivered every event of the job.
ALTER TABLE jobs ADD COLUMN webhook_url text;

CREATE TABLE webhook_events (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Orders a job's events: deliveries to one recipient go out in this order.
  seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  api_key_id  uuid NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
  job_id      uuid,
  type        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  -- The envelope's `data`, as it was when the change committed.
  data        jsonb NOT NULL
);
CREATE INDEX webhook_events_job ON webhook_events (job_id, type, created_at);

CREATE TABLE webhook_deliveries (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  event_id           uuid NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
  event_seq          bigint NOT NULL,
  api_key_id         uuid NOT NULL,
  job_id             uuid,
  -- A registered endpoint, or NULL for a job's own webhookUrl (then `url` is it).
  endpoint_id        uuid REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  url                text NOT NULL,
  -- pending → delivering → succeeded | failed; a delivering row whose lease ran out is taken again.
  status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed')),
  attempts           integer NOT NULL DEFAULT 0,
  next_attempt_at    timestamptz NOT NULL DEFAULT now(),
  -- Retries stop WEBHOOK_RETRY_HOURS after this (the event's time, or a manual retry's).
  window_start       timestamptz NOT NULL DEFAULT now(),
  lease_until        timestamptz,
  http_status        integer,
  response_preview   text,
  last_error         text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  last_attempt_at    timestamptz,
  completed_at       timestamptz
);
-- The claim query: due rows, and the earlier unfinished rows of the same recipient and job.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (url, job_id, event_seq) WHERE status IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_key ON webhook_deliveries (api_key_id, created_at DESC);

-- Down Migration
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
ALTER TABLE jobs DROP COLUMN webhook_url;
DROP TABLE webhook_key_secrets;
DROP TABLE webhook_endpoints;
