-- Up Migration
-- Live progress (GET /api/jobs/:id/events). Every change a client can see on a job — a file claimed,
-- its progress, its outcome, the job's own status (completed, failed, cancelled, an archive done) —
-- tells every gateway the job's id, whichever statement made it: the workers' claim, progress and
-- finish statements, a cancel, the archive builder, or an operator's own SQL. The gateways read the
-- job's rows on waking and work out what changed, so the payload is only the id; NOTIFY folds equal
-- payloads sent in one transaction, so a file's outcome and the job's status settled with it wake
-- each gateway once. Progress writes are throttled by the workers (at most one per file per 500 ms).
CREATE FUNCTION kiln_job_file_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('kiln_job_events', NEW.job_id::text);
  RETURN NULL;
END
$$;
CREATE FUNCTION kiln_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('kiln_job_events', NEW.id::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER job_files_events AFTER UPDATE OF status, progress ON job_files FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.progress IS DISTINCT FROM NEW.progress)
  EXECUTE FUNCTION kiln_job_file_changed();
CREATE TRIGGER jobs_events AFTER UPDATE OF status ON jobs FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION kiln_job_changed();

-- Down Migration
DROP TRIGGER jobs_events ON jobs;
DROP TRIGGER job_files_events ON job_files;
DROP FUNCTION kiln_job_changed();
DROP FUNCTION kiln_job_file_changed();
