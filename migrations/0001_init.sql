-- Up Migration
-- Kiln's own record. pg-boss owns its schema separately and is only the transport.
CREATE TABLE api_keys (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name          text NOT NULL,
  prefix        text NOT NULL,
  key_hash      bytea NOT NULL UNIQUE,           -- sha256 of the full key; the key itself is never stored
  limits        jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  revoked_at    timestamptz
);

CREATE TABLE jobs (
  id              uuid PRIMARY KEY,
  api_key_id      uuid NOT NULL REFERENCES api_keys(id),
  job_type        text NOT NULL CHECK (job_type IN ('convert', 'compress')),
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
  create_archive  boolean NOT NULL DEFAULT false,
  total_files     integer NOT NULL CHECK (total_files > 0),
  completed_files integer NOT NULL DEFAULT 0,
  failed_files    integer NOT NULL DEFAULT 0,
  error_message   text,
  cancelled       boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL DEFAULT now(),
  started_at      timestamptz,
  completed_at    timestamptz,
  expires_at      timestamptz,
  archive_file_id uuid,
  purged_at       timestamptz                  -- blobs deleted after retention; the row stays as the record
);
CREATE INDEX jobs_by_key ON jobs (api_key_id, created_at DESC);
CREATE INDEX jobs_expiring ON jobs (expires_at) WHERE expires_at IS NOT NULL AND purged_at IS NULL;

-- Every blob Kiln keeps for a job (results and archives); sources are referenced from job_files.
CREATE TABLE stored_files (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  job_id      uuid NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  storage_key text NOT NULL UNIQUE,
  filename    text NOT NULL,
  mime_type   text NOT NULL,
  size        bigint NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stored_files_by_job ON stored_files (job_id);
ALTER TABLE jobs ADD CONSTRAINT jobs_archive_fk FOREIGN KEY (archive_file_id) REFERENCES stored_files(id) ON DELETE SET NULL;

CREATE TABLE job_files (
  id             uuid PRIMARY KEY,
  job_id         uuid NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  idx            integer NOT NULL,
  filename       text NOT NULL,
  source_key     text NOT NULL,
  source_kind    text,
  original_size  bigint NOT NULL,
  options        jsonb NOT NULL,
  status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
  progress       integer NOT NULL DEFAULT 0,
  attempts       integer NOT NULL DEFAULT 0,
  result         jsonb,
  output_file_id uuid REFERENCES stored_files(id) ON DELETE SET NULL,
  error_code     text,
  error_message  text,
  started_at     timestamptz,
  completed_at   timestamptz,
  UNIQUE (job_id, idx)
);

CREATE TABLE idempotency_keys (
  api_key_id uuid NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
  key        text NOT NULL,
  job_id     uuid NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (api_key_id, key)
);

-- Down Migration
DROP TABLE idempotency_keys;
DROP TABLE job_files;
ALTER TABLE jobs DROP CONSTRAINT jobs_archive_fk;
DROP TABLE stored_files;
DROP TABLE jobs;
DROP TABLE api_keys;
