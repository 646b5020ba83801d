-- Up Migration
-- One row per running worker process (not per service, unlike worker_heartbeats): refreshed every few
-- seconds, removed on a clean stop. A row whose seen_at is older than WORKER_ORPHAN_SECONDS belongs to
-- a process that died without stopping (kill -9, OOM, a lost host): its holds are reconciled.
CREATE TABLE worker_instances (
  id         uuid PRIMARY KEY,
  service    text NOT NULL,
  host       text NOT NULL,
  pid        integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  seen_at    timestamptz NOT NULL DEFAULT now(),
  -- A dead instance's scratch folders when the sweep that released its files ran on another host
  -- (with STORAGE=s3 scratch is on each host's own disk): removed by a sweep on its own host.
  leftover_scratch text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX worker_instances_seen_at ON worker_instances (seen_at);

-- Which process is working on which file right now, and where its scratch folder is. At most one
-- holder per file: a second message for a file a live process holds is skipped, so a file is never
-- converted by two processes at once (and never into two different outputs). A dead holder's files
-- go back to the queue and its scratch folders are removed by the reconcile sweep.
CREATE TABLE worker_holds (
  file_id     uuid PRIMARY KEY REFERENCES job_files (id) ON DELETE CASCADE,
  instance_id uuid NOT NULL REFERENCES worker_instances (id) ON DELETE CASCADE,
  scratch_dir text,
  held_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_holds_instance ON worker_holds (instance_id);
-- The reconcile sweep looks for files left 'processing' with no holder; few are, at any time.
CREATE INDEX job_files_processing ON job_files (id) WHERE status = 'processing';

-- Down Migration
DROP INDEX job_files_processing;
DROP TABLE worker_holds;
DROP TABLE worker_instances;
