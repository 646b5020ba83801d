/**
 * Formats named the way the TurboFiles dialect names them: a MIME type (`image/png`) or a bare
 * extension (`png`, `jpg`, `.jpeg`). Built from the registry's own tables (INPUT_INFO, OUTPUT_INFO,
 * FORMAT_ALIASES) plus the MIME spellings clients really send, so a format the registry gains is
 * understood here without an edit. Declared formats are a client's word, never trusted on their own:
 * the gateway compares them with what the bytes are (`sameContent`).
 */
import { FORMAT_ALIASES, INPUT_INFO, INPUT_KINDS, OUTPUT_FORMATS, OUTPUT_INFO, parseOutputFormat, type InputKind, type OutputFormat } from './registry.ts';

/** MIME types besides each input kind's own (INPUT_INFO) that name it: legacy, x- and vendor spellings. */
export const INPUT_MIME_ALIASES: Readonly<Record<string, InputKind>> = {
  'image/jpg': 'jpg',
  'image/pjpeg': 'jpg',
  'image/x-png': 'png',
  'image/x-tiff': 'tiff',
  'image/heif': 'heic',
  'image/heic-sequence': 'heic',
  'image/heif-sequence': 'heic',
  'image/svg': 'svg',
  'application/x-pdf': 'pdf',
  'video/x-m4v': 'mp4',
  'video/matroska': 'mkv',
  'video/avi': 'avi',
  'video/msvideo': 'avi',
  'audio/webm': 'webm',
  'audio/mp3': 'mp3',
  'audio/x-mp3': 'mp3',
  'audio/mpeg3': 'mp3',
  'audio/x-wav': 'wav',
  'audio/wave': 'wav',
  'audio/vnd.wave': 'wav',
  'audio/x-m4a': 'm4a',
  'audio/m4a': 'm4a',
  'audio/x-flac': 'flac',
  'audio/vorbis': 'ogg',
  'application/ogg': 'ogg',
  'application/x-zip-compressed': 'zip',
  'application/x-zip': 'zip',
  'application/x-gzip': 'gz',
  'application/x-bzip2': 'bz2',
  'application/x-bzip': 'bz2',
  'application/x-rar-compressed': 'rar',
  'application/x-rar': 'rar',
};

/** Extensions besides the kinds' own names: a `.tgz` is a gzip stream (a tar inside is its business). */
export const INPUT_EXTENSION_ALIASES: Readonly<Record<string, InputKind>> = {
  jpeg: 'jpg',
  jpe: 'jpg',
  tif: 'tiff',
  heif: 'heic',
  m4v: 'mp4',
  qt: 'mov',
  oga: 'ogg',
  opus: 'ogg',
  tgz: 'gz',
  'tar.gz': 'gz',
};

/** MIME types besides each output format's own (OUTPUT_INFO) that name it. `application/gzip` alone means gz. */
export const OUTPUT_MIME_ALIASES: Readonly<Record<string, OutputFormat>> = {
  'image/jpg': 'jpg',
  'image/heic': 'heif',
  'audio/mp3': 'mp3',
  'audio/x-wav': 'wav',
  'audio/wave': 'wav',
  'audio/x-m4a': 'm4a',
  'audio/x-flac': 'flac',
  'application/x-zip-compressed': 'zip',
  'application/x-gtar': 'tgz',
  'application/x-tgz': 'tgz',
  'application/x-gzip': 'gz',
};

const INPUT_BY_MIME: ReadonlyMap<string, InputKind> = new Map<string, InputKind>([
  ...INPUT_KINDS.map((k): [string, InputKind] => [INPUT_INFO[k].mime, k]),
  ...Object.entries(INPUT_MIME_ALIASES),
]);

const OUTPUT_BY_MIME: ReadonlyMap<string, OutputFormat> = new Map<string, OutputFormat>([
  // tgz and gz share application/gzip: the single-file stream wins, listed last.
  ...OUTPUT_FORMATS.map((f): [string, OutputFormat] => [OUTPUT_INFO[f].mime, f]),
  ['application/gzip', 'gz'],
  ...Object.entries(OUTPUT_MIME_ALIASES),
]);

/** `" Image/PNG; charset=x "` → `image/png`; `".JPG"` → `jpg`. */
function normalise(value: string): { mime: string } | { ext: string } {
  const v = value.trim().toLowerCase();
  if (v.includes('/')) return { mime: v.split(';')[0]!.trim() };
  return { ext: v.replace(/^\./, '') };
}

/** The input kind a declared format names, or undefined when Kiln reads no such input. */
export function inputKindOf(value: string): InputKind | undefined {
  const n = normalise(value);
  if ('mime' in n) return INPUT_BY_MIME.get(n.mime);
  if ((INPUT_KINDS as readonly string[]).includes(n.ext)) return n.ext as InputKind;
  return INPUT_EXTENSION_ALIASES[n.ext];
}

/** The output format a requested format names (MIME type, extension or alias), or undefined. */
export function outputFormatOf(value: string): OutputFormat | undefined {
  const n = normalise(value);
  if ('mime' in n) return OUTPUT_BY_MIME.get(n.mime);
  return parseOutputFormat(n.ext);
}

/**
 * Containers whose kind the first bytes cannot always tell apart from a sibling's: an audio-only MP4
 * often carries the `isom` brand of a video, a QuickTime file the `mp42` one, a WebM is Matroska with
 * another doctype. A file declared as one member of a group and sniffed as another is what it said.
 */
const SAME_CONTAINER: readonly (readonly InputKind[])[] = [
  ['mp4', 'm4a', 'mov'],
  ['mkv', 'webm'],
];

/** Whether bytes sniffed as `actual` are the content a client declared as `declared`. */
export function sameContent(declared: InputKind, actual: InputKind | undefined): boolean {
  if (!actual) return false;
  if (declared === actual) return true;
  return SAME_CONTAINER.some((group) => group.includes(declared) && group.includes(actual));
}

/** Every spelling each side understands, for `GET /api/formats`. */
export function mediaTypeTable(): { inputs: Record<string, InputKind>; outputs: Record<string, OutputFormat> } {
  return {
    inputs: Object.fromEntries([...INPUT_BY_MIME, ...Object.entries(INPUT_EXTENSION_ALIASES)]),
    outputs: Object.fromEntries([...OUTPUT_BY_MIME, ...Object.entries(FORMAT_ALIASES)]),
  };
}
