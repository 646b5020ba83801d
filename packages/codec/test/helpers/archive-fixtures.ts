/**
 * Archive fixtures built at test time, byte by byte where the point is a malformed or hostile
 * archive that well-behaved writers refuse to produce (`../` names, symlinks, RAR which nothing free
 * creates). Formats: PKWARE APPNOTE 6.3 (zip, stored), POSIX ustar (tar), RAR 4.x technote and the
 * RAR 5.0 archive format document (stored files only).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import zlib, { crc32 } from 'node:zlib';

export interface RawEntry {
  name: string;
  data?: Buffer | string;
  /** Unix mode including the type bits, e.g. 0o120777 for a symlink. */
  mode?: number;
  /** Deflate the data (zip only). */
  deflate?: boolean;
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

/** A zip written by hand, so entry names are exactly as given (archiver would clean `../`). */
export function rawZip(entries: RawEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const stored = e.deflate ? zlib.deflateRawSync(data, { level: 9 }) : data;
    const name = Buffer.from(e.name, 'utf8');
    const crc = crc32(data);
    const method = e.deflate ? 8 : 0;
    const local = Buffer.concat([
      u32(0x04034b50),
      u16(20),
      u16(0x0800),
      u16(method),
      u16(0),
      u16(0x21),
      u32(crc),
      u32(stored.length),
      u32(data.length),
      u16(name.length),
      u16(0),
      name,
    ]);
    locals.push(local, stored);
    centrals.push(
      Buffer.concat([
        u32(0x02014b50),
        u16((3 << 8) | 20),
        u16(20),
        u16(0x0800),
        u16(method),
        u16(0),
        u16(0x21),
        u32(crc),
        u32(stored.length),
        u32(data.length),
        u16(name.length),
        u16(0),
        u16(0),
        u16(0),
        u16(0),
        u32(((e.mode ?? 0o100644) << 16) >>> 0),
        u32(offset),
        name,
      ]),
    );
    offset += local.length + stored.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.concat([u32(0x06054b50), u16(0), u16(0), u16(entries.length), u16(entries.length), u32(cd.length), u32(offset), u16(0)]);
  return Buffer.concat([...locals, cd, end]);
}

/** A ustar archive written by hand; `type` '0' file, '2' symlink (data = link target), '5' folder. */
export function rawTar(entries: (RawEntry & { type?: '0' | '2' | '5' })[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? '0';
    const data = type === '0' ? Buffer.from(e.data ?? '') : Buffer.alloc(0);
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write(type, 156);
    if (type === '2') h.write(String(e.data ?? ''), 157, 100);
    h.write('ustar\0' + '00', 257);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** RAR 4.x with stored (method 0x30) files. */
export function rar4(entries: { name: string; data: Buffer | string }[]): Buffer {
  const block = (type: number, flags: number, body: Buffer): Buffer => {
    const head = Buffer.concat([Buffer.from([type]), u16(flags), u16(7 + body.length), body]);
    return Buffer.concat([u16(crc32(head) & 0xffff), head]);
  };
  const parts: Buffer[] = [Buffer.from('Rar!\x1a\x07\x00', 'latin1')];
  parts.push(block(0x73, 0, Buffer.alloc(6)));
  for (const e of entries) {
    const data = Buffer.from(e.data);
    const name = Buffer.from(e.name, 'latin1');
    const dosTime = ((2024 - 1980) << 25) | (1 << 21) | (1 << 16);
    const body = Buffer.concat([
      u32(data.length),
      u32(data.length),
      Buffer.from([3]),
      u32(crc32(data)),
      u32(dosTime),
      Buffer.from([20, 0x30]),
      u16(name.length),
      u32(0o100644),
      name,
    ]);
    // 0x8000: the block is followed by PACK_SIZE bytes of data.
    parts.push(block(0x74, 0x8000, body), data);
  }
  parts.push(block(0x7b, 0x4000, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

function vint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/** RAR 5.0 with stored files (compression info 0: version 0, method 0 = store). */
export function rar5(entries: { name: string; data: Buffer | string }[]): Buffer {
  const header = (fields: Buffer): Buffer => {
    const withSize = Buffer.concat([vint(fields.length), fields]);
    return Buffer.concat([u32(crc32(withSize)), withSize]);
  };
  const parts: Buffer[] = [Buffer.from('Rar!\x1a\x07\x01\x00', 'latin1')];
  parts.push(header(Buffer.concat([vint(1), vint(0), vint(0)])));
  for (const e of entries) {
    const data = Buffer.from(e.data);
    const name = Buffer.from(e.name, 'utf8');
    // header type 2 (file), flags 0x2 (data area follows), data size; file flags 0x4 (CRC32 present).
    const fields = Buffer.concat([vint(2), vint(0x2), vint(data.length), vint(0x4), vint(data.length), vint(0o644), u32(crc32(data)), vint(0), vint(1), vint(name.length), name]);
    parts.push(header(fields), data);
  }
  parts.push(header(Buffer.concat([vint(5), vint(0), vint(0)])));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------- checking outputs with 7za itself

const sevenZa = (createRequire(import.meta.url)('7zip-bin') as { path7za: string }).path7za;

/**
 * Runs the bundled 7za directly (tests only; the product goes through runProcess). A fresh install has
 * no execute bit on it (pnpm runs no install scripts): the product sets it when it resolves the binary
 * (ensureExecutable), and so does this helper, which may run first.
 */
export function sevenZaSync(args: string[], cwd?: string): Buffer {
  const mode = fs.statSync(sevenZa).mode;
  if ((mode & 0o111) !== 0o111) fs.chmodSync(sevenZa, mode | 0o111);
  return execFileSync(sevenZa, args, { cwd, maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Entries of an archive as 7-Zip sees them: `{ path, size, type }` for files (folders left out). */
export function listWith7za(file: string): { path: string; size: number; type: string }[] {
  const out = sevenZaSync(['l', '-slt', '-ba', file]).toString('utf8');
  const typeLine = /^Type = (.*)$/m.exec(sevenZaSync(['l', '-slt', file]).toString('utf8'))?.[1] ?? '';
  return out
    .split(/\r?\n\r?\n/)
    .map((block) => {
      const f = new Map(
        block
          .split(/\r?\n/)
          .map((l) => /^(.+?) = (.*)$/.exec(l))
          .filter((m): m is RegExpExecArray => !!m)
          .map((m) => [m[1]!, m[2]!]),
      );
      return { path: f.get('Path') ?? '', size: Number(f.get('Size') ?? 0), folder: f.get('Folder') === '+' || /^D/.test(f.get('Attributes') ?? ''), type: typeLine };
    })
    .filter((e) => e.path && !e.folder)
    .map(({ path, size, type }) => ({ path, size, type }));
}

/** One file's bytes from inside an archive. */
export function readWith7za(file: string, entry: string): Buffer {
  return sevenZaSync(['x', '-so', file, entry]);
}
