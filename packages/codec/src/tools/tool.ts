/**
 * The media tools' contract inside the codec: what one tool run is asked (ToolRequest) and answers
 * (ToolResult), plus the helpers the tools share (a still-image encode, seconds checked against a
 * probed duration, the base conversion request a tool hands the dispatcher). Types and small
 * functions only; each tool lives in its own module and is listed in index.ts.
 *
 * The option shapes here are the codec's own: the worker passes what @kiln/contracts parsed, which
 * TypeScript checks against these at the call site (the codec depends on no contract package).
 */
import fs from 'node:fs/promises';
import sharp, { type Sharp } from 'sharp';
import { OUTPUT_INFO, type InputKind } from '@kiln/formats';
import type { ConvertRequest, ConvertResult, Deadline, Limits } from '../engine.ts';
import { CodecError } from '../errors.ts';
import { sharpError } from '../image/image.ts';

export type StillFormat = 'jpg' | 'png' | 'webp' | 'avif';

export interface ToolInput {
  path: string;
  kind: InputKind;
  filename: string;
}

/** What a tool run shares with a conversion: its limits, engines, caps, one deadline, abort and progress. */
export interface ToolRequest<O> extends Pick<ConvertRequest, 'limits' | 'engines' | 'animation' | 'avifEffort' | 'timeout' | 'signal' | 'onProgress'> {
  /** The primary input. */
  input: ToolInput;
  /** image-to-pdf: the pages after the first, in order. */
  pages?: ToolInput[];
  /** watermark: an image drawn over the input instead of text. */
  overlay?: ToolInput;
  /** Scratch folder owned by the caller; the output is written inside it. */
  outputDir: string;
  /** The output's file name as the client will see it (the storyboard's cues point at it). */
  outputName?: string;
  options: O;
}

export interface StoryboardFacts {
  columns: number;
  rows: number;
  tileWidth: number;
  tileHeight: number;
  frames: number;
  intervalSeconds: number;
  /** WebVTT cues, each `<outputName>#xywh=x,y,w,h`. */
  vtt: string;
}

export interface ToolResult extends ConvertResult {
  /** Extension of the written file (json for inspect, which is no format of the registry). */
  extension: string;
  /** inspect: the facts, also written as the JSON file at `path`. */
  metadata?: Record<string, unknown>;
  storyboard?: StoryboardFacts;
}

export type Tool<O> = (req: ToolRequest<O>, deadline: Deadline) => Promise<ToolResult>;

/** Throws `cancelled` once the caller has aborted (between steps that run in this process). */
export function checkCancelled(req: { signal?: AbortSignal | undefined }): void {
  if (req.signal?.aborted) throw new CodecError('cancelled', 'The tool run was cancelled.');
}

/**
 * A time option checked against the input's probed duration: `field` names the option, so the
 * client reads which one to change ("timestamp 12 s is past the end of the video (3.0 s)").
 */
export function checkWithin(field: string, seconds: number, duration: number | null, what = 'the clip'): void {
  if (duration === null) return;
  if (seconds > duration) {
    throw new CodecError('invalid_input', `${field} ${fmt(seconds)} s is past the end of ${what} (${fmt(duration)} s long); send ${field} from 0 to ${fmt(duration)}.`);
  }
}

const fmt = (n: number) => String(Math.round(n * 1000) / 1000);

/** The encoder call for a still image format. */
export function encodeStill(p: Sharp, format: StillFormat, quality: number, avifEffort: number): Sharp {
  switch (format) {
    case 'jpg':
      return p.flatten({ background: '#ffffff' }).jpeg({ quality, progressive: true });
    case 'png':
      return p.png({ compressionLevel: 6 });
    case 'webp':
      return p.webp({ quality, effort: 4 });
    case 'avif':
      return p.avif({ quality, effort: avifEffort });
  }
}

/** Writes a sharp pipeline to `output` and reports it as a result (a failure removes the partial file). */
export async function writeStill(p: Sharp, output: string, format: StillFormat, quality: number, limits: Pick<Limits, 'pixels'>, notes: string[] = []): Promise<ToolResult> {
  try {
    const info = await p.toFile(output);
    return {
      path: output,
      format,
      mimeType: OUTPUT_INFO[format].mime,
      size: info.size,
      width: info.width,
      height: info.height,
      appliedQuality: format === 'png' ? null : quality,
      extension: OUTPUT_INFO[format].extension,
      ...(notes.length ? { notes } : {}),
    };
  } catch (err) {
    await fs.rm(output, { force: true });
    throw err instanceof CodecError ? err : sharpError(err, limits);
  }
}

/** A sharp pipeline over a raster file with the pixel limit applied to decoding. */
export function openImage(path: string, limits: Pick<Limits, 'pixels'>): Sharp {
  return sharp(path, { limitInputPixels: limits.pixels.max, failOn: 'error' });
}

/** The conversion request a tool hands the dispatcher (vectorize, convert) or the shared decoders. */
export function baseRequest<O>(req: ToolRequest<O>, input: ToolInput, over: Partial<ConvertRequest> & Pick<ConvertRequest, 'format'>): ConvertRequest {
  return {
    input: input.path,
    inputKind: input.kind,
    outputDir: req.outputDir,
    filename: input.filename,
    quality: 82,
    autoOrient: true,
    stripMetadata: true,
    lossless: false,
    mono: false,
    limits: req.limits,
    engines: req.engines,
    animation: req.animation,
    avifEffort: req.avifEffort,
    timeout: req.timeout,
    ...(req.signal ? { signal: req.signal } : {}),
    ...(req.onProgress ? { onProgress: req.onProgress } : {}),
    ...over,
  };
}

/** A conversion result as a tool result. */
export function asToolResult(r: ConvertResult, notes: string[] = []): ToolResult {
  const all = [...notes, ...(r.notes ?? [])];
  const ext = r.format in OUTPUT_INFO ? OUTPUT_INFO[r.format as keyof typeof OUTPUT_INFO].extension : r.format;
  return { ...r, extension: ext, ...(all.length ? { notes: all } : {}) };
}
