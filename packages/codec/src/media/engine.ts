/**
 * Audio and video through ffmpeg: video (and animated GIF) → mp4 / webm / mov, anything with sound →
 * mp3 / wav / ogg / m4a / flac, video → gif / animated webp, and video → a still image (a poster
 * frame handed to sharp). The input is probed once, up front, so the limits are checked before any
 * decoding and the probe is reused by the transcode. One deadline (the request's timeout) covers every step.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import {
  ANIMATION_OUTPUTS,
  AUDIO_OUTPUTS,
  INPUT_INFO,
  isOneOf,
  OUTPUT_INFO,
  POSTER_OUTPUTS,
  VIDEO_OUTPUTS,
  type InputKind,
  type MediaFormat,
  type OutputFormat,
  type PosterFormat,
} from '@kiln/formats';
import type { ConvertRequest, ConvertResult, Engine, ResizeSpec } from '../engine.ts';
import { CodecError } from '../errors.ts';
import { convertImage, requestedImage } from '../image/image.ts';
import { targetSize } from '../image/resize.ts';
import { displaySize, firstVideo, probeInput, resolveMediaTools, type FfmpegContext } from './ffmpeg.ts';
import type { MediaInfo } from './probe.ts';
import { extractPosterFrame, transcodeMedia } from './transcode.ts';
import { outputPath } from '../output-path.ts';

/** Lossless outputs: the quality knob means nothing for them. */
const LOSSLESS: readonly OutputFormat[] = ['wav', 'flac'];

export function mediaAccepts(kind: InputKind, format: OutputFormat): boolean {
  const family = INPUT_INFO[kind].family;
  if (family === 'video') {
    return isOneOf(VIDEO_OUTPUTS, format) || isOneOf(AUDIO_OUTPUTS, format) || isOneOf(ANIMATION_OUTPUTS, format) || isOneOf(POSTER_OUTPUTS, format);
  }
  if (family === 'audio') return isOneOf(AUDIO_OUTPUTS, format);
  // Animated GIF → video; GIF → image stays with sharp.
  return kind === 'gif' && isOneOf(VIDEO_OUTPUTS, format);
}

/**
 * Turns the resize box into ffmpeg's, never upscaling (as for images): the box is first reduced to
 * what the source can fill. Returns undefined when nothing would change.
 */
export function videoResize(info: MediaInfo, spec: ResizeSpec | undefined): ResizeSpec | undefined {
  if (!spec || (!spec.width && !spec.height)) return undefined;
  const v = firstVideo(info);
  const size = v?.width && v.height ? displaySize(v) : undefined;
  if (!size) return { ...spec };
  const { w, h } = size;
  const t = targetSize(w, h, spec);
  if (t.crop) return { width: t.width, height: t.height, fit: 'cover' };
  if (t.width === w && t.height === h) return undefined;
  // One side only: ffmpeg derives the other from the aspect ratio, rounded to what the encoder needs.
  return { width: t.width, fit: 'inside' };
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

/** Video → a still image: one frame from ffmpeg, encoded by sharp. */
async function posterImage(req: ConvertRequest, ff: FfmpegContext, info: MediaInfo, format: PosterFormat, output: string): Promise<ConvertResult> {
  const poster = path.join(req.outputDir, 'poster.png');
  try {
    await extractPosterFrame({ ...ff, input: req.input, output: poster, inputInfo: info, limits: req.limits });
    if (req.signal?.aborted) throw new CodecError('cancelled', 'The conversion was cancelled.');
    // ffmpeg has already applied the video's rotation to the frame.
    const facts = await convertImage({ ...requestedImage(req, poster, output, format, false), stripMetadata: true });
    req.onProgress?.(1);
    const notes = [...(facts.notes ?? []), 'A still frame of the video (1 s in, or the middle of shorter clips).'];
    return { ...facts, notes, path: output };
  } finally {
    await rm(poster, { force: true });
  }
}

export const mediaEngine: Engine = {
  name: 'ffmpeg',
  accepts: mediaAccepts,
  async run(req, deadline) {
    const ff: FfmpegContext = { ...(await resolveMediaTools(req.engines)), deadline, signal: req.signal };
    const info = await probeInput(ff, req.input);
    const format = req.format;
    const output = outputPath(req.outputDir, format);
    if (INPUT_INFO[req.inputKind].family === 'video' && isOneOf(POSTER_OUTPUTS, format)) return posterImage(req, ff, info, format, output);

    const resize = videoResize(info, req.resize);
    const r = await transcodeMedia({
      ...ff,
      input: req.input,
      inputInfo: info,
      output,
      target: format as MediaFormat,
      quality: req.quality,
      limits: req.limits,
      ...(resize ? { resize } : {}),
      animation: req.animation,
      ...(req.onProgress ? { onProgress: req.onProgress } : {}),
    });
    const result: ConvertResult = {
      path: output,
      format,
      mimeType: OUTPUT_INFO[format].mime,
      size: r.size,
      appliedQuality: LOSSLESS.includes(format) ? null : req.quality,
    };
    if (r.durationSeconds !== null) result.durationSeconds = round3(r.durationSeconds);
    if (r.width !== undefined) result.width = r.width;
    if (r.height !== undefined) result.height = r.height;
    if (r.frames !== undefined) result.frames = r.frames;
    return result;
  },
};
