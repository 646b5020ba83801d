-- Up Migration
-- Every process keeps the set of API keys that have webhook endpoints, and which event types they
-- take (packages/webhooks recipients.ts), so a job change with nobody to tell costs no query and no
-- transaction. Any change to the endpoints — created, changed, disabled, deleted, by the API, the
-- dashboard or an operator's own SQL — tells every process to reload that set.
CREATE FUNCTION kiln_webhook_endpoints_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('kiln_webhook_endpoints', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER webhook_endpoints_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON webhook_endpoints
  FOR EACH STATEMENT EXECUTE FUNCTION kiln_webhook_endpoints_changed();

-- Down Migration
DROP TRIGGER webhook_endpoints_changed ON webhook_endpoints;
DROP FUNCTION kiln_webhook_endpoints_changed();
