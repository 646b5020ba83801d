-- Up Migration
-- Gateways cache API-key lookups. Any change that matters to a lookup (revocation, limits, the key
-- itself, its name, deletion) tells every gateway to forget what it holds, whoever made the change:
-- the dashboard, the keys CLI or an operator's own SQL. last_used_at updates do not notify.
CREATE FUNCTION kiln_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('kiln_keys_changed', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER api_keys_changed
  AFTER UPDATE OF revoked_at, limits, key_hash, name, prefix OR DELETE ON api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION kiln_keys_changed();

-- Down Migration
DROP TRIGGER api_keys_changed ON api_keys;
DROP FUNCTION kiln_keys_changed();
