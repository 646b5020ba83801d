/**
 * Finds the ffmpeg and ffprobe binaries. ffmpeg parses hostile uploads, so a current build wins:
 *  1. the configured path (FFMPEG_PATH: a file, or a bare command name looked up on PATH);
 *  2. `ffmpeg-static`'s binary, when its install script could download it;
 *  3. a system `ffmpeg` on PATH whose version is at least 5 (Debian's is security-maintained);
 *  4. only then the 2018 static build inside `@ffmpeg-installer/ffmpeg`, with a `warning` that
 *     callers must log loudly at start-up (it names the fix).
 * ffprobe follows: FFPROBE_PATH, the ffprobe beside a configured FFMPEG_PATH, a system `ffprobe` ≥ 5
 * on PATH, then `@ffprobe-installer/ffprobe` (same 2018 build, same warning).
 * A configured path that does not work is an error, never silently skipped: the operator asked for it.
 * Results are cached per configured path; callers log `source`, `version` and any `warning`.
 */
import { access, constants } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CodecError } from '../errors.ts';
import { ensureExecutable, fileExists, findOnPath, isBareCommand, readFirstLine } from '../process/executable.ts';

export type BinarySource = 'configured' | 'ffmpeg-static' | 'system' | 'beside-ffmpeg' | '@ffmpeg-installer' | '@ffprobe-installer';

/** The oldest major version taken from PATH without being asked for: older ones lack years of parser fixes. */
export const MIN_SYSTEM_MAJOR = 5;

export interface ResolvedBinary {
  path: string;
  source: BinarySource;
  /** The version token from the first line of `-version`, e.g. `6.1.1` or `N-47683-g0e8eb07980-static`. */
  version: string;
  /** That whole first line. */
  banner: string;
  /** Set when the binary is one Kiln should not be running on (the 2018 bundled build): log it loudly. */
  warning?: string;
}

export interface ResolveBinaryOptions {
  /** Explicit path or command name from configuration; wins over the bundled binaries. */
  configuredPath?: string;
  /** Name of the setting that holds `configuredPath`, for messages. Defaults: FFMPEG_PATH / FFPROBE_PATH. */
  setting?: string;
  /** Limit for running `-version`. Default 10 s. */
  timeoutMs?: number;
  /** ffprobe only: the configured ffmpeg, whose folder is looked in for a matching ffprobe. */
  ffmpegPath?: string;
  /** Where to look for a system binary. Default: process.env.PATH. */
  searchPath?: string;
}

interface Candidate {
  source: BinarySource;
  /** Returns the path, or undefined when this source is not installed. */
  locate: (opts: ResolveBinaryOptions) => Promise<string | undefined>;
  /** Refuses a found binary by its version (a reason), or accepts it (undefined). */
  accept?: (version: string) => string | undefined;
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

async function isExecutable(p: string): Promise<boolean> {
  if (!(await fileExists(p))) return false;
  return access(p, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** The first `name` on PATH (as a shell would find it), skipping node_modules/.bin shims. */
const locateOnPath =
  (name: string) =>
  async (opts: ResolveBinaryOptions): Promise<string | undefined> =>
    findOnPath(`${name}${exe}`, { searchPath: opts.searchPath, skipShims: true });

/** The major version of a release (`5.1.9-0+deb12u1` → 5); undefined for git snapshots (`N-47683-g…`). */
export function majorVersion(version: string): number | undefined {
  const m = /^n?(\d+)\.\d+/.exec(version);
  return m ? Number(m[1]) : undefined;
}

const currentEnough = (version: string): string | undefined => {
  const major = majorVersion(version);
  return major !== undefined && major >= MIN_SYSTEM_MAJOR
    ? undefined
    : `version ${version} is older than ${MIN_SYSTEM_MAJOR} (or not a release), so it is not used unless configured`;
};

const besideFfmpeg = async (opts: ResolveBinaryOptions): Promise<string | undefined> => {
  if (!opts.ffmpegPath || isBareCommand(opts.ffmpegPath)) return undefined;
  const p = join(dirname(opts.ffmpegPath), `ffprobe${exe}`);
  return (await isExecutable(p)) ? p : undefined;
};

const FFMPEG_CANDIDATES: Candidate[] = [
  { source: 'ffmpeg-static', locate: locateFfmpegStatic },
  { source: 'system', locate: locateOnPath('ffmpeg'), accept: currentEnough },
  { source: '@ffmpeg-installer', locate: locateInstaller('@ffmpeg-installer/ffmpeg') },
];
const FFPROBE_CANDIDATES: Candidate[] = [
  { source: 'beside-ffmpeg', locate: besideFfmpeg },
  { source: 'system', locate: locateOnPath('ffprobe'), accept: currentEnough },
  { source: '@ffprobe-installer', locate: locateInstaller('@ffprobe-installer/ffprobe') },
];

/** What start-up must shout about when only the bundled 2018 build was found. */
function bundledWarning(tool: 'ffmpeg' | 'ffprobe', setting: string, version: string): string {
  return (
    `${tool} is the 2018 static build bundled in @${tool}-installer/${tool} (version ${version}), which has years of unfixed parser CVEs and parses every uploaded file: ` +
    `install a current ${tool} (Debian/Ubuntu: apt-get install ffmpeg — version ${MIN_SYSTEM_MAJOR} or later on PATH is picked up) or set ${setting} to one.`
  );
}

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
    const p = await c.locate(opts);
    if (!p) {
      tried.push(`${c.source}: not installed`);
      continue;
    }
    try {
      const found = await check(p, c.source, setting, timeoutMs);
      const refused = c.accept?.(found.version);
      if (refused) {
        tried.push(`${c.source} (${p}): ${refused}`);
        continue;
      }
      if (c.source === '@ffmpeg-installer' || c.source === '@ffprobe-installer') return { ...found, warning: bundledWarning(tool, setting, found.version) };
      return found;
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
  return cached(`ffmpeg\0${opts.configuredPath ?? ''}\0${opts.searchPath ?? ''}`, () => resolve('ffmpeg', FFMPEG_CANDIDATES, opts, 'FFMPEG_PATH'));
}

export function resolveFfprobe(opts: ResolveBinaryOptions = {}): Promise<ResolvedBinary> {
  return cached(`ffprobe\0${opts.configuredPath ?? ''}\0${opts.ffmpegPath ?? ''}\0${opts.searchPath ?? ''}`, () => resolve('ffprobe', FFPROBE_CANDIDATES, opts, 'FFPROBE_PATH'));
}

/** The resolve options for an installation's configured paths (FFMPEG_PATH / FFPROBE_PATH, either unset). */
export function toolOptions(engines: { ffmpegPath?: string | undefined; ffprobePath?: string | undefined }): { ffmpeg: ResolveBinaryOptions; ffprobe: ResolveBinaryOptions } {
  return {
    ffmpeg: engines.ffmpegPath ? { configuredPath: engines.ffmpegPath } : {},
    ffprobe: { ...(engines.ffprobePath ? { configuredPath: engines.ffprobePath } : {}), ...(engines.ffmpegPath ? { ffmpegPath: engines.ffmpegPath } : {}) },
  };
}
