/**
 * Image tools with sharp: transform (crop, resize, rotate, flip, blur, sharpen, grey), adjust
 * (brightness, saturation, hue, contrast…), plus tools that are a conversion or compression under
 * another name: vectorize (tracing, the SVG engine), strip-metadata (a lossless compress that keeps
 * the format) and image-to-pdf (the PDF engine's page preparation, several pages).
 */
import fs from 'node:fs/promises';
import { INPUT_INFO, isOneOf, RASTER_OUTPUTS, OUTPUT_INFO, type InputKind, type OutputFormat } from '@kiln/formats';
import { CodecError, limitExceeded } from '../errors.ts';
import { convert } from '../convert.ts';
import { compress } from '../compress/compress.ts';
import { readImageInfo, displayedSize } from '../image/image.ts';
import { rasterSource } from '../image/sources.ts';
import { pdfPageImage } from '../document/engine.ts';
import { imagesToPdf } from '../document/pdf.ts';
import { outputPath } from '../output-path.ts';
import { adjustMedia, ownMediaFormat, type AvAdjustOptions } from './av.ts';
import { asToolResult, baseRequest, checkCancelled, encodeStill, openImage, writeStill, type StillFormat, type Tool, type ToolRequest, type ToolResult } from './tool.ts';

export interface TransformOptions {
  preset?: 'ecommerce' | 'avatar' | 'blog-hero' | 'social-preview' | undefined;
  width?: number | undefined;
  height?: number | undefined;
  fit: 'cover' | 'contain' | 'fill' | 'inside' | 'outside';
  rotate: number;
  flip: boolean;
  flop: boolean;
  cropLeft?: number | undefined;
  cropTop?: number | undefined;
  cropWidth?: number | undefined;
  cropHeight?: number | undefined;
  blur?: number | undefined;
  sharpen: boolean;
  grayscale: boolean;
  format: StillFormat;
  quality: number;
}

export interface AdjustOptions extends AvAdjustOptions {
  format?: string | undefined;
}

export interface VectorizeOptions {
  mono: boolean;
  detail: number;
}

export interface ImageToPdfOptions {
  pageSize: 'auto' | 'a4' | 'letter';
  margin: number;
  quality: number;
}

/** Kiln's sizes for Convertly's transform presets (it publishes the names, not the sizes). */
const PRESETS = {
  ecommerce: { width: 2000, height: 2000, fit: 'inside' },
  avatar: { width: 256, height: 256, fit: 'cover' },
  'blog-hero': { width: 1600, height: 900, fit: 'cover' },
  'social-preview': { width: 1200, height: 630, fit: 'cover' },
} as const;

/** A raster path for any picture input (HEIC, SVG and PDF decoded first) and whether it still needs orienting. */
async function picture(req: ToolRequest<unknown>): Promise<{ path: string; orient: boolean; notes: string[] }> {
  const src = await rasterSource(baseRequest(req, req.input, { format: 'png' }));
  return { path: src.path, orient: !src.intermediate, notes: src.notes };
}

export const transform: Tool<TransformOptions> = async (req) => {
  const o = req.options;
  const src = await picture(req);
  const info = await readImageInfo(src.path, req.limits);
  const shown = displayedSize(info, src.orient);
  let p = openImage(src.path, req.limits);
  if (src.orient) p = p.autoOrient();
  if (o.cropLeft !== undefined && o.cropTop !== undefined && o.cropWidth !== undefined && o.cropHeight !== undefined) {
    if (o.cropLeft + o.cropWidth > shown.width) {
      throw new CodecError('invalid_input', `cropLeft + cropWidth (${o.cropLeft + o.cropWidth}) is past the image's width (${shown.width} px); crop inside the image.`);
    }
    if (o.cropTop + o.cropHeight > shown.height) {
      throw new CodecError('invalid_input', `cropTop + cropHeight (${o.cropTop + o.cropHeight}) is past the image's height (${shown.height} px); crop inside the image.`);
    }
    p = p.extract({ left: o.cropLeft, top: o.cropTop, width: o.cropWidth, height: o.cropHeight });
  }
  const preset = o.preset ? PRESETS[o.preset] : undefined;
  const width = o.width ?? preset?.width;
  const height = o.height ?? preset?.height;
  const fit = o.width || o.height ? o.fit : (preset?.fit ?? o.fit);
  if (width || height) {
    if ((width ?? 1) * (height ?? 1) > req.limits.pixels.max) throw limitExceeded('The requested size', `${width ?? '?'}×${height ?? '?'} pixels`, req.limits.pixels, ' pixels');
    p = p.resize({ width, height, fit, position: 'centre', background: { r: 255, g: 255, b: 255, alpha: o.format === 'jpg' ? 1 : 0 } });
  }
  if (o.rotate % 360 !== 0) p = p.rotate(o.rotate, { background: { r: 255, g: 255, b: 255, alpha: o.format === 'jpg' ? 1 : 0 } });
  if (o.flip) p = p.flip();
  if (o.flop) p = p.flop();
  if (o.blur) p = p.blur(o.blur);
  if (o.sharpen) p = p.sharpen();
  if (o.grayscale) p = p.grayscale();
  checkCancelled(req);
  return writeStill(encodeStill(p, o.format, o.quality, req.avifEffort), outputPath(req.outputDir, o.format), o.format, o.quality, req.limits, src.notes);
};

/** The format an adjusted image keeps: its own when sharp writes it as a still (else PNG). */
function ownStillFormat(kind: InputKind): StillFormat {
  return kind === 'jpg' || kind === 'png' || kind === 'webp' || kind === 'avif' ? kind : 'png';
}

export const adjust: Tool<AdjustOptions> = async (req, deadline) => {
  const family = INPUT_INFO[req.input.kind].family;
  if (family === 'video' || family === 'audio') return adjustMedia(req, deadline);
  const o = req.options;
  const format = o.format ?? ownStillFormat(req.input.kind);
  if (!(format === 'jpg' || format === 'png' || format === 'webp' || format === 'avif')) {
    throw new CodecError('unsupported', `adjust writes images as jpg, png, webp or avif; ${format} is for audio or video.`);
  }
  const src = await picture(req);
  let p = openImage(src.path, req.limits);
  if (src.orient) p = p.autoOrient();
  if (o.brightness !== 1 || o.saturation !== 1 || o.hue !== 0) p = p.modulate({ brightness: o.brightness, saturation: o.saturation, hue: o.hue });
  // Contrast about mid-grey: out = c·in + 128·(1 − c).
  if (o.contrast !== 1) p = p.linear(o.contrast, 128 * (1 - o.contrast));
  if (o.grayscale) p = p.grayscale();
  if (o.invert) p = p.negate({ alpha: false });
  if (o.sharpen) p = p.sharpen();
  checkCancelled(req);
  const notes = [...src.notes];
  if (o.volume !== 1 || o.normalize || o.fadeIn || o.fadeOut) notes.push('volume, normalize, fadeIn and fadeOut apply to audio and video only.');
  return writeStill(encodeStill(p, format, o.quality, req.avifEffort), outputPath(req.outputDir, format), format, o.quality, req.limits, notes);
};

export const vectorize: Tool<VectorizeOptions> = async (req, deadline) => {
  const r = await convert(baseRequest(req, req.input, { format: 'svg', quality: req.options.detail, mono: req.options.mono }), deadline);
  return asToolResult(r);
};

/** The same format back, metadata removed; pixels and samples untouched where the format allows it. */
function keptFormat(kind: InputKind): OutputFormat {
  if (isOneOf(RASTER_OUTPUTS, kind)) return kind;
  if (kind === 'heic') return 'jpg';
  return ownMediaFormat(kind);
}

export const stripMetadata: Tool<Record<string, never>> = async (req) => {
  const family = INPUT_INFO[req.input.kind].family;
  if (!['image', 'video', 'audio'].includes(family)) throw new CodecError('unsupported', `strip-metadata takes images, audio and video; this file is ${req.input.kind}.`);
  const format = keptFormat(req.input.kind);
  const originalSize = (await fs.stat(req.input.path)).size;
  const r = await compress({
    ...baseRequest(req, req.input, { format }),
    format,
    mode: 'quality',
    targetBytes: null,
    lossless: true,
    stripMetadata: true,
    quality: 100,
    originalSize,
  });
  const notes = format !== req.input.kind ? [`${req.input.kind} cannot be written here; the result is ${format}.`] : [];
  return asToolResult(r, notes);
};

export const imageToPdf: Tool<ImageToPdfOptions> = async (req, deadline) => {
  const o = req.options;
  const all = [req.input, ...(req.pages ?? [])];
  const pages = [];
  const notes: string[] = [];
  for (const [i, input] of all.entries()) {
    if (!['image', 'vector'].includes(INPUT_INFO[input.kind].family)) {
      throw new CodecError('unsupported', `image-to-pdf takes images; page ${i + 1} ("${input.filename}") is ${input.kind}.`);
    }
    checkCancelled(req);
    const page = await pdfPageImage(baseRequest(req, input, { format: 'pdf', quality: o.quality }), deadline, `page-${i}`);
    pages.push(page.image);
    if (page.notes.some((n) => n.startsWith('Animated'))) notes.push(`Page ${i + 1}: only the first frame of an animation was kept.`);
  }
  const output = outputPath(req.outputDir, 'pdf');
  const size = await imagesToPdf(pages, output, { pageSize: o.pageSize, margin: o.margin });
  return {
    path: output,
    format: 'pdf',
    mimeType: OUTPUT_INFO.pdf.mime,
    size,
    appliedQuality: null,
    extension: 'pdf',
    notes: [
      `${pages.length} page${pages.length === 1 ? '' : 's'}, ${o.pageSize === 'auto' ? 'each sized to its image at 72 DPI' : `${o.pageSize}, the image fitted inside a ${o.margin} pt margin`}.`,
      ...notes,
    ],
  };
};

export type { ToolResult };
