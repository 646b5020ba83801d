-- Up Migration
-- The TurboFiles dialect (/v1, issue 11). A task is a job of one file: its job, file rows and queue
-- message are the Convertly ones. What the dialect adds is the file declared before its bytes arrive
-- and what the client sent when it asked for the task.

-- Which API made a job (the dashboard shows it; nothing else depends on it).
ALTER TABLE jobs ADD COLUMN dialect text NOT NULL DEFAULT 'convertly' CHECK (dialect IN ('convertly', 'turbofiles'));

-- A file declared with POST /v1/files. Its bytes arrive later, by one PUT to its upload link; a task
-- reads them in place (job_files.source_key = storage_key), so several tasks can share one upload.
-- The status clients see is derived: deleted_at → gone, expired or purged → EXPIRED, ready_at →
-- READY, else AWAITING_UPLOAD.
CREATE TABLE turbofiles_files (
  id                uuid PRIMARY KEY,
  api_key_id        uuid NOT NULL REFERENCES api_keys(id),
  format            text NOT NULL,                  -- as declared (a MIME type or an extension), echoed back
  kind              text NOT NULL,                  -- the input kind: declared, then what the bytes were sniffed as
  size              bigint NOT NULL CHECK (size > 0),
  storage_key       text,                           -- where the bytes are, once READY
  ready_at          timestamptz,
  -- One PUT at a time: the attempt holding the claim writes its own key and is the only one that
  -- may commit. A claim older than the upload link's lifetime is stale (its gateway died).
  upload_claim      uuid,
  upload_claimed_at timestamptz,
  upload_error      text,                           -- why the last upload was refused
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  expires_at        timestamptz NOT NULL,
  purged_at         timestamptz,                    -- bytes deleted after expiry; the row stays as the record
  deleted_at        timestamptz                     -- DELETE /v1/files/:id
);
CREATE INDEX turbofiles_files_by_key ON turbofiles_files (api_key_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX turbofiles_files_expiring ON turbofiles_files (expires_at) WHERE purged_at IS NULL;

-- The task view of a job: its input file and the request as the client sent it.
CREATE TABLE turbofiles_tasks (
  job_id        uuid PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
  api_key_id    uuid NOT NULL REFERENCES api_keys(id),
  input_file_id uuid NOT NULL REFERENCES turbofiles_files(id),
  format        jsonb NOT NULL,                     -- {input, output}, the client's own strings
  settings      jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()  -- the job's created_at (same transaction)
);
CREATE INDEX turbofiles_tasks_by_key ON turbofiles_tasks (api_key_id, created_at DESC, job_id DESC);
CREATE INDEX turbofiles_tasks_by_input ON turbofiles_tasks (input_file_id);

-- Down Migration
DROP TABLE turbofiles_tasks;
DROP TABLE turbofiles_files;
ALTER TABLE jobs DROP COLUMN dialect;
