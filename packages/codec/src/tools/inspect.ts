/**
 * inspect: facts about any input, written as JSON (and returned as `metadata`), converting nothing.
 * Images through sharp's header read (with the pixel limit) and an EXIF summary (exif-reader, MIT:
 * camera, dates, whether GPS is present — never the coordinates themselves); audio/video through
 * the guarded ffprobe; PDF through pdf-lib (pages, first page size, encryption); SVG through the
 * sanitizer's view of it. Archives are reported by type and size only: opening them is what
 * conversions do, under their own limits.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import exifReader from 'exif-reader';
import sharp, { type Metadata } from 'sharp';
import { PDFDocument } from 'pdf-lib';
import { INPUT_INFO } from '@kiln/formats';
import type { Deadline } from '../engine.ts';
import { sharpError } from '../image/image.ts';
import { sanitizeSvg } from '../image/svg.ts';
import { probeInput, resolveMediaTools, type FfmpegContext } from '../media/ffmpeg.ts';
import { CodecError } from '../errors.ts';
import type { Tool, ToolRequest, ToolResult } from './tool.ts';

type Facts = Record<string, unknown>;

const EXIF_FIELDS: Record<string, string[]> = {
  Image: ['Make', 'Model', 'Software', 'DateTime', 'Orientation', 'Artist', 'Copyright'],
  Photo: ['DateTimeOriginal', 'ExposureTime', 'FNumber', 'ISOSpeedRatings', 'FocalLength', 'LensModel', 'PixelXDimension', 'PixelYDimension'],
};

/** A short, JSON-safe summary of an EXIF block: the usual camera fields, and whether GPS data is present. */
export function exifSummary(exif: Buffer): Facts | undefined {
  let tags: Record<string, Record<string, unknown> | undefined>;
  try {
    tags = exifReader(exif) as unknown as Record<string, Record<string, unknown> | undefined>;
  } catch {
    return { readable: false };
  }
  const out: Facts = {};
  for (const [group, names] of Object.entries(EXIF_FIELDS)) {
    for (const n of names) {
      const v = tags[group]?.[n];
      if (v === undefined || v === null) continue;
      out[n] = v instanceof Date ? v.toISOString() : typeof v === 'string' ? v.replace(/\0+$/, '').trim() : Array.isArray(v) || typeof v === 'number' ? v : String(v);
    }
  }
  out.hasGps = !!tags.GPSInfo && Object.keys(tags.GPSInfo).length > 0;
  return out;
}

async function imageFacts(req: ToolRequest<unknown>): Promise<Facts> {
  let m: Metadata;
  // An SVG is read as the conversions read it: its external references removed first, so reading its
  // size cannot make librsvg open another file.
  const source = req.input.kind === 'svg' ? Buffer.from(sanitizeSvg(await fs.readFile(req.input.path, 'utf8')).svg) : req.input.path;
  try {
    m = await sharp(source, { limitInputPixels: req.limits.pixels.max, animated: true }).metadata();
  } catch (err) {
    throw sharpError(err, req.limits);
  }
  const frames = m.pages ?? 1;
  const height = m.pageHeight ?? m.height;
  const rotated = (m.orientation ?? 1) >= 5;
  return {
    width: m.width,
    height,
    // What a viewer shows once EXIF orientation is applied.
    displayWidth: rotated ? height : m.width,
    displayHeight: rotated ? m.width : height,
    frames,
    animated: frames > 1,
    ...(frames > 1 && m.delay ? { durationSeconds: Math.round(m.delay.reduce((a: number, b: number) => a + b, 0)) / 1000, loop: m.loop ?? 0 } : {}),
    colorSpace: m.space,
    channels: m.channels,
    bitDepth: m.depth,
    hasAlpha: !!m.hasAlpha,
    ...(m.density ? { density: m.density } : {}),
    ...(m.orientation ? { orientation: m.orientation } : {}),
    ...(m.compression ? { compression: m.compression } : {}),
    hasIccProfile: !!m.icc,
    hasXmp: !!m.xmp,
    hasIptc: !!m.iptc,
    hasExif: !!m.exif,
    ...(m.exif ? { exif: exifSummary(m.exif) } : {}),
  };
}

async function mediaFacts(req: ToolRequest<unknown>, deadline: Deadline): Promise<Facts> {
  const ff: FfmpegContext = { ...(await resolveMediaTools(req.engines)), deadline, signal: req.signal };
  const info = await probeInput(ff, req.input.path);
  const v = info.streams.find((s) => s.type === 'video' && !s.attachedPic);
  return {
    container: info.formatName,
    durationSeconds: info.durationSeconds,
    hasVideo: info.hasVideo,
    hasAudio: info.hasAudio,
    ...(v?.width ? { width: v.width, height: v.height } : {}),
    ...(v?.frameRate ? { frameRate: v.frameRate } : {}),
    ...(v?.rotation ? { rotation: v.rotation } : {}),
    streams: info.streams,
  };
}

async function pdfFacts(req: ToolRequest<unknown>): Promise<Facts> {
  try {
    const doc = await PDFDocument.load(await fs.readFile(req.input.path), { ignoreEncryption: true, updateMetadata: false, throwOnInvalidObject: false });
    const first = doc.getPageCount() > 0 ? doc.getPage(0).getSize() : undefined;
    return {
      pages: doc.getPageCount(),
      encrypted: doc.isEncrypted,
      ...(first ? { pageWidthPt: Math.round(first.width * 100) / 100, pageHeightPt: Math.round(first.height * 100) / 100 } : {}),
      ...(doc.getTitle() ? { title: doc.getTitle() } : {}),
      ...(doc.getProducer() ? { producer: doc.getProducer() } : {}),
    };
  } catch (err) {
    throw new CodecError('invalid_input', 'The PDF could not be read: it is damaged, truncated or not a PDF.', { cause: err, internal: String(err) });
  }
}

export const inspect: Tool<Record<string, never>> = async (req, deadline) => {
  const { kind } = req.input;
  const info = INPUT_INFO[kind];
  const size = (await fs.stat(req.input.path)).size;
  const facts: Facts = { format: kind, mimeType: info.mime, family: info.family, size };
  if (info.family === 'image' || kind === 'svg') Object.assign(facts, await imageFacts(req));
  else if (info.family === 'video' || info.family === 'audio') Object.assign(facts, await mediaFacts(req, deadline));
  else if (kind === 'pdf') Object.assign(facts, await pdfFacts(req));
  const output = path.join(req.outputDir, 'facts.json');
  const json = `${JSON.stringify(facts, null, 2)}\n`;
  await fs.writeFile(output, json);
  req.onProgress?.(1);
  const result: ToolResult = {
    path: output,
    format: 'json',
    mimeType: 'application/json',
    size: Buffer.byteLength(json),
    appliedQuality: null,
    extension: 'json',
    metadata: facts,
  };
  if (typeof facts.width === 'number') result.width = facts.width;
  if (typeof facts.height === 'number') result.height = facts.height;
  if (typeof facts.durationSeconds === 'number') result.durationSeconds = facts.durationSeconds;
  return result;
};
