-- Up Migration
-- The workers' webhook delivery loops sleep while nothing is due (packages/webhooks delivery.ts) and
-- wake on this notice: sent at the commit of any statement that leaves a delivery due now — new
-- deliveries (an event recorded with a job change), a replay, an operator's own SQL. Deliveries
-- scheduled for later (a retry's backoff) send none: each loop computes when the next one is due.
-- Once per statement, however many rows; Postgres folds repeats within a transaction into one.
CREATE FUNCTION kiln_webhook_deliveries_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM due WHERE status = 'pending' AND next_attempt_at <= now()) THEN
    PERFORM pg_notify('kiln_webhook_deliveries', '');
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER webhook_deliveries_inserted
  AFTER INSERT ON webhook_deliveries REFERENCING NEW TABLE AS due
  FOR EACH STATEMENT EXECUTE FUNCTION kiln_webhook_deliveries_due();
CREATE TRIGGER webhook_deliveries_updated
  AFTER UPDATE ON webhook_deliveries REFERENCING NEW TABLE AS due
  FOR EACH STATEMENT EXECUTE FUNCTION kiln_webhook_deliveries_due();

-- Down Migration
DROP TRIGGER webhook_deliveries_updated ON webhook_deliveries;
DROP TRIGGER webhook_deliveries_inserted ON webhook_deliveries;
DROP FUNCTION kiln_webhook_deliveries_due();
