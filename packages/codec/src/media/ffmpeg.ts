/**
 * The ffmpeg toolkit every audio/video path uses: transcoding and poster frames (transcode.ts) and
 * media compression (compress/media.ts). One context per call, one runner (the input guards from
 * probe.ts, `-nostdin`, a progress pipe, the call's deadline), one muxer table, the stream lookups,
 * the metadata and container arguments, and the reading back of our own outputs.
 */
import { stat } from 'node:fs/promises';
import type { MediaFormat } from '@kiln/formats';
import type { EnginePaths } from '../engine.ts';
import { CodecError } from '../errors.ts';
import { runWithin } from '../process/run.ts';
import { resolveFfmpeg, resolveFfprobe, toolOptions } from './binaries.ts';
import { createProgressParser, type ProgressParserOptions } from './progress.ts';
import { fileUrl, inputGuards, probeMedia, type MediaInfo, type MediaStream, type ProbeOptions } from './probe.ts';

/** What every ffmpeg and ffprobe run of one call shares: the probe's options, and ffmpeg. */
export interface FfmpegContext extends ProbeOptions {
  ffmpegPath: string;
  /** Called with the pid (= process group) of every child started, e.g. for logs. */
  onSpawn?: ((pid: number, command: 'ffmpeg' | 'ffprobe') => void) | undefined;
}

/** The configured (else the most current found) ffmpeg and ffprobe, resolved together: see binaries.ts. */
export async function resolveMediaTools(engines: EnginePaths): Promise<{ ffmpegPath: string; ffprobePath: string }> {
  const o = toolOptions(engines);
  const [ffmpeg, ffprobe] = await Promise.all([resolveFfmpeg(o.ffmpeg), resolveFfprobe(o.ffprobe)]);
  return { ffmpegPath: ffmpeg.path, ffprobePath: ffprobe.path };
}

/** The muxer named with `-f` for each output, so nothing is guessed from the file name. */
export const MUXER: Record<MediaFormat, string> = {
  mp4: 'mp4',
  mov: 'mov',
  m4a: 'ipod',
  webm: 'webm',
  mp3: 'mp3',
  ogg: 'ogg',
  wav: 'wav',
  flac: 'flac',
  gif: 'gif',
  webp: 'webp',
};

/** Demuxers for reading back our own outputs (webp is read by webp-info.ts). */
const OUTPUT_DEMUXERS = ['mov', 'matroska', 'mp3', 'wav', 'ogg', 'flac', 'gif'];

/** The first real video stream: cover art in an audio file does not count. */
export function firstVideo(info: MediaInfo): MediaStream | undefined {
  return info.streams.find((s) => s.type === 'video' && !s.attachedPic);
}

export function firstAudio(info: MediaInfo): MediaStream | undefined {
  return info.streams.find((s) => s.type === 'audio');
}

/** Source size as ffmpeg will decode it (it applies rotation). */
export function displaySize(v: MediaStream): { w: number; h: number } | undefined {
  if (v.width === undefined || v.height === undefined) return undefined;
  return v.rotation === 90 || v.rotation === 270 ? { w: v.height, h: v.width } : { w: v.width, h: v.height };
}

/** H.264/VP9 in 4:2:0 need even sides. */
export const even = (n: number): number => Math.max(2, Math.floor(n / 2) * 2);

/** Tags, chapters and phone GPS go unless asked to keep them, as for images. */
export function metadataArgs(keep: boolean): string[] {
  return keep ? ['-map_metadata', '0'] : ['-map_metadata', '-1', '-map_chapters', '-1'];
}

/** The muxer and output, with the MP4-family index moved to the front so playback can start while downloading. */
export function outputArgs(format: MediaFormat, path: string): string[] {
  const faststart = format === 'mp4' || format === 'mov' || format === 'm4a' ? ['-movflags', '+faststart'] : [];
  return [...faststart, '-f', MUXER[format], fileUrl(path)];
}

/** The input part of an ffmpeg command line, with the guards every input gets. */
export function inputArgs(ctx: FfmpegContext, path: string, before: string[] = []): string[] {
  return [...inputGuards('file,pipe', ctx.allowedDemuxers), ...before, '-i', fileUrl(path)];
}

/** Runs ffmpeg with `args` inside the call's deadline; a non-zero exit is engine_failed. */
export async function runFfmpeg(ctx: FfmpegContext, args: string[], opts: { progress?: ProgressParserOptions; cwd?: string } = {}): Promise<void> {
  const parser = opts.progress ? createProgressParser(opts.progress) : undefined;
  const r = await runWithin(ctx.deadline, ctx.ffmpegPath, ['-nostdin', '-hide_banner', '-y', '-nostats', '-progress', 'pipe:1', ...args], {
    signal: ctx.signal,
    stdin: 'ignore',
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    onStdoutLine: (line) => parser?.line(line),
    onSpawn: ctx.onSpawn ? (pid) => ctx.onSpawn?.(pid, 'ffmpeg') : undefined,
  });
  if (r.code !== 0) {
    throw new CodecError('engine_failed', `ffmpeg could not convert the file (exit code ${r.code}).`, { internal: r.stderrTail });
  }
}

/** Probes an upload with the call's guards and deadline. */
export function probeInput(ctx: FfmpegContext, path: string): Promise<MediaInfo> {
  return probeMedia(path, ctx);
}

/** Probes a file we wrote; one that does not read back is an engine fault, not the user's file. */
export function probeOutput(ctx: FfmpegContext, path: string): Promise<MediaInfo> {
  return probeMedia(path, { ...ctx, allowedDemuxers: OUTPUT_DEMUXERS }).catch((e: unknown) => {
    if (e instanceof CodecError && e.kind === 'invalid_input') {
      throw new CodecError('engine_failed', 'ffmpeg wrote an output that cannot be read back.', { cause: e, internal: e.internal });
    }
    throw e;
  });
}

/** Size of a file ffmpeg was to write; 0 when it wrote nothing. */
export async function writtenSize(path: string): Promise<number> {
  return stat(path).then(
    (s) => s.size,
    () => 0,
  );
}
