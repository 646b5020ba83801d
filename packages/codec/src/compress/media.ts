/**
 * Audio/video compression with ffmpeg (API.md §2.6).
 *
 * - quality: `transcodeMedia` into the input's own container (x264/VP9 CRF and audio bitrate mapped
 *   from quality); FLAC (and WAV, which becomes FLAC) is re-encoded losslessly at the highest level.
 * - target-size: the bitrate is computed from the duration (minus container overhead), video is
 *   encoded in two passes, and when the result still overshoots the bitrate is scaled down and the
 *   encode repeated. Very low bitrates scale the picture down, or go mono / lower the sample rate.
 * - lossless: stream copy (`-c copy`), metadata and chapters dropped unless asked to keep them.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { AUDIO_OUTPUTS, isOneOf, OUTPUT_INFO, type MediaCompressFormat } from '@kiln/formats';
import { CodecError } from '../errors.ts';
import {
  displaySize,
  even,
  firstAudio,
  firstVideo,
  inputArgs,
  metadataArgs,
  outputArgs,
  probeInput,
  probeOutput,
  resolveMediaTools,
  runFfmpeg,
  type FfmpegContext,
} from '../media/ffmpeg.ts';
import type { MediaInfo, MediaStream } from '../media/probe.ts';
import { aacKbps, opusKbps } from '../media/quality.ts';
import { checkMediaLimits, transcodeMedia } from '../media/transcode.ts';
import type { CompressJob, CompressResult } from './request.ts';
import { outputPath } from '../output-path.ts';

type MediaCompressOptions = CompressJob<MediaCompressFormat>;

/** One compression: the ffmpeg context of the call and what was asked. */
interface Ctx {
  ff: FfmpegContext;
  o: MediaCompressOptions;
}

const input = (c: Ctx): string[] => inputArgs(c.ff, c.o.input);
const metadata = (c: Ctx): string[] => metadataArgs(!c.o.stripMetadata);

async function describe(c: Ctx, file: string): Promise<{ size: number; info: MediaInfo }> {
  const size = (await fs.stat(file)).size;
  return { size, info: await probeOutput(c.ff, file) };
}

/** Copies the audio/video streams unchanged into `out`; metadata (and cover art) go unless kept. */
async function streamCopy(c: Ctx, out: string): Promise<void> {
  const maps = isOneOf(AUDIO_OUTPUTS, c.o.format) ? ['-map', '0:a:0', '-vn'] : ['-map', '0:V?', '-map', '0:a?'];
  try {
    await runFfmpeg(c.ff, [...input(c), ...maps, '-sn', '-dn', '-c', 'copy', ...metadata(c), ...outputArgs(c.o.format, out)]);
  } catch (err) {
    if (c.o.formatChanged)
      throw new CodecError('unsupported', `The streams of this ${c.o.inputKind} file cannot be copied into ${c.o.format} without re-encoding; turn lossless off.`, { cause: err });
    throw err;
  }
}

async function flac(c: Ctx, out: string): Promise<void> {
  await runFfmpeg(c.ff, [...input(c), '-map', '0:a:0', '-vn', '-c:a', 'flac', '-compression_level', '12', ...metadata(c), ...outputArgs('flac', out)]);
}

function audioArgs(format: MediaCompressFormat, kbps: number, a: MediaStream): string[] {
  const channels = kbps < 48 || (a.channels ?? 2) > 2 ? ['-ac', kbps < 48 ? '1' : '2'] : [];
  switch (format) {
    case 'mp3': {
      // MPEG-1 layer 3 (32/44.1/48 kHz) starts at 32 kb/s; below that MPEG-2 rates at 22.05 kHz.
      const rate = kbps < 32 ? ['-ar', '22050'] : (a.sampleRate ?? 44100) > 48000 ? ['-ar', '48000'] : [];
      // ABR: any average rate, not just the standard CBR steps (64, 80, 96 …), so sizes land close.
      return ['-c:a', 'libmp3lame', '-abr', '1', '-b:a', `${Math.max(8, Math.floor(kbps))}k`, ...rate, ...channels];
    }
    case 'ogg':
      return ['-c:a', 'libvorbis', '-b:a', `${Math.max(32, Math.floor(kbps))}k`, ...(kbps < 64 ? ['-ar', '22050'] : []), ...channels];
    case 'webm':
      return ['-c:a', 'libopus', '-b:a', `${Math.max(6, Math.floor(kbps))}k`, ...channels];
    default:
      return ['-c:a', 'aac', '-b:a', `${Math.max(16, Math.floor(kbps))}k`, ...channels];
  }
}

/** Two-pass video at `vkbps` plus audio at `akbps`, scaled to `height` when given. */
async function encodeVideo(c: Ctx, out: string, info: MediaInfo, vkbps: number, akbps: number, height: number | undefined): Promise<void> {
  const v = firstVideo(info)!;
  const a = firstAudio(info);
  const cwd = c.o.outputDir;
  const log = path.join(cwd, 'passlog');
  const scale = height ? ['-vf', `scale=-2:${even(height)}`] : ['-vf', 'scale=trunc(iw/2)*2:trunc(ih/2)*2'];
  const codec =
    c.o.format === 'webm'
      ? ['-c:v', 'libvpx-vp9', '-deadline', 'good', '-cpu-used', '5', '-row-mt', '1', '-b:v', `${Math.floor(vkbps)}k`]
      : ['-c:v', 'libx264', '-preset', 'veryfast', '-b:v', `${Math.floor(vkbps)}k`];
  const common = [...input(c), '-map', `0:${v.index}`, ...scale, ...codec, '-pix_fmt', 'yuv420p', '-passlogfile', log];
  await runFfmpeg(c.ff, [...common, '-pass', '1', '-an', '-f', 'null', '-'], { cwd });
  await runFfmpeg(
    c.ff,
    [...common, '-pass', '2', ...(a ? ['-map', `0:${a.index}`, ...audioArgs(c.o.format, akbps, a)] : ['-an']), ...metadata(c), ...outputArgs(c.o.format, out)],
    { cwd },
  );
}

interface Encoded {
  appliedQuality: number | null;
  encodes: number;
  targetMet?: boolean;
  targetReason?: string;
}

/** Writes the compressed file to `out` the way the options ask: lossless FLAC, a stream copy, one quality encode or a target-size search. */
async function encode(c: Ctx, info: MediaInfo, out: string, notes: string[]): Promise<Encoded> {
  const { o } = c;
  if (o.format === 'flac') {
    await flac(c, out);
    notes.push(o.inputKind === 'wav' ? 'WAV compressed to FLAC: lossless, same samples.' : 'FLAC re-encoded losslessly at the highest compression level.');
    return { appliedQuality: 100, encodes: 1 };
  }
  if (o.lossless) {
    await streamCopy(c, out);
    notes.push('Lossless: streams copied unchanged; only metadata and the container were rewritten.');
    return { appliedQuality: 100, encodes: 1 };
  }
  if (o.mode === 'quality' || o.targetBytes === null) {
    const quality = Math.round(o.quality);
    await transcodeMedia({
      ...c.ff,
      input: o.input,
      output: out,
      target: o.format,
      quality,
      limits: o.limits,
      inputInfo: info,
      ...(o.resize ? { resize: o.resize } : {}),
      keepMetadata: !o.stripMetadata,
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    return { appliedQuality: quality, encodes: 1 };
  }
  const r = await toTarget(c, out, info, o.targetBytes, notes);
  return { appliedQuality: null, encodes: r.encodes, targetMet: r.met, ...(r.reason ? { targetReason: r.reason } : {}) };
}

export async function compressMedia(o: MediaCompressOptions): Promise<CompressResult> {
  const c: Ctx = { ff: { ...(await resolveMediaTools(o.engines)), deadline: o.deadline, signal: o.signal }, o };
  const info = await probeInput(c.ff, o.input);
  checkMediaLimits(info, o.limits);
  const isAudio = isOneOf(AUDIO_OUTPUTS, o.format);
  if (isAudio && !info.hasAudio) throw new CodecError('invalid_input', 'The file has no audio track to compress.');
  if (!isAudio && !info.hasVideo) throw new CodecError('unsupported', `The file has no video track; compress it as audio (format=mp3 or m4a).`);

  const out = outputPath(o.outputDir, o.format);
  const notes: string[] = [];
  const r = await encode(c, info, out, notes);
  if (o.mode === 'target-size' && o.targetBytes !== null && r.targetMet === undefined) {
    const size = (await fs.stat(out)).size;
    r.targetMet = size <= o.targetBytes;
    if (!r.targetMet)
      r.targetReason =
        o.format === 'flac'
          ? 'FLAC is lossless, so its size cannot be chosen; ask for format=mp3 or m4a to reach a target size.'
          : 'A lossless copy has one possible size; turn lossless off to reach the target.';
  }
  if (o.formatChanged && o.inputKind !== 'wav') notes.unshift(`${o.inputKind.toUpperCase()} input compressed into ${o.format}, the closest supported container.`);

  const kept = await neverLarger(c, { path: out, ...(await describe(c, out)) }, r, notes);
  const v = firstVideo(kept.info);
  return {
    path: kept.path,
    format: o.format,
    mimeType: OUTPUT_INFO[o.format].mime,
    size: kept.size,
    ...(v?.width !== undefined ? { width: v.width } : {}),
    ...(v?.height !== undefined ? { height: v.height } : {}),
    ...(kept.info.durationSeconds !== null ? { durationSeconds: Math.round(kept.info.durationSeconds * 1000) / 1000 } : {}),
    appliedQuality: r.appliedQuality,
    encodes: r.encodes,
    ...(notes.length ? { notes } : {}),
    ...(r.targetMet !== undefined ? { targetMet: r.targetMet } : {}),
    ...(r.targetReason ? { targetReason: r.targetReason } : {}),
  };
}

/**
 * Never larger (API.md §2.6): when the result is not smaller than the input and the format was kept,
 * a stripped stream copy (or the input itself) is returned if that is smaller. Updates `r` and `notes`.
 */
async function neverLarger(c: Ctx, result: { path: string; size: number; info: MediaInfo }, r: Encoded, notes: string[]): Promise<{ path: string; size: number; info: MediaInfo }> {
  const { o } = c;
  if (o.formatChanged || result.size < o.originalSize) return result;
  const copy = outputPath(o.outputDir, o.format, 'original');
  if (o.stripMetadata && !o.lossless) await streamCopy(c, copy);
  else await fs.copyFile(o.input, copy);
  const kept = await describe(c, copy);
  if (kept.size >= result.size) return result;
  await fs.rm(result.path, { force: true });
  r.appliedQuality = null;
  notes.push(
    o.stripMetadata && !o.lossless
      ? 'The re-encoded file would not have been smaller; the original streams are returned unchanged, metadata removed.'
      : 'The compressed file would not have been smaller; the original is returned unchanged.',
  );
  if (r.targetMet === false || (o.targetBytes !== null && o.mode === 'target-size')) {
    r.targetMet = kept.size <= (o.targetBytes ?? Infinity);
    if (r.targetMet) delete r.targetReason;
  }
  return { path: copy, ...kept };
}

/** Bitrate from the duration; re-encodes at a lower rate when the muxed file still overshoots. */
async function toTarget(c: Ctx, out: string, info: MediaInfo, target: number, notes: string[]): Promise<{ encodes: number; met: boolean; reason?: string }> {
  const d = info.durationSeconds;
  if (!d) return { encodes: 0, met: false, reason: 'The file states no duration, so no bitrate can be computed for the target.' };
  const o = c.o;
  const a = firstAudio(info);
  const v = firstVideo(info);
  // Containers add roughly 2–4 %: aim a little under.
  // Audio at an average bitrate lands a little under its rate; video muxing adds more. Overshoots are re-encoded.
  let totalKbps = ((target * 8) / d / 1000) * (isOneOf(AUDIO_OUTPUTS, o.format) || !v ? 0.985 : 0.95);
  let encodes = 0;
  let floorReason: string | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    encodes++;
    if (isOneOf(AUDIO_OUTPUTS, o.format) || !v) {
      const kbps = totalKbps;
      await runFfmpeg(c.ff, [...input(c), '-map', `0:${a!.index}`, '-vn', ...audioArgs(o.format, kbps, a!), ...metadata(c), ...outputArgs(o.format, out)]);
      if (attempt === 0) notes.push(`Audio bitrate ${Math.floor(kbps)} kb/s computed from ${Math.round(d * 10) / 10} s for ${target} bytes.`);
    } else {
      const akbps = a ? Math.min(o.format === 'webm' ? opusKbps(o.quality) : aacKbps(o.quality), Math.max(o.format === 'webm' ? 12 : 24, totalKbps * 0.12)) : 0;
      let vkbps = totalKbps - akbps;
      if (vkbps < 16) {
        // Still write the smallest sensible file, and say why the target is out of reach.
        floorReason = `${target} bytes over ${Math.round(d * 10) / 10} s is ${Math.floor(totalKbps)} kb/s, too little for a watchable video; the smallest sensible size is about ${Math.ceil(((16 + akbps) * 1000 * d) / 8 / 0.95)} bytes.`;
        vkbps = 16;
      }
      // Below ~0.04 bits per pixel per frame x264 falls apart: trade pixels for bits.
      const fps = v.frameRate ?? 25;
      const { w: w0, h: h0 } = displaySize(v) ?? { w: 0, h: 0 };
      const bpp = (vkbps * 1000) / Math.max(1, w0 * h0 * fps);
      let height: number | undefined;
      if (h0 && bpp < 0.04) {
        height = Math.max(144, even(h0 * Math.sqrt(bpp / 0.06)));
        if (height >= h0) height = undefined;
      }
      if (o.resize?.height || o.resize?.width) height = Math.min(height ?? Infinity, o.resize.height ?? Math.round((h0 * (o.resize.width ?? w0)) / Math.max(1, w0)), h0);
      await encodeVideo(c, out, info, vkbps, akbps, height);
      if (attempt === 0)
        notes.push(
          `Two-pass video at ${Math.floor(vkbps)} kb/s${a ? ` with audio at ${Math.floor(akbps)} kb/s` : ''}${height ? `, scaled to ${height} px high` : ''}, computed from ${Math.round(d * 10) / 10} s.`,
        );
    }
    const size = (await fs.stat(out)).size;
    o.onProgress?.(Math.min(0.95, (attempt + 1) / 3));
    if (size <= target) return { encodes, met: true };
    if (floorReason) return { encodes, met: false, reason: floorReason };
    totalKbps *= (target / size) * 0.95;
  }
  const size = (await fs.stat(out)).size;
  return { encodes, met: size <= target, reason: `After ${encodes} encodes the smallest file was ${size} bytes, over the target of ${target}.` };
}
