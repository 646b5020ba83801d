/**
 * Audio/video conversion with ffmpeg: video (mp4, mov, webm), audio (mp3, wav, ogg, m4a, flac),
 * animations from video (gif, animated webp) and a poster frame (PNG) for image targets.
 *
 * Every call probes the input first (or takes the caller's probe) and enforces the limits before
 * any decoding starts; every ffmpeg run goes through the toolkit in ffmpeg.ts, inside the caller's
 * deadline, all passes included. Audio → video is not offered. Metadata (tags, chapters, GPS in
 * phone videos) is dropped unless `keepMetadata` is set, matching the image engine.
 */
import { open, rm } from 'node:fs/promises';
import { ANIMATION_OUTPUTS, AUDIO_OUTPUTS, isOneOf, VIDEO_OUTPUTS, type AnimationFormat, type MediaFormat, type VideoFormat } from '@kiln/formats';
import type { Limits, ResizeSpec } from '../engine.ts';
import { CodecError, limitExceeded } from '../errors.ts';
import { displaySize, even, firstAudio, firstVideo, inputArgs, metadataArgs, outputArgs, probeInput, probeOutput, runFfmpeg, writtenSize, type FfmpegContext } from './ffmpeg.ts';
import { fileUrl } from './probe.ts';
import type { MediaInfo, MediaStream } from './probe.ts';
import type { ProgressParserOptions } from './progress.ts';
import { aacKbps, mp3Kbps, opusKbps, vorbisQuality, vp9Crf, webpQuality, x264Crf } from './quality.ts';
import { readWebpInfo } from './webp-info.ts';

const MEDIA_OUTPUTS: readonly MediaFormat[] = [...VIDEO_OUTPUTS, ...AUDIO_OUTPUTS, ...ANIMATION_OUTPUTS];

/** Duration, frame size (input and planned output) and stream count (video + audio + subtitle …). */
export type MediaLimits = Pick<Limits, 'durationSeconds' | 'videoPixels' | 'streams'>;

/** Caps for gif / animated webp, which grow huge at video frame rates and sizes. */
export interface AnimationCaps {
  /** Default 15. */
  maxFps?: number;
  /** Default 480. */
  maxWidth?: number;
}

interface CommonOptions extends FfmpegContext {
  input: string;
  output: string;
  /** The caller's probe of `input`, to skip probing it again. */
  inputInfo?: MediaInfo;
}

export interface TranscodeOptions extends CommonOptions {
  target: MediaFormat;
  /** 1..100; see quality.ts for what it means per encoder. */
  quality: number;
  limits: MediaLimits;
  resize?: ResizeSpec;
  animation?: AnimationCaps;
  /** Fraction 0..1, increasing; ends at 1 on success. */
  onProgress?: (fraction: number) => void;
  /** Input duration if known and the probe has none; only used for progress. */
  durationSeconds?: number;
  keepMetadata?: boolean;
  /** Encoder threads; default is ffmpeg's choice (all cores). */
  threads?: number;
  /** Only this part of the input: from `start` seconds, for `duration` seconds (to the end when absent). Times are the caller's to check. */
  clip?: { start: number; duration?: number };
  /** Audio bitrate for lossy targets, instead of the one mapped from quality. */
  audioKbps?: number;
  /** Filters applied to the video after scaling (the adjust tool: eq, hue, negate…). */
  videoFilters?: string[];
  /** Filters applied to the audio (volume, loudnorm, afade…). */
  audioFilters?: string[];
  /** A PNG drawn over every frame at (x, y) pixels of the output (the watermark tool); video targets only. */
  overlay?: { path: string; x: number; y: number };
}

export interface TranscodeResult {
  durationSeconds: number | null;
  width?: number;
  height?: number;
  videoCodec?: string;
  audioCodec?: string;
  /** Frames in a gif / webp output. */
  frames?: number;
  /** Output size in bytes. */
  size: number;
}

export interface PosterFrameOptions extends CommonOptions {
  /** Where in the video to take the frame. Default: 1 s in, or the middle of shorter clips. */
  atSeconds?: number;
  limits?: MediaLimits;
}

export interface PosterFrameResult {
  path: string;
  width: number;
  height: number;
}

// ---------------------------------------------------------------------------------------------
// Limits and planning

/** Throws limit_exceeded when the probed input breaks a limit. */
export function checkMediaLimits(info: MediaInfo, limits: MediaLimits): void {
  if (info.streams.length > limits.streams.max) {
    throw limitExceeded('The number of streams', info.streams.length, limits.streams);
  }
  if (info.durationSeconds !== null && info.durationSeconds > limits.durationSeconds.max) {
    throw limitExceeded('The duration', `${Math.round(info.durationSeconds * 10) / 10} s`, limits.durationSeconds, ' s');
  }
  for (const s of info.streams) {
    if (s.type !== 'video' || s.width === undefined || s.height === undefined) continue;
    const px = s.width * s.height;
    if (px > limits.videoPixels.max) {
      throw limitExceeded('The video frame size', `${s.width}x${s.height} (${px} pixels)`, limits.videoPixels, ' pixels');
    }
  }
}

function checkDimension(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > 65_535)) {
    throw new CodecError('invalid_input', `The resize ${name} must be a whole number from 1 to 65535; got ${v}.`);
  }
}

interface Plan {
  /** Filter chain for the video stream (without the final encoder-specific filters). */
  filters: string[];
  /** Expected output size, when the source size is known. */
  size?: { w: number; h: number };
}

/**
 * Builds the scale/crop filters. Sizes are computed here for the limit check, but the filters use
 * ffmpeg expressions so the real decoded size (which may differ from the probe) is what counts.
 */
function planScale(src: { w: number; h: number } | undefined, resize: ResizeSpec | undefined, needEven: boolean, maxWidth?: number): Plan {
  const filters: string[] = [];
  const r = (n: number): number => (needEven ? even(n) : Math.max(1, Math.round(n)));
  const autoSide = needEven ? -2 : -1;
  let size = src ? { ...src } : undefined;

  if (resize && (resize.width !== undefined || resize.height !== undefined)) {
    checkDimension('width', resize.width);
    checkDimension('height', resize.height);
    const W = resize.width !== undefined ? r(resize.width) : undefined;
    const H = resize.height !== undefined ? r(resize.height) : undefined;
    if (W !== undefined && H !== undefined) {
      if (resize.fit === 'cover') {
        filters.push(`scale=${W}:${H}:force_original_aspect_ratio=increase`, `crop=${W}:${H}`);
        size = { w: W, h: H };
      } else {
        filters.push(`scale=${W}:${H}:force_original_aspect_ratio=decrease`);
        if (needEven) filters.push('scale=trunc(iw/2)*2:trunc(ih/2)*2');
        if (size) {
          const f = Math.min(W / size.w, H / size.h);
          size = { w: r(size.w * f), h: r(size.h * f) };
        }
      }
    } else if (W !== undefined) {
      filters.push(`scale=${W}:${autoSide}`);
      if (size) size = { w: W, h: r((size.h * W) / size.w) };
    } else if (H !== undefined) {
      filters.push(`scale=${autoSide}:${H}`);
      if (size) size = { w: r((size.w * H) / size.h), h: H };
    }
  } else if (needEven) {
    filters.push('scale=trunc(iw/2)*2:trunc(ih/2)*2');
    if (size) size = { w: even(size.w), h: even(size.h) };
  }

  if (maxWidth !== undefined) {
    filters.push(`scale=w='min(iw,${maxWidth})':h=${autoSide}:flags=lanczos`);
    if (size && size.w > maxWidth) size = { w: maxWidth, h: r((size.h * maxWidth) / size.w) };
  }
  const plan: Plan = { filters };
  if (size) plan.size = size;
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Per-target arguments

function audioEncoderArgs(target: MediaFormat, quality: number, audio: MediaStream, kbps?: number): string[] {
  const downmix = (audio.channels ?? 0) > 2 ? ['-ac', '2'] : [];
  switch (target) {
    case 'mp4':
    case 'mov':
    case 'm4a':
      return ['-c:a', 'aac', '-b:a', `${kbps ?? aacKbps(quality)}k`];
    case 'webm':
      // libopus refuses some surround layouts (e.g. 5.1(side)); stereo always works.
      return ['-c:a', 'libopus', '-b:a', `${kbps ?? opusKbps(quality)}k`, ...downmix];
    case 'mp3':
      return ['-c:a', 'libmp3lame', '-b:a', `${kbps ?? mp3Kbps(quality)}k`, ...downmix];
    case 'ogg':
      return kbps ? ['-c:a', 'libvorbis', '-b:a', `${kbps}k`] : ['-c:a', 'libvorbis', '-q:a', String(vorbisQuality(quality))];
    case 'wav':
      return ['-c:a', 'pcm_s16le'];
    case 'flac':
      return ['-c:a', 'flac'];
    default:
      return ['-an'];
  }
}

function videoEncoderArgs(target: VideoFormat, quality: number, threads: number | undefined): string[] {
  const t = threads ? ['-threads', String(threads)] : [];
  if (target === 'webm') {
    return ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-row-mt', '1', '-crf', String(vp9Crf(quality)), '-b:v', '0', '-pix_fmt', 'yuv420p', ...t];
  }
  return ['-c:v', 'libx264', '-preset', 'veryfast', '-crf', String(x264Crf(quality)), '-pix_fmt', 'yuv420p', ...t];
}

function validateQuality(q: number): void {
  if (!Number.isInteger(q) || q < 1 || q > 100) {
    throw new CodecError('invalid_input', `The quality must be a whole number from 1 to 100; got ${q}.`);
  }
}

// ---------------------------------------------------------------------------------------------
// Public API

/** What the argument builders of one transcode share. */
interface Pass {
  opts: TranscodeOptions;
  /** `-t`: the clip's duration, or a bound on an input that states no duration; else nothing. */
  cap: string[];
  /** The input's arguments, with the clip's start as an input seek. */
  input: string[];
  /** Reports progress to the caller, never going back. */
  onProgress(fraction: number): void;
  /** Progress for a run covering `span` of the whole call. */
  progress(span: readonly [number, number]): ProgressParserOptions;
}

/** Converts `input` to `target`, writing `output`. Removes a partial output on failure. */
export async function transcodeMedia(opts: TranscodeOptions): Promise<TranscodeResult> {
  validateQuality(opts.quality);
  if (!MEDIA_OUTPUTS.includes(opts.target)) {
    throw new CodecError('unsupported', `Converting to ${String(opts.target)} is not supported.`);
  }
  const info = opts.inputInfo ?? (await probeInput(opts, opts.input));
  checkMediaLimits(info, opts.limits);
  const { target } = opts;
  const video = firstVideo(info);
  const audio = firstAudio(info);
  const pass = passOf(opts, info);
  const palette = `${opts.output}.palette.png`;
  try {
    if (isOneOf(AUDIO_OUTPUTS, target)) {
      if (!audio) throw new CodecError('invalid_input', 'The file has no audio track to convert.');
      await runFfmpeg(opts, audioOnlyArgs(pass, target, audio), { progress: pass.progress([0, 1]) });
    } else if (!video) {
      throw new CodecError('unsupported', `The file has no video track; converting audio to ${target} is not supported, choose an audio format such as mp3.`);
    } else if (isOneOf(ANIMATION_OUTPUTS, target)) {
      await animate(pass, target, video, palette);
    } else {
      await runFfmpeg(opts, videoArgs(pass, target, video, audio), { progress: pass.progress([0, 1]) });
    }
    const result = await describeOutput(opts, target);
    pass.onProgress(1);
    return result;
  } catch (e) {
    await rm(opts.output, { force: true });
    throw e;
  } finally {
    await rm(palette, { force: true });
  }
}

function passOf(opts: TranscodeOptions, info: MediaInfo): Pass {
  const whole = info.durationSeconds ?? opts.durationSeconds ?? null;
  const clip = opts.clip;
  const durationSeconds = clip ? (clip.duration ?? (whole !== null ? Math.max(0, whole - clip.start) : null)) : whole;
  const cap = clip?.duration !== undefined ? ['-t', clip.duration.toFixed(3)] : info.durationSeconds === null ? ['-t', String(opts.limits.durationSeconds.max)] : [];
  // Monotonic across passes, and the closing 1 is not repeated after ffmpeg's own `progress=end`.
  let lastReported = -1;
  const onProgress = (f: number): void => {
    if (f <= lastReported) return;
    lastReported = f;
    opts.onProgress?.(f);
  };
  return {
    opts,
    // A stream without a stated duration cannot be checked up front; bound it instead of trusting it.
    cap,
    // An input seek (before -i) is fast and, when re-encoding, frame-exact.
    input: inputArgs(opts, opts.input, clip && clip.start > 0 ? ['-ss', clip.start.toFixed(3)] : []),
    onProgress,
    progress: (span) => ({ durationSeconds, onProgress, span }),
  };
}

function audioOnlyArgs({ opts, cap, input }: Pass, target: MediaFormat, audio: MediaStream): string[] {
  return [
    ...input,
    '-map',
    `0:${audio.index}`,
    '-vn',
    '-sn',
    '-dn',
    ...(opts.audioFilters?.length ? ['-af', opts.audioFilters.join(',')] : []),
    ...audioEncoderArgs(target, opts.quality, audio, opts.audioKbps),
    ...metadataArgs(opts.keepMetadata ?? false),
    ...cap,
    ...outputArgs(target, opts.output),
  ];
}

function videoArgs({ opts, cap, input }: Pass, target: VideoFormat, video: MediaStream, audio: MediaStream | undefined): string[] {
  const plan = planScale(displaySize(video), opts.resize, true);
  checkOutputPixels(plan, opts.limits);
  const chain = [...plan.filters, ...(opts.videoFilters ?? [])].join(',');
  // An overlay is a second input (our own PNG: file protocol and the PNG demuxer only, as for the GIF palette).
  const picture = opts.overlay
    ? [
        '-protocol_whitelist',
        'file',
        '-f',
        'png_pipe',
        '-i',
        fileUrl(opts.overlay.path),
        '-filter_complex',
        `[0:${video.index}]${chain}[v];[v][1:v]overlay=${Math.round(opts.overlay.x)}:${Math.round(opts.overlay.y)}:format=auto,format=yuv420p[out]`,
        '-map',
        '[out]',
      ]
    : ['-map', `0:${video.index}`, '-vf', chain];
  return [
    ...input,
    ...picture,
    ...(audio ? ['-map', `0:${audio.index}`] : []),
    ...(audio && opts.audioFilters?.length ? ['-af', opts.audioFilters.join(',')] : []),
    ...videoEncoderArgs(target, opts.quality, opts.threads),
    ...(audio ? audioEncoderArgs(target, opts.quality, audio, opts.audioKbps) : ['-an']),
    ...metadataArgs(opts.keepMetadata ?? false),
    '-max_muxing_queue_size',
    '1024',
    ...cap,
    ...outputArgs(target, opts.output),
  ];
}

function checkOutputPixels(plan: Plan, limits: MediaLimits): void {
  if (!plan.size) return;
  const px = plan.size.w * plan.size.h;
  if (px > limits.videoPixels.max) {
    throw limitExceeded('The requested output size', `${plan.size.w}x${plan.size.h} (${px} pixels)`, limits.videoPixels, ' pixels');
  }
}

async function animate(pass: Pass, target: AnimationFormat, video: MediaStream, palette: string): Promise<void> {
  const { opts } = pass;
  const maxFps = opts.animation?.maxFps ?? 15;
  const maxWidth = opts.animation?.maxWidth ?? 480;
  const fps = Math.min(video.frameRate ?? maxFps, maxFps);
  const plan = planScale(displaySize(video), opts.resize, false, maxWidth);
  checkOutputPixels(plan, opts.limits);
  const chain = [`fps=${Math.round(fps * 1000) / 1000}`, ...plan.filters].join(',');
  const common = [...metadataArgs(opts.keepMetadata ?? false), '-an', '-sn', '-dn', ...pass.cap];

  if (target === 'webp') {
    await runFfmpeg(
      opts,
      [
        ...pass.input,
        '-map',
        `0:${video.index}`,
        '-vf',
        chain,
        '-c:v',
        'libwebp_anim',
        '-quality',
        String(webpQuality(opts.quality)),
        '-pix_fmt',
        'yuv420p',
        '-loop',
        '0',
        ...common,
        ...outputArgs('webp', opts.output),
      ],
      { progress: pass.progress([0, 1]) },
    );
    return;
  }

  // GIF in two passes: a global palette from the whole clip, then the clip mapped onto it. The
  // one-pass split/palettegen/paletteuse graph buffers every frame in memory until the palette is
  // known, which for a long clip is gigabytes. Pass one writes no frames, so its progress only moves
  // at its end.
  await runFfmpeg(
    opts,
    [
      ...pass.input,
      '-map',
      `0:${video.index}`,
      '-vf',
      `${chain},palettegen=stats_mode=diff`,
      ...common,
      // image2pipe writes the name as given; image2 would expand a % in it as a frame pattern.
      '-frames:v',
      '1',
      '-c:v',
      'png',
      '-f',
      'image2pipe',
      fileUrl(palette),
    ],
    { progress: pass.progress([0, 0.3]) },
  );
  await runFfmpeg(
    opts,
    [
      ...pass.input,
      // Our own palette: file protocol only, and the PNG demuxer named so nothing is guessed.
      '-protocol_whitelist',
      'file',
      '-f',
      'png_pipe',
      '-i',
      fileUrl(palette),
      '-filter_complex',
      `[0:${video.index}]${chain}[v];[v][1:v]paletteuse=dither=bayer:bayer_scale=5:diff_mode=rectangle[out]`,
      '-map',
      '[out]',
      '-loop',
      '0',
      ...common,
      ...outputArgs('gif', opts.output),
    ],
    { progress: pass.progress([0.3, 1]) },
  );
}

async function describeOutput(opts: CommonOptions, target: MediaFormat): Promise<TranscodeResult> {
  const size = await writtenSize(opts.output);
  if (size === 0) {
    throw new CodecError('engine_failed', 'ffmpeg finished but wrote no output.');
  }
  if (target === 'webp') {
    const w = await readWebpInfo(opts.output);
    return { durationSeconds: w.durationSeconds, width: w.width, height: w.height, videoCodec: 'webp', frames: w.frames, size };
  }
  const out = await probeOutput(opts, opts.output);
  const v = firstVideo(out);
  const a = firstAudio(out);
  const result: TranscodeResult = { durationSeconds: out.durationSeconds, size };
  if (v) {
    if (v.width !== undefined) result.width = v.width;
    if (v.height !== undefined) result.height = v.height;
    result.videoCodec = v.codec;
  }
  if (a) result.audioCodec = a.codec;
  return result;
}

/**
 * Writes one PNG frame of the video to `output` (for image targets: the caller hands it to sharp).
 * Takes it 1 s in (the middle of shorter clips), since first frames are often black.
 */
export async function extractPosterFrame(opts: PosterFrameOptions): Promise<PosterFrameResult> {
  const info = opts.inputInfo ?? (await probeInput(opts, opts.input));
  if (opts.limits) checkMediaLimits(info, opts.limits);
  const video = firstVideo(info);
  if (!video) throw new CodecError('invalid_input', 'The file has no video track to take a frame from.');

  const at = opts.atSeconds ?? (info.durationSeconds !== null ? Math.min(1, info.durationSeconds / 2) : 0);
  const grab = (seconds: number): Promise<void> =>
    runFfmpeg(opts, [
      ...inputArgs(opts, opts.input, seconds > 0 ? ['-ss', seconds.toFixed(3)] : []),
      '-map',
      `0:${video.index}`,
      '-an',
      '-sn',
      '-dn',
      ...metadataArgs(false),
      '-frames:v',
      '1',
      '-c:v',
      'png',
      '-f',
      'image2pipe',
      fileUrl(opts.output),
    ]);
  try {
    // A stale file at `output` must not pass for this run's frame in the emptiness check below.
    await rm(opts.output, { force: true });
    await grab(at);
    // Seeking past the last decodable frame (a wrong container duration) writes nothing: start over at 0.
    if (at > 0 && (await writtenSize(opts.output)) === 0) await grab(0);
    const dims = await readPngSize(opts.output);
    return { path: opts.output, ...dims };
  } catch (e) {
    await rm(opts.output, { force: true });
    throw e;
  }
}

async function readPngSize(path: string): Promise<{ width: number; height: number }> {
  const fh = await open(path, 'r').catch((e: unknown) => {
    throw new CodecError('engine_failed', 'ffmpeg finished but wrote no frame.', { cause: e });
  });
  try {
    const b = Buffer.alloc(24);
    const { bytesRead } = await fh.read(b, 0, 24, 0);
    if (bytesRead < 24 || b.toString('latin1', 12, 16) !== 'IHDR') {
      throw new CodecError('engine_failed', 'ffmpeg finished but wrote no frame.');
    }
    return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
  } finally {
    await fh.close();
  }
}
