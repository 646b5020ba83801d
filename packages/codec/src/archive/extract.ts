/**
 * Extracts an uploaded archive (zip, tar, gz/bz2/xz — a tarball or a single compressed file —, 7z,
 * rar) into a folder the caller owns, enforcing the rules in safety.ts *before* writing: names are
 * checked and sizes counted from each format's own listing, then the extracted tree is walked and
 * checked again. Nothing is ever written outside `dir`.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import * as tar from 'tar';
import yauzl from 'yauzl';
import { sniff, SNIFF_BYTES, type InputKind } from '@kiln/formats';
import { CodecError, isCodecError } from '../errors.ts';
import { collectExtracted, ExpansionBudget, safeEntryPath, unsafeEntry, type ArchiveLimits, type ExtractedFile } from './safety.ts';
import { parseSlt, run7za, type SevenZipRun } from './sevenzip.ts';
import { listRar, extractRar } from './rar.ts';

export interface ExtractOptions extends SevenZipRun {
  input: string;
  kind: InputKind;
  /** Empty folder to extract into (inside the caller's scratch dir). */
  dir: string;
  /** Folder for intermediates (decompressed tarballs), also the caller's. */
  workDir: string;
  /** Uploaded file name: names the single file inside a .gz/.bz2/.xz. */
  filename?: string;
  limits: ArchiveLimits;
}

export interface Extracted {
  files: ExtractedFile[];
  /** What was really inside: `tar` for a tarball inside gz/bz2/xz, else the input kind. */
  innerKind: InputKind | 'file';
}

export async function extractArchive(o: ExtractOptions): Promise<Extracted> {
  const size = (await fsp.stat(o.input)).size;
  const budget = new ExpansionBudget(size, o.limits);
  await fsp.mkdir(o.dir, { recursive: true });
  switch (o.kind) {
    case 'zip':
      await extractZip(o.input, o.dir, budget);
      break;
    case 'tar':
      await extractTar(o.input, o.dir, budget);
      break;
    case '7z':
      await extract7z(o, budget);
      break;
    case 'rar': {
      const entries = await listRar(o.input);
      checkListing(entries, budget);
      await extractRar(o.input, o.dir);
      break;
    }
    case 'gz':
    case 'bz2':
    case 'xz': {
      const inner = await decompressSingle(o, budget);
      const head = await readHead(inner);
      if (sniff(head) === 'tar') {
        // A tarball: its own entries count, but the ratio stays against the uploaded (compressed) size.
        await extractTar(inner, o.dir, new ExpansionBudget(size, o.limits));
        await fsp.rm(inner, { force: true });
        return { files: await collectExtracted(o.dir, new ExpansionBudget(size, o.limits)), innerKind: 'tar' };
      }
      const name = innerName(o.filename, o.kind);
      await fsp.rename(inner, path.join(o.dir, name));
      return { files: await collectExtracted(o.dir, budget), innerKind: 'file' };
    }
    default:
      throw new CodecError('unsupported', `Files of type ${o.kind} are not archives.`);
  }
  return { files: await collectExtracted(o.dir, new ExpansionBudget(size, o.limits)), innerKind: o.kind };
}

/** `photo.png.gz` → `photo.png`; `upload` → `upload`; `../x` → `x`. */
export function innerName(filename: string | undefined, kind: string): string {
  const base = path.basename((filename ?? '').replace(/\\/g, '/'));
  const stripped = base.replace(new RegExp(`\\.(${kind}|tgz|tbz2?|txz)$`, 'i'), (m) => (/^\.t/i.test(m) && m.toLowerCase() !== `.${kind}` ? '.tar' : ''));
  const clean = stripped.replace(/^\.+/, '').replace(/[\0/]/g, '_');
  return clean || 'file';
}

/** The first bytes of a file, enough for `sniff`. */
export async function readHead(p: string): Promise<Uint8Array> {
  const fh = await fsp.open(p, 'r');
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Checks a format's listing (names, link types, count, declared sizes) before anything is extracted. */
function checkListing(entries: { path: string; folder: boolean; size: number; unixType?: string; link?: string }[], budget: ExpansionBudget): void {
  let declared = 0;
  for (const e of entries) {
    safeEntryPath(e.path);
    if (e.link) throw unsafeEntry(e.path, 'is a link');
    if (e.unixType === 'l') throw unsafeEntry(e.path, 'is a symbolic link');
    if (e.unixType && !['-', 'd'].includes(e.unixType)) throw unsafeEntry(e.path, 'is not a regular file or folder');
    budget.addEntry();
    if (!e.folder) declared += e.size;
  }
  budget.check(declared);
}

// ---------------------------------------------------------------- zip (yauzl)

function zipOpen(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: true, validateEntrySizes: true, decodeStrings: true, strictFileNames: false }, (err, zip) => {
      if (err || !zip) reject(err ?? new Error('no zip'));
      else resolve(zip);
    });
  });
}

function zipError(err: unknown): CodecError {
  if (isCodecError(err)) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const name = /: (.*)$/.exec(msg)?.[1] ?? '';
  if (/^absolute path/.test(msg)) return unsafeEntry(name, 'has an absolute path');
  if (/^invalid relative path/.test(msg)) return unsafeEntry(name, 'points outside its folder (a ".." path)');
  if (/^invalid characters in fileName/.test(msg)) return unsafeEntry(name, 'has a backslash in its name');
  if (/encrypted/i.test(msg)) return new CodecError('invalid_input', 'The zip archive is encrypted; upload it without a password.', { cause: err, internal: msg });
  if (/compression method/i.test(msg))
    return new CodecError('invalid_input', 'The zip archive uses a compression method Kiln cannot read (only stored and deflate are supported).', { cause: err, internal: msg });
  if ((err as NodeJS.ErrnoException).code && /^E[A-Z]+$/.test((err as NodeJS.ErrnoException).code!) && !/ENOTDIR|EEXIST|EISDIR/.test((err as NodeJS.ErrnoException).code!)) {
    return new CodecError('engine_failed', 'Writing the extracted files failed.', { cause: err, internal: msg });
  }
  return new CodecError('invalid_input', 'The zip archive could not be read: it is damaged, truncated or not a zip file.', { cause: err, internal: msg });
}

async function extractZip(file: string, dir: string, budget: ExpansionBudget): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await zipOpen(file);
  } catch (err) {
    throw zipError(err);
  }
  // The central directory's count is known before reading a single entry.
  try {
    budget.checkCount(zip.entryCount);
  } catch (err) {
    zip.close();
    throw err;
  }
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      zip.close();
      reject(zipError(err));
    };
    zip.on('error', fail);
    zip.on('end', () => {
      if (!failed) resolve();
    });
    zip.on('entry', (e: yauzl.Entry) => {
      void (async () => {
        const rel = safeEntryPath(e.fileName);
        const type = (e.externalFileAttributes >>> 16) & 0o170000;
        if (type === 0o120000) throw unsafeEntry(e.fileName, 'is a symbolic link');
        if (type !== 0 && type !== 0o100000 && type !== 0o040000) throw unsafeEntry(e.fileName, 'is not a regular file or folder');
        budget.addEntry();
        const isDir = e.fileName.endsWith('/') || type === 0o040000;
        if (!rel) {
          zip.readEntry();
          return;
        }
        const target = path.join(dir, rel);
        if (isDir) {
          await fsp.mkdir(target, { recursive: true });
          zip.readEntry();
          return;
        }
        budget.addBytes(e.uncompressedSize);
        await fsp.mkdir(path.dirname(target), { recursive: true });
        const stream = await new Promise<NodeJS.ReadableStream>((res, rej) => zip.openReadStream(e, (err, s) => (err || !s ? rej(err) : res(s))));
        // yauzl checks the real size against the declared one (validateEntrySizes), so the budget
        // counted above cannot be undercut by a lying header.
        await pipeline(stream, fs.createWriteStream(target, { flags: 'wx' }));
        zip.readEntry();
      })().catch(fail);
    });
    zip.readEntry();
  });
}

// ---------------------------------------------------------------- tar

const TAR_OK_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory']);

async function extractTar(file: string, dir: string, budget: ExpansionBudget): Promise<void> {
  // Pass 1: list and check everything. Pass 2: extract (tar's own guards stay on as a second line).
  let bad: CodecError | undefined;
  const parser = new tar.Parser({
    strict: true,
    onReadEntry: (entry) => {
      try {
        if (!bad) {
          safeEntryPath(entry.path);
          if (entry.type === 'SymbolicLink') throw unsafeEntry(entry.path, 'is a symbolic link');
          if (entry.type === 'Link') throw unsafeEntry(entry.path, 'is a hard link');
          if (!TAR_OK_TYPES.has(entry.type)) throw unsafeEntry(entry.path, 'is not a regular file or folder');
          budget.addEntry();
          if (entry.type !== 'Directory') budget.addBytes(entry.size ?? 0);
        }
      } catch (err) {
        bad = err as CodecError;
        src.destroy();
      }
      entry.resume();
    },
  });
  const src = fs.createReadStream(file);
  let parseErr: unknown;
  parser.on('warn', (_code: string, message: string) => {
    parseErr ??= new Error(message);
  });
  await new Promise<void>((resolve) => {
    parser.on('end', resolve);
    parser.on('close', resolve);
    parser.on('error', (e: unknown) => {
      parseErr ??= e;
      resolve();
    });
    src.on('error', (e) => {
      if (!bad) parseErr ??= e;
      resolve();
    });
    src.on('close', () => {
      if (bad) resolve();
    });
    src.pipe(parser as unknown as NodeJS.WritableStream);
  });
  if (bad) throw bad;
  if (parseErr)
    throw new CodecError('invalid_input', 'The tar archive could not be read: it is damaged, truncated or not a tar file.', { cause: parseErr, internal: String(parseErr) });
  if (budget.entries === 0 && (await fsp.stat(file)).size > 0) {
    // tar.Parser accepts garbage silently; an archive with no entries and bytes in it is not a tarball.
    const head = await readHead(file);
    if (sniff(head) !== 'tar') throw new CodecError('invalid_input', 'The tar archive could not be read: it is damaged, truncated or not a tar file.');
  }
  try {
    await tar.x({
      file,
      cwd: dir,
      strict: true,
      preservePaths: false,
      preserveOwner: false,
      noChmod: true,
      filter: (_p, entry) => 'type' in entry && TAR_OK_TYPES.has((entry as { type: string }).type),
    });
  } catch (err) {
    throw new CodecError('invalid_input', 'The tar archive could not be extracted: it is damaged or truncated.', { cause: err, internal: String(err) });
  }
}

// ---------------------------------------------------------------- 7z (7za)

async function extract7z(o: ExtractOptions, budget: ExpansionBudget): Promise<void> {
  const listing = parseSlt(await run7za(['l', '-slt', '--', o.input], o, '7z'));
  checkListing(listing, budget);
  // -snl is not used: symlinks were refused above, so nothing here can be a link.
  await run7za(['x', `-o${o.dir}`, '--', o.input], o, '7z');
}

// ---------------------------------------------------------------- gz / bz2 / xz (one stream)

/** Counts bytes going through and fails the stream when the budget is exceeded. */
function counter(budget: ExpansionBudget): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        budget.addBytes(chunk.length);
        cb(null, chunk);
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

async function decompressSingle(o: ExtractOptions, budget: ExpansionBudget): Promise<string> {
  await fsp.mkdir(o.workDir, { recursive: true });
  budget.addEntry();
  if (o.kind === 'gz') {
    const out = path.join(o.workDir, 'decompressed');
    try {
      await pipeline(fs.createReadStream(o.input), zlib.createGunzip(), counter(budget), fs.createWriteStream(out));
    } catch (err) {
      await fsp.rm(out, { force: true });
      if (isCodecError(err)) throw err;
      throw new CodecError('invalid_input', 'The gzip file could not be decompressed: it is damaged, truncated or not gzip.', { cause: err, internal: String(err) });
    }
    return out;
  }
  // bz2 / xz through 7za. bzip2 declares no size, so the output is watched while 7za writes it and
  // 7za is stopped the moment the budget is passed (overshoot is bounded by the polling interval).
  const out = path.join(o.workDir, `x-${o.kind}`);
  await fsp.mkdir(out, { recursive: true });
  const ac = new AbortController();
  const onOuter = () => ac.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onOuter, { once: true });
  let over: CodecError | undefined;
  const poll = setInterval(() => {
    void (async () => {
      let total = 0;
      for (const name of await fsp.readdir(out).catch(() => [] as string[])) total += (await fsp.stat(path.join(out, name)).catch(() => ({ size: 0 }))).size;
      try {
        budget.check(total);
      } catch (err) {
        over ??= err as CodecError;
        ac.abort();
      }
    })();
  }, 100);
  try {
    await run7za(['e', `-t${o.kind === 'bz2' ? 'bzip2' : 'xz'}`, `-o${out}`, '--', o.input], { ...o, signal: ac.signal }, o.kind);
  } catch (err) {
    if (over) throw over;
    throw err;
  } finally {
    clearInterval(poll);
    o.signal?.removeEventListener('abort', onOuter);
  }
  const names = await fsp.readdir(out);
  if (names.length !== 1) throw new CodecError('invalid_input', `The ${o.kind} file did not decompress to exactly one file.`);
  const file = path.join(out, names[0]!);
  const st = await fsp.lstat(file);
  if (!st.isFile()) throw unsafeEntry(names[0]!, 'is not a regular file');
  budget.addBytes(st.size);
  return file;
}
