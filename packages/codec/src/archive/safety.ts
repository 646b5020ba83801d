/**
 * Rules every archive we read must pass before anything is written to disk, whatever its format:
 * no entry may leave the folder it is extracted into (no `..` segment, no absolute or drive path,
 * no symlink, hard link or device), and the entry count, expanded size and expansion ratio stay
 * under the caller's limits. Violations refuse the whole archive: a partly extracted archive is
 * not a result anyone asked for.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { CodecError, limitExceeded } from '../errors.ts';
import type { Limits } from '../engine.ts';

/**
 * The expansion ratio is only meaningful once the expanded size is large: a 200-byte zip holding 60 KB
 * of repeated text has a ratio of 300 and is harmless. Below this many expanded bytes it is not checked.
 */
export const RATIO_FLOOR_BYTES = 1024 * 1024;

export function unsafeEntry(name: string, why: string): CodecError {
  return new CodecError('invalid_input', `The archive contains an entry that ${why} ("${name.slice(0, 200)}"); archives like this are refused.`);
}

/**
 * Returns the entry's path relative to the extraction folder, normalised to `/` separators, or throws
 * invalid_input when it would leave that folder. Backslashes count as separators: an entry named
 * `..\evil` is harmless here but would escape when our repacked archive is opened on Windows.
 */
export function safeEntryPath(name: string): string {
  if (name.includes('\0')) throw unsafeEntry(name.replace(/\0/g, '\\0'), 'has a NUL byte in its name');
  const unified = name.replace(/\\/g, '/');
  if (unified.startsWith('/') || /^[a-zA-Z]:/.test(unified)) throw unsafeEntry(name, 'has an absolute path');
  const parts = unified.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw unsafeEntry(name, 'points outside its folder (a ".." path)');
  return parts.join('/');
}

export type ArchiveLimits = Pick<Limits, 'archiveEntries' | 'expandedBytes' | 'expansionRatio'>;

/** Counts entries and expanded bytes against the limits; throws limit_exceeded the moment one is passed. */
export class ExpansionBudget {
  entries = 0;
  bytes = 0;
  private readonly archiveSize: number;
  private readonly limits: ArchiveLimits;
  constructor(archiveSize: number, limits: ArchiveLimits) {
    this.archiveSize = Math.max(1, archiveSize);
    this.limits = limits;
  }
  addEntry(n = 1): void {
    this.entries += n;
    this.checkCount(this.entries);
  }
  /** Checks an entry count known up front (a zip's central directory) without adding it. */
  checkCount(n: number): void {
    const { archiveEntries } = this.limits;
    if (n > archiveEntries.max) {
      throw limitExceeded('The number of entries in the archive', n > this.entries + 1 ? n : `more than ${archiveEntries.max}`, archiveEntries);
    }
  }
  addBytes(n: number): void {
    this.bytes += n;
    this.check(this.bytes);
  }
  /** Checks a total computed elsewhere (e.g. the sum of declared sizes) without adding it. */
  check(total: number): void {
    const { expandedBytes, expansionRatio } = this.limits;
    if (total > expandedBytes.max) {
      throw limitExceeded("The archive's expanded size", `more than ${expandedBytes.max} bytes`, expandedBytes, ' bytes');
    }
    if (total > RATIO_FLOOR_BYTES && total / this.archiveSize > expansionRatio.max) {
      throw limitExceeded("The archive's expansion ratio", `more than ${Math.floor(total / this.archiveSize)}:1`, expansionRatio, ':1');
    }
  }
}

export interface ExtractedFile {
  /** Path relative to the extraction folder, `/`-separated. */
  rel: string;
  /** Absolute path on disk. */
  path: string;
  size: number;
}

/**
 * Walks what an engine extracted and checks it again (defence in depth against an engine that
 * wrote something its listing did not show): regular files and folders only, all inside `root`.
 */
export async function collectExtracted(root: string, budget: ExpansionBudget): Promise<ExtractedFile[]> {
  const out: ExtractedFile[] = [];
  let bytes = 0;
  let entries = 0;
  const rootReal = await fs.realpath(root);
  async function walk(dir: string): Promise<void> {
    const items = await fs.readdir(dir, { withFileTypes: true });
    items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const it of items) {
      const abs = path.join(dir, it.name);
      const st = await fs.lstat(abs);
      const rel = path.relative(rootReal, abs).split(path.sep).join('/');
      if (rel.startsWith('..') || path.isAbsolute(rel)) throw unsafeEntry(rel, 'points outside its folder');
      entries++;
      if (st.isSymbolicLink()) throw unsafeEntry(rel, 'is a symbolic link');
      if (st.isDirectory()) {
        await walk(abs);
      } else if (st.isFile()) {
        bytes += st.size;
        out.push({ rel, path: abs, size: st.size });
      } else {
        throw unsafeEntry(rel, 'is not a regular file or folder');
      }
    }
  }
  await walk(rootReal);
  if (entries > budget.entries) budget.addEntry(entries - budget.entries);
  budget.check(bytes);
  return out;
}
