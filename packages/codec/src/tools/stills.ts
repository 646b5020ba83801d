/**
 * Tools that write one still image: thumbnail (image, PDF or video in), poster-frame (video in) and
 * pdf-preview (one page of a PDF). Pictures are decoded through the same sources as conversions
 * (HEIC, SVG and PDF first), frames come from the ffmpeg toolkit's poster frame, and sharp encodes.
 */
import path from 'node:path';
import { INPUT_INFO } from '@kiln/formats';
import type { Deadline } from '../engine.ts';
import { CodecError, limitExceeded } from '../errors.ts';
import { rasterSource } from '../image/sources.ts';
import { renderPdfPage } from '../document/pdf.ts';
import { probeInput, resolveMediaTools, type FfmpegContext } from '../media/ffmpeg.ts';
import { extractPosterFrame } from '../media/transcode.ts';
import { outputPath } from '../output-path.ts';
import { baseRequest, checkCancelled, checkWithin, encodeStill, openImage, writeStill, type StillFormat, type Tool, type ToolInput, type ToolRequest } from './tool.ts';

export interface ThumbnailOptions {
  width: number;
  height: number;
  fit: 'cover' | 'contain' | 'inside' | 'fill';
  format: StillFormat;
  quality: number;
  timestamp?: number | undefined;
}

export interface PosterFrameToolOptions {
  timestamp: number;
  format: StillFormat;
  width?: number | undefined;
  height?: number | undefined;
  quality: number;
}

export interface PdfPreviewOptions {
  page: number;
  width: number;
  format: StillFormat;
  quality: number;
}

/** One frame of a video as a PNG in the scratch folder, taken at `at` seconds (checked against the probe). */
async function videoFrame(req: ToolRequest<unknown>, deadline: Deadline, input: ToolInput, at: number | undefined, field: string): Promise<string> {
  const ff: FfmpegContext = { ...(await resolveMediaTools(req.engines)), deadline, signal: req.signal };
  const info = await probeInput(ff, input.path);
  if (at !== undefined) checkWithin(field, at, info.durationSeconds, 'the video');
  const frame = path.join(req.outputDir, 'frame.png');
  await extractPosterFrame({ ...ff, input: input.path, output: frame, inputInfo: info, limits: req.limits, ...(at !== undefined ? { atSeconds: at } : {}) });
  return frame;
}

function checkBox(width: number, height: number, req: ToolRequest<unknown>): void {
  if (width * height > req.limits.pixels.max) throw limitExceeded('The requested size', `${width}×${height} pixels`, req.limits.pixels, ' pixels');
}

export const thumbnail: Tool<ThumbnailOptions> = async (req, deadline) => {
  const o = req.options;
  checkBox(o.width, o.height, req);
  const family = INPUT_INFO[req.input.kind].family;
  let source: string;
  let orient = false;
  const notes: string[] = [];
  if (family === 'video') {
    source = await videoFrame(req, deadline, req.input, o.timestamp, 'timestamp');
    notes.push(o.timestamp === undefined ? 'A frame 1 s into the video (or its middle, for shorter clips).' : `The frame at ${o.timestamp} s.`);
  } else {
    const src = await rasterSource(baseRequest(req, req.input, { format: 'png' }));
    source = src.path;
    orient = !src.intermediate;
    notes.push(...src.notes);
  }
  checkCancelled(req);
  let p = openImage(source, req.limits);
  if (orient) p = p.autoOrient();
  p = p.resize({
    width: o.width,
    height: o.height,
    fit: o.fit,
    position: 'centre',
    withoutEnlargement: o.fit === 'inside',
    background: o.format === 'jpg' ? '#ffffff' : { r: 0, g: 0, b: 0, alpha: 0 },
  });
  return writeStill(encodeStill(p, o.format, o.quality, req.avifEffort), outputPath(req.outputDir, o.format), o.format, o.quality, req.limits, notes);
};

export const posterFrame: Tool<PosterFrameToolOptions> = async (req, deadline) => {
  const o = req.options;
  const frame = await videoFrame(req, deadline, req.input, o.timestamp, 'timestamp');
  checkCancelled(req);
  let p = openImage(frame, req.limits);
  if (o.width || o.height) p = p.resize({ width: o.width, height: o.height, fit: 'inside', withoutEnlargement: true });
  return writeStill(encodeStill(p, o.format, o.quality, req.avifEffort), outputPath(req.outputDir, o.format), o.format, o.quality, req.limits, [`The frame at ${o.timestamp} s.`]);
};

export const pdfPreview: Tool<PdfPreviewOptions> = async (req, deadline) => {
  const o = req.options;
  if (req.input.kind !== 'pdf') throw new CodecError('unsupported', `pdf-preview takes a PDF; this file is ${req.input.kind}.`);
  const page = path.join(req.outputDir, 'page.png');
  const r = await renderPdfPage(req.input.path, page, { limits: req.limits, page: o.page, resize: { width: o.width, fit: 'inside' } });
  deadline.left();
  checkCancelled(req);
  // pdf.js renders at a scale; the last pixels of the width come from sharp.
  const p = openImage(page, req.limits).resize({ width: o.width });
  return writeStill(encodeStill(p, o.format, o.quality, req.avifEffort), outputPath(req.outputDir, o.format), o.format, o.quality, req.limits, [`Page ${o.page} of ${r.pages}.`]);
};
