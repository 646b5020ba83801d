/**
 * Raster images with sharp (libvips). Takes paths and options, returns facts about the output.
 * Orientation is applied before anything else (unless asked not to), metadata is stripped by default
 * with colour converted to sRGB, and the pixel limit is enforced on metadata *and* decode.
 */
import fs from 'node:fs/promises';
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { ANIMATION_OUTPUTS, isOneOf, OUTPUT_INFO, type RasterFormat } from '@kiln/formats';
import { CodecError, limitExceeded } from '../errors.ts';
import type { FileConvertRequest, Limits, OutputFacts, ResizeSpec } from '../engine.ts';
import { targetSize } from './resize.ts';

/** The limits a raster decode is held to: its decoded pixels (width × height × frames). */
export type ImageLimits = Pick<Limits, 'pixels'>;

export interface ImageConvertOptions {
  input: string;
  output: string;
  format: RasterFormat;
  quality: number;
  resize?: ResizeSpec;
  autoOrient: boolean;
  stripMetadata: boolean;
  lossless?: boolean;
  limits: ImageLimits;
  /** AVIF/HEIF encoder effort 0–9. */
  avifEffort: number;
}

/** Translates a libvips/sharp failure into the codec's kinds; the raw message goes to logs only. */
export function sharpError(err: unknown, limits: ImageLimits): CodecError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(msg)) {
    return new CodecError('limit_exceeded', `The image is larger than the limit of ${limits.pixels.max} pixels; raise ${limits.pixels.setting} to allow it.`, {
      cause: err,
      internal: msg,
    });
  }
  if (
    /unsupported image format|bad seek|premature end|corrupt|truncated|not a known file format|invalid|VipsJpeg|gifload|pngload|webpload|tiffload|heifload|Input buffer|Input file is missing|empty/i.test(
      msg,
    )
  ) {
    return new CodecError('invalid_input', 'The file could not be decoded as an image: it is corrupt, truncated or not an image.', { cause: err, internal: msg });
  }
  return new CodecError('engine_failed', 'The image engine failed on this file.', { cause: err, internal: msg });
}

/**
 * The options a conversion request implies for one sharp encode of `input` into `output`.
 * `autoOrient` is false for intermediates we made, which are upright already.
 */
export function requestedImage(req: FileConvertRequest, input: string, output: string, format: RasterFormat, autoOrient = req.autoOrient): ImageConvertOptions {
  return {
    input,
    output,
    format,
    quality: req.quality,
    ...(req.resize ? { resize: req.resize } : {}),
    autoOrient,
    stripMetadata: req.stripMetadata,
    lossless: req.lossless,
    limits: req.limits,
    avifEffort: req.avifEffort,
  };
}

export interface ImageInfo {
  width: number;
  height: number;
  frames: number;
  format: string;
  hasAlpha: boolean;
  orientation?: number;
}

/** The size as shown: EXIF orientations 5–8 swap width and height once `orient` applies them. */
export function displayedSize(info: ImageInfo, orient: boolean): { width: number; height: number } {
  return orient && (info.orientation ?? 1) >= 5 ? { width: info.height, height: info.width } : { width: info.width, height: info.height };
}

export async function readImageInfo(input: string, limits: ImageLimits): Promise<ImageInfo> {
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: limits.pixels.max, animated: true }).metadata();
  } catch (err) {
    throw sharpError(err, limits);
  }
  const width = meta.width ?? 0;
  const frames = meta.pages ?? 1;
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (!width || !height) throw new CodecError('invalid_input', 'The file could not be decoded as an image: it has no dimensions.');
  if (width * height * frames > limits.pixels.max) {
    throw limitExceeded('The image', `${width}×${height}${frames > 1 ? `×${frames} frames` : ''} pixels`, limits.pixels, ' pixels');
  }
  return { width, height, frames, format: meta.format ?? 'unknown', hasAlpha: !!meta.hasAlpha, ...(meta.orientation ? { orientation: meta.orientation } : {}) };
}

/** Builds the sharp pipeline for one conversion; exported so benchmarks and compress share it. */
export function imagePipeline(
  o: Omit<ImageConvertOptions, 'output'>,
  info: ImageInfo,
): { pipeline: Sharp; width: number; height: number; frames: number; appliedQuality: number | null } {
  const animated = info.frames > 1 && isOneOf(ANIMATION_OUTPUTS, o.format);
  let p = sharp(o.input, { limitInputPixels: o.limits.pixels.max, failOn: 'error', animated, sequentialRead: true });
  if (o.autoOrient) p = p.autoOrient();
  const { width: w, height: h } = displayedSize(info, o.autoOrient);
  const t = targetSize(w, h, o.resize);
  if (t.width !== w || t.height !== h) {
    p = p.resize({ width: t.width, height: t.height, fit: t.crop ? 'cover' : 'inside', position: 'centre', withoutEnlargement: !t.crop });
  }
  if (!o.stripMetadata) p = p.keepMetadata();
  const q = Math.max(1, Math.min(100, Math.round(o.quality)));
  let appliedQuality: number | null = q;
  switch (o.format) {
    case 'jpg':
      // JPEG has no alpha: flatten onto white rather than letting transparent pixels turn black.
      if (info.hasAlpha) p = p.flatten({ background: '#ffffff' });
      p = p.jpeg({ quality: q, progressive: true, mozjpeg: false });
      break;
    case 'png':
      p = o.lossless || q >= 100 ? p.png({ compressionLevel: 6 }) : p.png({ compressionLevel: 6 });
      appliedQuality = null;
      break;
    case 'webp':
      p = p.webp(o.lossless ? { lossless: true, effort: 4 } : { quality: q, effort: 4 });
      if (o.lossless) appliedQuality = 100;
      break;
    case 'avif':
      p = p.avif(o.lossless ? { lossless: true, effort: o.avifEffort } : { quality: q, effort: o.avifEffort });
      if (o.lossless) appliedQuality = 100;
      break;
    case 'heif':
      p = p.heif({ compression: 'av1', quality: q, effort: o.avifEffort, ...(o.lossless ? { lossless: true } : {}) });
      break;
    case 'tiff':
      p = o.lossless ? p.tiff({ compression: 'lzw' }) : p.tiff({ compression: 'lzw' });
      appliedQuality = null;
      break;
    case 'gif':
      p = p.gif({ effort: 7 });
      appliedQuality = null;
      break;
  }
  return { pipeline: p, width: t.width, height: t.height, frames: animated ? info.frames : 1, appliedQuality };
}

export async function convertImage(o: ImageConvertOptions): Promise<OutputFacts> {
  const info = await readImageInfo(o.input, o.limits);
  const { pipeline, appliedQuality, frames } = imagePipeline(o, info);
  let out: OutputInfo;
  try {
    out = await pipeline.toFile(o.output);
  } catch (err) {
    await fs.rm(o.output, { force: true });
    throw sharpError(err, o.limits);
  }
  const notes: string[] = [];
  if (o.format === 'heif') notes.push('HEIF written with AV1 compression (image/heif, ftyp avif); HEVC HEIC needs heif-enc.');
  if (info.frames > 1 && frames === 1) notes.push(`Animated input: only the first of ${info.frames} frames was kept (${o.format} output is a still image).`);
  return {
    format: o.format,
    mimeType: OUTPUT_INFO[o.format].mime,
    size: out.size,
    width: out.width,
    height: frames > 1 ? (out.pageHeight ?? Math.round(out.height / frames)) : out.height,
    ...(frames > 1 ? { frames } : {}),
    appliedQuality,
    ...(notes.length ? { notes } : {}),
  };
}
