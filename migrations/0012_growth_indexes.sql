-- Up Migration
-- Flat as the tables grow (issue 16): every query on the job path and every listing reads an index
-- bounded by what it returns, never a scan of the history.

-- Listings: GET /api/jobs (one key, newest first, `ORDER BY created_at DESC, id`), with and without a
-- status filter, and the dashboard's operator view over every key. The page's ids come from an
-- index-only scan of these (OFFSET skips index entries, not heap rows); only the page's rows are read.
DROP INDEX jobs_by_key;
CREATE INDEX jobs_by_key ON jobs (api_key_id, created_at DESC, id);
CREATE INDEX jobs_by_key_status ON jobs (api_key_id, status, created_at DESC, id);
CREATE INDEX jobs_by_created ON jobs (created_at DESC, id);

-- Foreign keys whose referencing side had no index: deleting a stored file (retention) set
-- job_files.output_file_id / jobs.archive_file_id to NULL by scanning the whole table for it.
CREATE INDEX job_files_by_output ON job_files (output_file_id) WHERE output_file_id IS NOT NULL;
CREATE INDEX jobs_by_archive ON jobs (archive_file_id) WHERE archive_file_id IS NOT NULL;
CREATE INDEX idempotency_keys_by_job ON idempotency_keys (job_id);

-- A listing's `total` comes from the job totals (0009), now kept per API key too: the same delta row
-- per insert or status change carries the job's key, so a key's count by status is a few rows
-- instead of counting its history. job_totals gets the key in its primary key; the metrics read sums
-- over keys.
LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;
TRUNCATE job_totals, job_total_deltas;
ALTER TABLE job_totals ADD COLUMN api_key_id uuid NOT NULL;
ALTER TABLE job_totals DROP CONSTRAINT job_totals_pkey;
ALTER TABLE job_totals ADD PRIMARY KEY (api_key_id, status, job_type, dialect);
ALTER TABLE job_total_deltas ADD COLUMN api_key_id uuid NOT NULL;
-- Unfolded deltas of one key (a listing's total reads them beside the folded rows).
CREATE INDEX job_total_deltas_by_key ON job_total_deltas (api_key_id, status);

CREATE OR REPLACE FUNCTION kiln_job_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO job_total_deltas (api_key_id, job_type, dialect, status, n) VALUES (NEW.api_key_id, NEW.job_type, NEW.dialect, NEW.status, 1);
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO job_total_deltas (api_key_id, job_type, dialect, status, n) VALUES (OLD.api_key_id, OLD.job_type, OLD.dialect, OLD.status, -1);
  ELSE
    INSERT INTO job_total_deltas (api_key_id, job_type, dialect, status, n)
      VALUES (OLD.api_key_id, OLD.job_type, OLD.dialect, OLD.status, -1), (NEW.api_key_id, NEW.job_type, NEW.dialect, NEW.status, 1);
  END IF;
  RETURN NULL;
END
$$;
-- A job never changes key, but if one did its counts must follow.
DROP TRIGGER jobs_totals_update ON jobs;
CREATE TRIGGER jobs_totals_update AFTER UPDATE OF status, job_type, dialect, api_key_id ON jobs FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.job_type IS DISTINCT FROM NEW.job_type OR OLD.dialect IS DISTINCT FROM NEW.dialect
        OR OLD.api_key_id IS DISTINCT FROM NEW.api_key_id)
  EXECUTE FUNCTION kiln_job_totals();

INSERT INTO job_totals (api_key_id, job_type, dialect, status, n) SELECT api_key_id, job_type, dialect, status, count(*) FROM jobs GROUP BY 1, 2, 3, 4;

-- Down Migration
LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;
DROP TRIGGER jobs_totals_update ON jobs;
CREATE TRIGGER jobs_totals_update AFTER UPDATE OF status, job_type, dialect ON jobs FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.job_type IS DISTINCT FROM NEW.job_type OR OLD.dialect IS DISTINCT FROM NEW.dialect)
  EXECUTE FUNCTION kiln_job_totals();
CREATE OR REPLACE FUNCTION kiln_job_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO job_total_deltas (job_type, dialect, status, n) VALUES (NEW.job_type, NEW.dialect, NEW.status, 1);
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO job_total_deltas (job_type, dialect, status, n) VALUES (OLD.job_type, OLD.dialect, OLD.status, -1);
  ELSE
    INSERT INTO job_total_deltas (job_type, dialect, status, n)
      VALUES (OLD.job_type, OLD.dialect, OLD.status, -1), (NEW.job_type, NEW.dialect, NEW.status, 1);
  END IF;
  RETURN NULL;
END
$$;
TRUNCATE job_totals, job_total_deltas;
DROP INDEX job_total_deltas_by_key;
ALTER TABLE job_total_deltas DROP COLUMN api_key_id;
ALTER TABLE job_totals DROP CONSTRAINT job_totals_pkey;
ALTER TABLE job_totals DROP COLUMN api_key_id;
ALTER TABLE job_totals ADD PRIMARY KEY (job_type, dialect, status);
INSERT INTO job_totals (job_type, dialect, status, n) SELECT job_type, dialect, status, count(*) FROM jobs GROUP BY 1, 2, 3;
DROP INDEX idempotency_keys_by_job;
DROP INDEX jobs_by_archive;
DROP INDEX job_files_by_output;
DROP INDEX jobs_by_created;
DROP INDEX jobs_by_key_status;
DROP INDEX jobs_by_key;
CREATE INDEX jobs_by_key ON jobs (api_key_id, created_at DESC);
