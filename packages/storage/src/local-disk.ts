import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { assertKey, BlobNotFoundError, scratchName, StorageConfigError, type BlobStore, type WholeBlob } from './blob-store.ts';
import { removeScratchDir, removeScratchFile } from './scratch-removal.ts';

/** Blobs as plain files under one root directory (DATA_DIR/blobs). */
export class LocalDiskStore implements BlobStore {
  readonly kind = 'local' as const;
  readonly root: string;
  readonly location: Record<string, string>;
  private readonly tmpRoot: string;
  private readonly making = new Map<string, Promise<void>>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.tmpRoot = path.join(this.root, '.tmp');
    this.location = { path: this.root };
  }

  async init(): Promise<this> {
    try {
      await fsp.mkdir(this.tmpRoot, { recursive: true });
      await fsp.access(this.tmpRoot, fs.constants.W_OK);
    } catch (err) {
      throw new StorageConfigError(
        `Cannot write blobs under ${this.root} (${(err as NodeJS.ErrnoException).code ?? String(err)}): point DATA_DIR at a writable directory.`,
        'DATA_DIR',
        { cause: err },
      );
    }
    return this;
  }

  async ping(): Promise<void> {
    await fsp.access(this.tmpRoot, fs.constants.W_OK);
  }

  private file(key: string): string {
    assertKey(key);
    const p = path.join(this.root, key);
    // Belt and braces: the key regex already forbids escaping, this makes it structural.
    if (!p.startsWith(this.root + path.sep)) throw new Error(`Storage key ${key} resolves outside the store.`);
    return p;
  }

  private tmpName(): string {
    return path.join(this.tmpRoot, crypto.randomUUID());
  }

  async put(key: string, source: Readable): Promise<{ size: number }> {
    const dest = this.file(key);
    const tmp = this.tmpName();
    let size = 0;
    source.on('data', (c: Buffer) => {
      size += c.length;
    });
    try {
      // A 1 MiB buffer instead of 16 KiB: uploads arrive in small pieces, and letting them gather
      // means one writev per ~1 MiB instead of a write (and a stream pause/resume) per piece.
      await pipeline(source, fs.createWriteStream(tmp, { flags: 'wx', highWaterMark: 1 << 20 }));
      await this.renameInto(tmp, dest);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    return { size };
  }

  async putFile(key: string, localPath: string, opts: { size?: number } = {}): Promise<{ size: number }> {
    const dest = this.file(key);
    try {
      await this.renameInto(localPath, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      // Copied beside the blobs first and renamed into place, so a partial copy is never visible under `key`.
      const tmp = this.tmpName();
      try {
        await fsp.copyFile(localPath, tmp);
        await this.renameInto(tmp, dest);
      } finally {
        await fsp.rm(tmp, { force: true });
      }
      await fsp.rm(localPath, { force: true });
    }
    return { size: opts.size ?? (await fsp.stat(dest)).size };
  }

  /**
   * rename, making the destination's folder when it is missing. The key's folder is there for every
   * file of a job but its first (`src/` for uploads, `out/` for results): rename first, and make the
   * folder only when the rename says it is missing (one call per file instead of three).
   */
  private async renameInto(from: string, dest: string): Promise<void> {
    // Another part is making this folder right now: wait for it rather than fail a rename first.
    const making = this.making.get(path.dirname(dest));
    if (making) await making.catch(() => undefined);
    try {
      await fsp.rename(from, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // ENOENT is also what a missing `from` gives: then the second rename fails the same way.
      await this.makeDir(path.dirname(dest));
      await fsp.rename(from, dest);
    }
  }

  /**
   * mkdir -p, shared by the calls that want the same folder at once: a request's parts are written
   * side by side and reach their renames together, before the first has made the job's folder.
   * Remembered only while it runs (a folder may be removed afterwards: a job deleted).
   */
  private makeDir(dir: string): Promise<void> {
    let making = this.making.get(dir);
    if (!making) {
      making = fsp
        .mkdir(dir, { recursive: true })
        .then(() => undefined)
        .finally(() => this.making.delete(dir));
      this.making.set(dir, making);
    }
    return making;
  }

  async open(key: string, range?: { start: number; end: number }): Promise<Readable> {
    const p = this.file(key);
    const handle = await fsp.open(p, 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new BlobNotFoundError(key) : err;
    });
    return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    try {
      return { size: (await fsp.stat(this.file(key))).size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async get(key: string, bufferUpTo: number): Promise<WholeBlob | undefined> {
    const p = this.file(key);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(p, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    // open, fstat, read, close: four calls on the thread pool where stat + a read stream took five
    // and a stream's machinery besides. A larger blob is streamed from the same handle.
    let streaming = false;
    try {
      const { size } = await handle.stat();
      if (size > bufferUpTo) {
        streaming = true;
        return { size, stream: handle.createReadStream() };
      }
      const bytes = Buffer.allocUnsafe(size);
      let at = 0;
      while (at < size) {
        const { bytesRead } = await handle.read(bytes, at, size - at, at);
        if (bytesRead === 0) break;
        at += bytesRead;
      }
      return { size: at, bytes: at === size ? bytes : bytes.subarray(0, at) };
    } finally {
      if (!streaming) await handle.close();
    }
  }

  async delete(keys: string[]): Promise<void> {
    await Promise.all(keys.map((k) => fsp.rm(this.file(k), { force: true, recursive: true })));
  }

  async localPath(key: string, opts: { unchecked?: boolean; under?: string } = {}): Promise<{ path: string; release: () => Promise<void> }> {
    const p = this.file(key);
    if (opts.unchecked) return { path: p, release: async () => undefined };
    await fsp.access(p, fs.constants.R_OK).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new BlobNotFoundError(key) : err;
    });
    return { path: p, release: async () => undefined };
  }

  scratchPath(): string {
    return path.join(this.tmpRoot, scratchName());
  }

  async scratch(planned?: string): Promise<{ dir: string; release: () => Promise<void> }> {
    if (planned !== undefined && path.dirname(planned) !== this.tmpRoot) throw new Error(`Scratch folder ${planned} is not under ${this.tmpRoot}.`);
    // Scratch lives beside the blobs so finished outputs can be renamed into place, not copied.
    const want = planned ?? this.scratchPath();
    const dir = await fsp
      .mkdir(want)
      .then(() => want)
      .catch(() => fsp.mkdtemp(path.join(os.tmpdir(), 'kiln-')));
    return { dir, release: () => removeScratchDir(dir) };
  }

  async scratchFile(planned?: string): Promise<{ path: string; release: () => Promise<void> }> {
    if (planned !== undefined && path.dirname(planned) !== this.tmpRoot) throw new Error(`Scratch file ${planned} is not under ${this.tmpRoot}.`);
    const file = planned ?? this.scratchPath();
    return { path: file, release: () => removeScratchFile(file) };
  }
}
