-- Up Migration
-- jobs.dialect (which API a job came in through) is added by 0005_turbofiles.

-- Job totals by (type, dialect, status) for GET /metrics, kept as jobs change so that a scrape reads a
-- few dozen rows instead of counting a jobs table that only grows. A job's insert or status change
-- appends a delta row; no shared counter row is updated on the job path, so concurrent jobs never wait
-- on each other's counters (a hot counter row would serialise every job's commit). foldJobTotals
-- (packages/db) moves the deltas into job_totals; totals are job_totals plus the deltas not yet folded,
-- which every snapshot sees consistently.
CREATE TABLE job_totals (
  job_type text NOT NULL,
  dialect  text NOT NULL,
  status   text NOT NULL,
  n        bigint NOT NULL,
  PRIMARY KEY (job_type, dialect, status)
);
CREATE TABLE job_total_deltas (
  id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_type text NOT NULL,
  dialect  text NOT NULL,
  status   text NOT NULL,
  n        integer NOT NULL
);

CREATE FUNCTION kiln_job_totals() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER jobs_totals_insert_delete AFTER INSERT OR DELETE ON jobs FOR EACH ROW EXECUTE FUNCTION kiln_job_totals();
-- Most updates of a job (progress of a file that is not its last, purging, an archive id) leave these
-- three alone: the WHEN clause skips them without calling the function.
CREATE TRIGGER jobs_totals_update AFTER UPDATE OF status, job_type, dialect ON jobs FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.job_type IS DISTINCT FROM NEW.job_type OR OLD.dialect IS DISTINCT FROM NEW.dialect)
  EXECUTE FUNCTION kiln_job_totals();

-- The jobs that exist already, counted once. CREATE TRIGGER above locks jobs against writes until this
-- migration commits, so no change can fall between the count and the triggers.
INSERT INTO job_totals (job_type, dialect, status, n) SELECT job_type, dialect, status, count(*) FROM jobs GROUP BY 1, 2, 3;

-- Down Migration
DROP TRIGGER jobs_totals_update ON jobs;
DROP TRIGGER jobs_totals_insert_delete ON jobs;
DROP FUNCTION kiln_job_totals();
DROP TABLE job_total_deltas;
DROP TABLE job_totals;
