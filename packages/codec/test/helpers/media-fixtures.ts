/**
 * Media fixtures for the codec tests, generated at test time with ffmpeg's lavfi sources
 * (`testsrc2` pictures, `sine` tones) so no binary files live in the repository. Also small helpers the
 * media and process tests share: a raw ffprobe for independent checks, a request-counting HTTP
 * server, and process liveness.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export async function makeTempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `kiln-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface ClipSpec {
  seconds: number;
  /** Omit for an audio-only file. */
  video?: { width: number; height: number; rate: number; codec?: 'libx264' | 'mpeg4' };
  /** A 440 Hz tone; omit for a silent video. */
  audio?: { codec?: 'aac' | 'pcm_s16le' | 'libmp3lame'; channels?: 1 | 2 };
  /** ffmpeg muxer name: mp4, matroska, wav, mpegts, mp3 … */
  format: string;
}

/** Writes a synthetic clip to `path` and returns `path`. */
export async function makeClip(ffmpegPath: string, path: string, spec: ClipSpec): Promise<string> {
  const args = ['-nostdin', '-hide_banner', '-y', '-v', 'error'];
  if (spec.video) {
    const v = spec.video;
    args.push('-f', 'lavfi', '-i', `testsrc2=size=${v.width}x${v.height}:rate=${v.rate}`);
  }
  if (spec.audio) {
    args.push('-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100`);
  }
  if (spec.video) {
    const codec = spec.video.codec ?? 'libx264';
    args.push('-c:v', codec, ...(codec === 'libx264' ? ['-preset', 'ultrafast', '-pix_fmt', 'yuv420p'] : ['-q:v', '8']));
  }
  if (spec.audio) {
    args.push('-c:a', spec.audio.codec ?? 'aac', '-ac', String(spec.audio.channels ?? 1));
  }
  args.push('-t', String(spec.seconds), '-f', spec.format, path);
  await exec(ffmpegPath, args, { timeout: 30_000 });
  return path;
}

export interface RawStream {
  codec_type: string;
  codec_name: string;
  width?: number;
  height?: number;
  sample_rate?: string;
  channels?: number;
  avg_frame_rate?: string;
  nb_frames?: string;
  pix_fmt?: string;
}

export interface RawProbe {
  streams: RawStream[];
  format: { format_name: string; duration?: string };
}

/** ffprobe without our wrapper, so assertions do not depend on the code under test. */
export async function rawProbe(ffprobePath: string, path: string): Promise<RawProbe> {
  const { stdout } = await exec(ffprobePath, ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', path], {
    timeout: 30_000,
  });
  return JSON.parse(stdout) as RawProbe;
}

/** An HTTP server on 127.0.0.1 that counts every request and answers with `body`. */
export async function startCountingServer(body: Buffer): Promise<{ url: (p: string) => string; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'video/mp2t', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (p) => `http://127.0.0.1:${port}${p}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Whether a process is still running. A zombie counts as gone: it has exited and only waits to be
 * reaped, which for a re-parented grandchild is up to PID 1 (not always a real init in containers).
 */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Polls `check` until it is true or `timeoutMs` passes; returns the last result. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, everyMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
