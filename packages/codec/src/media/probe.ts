/**
 * Reads the facts of an audio/video file with ffprobe.
 *
 * Safety: uploaded files are hostile. A "video" can be an HLS or concat playlist that makes the demuxer
 * open other URLs or other local files (e.g. another user's upload). Two independent guards apply to
 * every ffprobe and ffmpeg input: `-protocol_whitelist` (only local files; ffmpeg also pipes) and
 * `-format_whitelist` (only container demuxers that never open a second resource, so playlists are
 * refused outright). The whitelist is an option so an operator can widen it, not a constant to edit.
 */
import type { Deadline } from '../engine.ts';
import { CodecError } from '../errors.ts';
import { runWithin } from '../process/run.ts';

/**
 * Demuxers allowed to read uploads: containers and raw streams that read only the file they are given.
 * Deliberately absent: hls, dash, concat, image2 (file patterns), sdp/rtsp, tty, lavfi, and friends.
 * ffmpeg matches any comma-separated part of a demuxer's name, so `mov` covers `mov,mp4,m4a,3gp,3g2,mj2`.
 */
export const DEFAULT_ALLOWED_DEMUXERS: readonly string[] = [
  'mov',
  'matroska',
  'avi',
  'flv',
  'asf',
  'mpegts',
  'mpeg',
  'mxf',
  'dv',
  'nut',
  'ivf',
  'gif',
  'mp3',
  'wav',
  'w64',
  'ogg',
  'flac',
  'aac',
  'ac3',
  'eac3',
  'dts',
  'aiff',
  'amr',
  'caf',
  'wv',
  'ape',
  'au',
  'h264',
  'hevc',
  'm4v',
  'mpegvideo',
];

export type MediaStreamType = 'video' | 'audio' | 'subtitle' | 'data' | 'attachment' | 'unknown';

export interface MediaStream {
  index: number;
  type: MediaStreamType;
  codec: string;
  width?: number;
  height?: number;
  frameRate?: number;
  sampleRate?: number;
  channels?: number;
  durationSeconds?: number;
  /** Rotation players apply (degrees, from the rotate tag or display matrix); ffmpeg applies it when decoding. */
  rotation?: number;
  /** A cover image in an audio file: a "video" stream that is not video. */
  attachedPic?: boolean;
}

export interface MediaInfo {
  /** ffprobe's demuxer name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`. */
  formatName: string;
  /** Null when neither the container nor any stream states a duration. */
  durationSeconds: number | null;
  streams: MediaStream[];
  /** A real video stream (cover art does not count). */
  hasVideo: boolean;
  hasAudio: boolean;
}

export interface ProbeOptions {
  ffprobePath: string;
  /** One deadline for the whole call (probe, every pass, output probe), shared with the caller's other steps. */
  deadline: Deadline;
  signal?: AbortSignal | undefined;
  /** Demuxers allowed to open the file. Default DEFAULT_ALLOWED_DEMUXERS. */
  allowedDemuxers?: readonly string[] | undefined;
  onSpawn?: ((pid: number, command: 'ffprobe') => void) | undefined;
}

const INVALID_MESSAGE = 'The file could not be read as audio or video.';

interface RawStream {
  index?: number;
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  sample_rate?: string;
  channels?: number;
  duration?: string;
  disposition?: { attached_pic?: number };
  tags?: Record<string, string>;
  side_data_list?: Array<{ side_data_type?: string; rotation?: number }>;
}

interface RawProbe {
  streams?: RawStream[];
  format?: { format_name?: string; duration?: string };
}

function positive(n: unknown): number | undefined {
  const v = typeof n === 'string' ? Number(n) : n;
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
}

function parseRate(r: string | undefined): number | undefined {
  if (!r) return undefined;
  const [num, den] = r.split('/').map(Number);
  if (num === undefined || !Number.isFinite(num)) return undefined;
  const v = den === undefined ? num : den > 0 ? num / den : NaN;
  return positive(Math.round(v * 1000) / 1000);
}

function rotationOf(s: RawStream): number | undefined {
  const fromTag = s.tags?.rotate;
  const fromMatrix = s.side_data_list?.find((d) => typeof d.rotation === 'number')?.rotation;
  const r = fromMatrix ?? (fromTag !== undefined ? Number(fromTag) : undefined);
  if (r === undefined || !Number.isFinite(r)) return undefined;
  const norm = ((Math.round(r) % 360) + 360) % 360;
  return norm === 0 ? undefined : norm;
}

const STREAM_TYPES: readonly MediaStreamType[] = ['video', 'audio', 'subtitle', 'data', 'attachment'];

function toStream(s: RawStream, i: number): MediaStream {
  const type = STREAM_TYPES.find((t) => t === s.codec_type) ?? 'unknown';
  const out: MediaStream = { index: s.index ?? i, type, codec: s.codec_name ?? 'unknown' };
  const duration = positive(s.duration);
  if (duration !== undefined) out.durationSeconds = duration;
  if (type === 'video') {
    const w = positive(s.width);
    const h = positive(s.height);
    if (w !== undefined) out.width = w;
    if (h !== undefined) out.height = h;
    const fps = parseRate(s.avg_frame_rate) ?? parseRate(s.r_frame_rate);
    if (fps !== undefined) out.frameRate = fps;
    const rotation = rotationOf(s);
    if (rotation !== undefined) out.rotation = rotation;
    if (s.disposition?.attached_pic === 1) out.attachedPic = true;
  } else if (type === 'audio') {
    const sr = positive(s.sample_rate);
    const ch = positive(s.channels);
    if (sr !== undefined) out.sampleRate = sr;
    if (ch !== undefined) out.channels = ch;
  }
  return out;
}

/** Parses ffprobe's `-print_format json -show_format -show_streams` output. Exported for unit tests. */
export function parseProbeJson(json: string): MediaInfo {
  const raw = JSON.parse(json) as RawProbe;
  const streams = (raw.streams ?? []).map(toStream);
  const streamMax = Math.max(0, ...streams.map((s) => (s.attachedPic ? 0 : (s.durationSeconds ?? 0))));
  const durationSeconds = positive(raw.format?.duration) ?? (streamMax > 0 ? streamMax : null);
  return {
    formatName: raw.format?.format_name ?? 'unknown',
    durationSeconds,
    streams,
    hasVideo: streams.some((s) => s.type === 'video' && !s.attachedPic),
    hasAudio: streams.some((s) => s.type === 'audio'),
  };
}

/** The `-protocol_whitelist` / `-format_whitelist` input options every ffprobe and ffmpeg input gets. */
export function inputGuards(protocols: string, allowedDemuxers: readonly string[] | undefined): string[] {
  const demuxers = allowedDemuxers ?? DEFAULT_ALLOWED_DEMUXERS;
  return ['-protocol_whitelist', protocols, '-format_whitelist', demuxers.join(',')];
}

/** `file:` keeps a name such as `a:b.mp4` from being read as a protocol. */
export function fileUrl(path: string): string {
  return `file:${path}`;
}

export async function probeMedia(path: string, opts: ProbeOptions): Promise<MediaInfo> {
  const args = ['-v', 'error', ...inputGuards('file', opts.allowedDemuxers), '-print_format', 'json', '-show_format', '-show_streams', fileUrl(path)];
  const r = await runWithin(opts.deadline, opts.ffprobePath, args, {
    signal: opts.signal,
    stdin: 'ignore',
    onSpawn: opts.onSpawn ? (pid) => opts.onSpawn?.(pid, 'ffprobe') : undefined,
  });
  if (r.code !== 0) {
    // Includes crashes: a file that makes the demuxer fall over is the file's fault, and retrying
    // it would only crash again.
    throw new CodecError('invalid_input', INVALID_MESSAGE, { internal: `ffprobe exit ${r.code}: ${r.stderrTail}` });
  }
  let info: MediaInfo;
  try {
    info = parseProbeJson(r.stdout ?? '');
  } catch (e) {
    throw new CodecError('engine_failed', 'ffprobe printed output that is not JSON.', { cause: e, internal: (r.stdout ?? '').slice(0, 2000) });
  }
  if (!info.hasVideo && !info.hasAudio) {
    throw new CodecError('invalid_input', INVALID_MESSAGE, { internal: `no audio or video streams (${info.formatName})` });
  }
  return info;
}
