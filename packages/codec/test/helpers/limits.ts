/** Limits for codec tests: Kiln's default values under Kiln's setting names, with a way to lower one. */
import { createDeadline, type Deadline, type Limit, type Limits } from '../../src/index.ts';

export const LIMITS: Limits = {
  pixels: { max: 100_000_000, setting: 'IMAGE_MAX_PIXELS' },
  durationSeconds: { max: 3600, setting: 'MEDIA_MAX_DURATION_SECONDS' },
  videoPixels: { max: 3840 * 2160, setting: 'MEDIA_MAX_PIXELS' },
  streams: { max: 16, setting: 'MEDIA_MAX_STREAMS' },
  archiveEntries: { max: 10_000, setting: 'ARCHIVE_MAX_ENTRIES' },
  expandedBytes: { max: 4 * 1024 ** 3, setting: 'ARCHIVE_MAX_EXPANDED_BYTES' },
  expansionRatio: { max: 200, setting: 'ARCHIVE_MAX_EXPANSION_RATIO' },
  tracePixels: { max: 2_000_000, setting: 'TRACE_MAX_PIXELS' },
  pdfPages: { max: 50, setting: 'PDF_MAX_PAGES' },
  svgDensity: { max: 600, setting: 'SVG_MAX_DENSITY' },
};

/** LIMITS with some maxima changed; each keeps its setting name. */
export function limitsWith(max: Partial<Record<keyof Limits, number>>): Limits {
  const out = { ...LIMITS };
  for (const [k, v] of Object.entries(max) as [keyof Limits, number][]) out[k] = { ...LIMITS[k], max: v };
  return out;
}

/** FILE_TIMEOUT_SECONDS as a test's conversion gets it; `max` in seconds. */
export function timeout(seconds = 60): Limit {
  return { max: seconds, setting: 'FILE_TIMEOUT_SECONDS' };
}

/** A deadline starting now, for calling an engine function directly. */
export function deadline(seconds = 60): Deadline {
  return createDeadline(timeout(seconds));
}
