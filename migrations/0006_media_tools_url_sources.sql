-- Up Migration
-- Media tools (POST /api/media/<tool>): the tool a job runs, shown by GET /api/jobs/:id. Its options
-- are each file's `options`, as for conversions. NULL for plain convert/compress jobs.
ALTER TABLE jobs ADD COLUMN tool text;

-- URL sources (`sourceUrl`): a file whose bytes a worker fetches has its row before its bytes exist.
-- Its size is unknown until then (NULL), its kind too (source_kind was already nullable).
ALTER TABLE job_files ALTER COLUMN original_size DROP NOT NULL;
-- The URL to fetch into source_key, and the byte limit it is fetched under (the server's
-- MAX_UPLOAD_BYTES or the API key's own, decided at submission like an upload's).
ALTER TABLE job_files ADD COLUMN source_url text;
ALTER TABLE job_files ADD COLUMN source_max_bytes bigint;
-- Further inputs of one tool run (image-to-pdf's other pages, watermark's overlay image):
-- [{key, filename, role, url?, kind?, size?}], each fetched like source_url when it has a url.
ALTER TABLE job_files ADD COLUMN extra_sources jsonb;

-- Down Migration
ALTER TABLE job_files DROP COLUMN extra_sources;
ALTER TABLE job_files DROP COLUMN source_max_bytes;
ALTER TABLE job_files DROP COLUMN source_url;
UPDATE job_files SET original_size = 0 WHERE original_size IS NULL;
ALTER TABLE job_files ALTER COLUMN original_size SET NOT NULL;
ALTER TABLE jobs DROP COLUMN tool;
