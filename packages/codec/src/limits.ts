/**
 * Every limit the codec enforces, by name. Values and the names of the settings that change them
 * come from the caller (the worker reads them from config); the codec never reads the environment.
 */
export interface CodecLimits {
  /** Largest decoded raster image: width × height × frames. */
  maxPixels: number;
  /** Longest audio/video input, in seconds. */
  maxDurationSeconds: number;
  /** Largest video frame (width × height), input and planned output. */
  maxVideoPixels: number;
  /** Most streams one media input may carry. */
  maxStreams: number;
  /** Most entries one archive may hold. */
  maxArchiveEntries: number;
  /** Largest total size of an archive's contents once expanded. */
  maxExpandedBytes: number;
  /** Largest ratio of expanded size to archive size (zip-bomb guard). */
  maxExpansionRatio: number;
  /** Largest image traced to SVG, in pixels (it is downscaled to this first, or refused). */
  maxTracePixels: number;
  /** Most pages read from a PDF. */
  maxPdfPages: number;
  /** Highest density (DPI) used to rasterise SVG input. */
  maxSvgDensity: number;
}

export type LimitSettings = Record<keyof CodecLimits, string>;

/** The setting names Kiln's own config uses; other embedders may pass their own. */
export const DEFAULT_LIMIT_SETTINGS: LimitSettings = {
  maxPixels: 'IMAGE_MAX_PIXELS',
  maxDurationSeconds: 'MEDIA_MAX_DURATION_SECONDS',
  maxVideoPixels: 'MEDIA_MAX_PIXELS',
  maxStreams: 'MEDIA_MAX_STREAMS',
  maxArchiveEntries: 'ARCHIVE_MAX_ENTRIES',
  maxExpandedBytes: 'ARCHIVE_MAX_EXPANDED_BYTES',
  maxExpansionRatio: 'ARCHIVE_MAX_EXPANSION_RATIO',
  maxTracePixels: 'TRACE_MAX_PIXELS',
  maxPdfPages: 'PDF_MAX_PAGES',
  maxSvgDensity: 'SVG_MAX_DENSITY',
};

/** Defaults for embedders and tests; Kiln's config carries the same numbers. */
export const DEFAULT_LIMITS: CodecLimits = {
  maxPixels: 100_000_000,
  maxDurationSeconds: 3600,
  maxVideoPixels: 3840 * 2160,
  maxStreams: 16,
  maxArchiveEntries: 10_000,
  maxExpandedBytes: 4 * 1024 ** 3,
  maxExpansionRatio: 200,
  maxTracePixels: 2_000_000,
  maxPdfPages: 50,
  maxSvgDensity: 600,
};

/** Paths configured for external engines; unset means "resolve the bundled one". */
export interface EnginePaths {
  ffmpegPath?: string;
  ffprobePath?: string;
  sevenZipPath?: string;
  /** libheif's heif-enc, for real HEVC HEIC output when installed. */
  heifEncPath?: string;
}
