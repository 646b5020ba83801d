/**
 * Audio/video tools on the ffmpeg toolkit: extract-audio, trim (re-encoded and exact, or stream copy
 * cut on keyframes), gif (a clip as an animation), convert (one re-encode), and adjust for audio and
 * video (eq/hue/negate/unsharp, volume/loudnorm/afade). Every run probes first, checks the limits
 * and the requested times against the probed duration, and goes through transcodeMedia or the
 * toolkit's runner with the input guards, inside the call's deadline.
 */
import { AUDIO_OUTPUTS, INPUT_INFO, isOneOf, OUTPUT_INFO, VIDEO_OUTPUTS, type InputKind, type MediaFormat } from '@kiln/formats';
import type { Deadline } from '../engine.ts';
import { CodecError } from '../errors.ts';
import { convert } from '../convert.ts';
import {
  firstAudio,
  firstVideo,
  inputArgs,
  metadataArgs,
  outputArgs,
  probeInput,
  probeOutput,
  resolveMediaTools,
  runFfmpeg,
  writtenSize,
  type FfmpegContext,
} from '../media/ffmpeg.ts';
import type { MediaInfo } from '../media/probe.ts';
import { checkMediaLimits, transcodeMedia, type TranscodeOptions, type TranscodeResult } from '../media/transcode.ts';
import { outputPath } from '../output-path.ts';
import { asToolResult, baseRequest, checkWithin, type Tool, type ToolRequest, type ToolResult } from './tool.ts';

export interface ExtractAudioOptions {
  format: (typeof AUDIO_OUTPUTS)[number];
  bitrateKbps?: number | undefined;
  quality: number;
}

export interface TrimOptions {
  start: number;
  end?: number | undefined;
  duration?: number | undefined;
  mode: 'accurate' | 'fast';
  format?: MediaFormat | undefined;
  quality: number;
}

export interface GifOptions {
  start: number;
  duration: number;
  fps: number;
  width: number;
  format: 'gif' | 'webp';
  quality: number;
}

export interface ConvertToolOptions {
  format: MediaFormat;
  quality: number;
  width?: number | undefined;
  height?: number | undefined;
}

export interface AvAdjustOptions {
  brightness: number;
  saturation: number;
  hue: number;
  contrast: number;
  grayscale: boolean;
  invert: boolean;
  sharpen: boolean;
  volume: number;
  normalize: boolean;
  fadeIn: number;
  fadeOut: number;
  quality: number;
}

const LOSSLESS: readonly string[] = ['wav', 'flac'];

/** The format a tool keeps for an audio/video input: its own when Kiln writes it, else MP4 (MKV, AVI). */
export function ownMediaFormat(kind: InputKind): MediaFormat {
  return isOneOf(VIDEO_OUTPUTS, kind) || isOneOf(AUDIO_OUTPUTS, kind) ? kind : 'mp4';
}

async function probed(req: ToolRequest<unknown>, deadline: Deadline): Promise<{ ff: FfmpegContext; info: MediaInfo }> {
  const ff: FfmpegContext = { ...(await resolveMediaTools(req.engines)), deadline, signal: req.signal };
  const info = await probeInput(ff, req.input.path);
  checkMediaLimits(info, req.limits);
  return { ff, info };
}

function transcodeBase(req: ToolRequest<unknown>, ff: FfmpegContext, info: MediaInfo, target: MediaFormat, quality: number): TranscodeOptions {
  return {
    ...ff,
    input: req.input.path,
    inputInfo: info,
    output: outputPath(req.outputDir, target),
    target,
    quality,
    limits: req.limits,
    animation: req.animation,
    ...(req.onProgress ? { onProgress: req.onProgress } : {}),
  };
}

/** A transcode's outcome as a tool result. */
export function mediaResult(path: string, target: MediaFormat, quality: number, r: TranscodeResult, notes: string[] = []): ToolResult {
  return {
    path,
    format: target,
    mimeType: OUTPUT_INFO[target].mime,
    size: r.size,
    appliedQuality: LOSSLESS.includes(target) ? null : quality,
    extension: OUTPUT_INFO[target].extension,
    ...(r.durationSeconds !== null ? { durationSeconds: Math.round(r.durationSeconds * 1000) / 1000 } : {}),
    ...(r.width !== undefined ? { width: r.width } : {}),
    ...(r.height !== undefined ? { height: r.height } : {}),
    ...(r.frames !== undefined ? { frames: r.frames } : {}),
    ...(notes.length ? { notes } : {}),
  };
}

export const extractAudio: Tool<ExtractAudioOptions> = async (req, deadline) => {
  const o = req.options;
  const { ff, info } = await probed(req, deadline);
  if (!firstAudio(info)) throw new CodecError('invalid_input', 'The video has no audio track to extract.');
  const t = transcodeBase(req, ff, info, o.format, o.quality);
  const r = await transcodeMedia({ ...t, ...(o.bitrateKbps && !LOSSLESS.includes(o.format) ? { audioKbps: o.bitrateKbps } : {}) });
  const notes = o.bitrateKbps && LOSSLESS.includes(o.format) ? [`${o.format} is lossless: bitrateKbps does not apply.`] : [];
  return { ...mediaResult(t.output, o.format, o.quality, r, notes), ...(o.bitrateKbps && !LOSSLESS.includes(o.format) ? { appliedQuality: null } : {}) };
};

/** start…end of the probed clip, from end or duration, each checked against its length. */
function span(o: { start: number; end?: number | undefined; duration?: number | undefined }, length: number | null): { start: number; duration?: number } {
  checkWithin('start', o.start, length);
  if (length !== null && o.start >= length)
    throw new CodecError('invalid_input', `start ${o.start} s leaves nothing of the clip (${length} s long); send a start below ${length}.`);
  if (o.end !== undefined) {
    checkWithin('end', o.end, length);
    return { start: o.start, duration: o.end - o.start };
  }
  if (o.duration !== undefined) {
    if (length !== null && o.start + o.duration > length + 0.001) {
      throw new CodecError(
        'invalid_input',
        `start + duration (${o.start + o.duration} s) is past the end of the clip (${length} s long); send a duration up to ${Math.round((length - o.start) * 1000) / 1000}.`,
      );
    }
    return { start: o.start, duration: o.duration };
  }
  return length !== null ? { start: o.start, duration: length - o.start } : { start: o.start };
}

export const trim: Tool<TrimOptions> = async (req, deadline) => {
  const o = req.options;
  const { ff, info } = await probed(req, deadline);
  const cut = span(o, info.durationSeconds);
  const target = o.format ?? ownMediaFormat(req.input.kind);
  const copyable = o.mode === 'fast' && target === req.input.kind;
  const notes: string[] = [];
  if (o.mode === 'fast' && !copyable) notes.push(`fast mode copies streams into the input's own format; ${target} from ${req.input.kind} was re-encoded (accurate) instead.`);
  if (!copyable) {
    const t = transcodeBase(req, ff, info, target, o.quality);
    const r = await transcodeMedia({ ...t, clip: cut });
    return mediaResult(t.output, target, o.quality, r, notes);
  }
  // Stream copy: no re-encode, so the cut starts on the keyframe at or before `start`.
  const output = outputPath(req.outputDir, target);
  await runFfmpeg(ff, [
    ...inputArgs(ff, req.input.path, cut.start > 0 ? ['-ss', cut.start.toFixed(3)] : []),
    ...(cut.duration !== undefined ? ['-t', cut.duration.toFixed(3)] : []),
    '-map',
    '0:v?',
    '-map',
    '0:a?',
    '-c',
    'copy',
    '-avoid_negative_ts',
    'make_zero',
    ...metadataArgs(false),
    ...outputArgs(target, output),
  ]);
  const size = await writtenSize(output);
  if (size === 0) throw new CodecError('engine_failed', 'ffmpeg finished but wrote no output.');
  const out = await probeOutput(ff, output);
  const v = firstVideo(out);
  req.onProgress?.(1);
  return mediaResult(
    output,
    target,
    o.quality,
    { durationSeconds: out.durationSeconds, size, ...(v?.width ? { width: v.width } : {}), ...(v?.height ? { height: v.height } : {}) },
    ['fast mode: the streams were copied and cut on keyframes, so the start may be a little earlier than asked.'],
  );
};

export const gif: Tool<GifOptions> = async (req, deadline) => {
  const o = req.options;
  const { ff, info } = await probed(req, deadline);
  if (!firstVideo(info)) throw new CodecError('invalid_input', 'The file has no video track to animate.');
  const length = info.durationSeconds;
  checkWithin('start', o.start, length);
  if (length !== null && o.start >= length)
    throw new CodecError('invalid_input', `start ${o.start} s leaves nothing of the video (${length} s long); send a start below ${length}.`);
  const duration = length !== null ? Math.min(o.duration, length - o.start) : o.duration;
  const maxFps = Math.min(o.fps, req.animation.maxFps);
  const maxWidth = Math.min(o.width, req.animation.maxWidth);
  const notes: string[] = [];
  if (maxFps < o.fps) notes.push(`fps capped at ${maxFps} (ANIMATION_MAX_FPS).`);
  if (maxWidth < o.width) notes.push(`width capped at ${maxWidth} px (ANIMATION_MAX_WIDTH).`);
  if (duration < o.duration) notes.push(`The video ends ${Math.round(duration * 1000) / 1000} s after start; the animation is that long.`);
  const t = transcodeBase(req, ff, info, o.format, o.quality);
  const r = await transcodeMedia({ ...t, clip: { start: o.start, duration }, animation: { maxFps, maxWidth } });
  return mediaResult(t.output, o.format, o.quality, r, notes);
};

export const convertMedia: Tool<ConvertToolOptions> = async (req, deadline) => {
  const o = req.options;
  const family = INPUT_INFO[req.input.kind].family;
  if (family === 'audio' && isOneOf(VIDEO_OUTPUTS, o.format)) {
    throw new CodecError('unsupported', `convert re-encodes audio to audio: ${req.input.kind} cannot become ${o.format}; choose one of ${AUDIO_OUTPUTS.join(', ')}.`);
  }
  const resize = o.width || o.height ? { ...(o.width ? { width: o.width } : {}), ...(o.height ? { height: o.height } : {}), fit: 'inside' as const } : undefined;
  const r = await convert(baseRequest(req, req.input, { format: o.format, quality: o.quality, ...(resize ? { resize } : {}) }), deadline);
  return asToolResult(r);
};

/** ffmpeg's eq brightness is an offset (-1…1, 0 unchanged); the option is a multiplier like sharp's. */
function videoAdjustFilters(o: AvAdjustOptions): string[] {
  const f: string[] = [];
  const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
  if (o.brightness !== 1 || o.contrast !== 1 || o.saturation !== 1) {
    f.push(`eq=brightness=${clamp(o.brightness - 1, -1, 1).toFixed(3)}:contrast=${clamp(o.contrast, 0, 10).toFixed(3)}:saturation=${clamp(o.saturation, 0, 3).toFixed(3)}`);
  }
  if (o.hue !== 0) f.push(`hue=h=${o.hue}`);
  if (o.grayscale) f.push('hue=s=0');
  if (o.invert) f.push('negate');
  if (o.sharpen) f.push('unsharp=5:5:1.0');
  return f;
}

function audioAdjustFilters(o: AvAdjustOptions, length: number | null): string[] {
  const f: string[] = [];
  if (o.volume !== 1) f.push(`volume=${o.volume}`);
  if (o.normalize) f.push('loudnorm');
  if (o.fadeIn > 0) f.push(`afade=t=in:st=0:d=${o.fadeIn}`);
  if (o.fadeOut > 0 && length !== null) f.push(`afade=t=out:st=${Math.max(0, length - o.fadeOut).toFixed(3)}:d=${o.fadeOut}`);
  return f;
}

export async function adjustMedia(req: ToolRequest<AvAdjustOptions & { format?: string | undefined }>, deadline: Deadline): Promise<ToolResult> {
  const o = req.options;
  const { ff, info } = await probed(req, deadline);
  checkWithin('fadeIn', o.fadeIn, info.durationSeconds);
  checkWithin('fadeOut', o.fadeOut, info.durationSeconds);
  const requested = o.format && (isOneOf(VIDEO_OUTPUTS, o.format) || isOneOf(AUDIO_OUTPUTS, o.format)) ? o.format : undefined;
  if (o.format && !requested)
    throw new CodecError('unsupported', `adjust writes audio or video as one of ${[...VIDEO_OUTPUTS, ...AUDIO_OUTPUTS].join(', ')}; ${o.format} is an image format.`);
  const target = requested ?? ownMediaFormat(req.input.kind);
  const t = transcodeBase(req, ff, info, target, o.quality);
  const r = await transcodeMedia({ ...t, videoFilters: videoAdjustFilters(o), audioFilters: audioAdjustFilters(o, info.durationSeconds) });
  return mediaResult(t.output, target, o.quality, r);
}
