import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { ZipArchive } from 'archiver';
import { CodecError } from '../errors.ts';

export interface ZipEntry {
  /** Path of the file on disk. */
  path: string;
  /** Name inside the archive: a plain file name, never a path. */
  name: string;
}

/** Zips files into one archive. Names are de-duplicated so that no entry overwrites another. */
export async function zipFiles(entries: ZipEntry[], output: string, opts: { level?: number } = {}): Promise<{ size: number; names: string[] }> {
  const archive = new ZipArchive({ zlib: { level: opts.level ?? 6 } });
  const used = new Set<string>();
  const names: string[] = [];
  for (const e of entries) {
    const base = e.name.replace(/[\\/]/g, '_').replace(/^\.+/, '_') || 'file';
    let name = base;
    for (let i = 1; used.has(name.toLowerCase()); i++) {
      const dot = base.lastIndexOf('.');
      name = dot > 0 ? `${base.slice(0, dot)} (${i})${base.slice(dot)}` : `${base} (${i})`;
    }
    used.add(name.toLowerCase());
    names.push(name);
    archive.file(e.path, { name });
  }
  const done = pipeline(archive, fs.createWriteStream(output));
  try {
    await archive.finalize();
    await done;
  } catch (err) {
    await fs.promises.rm(output, { force: true });
    throw new CodecError('engine_failed', 'Building the zip archive failed.', { cause: err, internal: String(err) });
  }
  return { size: archive.pointer(), names };
}
