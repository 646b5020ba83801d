-- Up Migration
-- One row per worker service, refreshed every few seconds while it runs: which engines it resolved
-- (ffmpeg/ffprobe path, source and version; sharp and libvips versions) and when it was last seen.
-- The gateway never loads engines itself, so /readyz reports them from here.
CREATE TABLE worker_heartbeats (
  service  text PRIMARY KEY,
  engines  jsonb NOT NULL DEFAULT '{}'::jsonb,
  seen_at  timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE worker_heartbeats;
