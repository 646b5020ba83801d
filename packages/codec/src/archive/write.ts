/**
 * Writes archives: zip / tar / tgz with archiver, gz with zlib, 7z / bz2 / xz with 7za. Entry names
 * are relative, `/`-separated and already checked (safeEntryPath or entryNameFor); gz, bz2 and xz
 * hold exactly one file. Compression level comes from the request's quality (1–100 → 1–9).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { TarArchive, ZipArchive } from 'archiver';
import { isOneOf, MULTI_FILE_OUTPUTS, type ArchiveFormat } from '@kiln/formats';
import { CodecError, isCodecError } from '../errors.ts';
import { run7za, type SevenZipRun } from './sevenzip.ts';

export interface PackEntry {
  /** File on disk. */
  path: string;
  /** Name inside the archive (relative, `/`-separated). */
  name: string;
}

export interface WriteArchiveOptions extends SevenZipRun {
  level: number;
  /** Empty folder for staging 7z/bz2/xz inputs under their entry names (7za takes names from disk). */
  stageDir: string;
}

/** quality 1–100 → compression level 1–9. */
export function levelFromQuality(quality: number): number {
  return Math.max(1, Math.min(9, Math.round((quality / 100) * 9)));
}

/** A single file name that is safe as an entry name: no folders, no leading dots, never empty. */
export function entryNameFor(filename: string | undefined, fallbackExt?: string): string {
  const base = path
    .basename((filename ?? '').replace(/\\/g, '/'))
    .replace(/[\0]/g, '')
    .replace(/^\.+/, '');
  const name = base || 'file';
  return fallbackExt && !/\.[A-Za-z0-9]{1,5}$/.test(name) ? `${name}.${fallbackExt}` : name;
}

/** Makes names unique (case-insensitively, as Windows and macOS extract them): `a.png`, `a (1).png`. */
export function uniqueNames(names: string[]): string[] {
  const used = new Set<string>();
  return names.map((n) => {
    let name = n;
    const dot = n.lastIndexOf('.');
    const slash = n.lastIndexOf('/');
    for (let i = 1; used.has(name.toLowerCase()); i++) {
      name = dot > slash + 1 ? `${n.slice(0, dot)} (${i})${n.slice(dot)}` : `${n} (${i})`;
    }
    used.add(name.toLowerCase());
    return name;
  });
}

async function stage(entries: PackEntry[], dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  for (const e of entries) {
    const target = path.join(dir, e.name);
    await fsp.mkdir(path.dirname(target), { recursive: true });
    // A hard link costs nothing; across devices fall back to a copy.
    await fsp.link(e.path, target).catch(() => fsp.copyFile(e.path, target));
  }
}

export async function writeArchive(format: ArchiveFormat, entries: PackEntry[], output: string, o: WriteArchiveOptions): Promise<{ size: number }> {
  if (!isOneOf(MULTI_FILE_OUTPUTS, format) && entries.length !== 1) {
    throw new CodecError('invalid_input', `A .${format} file holds exactly one file, and this input has ${entries.length}; choose zip, tar, tgz or 7z.`);
  }
  try {
    switch (format) {
      case 'zip':
      case 'tar':
      case 'tgz': {
        const archive = format === 'zip' ? new ZipArchive({ zlib: { level: o.level } }) : new TarArchive(format === 'tgz' ? { gzip: true, gzipOptions: { level: o.level } } : {});
        const done = pipeline(archive, fs.createWriteStream(output));
        for (const e of entries) archive.file(e.path, { name: e.name });
        await archive.finalize();
        await done;
        break;
      }
      case 'gz':
        await pipeline(fs.createReadStream(entries[0]!.path), zlib.createGzip({ level: o.level }), fs.createWriteStream(output));
        break;
      case '7z':
      case 'bz2':
      case 'xz': {
        await stage(entries, o.stageDir);
        const type = format === 'bz2' ? 'bzip2' : format;
        // `*` is expanded by 7-Zip itself (no shell): every staged file and folder, dotfiles included.
        const what = format === '7z' ? ['*'] : [entries[0]!.name];
        await run7za(['a', `-t${type}`, `-mx=${o.level}`, '--', path.resolve(output), ...what], { ...o, cwd: o.stageDir }, 'create');
        break;
      }
    }
  } catch (err) {
    await fsp.rm(output, { force: true });
    if (isCodecError(err)) throw err;
    throw new CodecError('engine_failed', `Building the ${format} archive failed.`, { cause: err, internal: String(err) });
  }
  return { size: (await fsp.stat(output)).size };
}
