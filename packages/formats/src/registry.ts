/**
 * The one table of formats Kiln knows: what each output format is, which family it belongs to, and
 * which input kinds can be converted to it. The gateway validates pairs from it, `GET /api/formats`
 * prints it, and the codec dispatches on the same families, so the three can never disagree.
 */
export const OUTPUT_FORMATS = [
  'jpg', 'png', 'webp', 'avif', 'tiff', 'gif', 'heif', 'svg', 'pdf',
  'mp4', 'webm', 'mov', 'mp3', 'wav', 'ogg', 'm4a', 'flac',
  'zip', 'tar', 'tgz', '7z', 'rar', 'gz', 'bz2', 'xz',
] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** What an uploaded file really is, detected from its bytes. */
export const INPUT_KINDS = [
  'jpg', 'png', 'webp', 'avif', 'tiff', 'gif', 'heic', 'svg', 'pdf',
  'mp4', 'mov', 'webm', 'mkv', 'avi', 'mp3', 'wav', 'ogg', 'm4a', 'flac',
  'zip', 'tar', 'gz', 'bz2', 'xz', '7z', 'rar',
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

/**
 * Which output formats each input family can be converted to *with the engines Kiln ships today*.
 * A pair missing here is refused at submission with 415 naming the pair and the formats that would work.
 */
const RASTER_TARGETS: readonly OutputFormat[] = ['jpg', 'png', 'webp', 'avif', 'tiff', 'gif', 'heif'];

export interface PairRule {
  readonly targets: readonly OutputFormat[];
  /** Per-file options that mean something for this family. */
  readonly options: readonly string[];
}

export const CONVERSIONS: Record<Family, PairRule> = {
  image: { targets: RASTER_TARGETS, options: ['compression', 'resize', 'resizeWidth', 'resizeHeight', 'autoOrient'] },
  vector: { targets: [], options: [] },
  document: { targets: [], options: [] },
  video: { targets: [], options: [] },
  audio: { targets: [], options: [] },
  archive: { targets: [], options: [] },
  compressed: { targets: [], options: [] },
};

/** Formats a compress job may keep for an input of this kind (its own format, or the closest one). */
export function compressTargetFor(kind: InputKind): OutputFormat | undefined {
  switch (kind) {
    case 'jpg': case 'png': case 'webp': case 'avif': case 'tiff': case 'gif': return kind;
    case 'heic': return 'jpg';
    default: return undefined;
  }
}

export function targetsFor(kind: InputKind): readonly OutputFormat[] {
  return CONVERSIONS[INPUT_INFO[kind].family].targets;
}

export function canConvert(kind: InputKind, target: OutputFormat): boolean {
  return targetsFor(kind).includes(target);
}
