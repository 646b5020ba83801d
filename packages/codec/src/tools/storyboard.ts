/**
 * storyboard: a video → one sprite sheet of evenly spaced frames (`frames` of them, or one every
 * `interval` seconds), `columns` wide, each tile `width` px wide, plus WebVTT cues that map each
 * span of the video to its tile (`<sheet name>#xywh=x,y,w,h`, the usual scrub-bar preview format).
 * One ffmpeg run samples, scales and tiles (fps → select → scale → tile); sharp encodes the sheet.
 */
import path from 'node:path';
import { limitExceeded, CodecError } from '../errors.ts';
import { displaySize, even, firstVideo, inputArgs, probeInput, resolveMediaTools, runFfmpeg, type FfmpegContext } from '../media/ffmpeg.ts';
import { fileUrl } from '../media/probe.ts';
import { checkMediaLimits } from '../media/transcode.ts';
import { outputPath } from '../output-path.ts';
import { encodeStill, openImage, writeStill, type StillFormat, type StoryboardFacts, type Tool } from './tool.ts';

export interface StoryboardOptions {
  frames: number;
  interval?: number | undefined;
  columns: number;
  width: number;
  format: StillFormat;
  quality: number;
}

/** `HH:MM:SS.mmm` for WebVTT. */
function vttTime(seconds: number): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${s.toFixed(3).padStart(6, '0')}`;
}

export function storyboardVtt(sheet: string, g: Omit<StoryboardFacts, 'vtt'>, duration: number): string {
  const lines = ['WEBVTT', ''];
  for (let i = 0; i < g.frames; i++) {
    const start = i * g.intervalSeconds;
    const end = Math.min(duration, (i + 1) * g.intervalSeconds);
    const x = (i % g.columns) * g.tileWidth;
    const y = Math.floor(i / g.columns) * g.tileHeight;
    lines.push(`${vttTime(start)} --> ${vttTime(end)}`, `${sheet}#xywh=${x},${y},${g.tileWidth},${g.tileHeight}`, '');
  }
  return lines.join('\n');
}

export const storyboard: Tool<StoryboardOptions> = async (req, deadline) => {
  const o = req.options;
  const ff: FfmpegContext = { ...(await resolveMediaTools(req.engines)), deadline, signal: req.signal };
  const info = await probeInput(ff, req.input.path);
  checkMediaLimits(info, req.limits);
  const v = firstVideo(info);
  const size = v ? displaySize(v) : undefined;
  if (!v || !size) throw new CodecError('invalid_input', 'The file has no video track to take frames from.');
  const duration = info.durationSeconds;
  if (duration === null) throw new CodecError('invalid_input', 'The video states no duration, so its frames cannot be spaced evenly.');
  if (o.interval !== undefined && o.interval > duration) {
    throw new CodecError('invalid_input', `interval ${o.interval} s is longer than the video (${duration} s); send an interval up to ${duration}.`);
  }
  // `interval` wins over `frames` when both are sent; at most 400 tiles either way.
  const frames = Math.max(1, Math.min(400, o.interval !== undefined ? Math.floor(duration / o.interval) : o.frames));
  const interval = o.interval ?? duration / frames;
  const columns = Math.min(o.columns, frames);
  const rows = Math.ceil(frames / columns);
  const tileWidth = even(Math.min(o.width, size.w));
  const tileHeight = even((size.h * tileWidth) / size.w);
  const sheetPixels = columns * tileWidth * rows * tileHeight;
  if (sheetPixels > req.limits.pixels.max) throw limitExceeded('The storyboard sheet', `${columns * tileWidth}×${rows * tileHeight} pixels`, req.limits.pixels, ' pixels');

  const sheet = path.join(req.outputDir, 'sheet.png');
  // fps samples one frame per interval (the first at 0); select keeps exactly `frames`; tile lays
  // them out and emits the (possibly partly empty) sheet at the end of the stream.
  await runFfmpeg(ff, [
    ...inputArgs(ff, req.input.path),
    '-map',
    `0:${v.index}`,
    '-an',
    '-sn',
    '-dn',
    '-vf',
    `fps=fps=1/${interval.toFixed(6)},select='lt(n\\,${frames})',scale=${tileWidth}:${tileHeight},tile=${columns}x${rows}`,
    '-frames:v',
    '1',
    '-map_metadata',
    '-1',
    '-c:v',
    'png',
    '-f',
    'image2pipe',
    fileUrl(sheet),
  ]);
  const grid = { columns, rows, tileWidth, tileHeight, frames, intervalSeconds: Math.round(interval * 1000) / 1000 };
  const name = req.outputName ?? path.basename(outputPath(req.outputDir, o.format));
  const result = await writeStill(
    encodeStill(openImage(sheet, req.limits), o.format, o.quality, req.avifEffort),
    outputPath(req.outputDir, o.format),
    o.format,
    o.quality,
    req.limits,
    [`${frames} frames, one every ${grid.intervalSeconds} s, in ${columns} × ${rows} tiles of ${tileWidth}×${tileHeight} px; WebVTT cues are in storyboard.vtt.`],
  );
  req.onProgress?.(1);
  return { ...result, storyboard: { ...grid, vtt: storyboardVtt(name, grid, duration) } };
};
