/**
 * Helpers for engine binaries that ship inside npm packages. Those packages (ffmpeg/ffprobe
 * installers, 7zip-bin) rely on an install script for the execute bit, and pnpm/npm do not run
 * dependency install scripts unless told to, so Kiln sets the bit itself when it resolves a binary.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { chmod, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { CodecError } from '../errors.ts';
import { runProcess } from './run.ts';

/** True when `p` names a command to look up on PATH rather than a file. */
export function isBareCommand(p: string): boolean {
  return !p.includes('/') && !p.includes('\\');
}

/**
 * The first executable file called `name` in a PATH-style list (default: this process's PATH), as a
 * shell would find it. `skipShims` passes over node_modules/.bin folders (npm's wrapper scripts).
 */
export function findOnPath(name: string, opts: { searchPath?: string; skipShims?: boolean } = {}): string | undefined {
  for (const dir of (opts.searchPath ?? process.env.PATH ?? '').split(delimiter)) {
    if (!dir || (opts.skipShims && /node_modules[\\/]\.bin/.test(dir))) continue;
    const p = join(dir, name);
    try {
      if (!statSync(p).isFile()) continue;
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Whether `p` is an existing regular file. */
export async function fileExists(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/**
 * Makes `path` executable (adds the x bits) if it is not already. Returns true when it changed the mode.
 * `setting` names the configuration that points elsewhere, for the error message.
 */
export async function ensureExecutable(path: string, setting?: string): Promise<boolean> {
  let mode: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new Error('not a regular file');
    mode = s.mode;
  } catch (e) {
    throw new CodecError('engine_failed', `The engine binary ${path} does not exist or is not a file.`, { cause: e });
  }
  if ((mode & 0o111) === 0o111) return false;
  try {
    await chmod(path, (mode & 0o7777) | 0o111);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    const fix = setting ? `run chmod +x on it, or set ${setting} to an executable` : 'run chmod +x on it';
    throw new CodecError('engine_failed', `The engine binary ${path} is not executable and could not be made so (${code}); ${fix}.`, {
      cause: e,
    });
  }
}

/**
 * Runs `path args` and returns the first non-empty line it prints (stdout, else stderr).
 * Throws engine_failed when the binary cannot run or prints nothing.
 */
export async function readFirstLine(path: string, args: string[], timeoutMs = 10_000): Promise<string> {
  const r = await runProcess(path, args, { timeoutMs, maxStdoutBytes: 1024 * 1024 });
  const text = `${r.stdout ?? ''}\n${r.stderrTail}`;
  const line = text.split(/\r?\n/).find((l) => l.trim().length > 0);
  if (r.code !== 0 || !line) {
    throw new CodecError('engine_failed', `${path} ${args.join(' ')} failed (exit code ${r.code}).`, {
      internal: r.stderrTail,
    });
  }
  return line.trim();
}
