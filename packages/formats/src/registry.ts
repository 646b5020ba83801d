/**
 * The one table of formats Kiln knows: what each output format is, which family it belongs to, and
 * which input kinds can be converted to it. The gateway validates pairs from it, `GET /api/formats`
 * prints it, and every codec engine reads the pairs it accepts, its MIME types and extensions from
 * it, so the three cannot disagree (packages/codec/test/registry.test.ts checks every pair).
 * A new format or engine capability goes here first.
 */
export const OUTPUT_FORMATS = [
  'jpg',
  'png',
  'webp',
  'avif',
  'tiff',
  'gif',
  'heif',
  'svg',
  'pdf',
  'mp4',
  'webm',
  'mov',
  'mp3',
  'wav',
  'ogg',
  'm4a',
  'flac',
  'zip',
  'tar',
  'tgz',
  '7z',
  'rar',
  'gz',
  'bz2',
  'xz',
] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/**
 * What an uploaded file really is, detected from its bytes. Each kind is named by its usual file
 * extension, which is what an archive entry gets when the upload's own name has none.
 */
export const INPUT_KINDS = [
  'jpg',
  'png',
  'webp',
  'avif',
  'tiff',
  'gif',
  'heic',
  'svg',
  'pdf',
  'mp4',
  'mov',
  'webm',
  'mkv',
  'avi',
  'mp3',
  'wav',
  'ogg',
  'm4a',
  'flac',
  'zip',
  'tar',
  'gz',
  'bz2',
  'xz',
  '7z',
  'rar',
] as const;
export type InputKind = (typeof INPUT_KINDS)[number];

export type Family = 'image' | 'vector' | 'document' | 'video' | 'audio' | 'archive' | 'compressed';

export interface FormatInfo {
  readonly family: Family;
  readonly mime: string;
  readonly extension: string;
}

export const OUTPUT_INFO: Record<OutputFormat, FormatInfo> = {
  jpg: { family: 'image', mime: 'image/jpeg', extension: 'jpg' },
  png: { family: 'image', mime: 'image/png', extension: 'png' },
  webp: { family: 'image', mime: 'image/webp', extension: 'webp' },
  avif: { family: 'image', mime: 'image/avif', extension: 'avif' },
  tiff: { family: 'image', mime: 'image/tiff', extension: 'tiff' },
  gif: { family: 'image', mime: 'image/gif', extension: 'gif' },
  heif: { family: 'image', mime: 'image/heif', extension: 'heif' },
  svg: { family: 'vector', mime: 'image/svg+xml', extension: 'svg' },
  pdf: { family: 'document', mime: 'application/pdf', extension: 'pdf' },
  mp4: { family: 'video', mime: 'video/mp4', extension: 'mp4' },
  webm: { family: 'video', mime: 'video/webm', extension: 'webm' },
  mov: { family: 'video', mime: 'video/quicktime', extension: 'mov' },
  mp3: { family: 'audio', mime: 'audio/mpeg', extension: 'mp3' },
  wav: { family: 'audio', mime: 'audio/wav', extension: 'wav' },
  ogg: { family: 'audio', mime: 'audio/ogg', extension: 'ogg' },
  m4a: { family: 'audio', mime: 'audio/mp4', extension: 'm4a' },
  flac: { family: 'audio', mime: 'audio/flac', extension: 'flac' },
  zip: { family: 'archive', mime: 'application/zip', extension: 'zip' },
  tar: { family: 'archive', mime: 'application/x-tar', extension: 'tar' },
  tgz: { family: 'archive', mime: 'application/gzip', extension: 'tgz' },
  '7z': { family: 'archive', mime: 'application/x-7z-compressed', extension: '7z' },
  rar: { family: 'archive', mime: 'application/vnd.rar', extension: 'rar' },
  gz: { family: 'compressed', mime: 'application/gzip', extension: 'gz' },
  bz2: { family: 'compressed', mime: 'application/x-bzip2', extension: 'bz2' },
  xz: { family: 'compressed', mime: 'application/x-xz', extension: 'xz' },
};

export const INPUT_INFO: Record<InputKind, { family: Family; mime: string }> = {
  jpg: { family: 'image', mime: 'image/jpeg' },
  png: { family: 'image', mime: 'image/png' },
  webp: { family: 'image', mime: 'image/webp' },
  avif: { family: 'image', mime: 'image/avif' },
  tiff: { family: 'image', mime: 'image/tiff' },
  gif: { family: 'image', mime: 'image/gif' },
  heic: { family: 'image', mime: 'image/heic' },
  svg: { family: 'vector', mime: 'image/svg+xml' },
  pdf: { family: 'document', mime: 'application/pdf' },
  mp4: { family: 'video', mime: 'video/mp4' },
  mov: { family: 'video', mime: 'video/quicktime' },
  webm: { family: 'video', mime: 'video/webm' },
  mkv: { family: 'video', mime: 'video/x-matroska' },
  avi: { family: 'video', mime: 'video/x-msvideo' },
  mp3: { family: 'audio', mime: 'audio/mpeg' },
  wav: { family: 'audio', mime: 'audio/wav' },
  ogg: { family: 'audio', mime: 'audio/ogg' },
  m4a: { family: 'audio', mime: 'audio/mp4' },
  flac: { family: 'audio', mime: 'audio/flac' },
  zip: { family: 'archive', mime: 'application/zip' },
  tar: { family: 'archive', mime: 'application/x-tar' },
  gz: { family: 'compressed', mime: 'application/gzip' },
  bz2: { family: 'compressed', mime: 'application/x-bzip2' },
  xz: { family: 'compressed', mime: 'application/x-xz' },
  '7z': { family: 'archive', mime: 'application/x-7z-compressed' },
  rar: { family: 'archive', mime: 'application/vnd.rar' },
};

export const FORMAT_ALIASES: Readonly<Record<string, OutputFormat>> = { jpeg: 'jpg', tif: 'tiff', heic: 'heif', 'tar.gz': 'tgz' };

export function parseOutputFormat(value: string): OutputFormat | undefined {
  const v = value.trim().toLowerCase();
  if ((OUTPUT_FORMATS as readonly string[]).includes(v)) return v as OutputFormat;
  return FORMAT_ALIASES[v];
}

/** Whether `value` is one of `list`, narrowing it to the list's type. */
export function isOneOf<T extends string>(list: readonly T[], value: string): value is T {
  return (list as readonly string[]).includes(value);
}

/*
 * The groups the engines are built around. CONVERSIONS below is written in them, and each engine in
 * the codec reads the pairs it accepts from them, so what clients are promised and what runs are the
 * same lists (packages/codec/test/registry.test.ts checks every pair both ways).
 */

/** Raster formats sharp writes. */
export const RASTER_OUTPUTS = ['jpg', 'png', 'webp', 'avif', 'tiff', 'gif', 'heif'] as const satisfies readonly OutputFormat[];
export type RasterFormat = (typeof RASTER_OUTPUTS)[number];
/** Inputs sharp reads itself. */
export const SHARP_INPUTS = ['jpg', 'png', 'webp', 'avif', 'tiff', 'gif'] as const satisfies readonly InputKind[];
/** Picture inputs sharp cannot read, decoded first: HEIC with libheif, SVG sanitised, PDF's first page. */
export const DECODED_INPUTS = ['heic', 'svg', 'pdf'] as const satisfies readonly InputKind[];
export const VIDEO_OUTPUTS = ['mp4', 'webm', 'mov'] as const satisfies readonly OutputFormat[];
export const AUDIO_OUTPUTS = ['mp3', 'wav', 'ogg', 'm4a', 'flac'] as const satisfies readonly OutputFormat[];
/**
 * Image formats that hold an animation: sharp keeps the frames of an animated input, and a video
 * becomes one (capped by ANIMATION_MAX_FPS / _WIDTH).
 */
export const ANIMATION_OUTPUTS = ['gif', 'webp'] as const satisfies readonly RasterFormat[];
/** The other image targets of a video: one still frame. */
export const POSTER_OUTPUTS: readonly PosterFormat[] = RASTER_OUTPUTS.filter((f): f is PosterFormat => !isOneOf(ANIMATION_OUTPUTS, f));
export type PosterFormat = Exclude<RasterFormat, (typeof ANIMATION_OUTPUTS)[number]>;
export type VideoFormat = (typeof VIDEO_OUTPUTS)[number];
export type AudioFormat = (typeof AUDIO_OUTPUTS)[number];
export type AnimationFormat = (typeof ANIMATION_OUTPUTS)[number];
/** Everything ffmpeg writes. */
export type MediaFormat = VideoFormat | AudioFormat | AnimationFormat;
/** Archives that hold any number of files. */
export const MULTI_FILE_OUTPUTS = ['zip', 'tar', 'tgz', '7z'] as const satisfies readonly OutputFormat[];
/** One compressed stream: exactly one file inside. */
export const SINGLE_FILE_OUTPUTS = ['gz', 'bz2', 'xz'] as const satisfies readonly OutputFormat[];
/** Any file can be put into an archive (one entry) or compressed as one stream; rar is never written. */
export const ARCHIVE_OUTPUTS = [...MULTI_FILE_OUTPUTS, ...SINGLE_FILE_OUTPUTS] as const;
export type ArchiveFormat = (typeof ARCHIVE_OUTPUTS)[number];
/** Archives and compressed files Kiln opens (to repack them, or to convert what is inside). */
export const READABLE_ARCHIVES = ['zip', 'tar', 'gz', 'bz2', 'xz', '7z', 'rar'] as const satisfies readonly InputKind[];
/** An archive converts to an image/SVG/PDF target entry by entry; the results come back as a zip. */
export const BATCH_OUTPUTS = [...RASTER_OUTPUTS, 'svg', 'pdf'] as const satisfies readonly OutputFormat[];
/** Formats the image compressor re-encodes with a quality or size search. */
export const IMAGE_COMPRESS_FORMATS = RASTER_OUTPUTS;
/**
 * Formats the media compressor re-encodes (wav is not among them: PCM cannot shrink without loss).
 * Any other compress target is a plain conversion to it, never larger than the input.
 */
export const MEDIA_COMPRESS_FORMATS = ['mp4', 'mov', 'webm', 'mp3', 'm4a', 'ogg', 'flac'] as const satisfies readonly MediaFormat[];
export type MediaCompressFormat = (typeof MEDIA_COMPRESS_FORMATS)[number];

const REFUSALS: Partial<Record<OutputFormat, string>> = {
  rar: 'RAR archives cannot be created with free software; choose zip or 7z.',
};

/** The sentence that refuses a format Kiln knows but never writes; undefined for every other format. */
export function refusalFor(format: OutputFormat): string | undefined {
  return REFUSALS[format];
}

/**
 * Which output formats each input family can be converted to *with the engines Kiln ships today*.
 * A pair missing here is refused at submission with 415 naming the pair and the formats that would work.
 */
export interface PairRule {
  readonly targets: readonly OutputFormat[];
  /** Per-file options that mean something for this family. */
  readonly options: readonly string[];
}

export const CONVERSIONS: Record<Family, PairRule> = {
  // svg is traced (colour, or one colour with mono); pdf is one page per image.
  image: { targets: [...RASTER_OUTPUTS, 'svg', 'pdf', ...ARCHIVE_OUTPUTS], options: ['compression', 'resize', 'resizeWidth', 'resizeHeight', 'autoOrient', 'mono'] },
  // SVG is rasterised with external references removed; PDF input renders its first page.
  vector: { targets: [...RASTER_OUTPUTS, 'pdf', ...ARCHIVE_OUTPUTS], options: ['compression', 'resize', 'resizeWidth', 'resizeHeight'] },
  document: { targets: [...RASTER_OUTPUTS, ...ARCHIVE_OUTPUTS], options: ['compression', 'resize', 'resizeWidth', 'resizeHeight'] },
  // gif and webp from video are animations (capped by ANIMATION_MAX_FPS / _WIDTH); the other image
  // targets are a poster frame.
  video: { targets: [...VIDEO_OUTPUTS, ...AUDIO_OUTPUTS, ...RASTER_OUTPUTS, ...ARCHIVE_OUTPUTS], options: ['compression', 'resize', 'resizeWidth', 'resizeHeight'] },
  audio: { targets: [...AUDIO_OUTPUTS, ...ARCHIVE_OUTPUTS], options: ['compression'] },
  archive: { targets: [...ARCHIVE_OUTPUTS, ...BATCH_OUTPUTS], options: ['compression', 'resize', 'resizeWidth', 'resizeHeight', 'autoOrient', 'mono'] },
  compressed: { targets: [...ARCHIVE_OUTPUTS, ...BATCH_OUTPUTS], options: ['compression', 'resize', 'resizeWidth', 'resizeHeight', 'autoOrient', 'mono'] },
};

/** Formats a compress job may keep for an input of this kind (its own format, or the closest one). */
export function compressTargetFor(kind: InputKind): OutputFormat | undefined {
  switch (kind) {
    case 'jpg':
    case 'png':
    case 'webp':
    case 'avif':
    case 'tiff':
    case 'gif':
      return kind;
    // No HEVC encoder exists here: JPEG is the closest format every device reads.
    case 'heic':
      return 'jpg';
    case 'mp4':
    case 'mov':
    case 'webm':
    case 'mp3':
    case 'm4a':
    case 'ogg':
    case 'flac':
      return kind;
    case 'mkv':
    case 'avi':
      return 'mp4';
    // PCM cannot shrink without loss; FLAC keeps every sample.
    case 'wav':
      return 'flac';
    case 'zip':
    case '7z':
    case 'gz':
    case 'bz2':
    case 'xz':
      return kind;
    // A tar is not compressed at all; RAR cannot be written with free software.
    case 'tar':
      return 'tgz';
    case 'rar':
      return '7z';
    default:
      return undefined;
  }
}

/** Targets one input kind has beyond its family's: an animated GIF also converts to video. */
export const EXTRA_TARGETS: Partial<Record<InputKind, readonly OutputFormat[]>> = {
  gif: VIDEO_OUTPUTS,
};

export function targetsFor(kind: InputKind): readonly OutputFormat[] {
  const family = CONVERSIONS[INPUT_INFO[kind].family].targets;
  const extra = EXTRA_TARGETS[kind];
  return extra ? [...family, ...extra.filter((f) => !family.includes(f))] : family;
}

export function canConvert(kind: InputKind, target: OutputFormat): boolean {
  return targetsFor(kind).includes(target);
}

/**
 * The one sentence refusing what a job asks of a file of `kind`, or undefined when the registry does
 * it: a format Kiln never writes, a pair it does not convert (naming what the kind does convert to),
 * or, for a compress job with no format, a kind that cannot be compressed. `subject` starts the
 * sentence (`files[0] ("a.png")` at submission, `The fetched file ("a.png")` once a worker has the
 * bytes of a URL source), so both places refuse with the same words.
 */
export function pairRefusal(subject: string, kind: InputKind, format: OutputFormat | undefined, compress: boolean): string | undefined {
  if (!format) return compress && !compressTargetFor(kind) ? `${subject} is ${kind}, which cannot be compressed yet.` : undefined;
  const refusal = refusalFor(format);
  if (refusal) return `${subject}: ${refusal}`;
  if (canConvert(kind, format)) return undefined;
  const targets = targetsFor(kind);
  return `${subject} is ${kind}, which cannot be converted to ${format}; ${targets.length ? `it converts to ${targets.join(', ')}` : `no conversions from ${INPUT_INFO[kind].family} files are available yet`}.`;
}

/** What follows the subject when the bytes are of no type Kiln detects (upload or fetched URL alike). */
export const UNRECOGNISED_INPUT = 'is not a file type Kiln recognises from its contents; supported inputs are images, SVG, PDF, audio, video and archives.';
