-- Up Migration
-- Per-key limits (issue 5). A key's result retention is copied onto each job when it is created, so
-- changing a key later never changes when existing results expire; NULL means RETENTION_HOURS.
ALTER TABLE jobs ADD COLUMN retention_hours double precision CHECK (retention_hours IS NULL OR retention_hours > 0);

-- Fixed-window request counters shared by every gateway process: one upsert per counted request.
-- `bucket` is `key:<api key id>` (requests per minute) or `login:<ip>` (dashboard sign-in attempts).
CREATE TABLE rate_limit_windows (
  bucket       text NOT NULL,
  window_start timestamptz NOT NULL,
  hits         integer NOT NULL,
  PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limit_windows_by_start ON rate_limit_windows (window_start);

-- Admission checks (concurrent jobs, monthly quota) count a key's jobs by status and by month.
CREATE INDEX jobs_active_by_key ON jobs (api_key_id) WHERE status IN ('pending', 'processing');

-- Down Migration
DROP INDEX jobs_active_by_key;
DROP TABLE rate_limit_windows;
ALTER TABLE jobs DROP COLUMN retention_hours;
