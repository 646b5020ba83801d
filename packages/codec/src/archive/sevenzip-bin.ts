/**
 * Finds the 7za binary: the configured path (a file, or a bare command name looked up on PATH) →
 * the one inside `7zip-bin`. 7zip-bin ships it without the execute bit (its install script does not
 * run under pnpm), so we set it. Cached per configured path; log `source` and `version` at start-up.
 */
import { createRequire } from 'node:module';
import { CodecError } from '../errors.ts';
import { ensureExecutable, fileExists, isBareCommand, readFirstLine } from '../process/executable.ts';

export interface ResolvedSevenZip {
  path: string;
  source: 'configured' | '7zip-bin';
  /** e.g. `16.02`. */
  version: string;
  /** The banner line, e.g. `7-Zip (a) [64] 16.02 : Copyright (c) 1999-2016 Igor Pavlov : 2016-05-21`. */
  banner: string;
}

export interface ResolveSevenZipOptions {
  configuredPath?: string;
  /** Name of the setting that holds `configuredPath`, for messages. Default SEVENZIP_PATH. */
  setting?: string;
  timeoutMs?: number;
}

const require = createRequire(import.meta.url);

function bundledPath(): string | undefined {
  try {
    const mod = require('7zip-bin') as { path7za?: unknown };
    return typeof mod.path7za === 'string' ? mod.path7za : undefined;
  } catch {
    return undefined;
  }
}

async function check(path: string, source: ResolvedSevenZip['source'], setting: string, timeoutMs: number): Promise<ResolvedSevenZip> {
  if (!isBareCommand(path)) await ensureExecutable(path, setting);
  // With no arguments 7za prints its banner and usage and exits 0; `i` would list every codec.
  const banner = await readFirstLine(path, [], timeoutMs);
  const version = /^7-Zip[^\d]*?(?:\[\d+\]\s*)?(\d+(?:\.\d+)+)/.exec(banner)?.[1];
  if (!version) {
    throw new CodecError('engine_failed', `${path} does not look like 7-Zip; set ${setting} to a 7za binary.`, { internal: banner });
  }
  return { path, source, version, banner };
}

async function resolve(opts: ResolveSevenZipOptions): Promise<ResolvedSevenZip> {
  const setting = opts.setting ?? 'SEVENZIP_PATH';
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (opts.configuredPath) {
    const p = opts.configuredPath;
    if (!isBareCommand(p) && !(await fileExists(p))) {
      throw new CodecError('engine_failed', `${setting} is set to ${p}, which does not exist; fix or unset ${setting}.`);
    }
    return check(p, 'configured', setting, timeoutMs);
  }
  const p = bundledPath();
  if (!p || (!isBareCommand(p) && !(await fileExists(p)))) {
    throw new CodecError('engine_failed', `The 7za binary from 7zip-bin is missing; reinstall dependencies or set ${setting}.`, {
      internal: `7zip-bin path: ${p ?? '(package not found)'}`,
    });
  }
  return check(p, '7zip-bin', setting, timeoutMs);
}

const cache = new Map<string, Promise<ResolvedSevenZip>>();

export function resolveSevenZip(opts: ResolveSevenZipOptions = {}): Promise<ResolvedSevenZip> {
  const key = opts.configuredPath ?? '';
  let p = cache.get(key);
  if (!p) {
    p = resolve(opts);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}
