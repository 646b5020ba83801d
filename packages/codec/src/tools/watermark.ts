/**
 * watermark: text (rendered by sharp's Pango text input) or an overlay image, at one of nine
 * anchors with a margin, its width set in pixels or as a fraction of the input's, drawn at an
 * opacity. Images are composited by sharp; videos get the mark as a PNG overlaid by ffmpeg on every
 * frame (transcodeMedia's overlay), the audio kept.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { INPUT_INFO, isOneOf, VIDEO_OUTPUTS, type VideoFormat } from '@kiln/formats';
import type { Deadline } from '../engine.ts';
import { CodecError } from '../errors.ts';
import { readImageInfo, displayedSize, sharpError } from '../image/image.ts';
import { rasterSource } from '../image/sources.ts';
import { displaySize, firstVideo, probeInput, resolveMediaTools, type FfmpegContext } from '../media/ffmpeg.ts';
import { checkMediaLimits, transcodeMedia } from '../media/transcode.ts';
import { outputPath } from '../output-path.ts';
import { mediaResult } from './av.ts';
import { baseRequest, checkCancelled, encodeStill, openImage, writeStill, type StillFormat, type Tool, type ToolRequest, type ToolResult } from './tool.ts';

export type Anchor = 'top-left' | 'top' | 'top-right' | 'left' | 'center' | 'right' | 'bottom-left' | 'bottom' | 'bottom-right';

export interface WatermarkOptions {
  text?: string | undefined;
  position: Anchor;
  opacity: number;
  margin: number;
  watermarkWidth?: number | undefined;
  scale?: number | undefined;
  color: string;
  format?: StillFormat | VideoFormat | undefined;
  quality: number;
}

/** Where the mark's top-left corner goes on a `w`×`h` picture. */
export function anchorAt(anchor: Anchor, w: number, h: number, mw: number, mh: number, margin: number): { left: number; top: number } {
  const x = anchor.endsWith('left') ? margin : anchor.endsWith('right') ? w - mw - margin : (w - mw) / 2;
  const y = anchor.startsWith('top') ? margin : anchor.startsWith('bottom') ? h - mh - margin : (h - mh) / 2;
  return { left: Math.max(0, Math.round(x)), top: Math.max(0, Math.round(y)) };
}

const escapeMarkup = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The mark as a PNG with its opacity applied, at most `maxW`×`maxH` (the picture less its margins). */
async function makeMark(req: ToolRequest<WatermarkOptions>, width: number, maxH: number): Promise<{ png: Buffer; w: number; h: number }> {
  const o = req.options;
  let mark: Buffer;
  try {
    if (req.overlay) {
      const dir = path.join(req.outputDir, 'overlay.d');
      await fs.mkdir(dir, { recursive: true });
      const src = await rasterSource({ ...baseRequest(req, req.overlay, { format: 'png' }), outputDir: dir });
      let p = openImage(src.path, req.limits);
      if (!src.intermediate) p = p.autoOrient();
      mark = await p.resize({ width, height: maxH, fit: 'inside' }).ensureAlpha().png().toBuffer();
    } else {
      const colour = o.color.startsWith('#') ? o.color : `#${o.color}`;
      // Pango picks the font size that fits the box: the mark's width, a third of it high.
      mark = await sharp({
        text: {
          text: `<span foreground="${colour}">${escapeMarkup(o.text!)}</span>`,
          font: 'sans bold',
          rgba: true,
          width,
          height: Math.max(8, Math.min(maxH, Math.round(width / 3))),
        },
      })
        .png()
        .toBuffer();
    }
    const { data, info } = await sharp(mark).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    for (let i = 3; i < data.length; i += 4) data[i] = Math.round(data[i]! * o.opacity);
    const png = await sharp(data, { raw: { width: info.width, height: info.height, channels: 4 } })
      .png()
      .toBuffer();
    return { png, w: info.width, h: info.height };
  } catch (err) {
    throw err instanceof CodecError ? err : sharpError(err, req.limits);
  }
}

function markWidth(o: WatermarkOptions, w: number): number {
  const room = Math.max(1, w - 2 * o.margin);
  return Math.max(1, Math.min(room, o.watermarkWidth ?? Math.round(w * (o.scale ?? 0.25))));
}

function requireMark(req: ToolRequest<WatermarkOptions>): void {
  if (!req.overlay && !req.options.text) throw new CodecError('invalid_input', 'watermark needs text=… or an image part watermarkFile.');
}

export const watermark: Tool<WatermarkOptions> = async (req, deadline) => {
  requireMark(req);
  if (INPUT_INFO[req.input.kind].family === 'video') return watermarkVideo(req, deadline);
  const o = req.options;
  const format = o.format ?? 'png';
  if (isOneOf(VIDEO_OUTPUTS, format)) throw new CodecError('unsupported', `watermark writes an image as jpg, png, webp or avif; ${format} is for video.`);
  const src = await rasterSource(baseRequest(req, req.input, { format: 'png' }));
  const orient = !src.intermediate;
  const info = await readImageInfo(src.path, req.limits);
  const { width: w, height: h } = displayedSize(info, orient);
  const mark = await makeMark(req, markWidth(o, w), Math.max(1, h - 2 * o.margin));
  const at = anchorAt(o.position, w, h, mark.w, mark.h, o.margin);
  checkCancelled(req);
  // Oriented first into a buffer, so the composite lands where the client sees it.
  let base = openImage(src.path, req.limits);
  if (orient) base = base.autoOrient();
  let upright: Buffer;
  try {
    upright = await base.png().toBuffer();
  } catch (err) {
    throw sharpError(err, req.limits);
  }
  const p = sharp(upright, { limitInputPixels: req.limits.pixels.max }).composite([{ input: mark.png, left: at.left, top: at.top }]);
  return writeStill(encodeStill(p, format, o.quality, req.avifEffort), outputPath(req.outputDir, format), format, o.quality, req.limits, [
    `${req.overlay ? 'Image' : 'Text'} mark ${mark.w}×${mark.h} px at ${o.position} (${at.left}, ${at.top}).`,
  ]);
};

async function watermarkVideo(req: ToolRequest<WatermarkOptions>, deadline: Deadline): Promise<ToolResult> {
  const o = req.options;
  const format = o.format ?? 'mp4';
  if (!isOneOf(VIDEO_OUTPUTS, format)) throw new CodecError('unsupported', `watermark writes a video as ${VIDEO_OUTPUTS.join(', ')}; ${format} is an image format.`);
  const ff: FfmpegContext = { ...(await resolveMediaTools(req.engines)), deadline, signal: req.signal };
  const info = await probeInput(ff, req.input.path);
  checkMediaLimits(info, req.limits);
  const v = firstVideo(info);
  const size = v ? displaySize(v) : undefined;
  if (!v || !size) throw new CodecError('invalid_input', 'The file has no video track to mark.');
  // The encoder rounds odd sides down to even: place the mark on the frame it will really have.
  const w = Math.floor(size.w / 2) * 2;
  const h = Math.floor(size.h / 2) * 2;
  const mark = await makeMark(req, markWidth(o, w), Math.max(1, h - 2 * o.margin));
  const at = anchorAt(o.position, w, h, mark.w, mark.h, o.margin);
  const markPath = path.join(req.outputDir, 'mark.png');
  await fs.writeFile(markPath, mark.png);
  const output = outputPath(req.outputDir, format);
  const r = await transcodeMedia({
    ...ff,
    input: req.input.path,
    inputInfo: info,
    output,
    target: format,
    quality: o.quality,
    limits: req.limits,
    overlay: { path: markPath, x: at.left, y: at.top },
    ...(req.onProgress ? { onProgress: req.onProgress } : {}),
  });
  return mediaResult(output, format, o.quality, r, [`${req.overlay ? 'Image' : 'Text'} mark ${mark.w}×${mark.h} px at ${o.position} (${at.left}, ${at.top}) on every frame.`]);
}
