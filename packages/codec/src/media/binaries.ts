/**
 * Finds the ffmpeg and ffprobe binaries. Order: the configured path (a file, or a bare command name
 * looked up on PATH such as `ffmpeg` for Debian's build) → `ffmpeg-static` when its binary was
 * downloaded → the binaries inside `@ffmpeg-installer/ffmpeg` / `@ffprobe-installer/ffprobe`.
 * A configured path that does not work is an error, never silently skipped: the operator asked for it.
 * Results are cached per configured path; callers should log `source` and `version` at start-up.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CodecError } from '../errors.ts';
import { ensureExecutable, fileExists, isBareCommand, readFirstLine } from '../process/executable.ts';

export type BinarySource = 'configured' | 'ffmpeg-static' | '@ffmpeg-installer' | '@ffprobe-installer';

export interface ResolvedBinary {
  path: string;
  source: BinarySource;
  /** The version token from the first line of `-version`, e.g. `6.1.1` or `N-47683-g0e8eb07980-static`. */
  version: string;
  /** That whole first line. */
  banner: string;
}

export interface ResolveBinaryOptions {
  /** Explicit path or command name from configuration; wins over the bundled binaries. */
  configuredPath?: string;
  /** Name of the setting that holds `configuredPath`, for messages. Defaults: FFMPEG_PATH / FFPROBE_PATH. */
  setting?: string;
  /** Limit for running `-version`. Default 10 s. */
  timeoutMs?: number;
}

interface Candidate {
  source: BinarySource;
  /** Returns the path, or undefined when this source is not installed. */
  locate: () => Promise<string | undefined>;
}

const require = createRequire(import.meta.url);
const exe = process.platform === 'win32' ? '.exe' : '';

async function locateFfmpegStatic(): Promise<string | undefined> {
  // Computed from the package location rather than `require('ffmpeg-static')`, which would honour the
  // FFMPEG_BIN environment variable behind our back. The file only exists if its install script ran.
  let pkg: string;
  try {
    pkg = require.resolve('ffmpeg-static/package.json');
  } catch {
    return undefined;
  }
  const p = join(dirname(pkg), `ffmpeg${exe}`);
  return (await fileExists(p)) ? p : undefined;
}

function locateInstaller(pkg: string): () => Promise<string | undefined> {
  return async () => {
    try {
      // These packages throw (a string, for @ffmpeg-installer) when the platform binary is missing.
      const mod = require(pkg) as { path?: unknown };
      return typeof mod.path === 'string' && (await fileExists(mod.path)) ? mod.path : undefined;
    } catch {
      return undefined;
    }
  };
}

const FFMPEG_CANDIDATES: Candidate[] = [
  { source: 'ffmpeg-static', locate: locateFfmpegStatic },
  { source: '@ffmpeg-installer', locate: locateInstaller('@ffmpeg-installer/ffmpeg') },
];
const FFPROBE_CANDIDATES: Candidate[] = [{ source: '@ffprobe-installer', locate: locateInstaller('@ffprobe-installer/ffprobe') }];

function parseVersion(banner: string): string {
  return /\bversion\s+(\S+)/.exec(banner)?.[1] ?? banner;
}

async function check(path: string, source: BinarySource, setting: string, timeoutMs: number): Promise<ResolvedBinary> {
  if (!isBareCommand(path)) await ensureExecutable(path, setting);
  const banner = await readFirstLine(path, ['-hide_banner', '-version'], timeoutMs);
  return { path, source, version: parseVersion(banner), banner };
}

async function resolve(tool: 'ffmpeg' | 'ffprobe', candidates: Candidate[], opts: ResolveBinaryOptions, defaultSetting: string): Promise<ResolvedBinary> {
  const setting = opts.setting ?? defaultSetting;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (opts.configuredPath) {
    const p = opts.configuredPath;
    if (!isBareCommand(p) && !(await fileExists(p))) {
      throw new CodecError('engine_failed', `${setting} is set to ${p}, which does not exist; fix or unset ${setting}.`);
    }
    try {
      return await check(p, 'configured', setting, timeoutMs);
    } catch (e) {
      throw new CodecError('engine_failed', `${setting} is set to ${p}, which does not run as ${tool}; fix or unset ${setting}.`, {
        cause: e,
        internal: e instanceof CodecError ? (e.internal ?? e.message) : String(e),
      });
    }
  }
  const tried: string[] = [];
  for (const c of candidates) {
    const p = await c.locate();
    if (!p) {
      tried.push(`${c.source}: not installed`);
      continue;
    }
    try {
      return await check(p, c.source, setting, timeoutMs);
    } catch (e) {
      tried.push(`${c.source} (${p}): ${(e as Error).message}`);
    }
  }
  throw new CodecError('engine_failed', `No working ${tool} binary was found; install one and set ${setting} to its path.`, {
    internal: tried.join('\n'),
  });
}

const cache = new Map<string, Promise<ResolvedBinary>>();

function cached(key: string, make: () => Promise<ResolvedBinary>): Promise<ResolvedBinary> {
  let p = cache.get(key);
  if (!p) {
    p = make();
    cache.set(key, p);
    // A failure is not cached: the operator may fix the file and try again.
    p.catch(() => cache.delete(key));
  }
  return p;
}

export function resolveFfmpeg(opts: ResolveBinaryOptions = {}): Promise<ResolvedBinary> {
  return cached(`ffmpeg\0${opts.configuredPath ?? ''}`, () => resolve('ffmpeg', FFMPEG_CANDIDATES, opts, 'FFMPEG_PATH'));
}

export function resolveFfprobe(opts: ResolveBinaryOptions = {}): Promise<ResolvedBinary> {
  return cached(`ffprobe\0${opts.configuredPath ?? ''}`, () => resolve('ffprobe', FFPROBE_CANDIDATES, opts, 'FFPROBE_PATH'));
}
