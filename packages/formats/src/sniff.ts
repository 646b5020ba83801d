/**
 * Detects what a file really is from its first bytes. Names and client-sent MIME types are never
 * trusted: the published SDK uploads every file as `upload` with no extension.
 */
import type { InputKind } from './registry.ts';

/** How many leading bytes `sniff` wants to see. */
export const SNIFF_BYTES = 4100;

const ascii = (b: Uint8Array, at: number, s: string): boolean => {
  if (b.length < at + s.length) return false;
  for (let i = 0; i < s.length; i++) if (b[at + i] !== s.charCodeAt(i)) return false;
  return true;
};
const bytes = (b: Uint8Array, at: number, sig: readonly number[]): boolean => b.length >= at + sig.length && sig.every((v, i) => b[at + i] === v);

function sniffIsoBmff(b: Uint8Array): InputKind | undefined {
  if (!ascii(b, 4, 'ftyp')) return undefined;
  const brand = String.fromCharCode(...b.subarray(8, 12));
  // Compatible brands follow the minor version; scan them too (AVIF files often say `mif1` first).
  const size = Math.min(((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0, b.length);
  const brands = [brand];
  for (let i = 16; i + 4 <= size; i += 4) brands.push(String.fromCharCode(...b.subarray(i, i + 4)));
  if (brands.includes('avif') || brands.includes('avis')) return 'avif';
  if (brands.some((x) => ['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1'].includes(x))) return 'heic';
  if (brand === 'qt  ') return 'mov';
  if (['M4A ', 'M4B ', 'M4P '].includes(brand)) return 'm4a';
  return 'mp4';
}

function looksLikeSvg(b: Uint8Array): boolean {
  const head = new TextDecoder('utf-8', { fatal: false }).decode(b.subarray(0, Math.min(b.length, SNIFF_BYTES))).replace(/^\uFEFF/, '');
  const t = head.trimStart();
  if (!t.startsWith('<')) return false;
  // Skip an XML declaration, comments and a doctype before the root element.
  const stripped = t
    .replace(/<\?xml[\s\S]*?\?>/, '')
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<!DOCTYPE[\s\S]*?>/i, '')
    .trimStart();
  return /^<svg[\s>]/i.test(stripped);
}

export function sniff(b: Uint8Array): InputKind | undefined {
  if (bytes(b, 0, [0xff, 0xd8, 0xff])) return 'jpg';
  if (bytes(b, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (ascii(b, 0, 'GIF87a') || ascii(b, 0, 'GIF89a')) return 'gif';
  if (ascii(b, 0, 'RIFF') && ascii(b, 8, 'WEBP')) return 'webp';
  if (ascii(b, 0, 'RIFF') && ascii(b, 8, 'WAVE')) return 'wav';
  if (ascii(b, 0, 'RIFF') && ascii(b, 8, 'AVI ')) return 'avi';
  if (bytes(b, 0, [0x49, 0x49, 0x2a, 0x00]) || bytes(b, 0, [0x4d, 0x4d, 0x00, 0x2a])) return 'tiff';
  const iso = sniffIsoBmff(b);
  if (iso) return iso;
  if (ascii(b, 0, '%PDF-')) return 'pdf';
  if (bytes(b, 0, [0x1a, 0x45, 0xdf, 0xa3])) {
    const head = new TextDecoder('latin1').decode(b.subarray(0, 64));
    return head.includes('webm') ? 'webm' : 'mkv';
  }
  if (ascii(b, 0, 'ID3') || (b.length > 2 && b[0] === 0xff && (b[1]! & 0xe0) === 0xe0 && (b[1]! & 0x06) !== 0)) return 'mp3';
  if (ascii(b, 0, 'OggS')) return 'ogg';
  if (ascii(b, 0, 'fLaC')) return 'flac';
  if (bytes(b, 0, [0x50, 0x4b, 0x03, 0x04]) || bytes(b, 0, [0x50, 0x4b, 0x05, 0x06])) return 'zip';
  if (ascii(b, 0, 'Rar!\x1a\x07')) return 'rar';
  if (bytes(b, 0, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return '7z';
  if (bytes(b, 0, [0x1f, 0x8b])) return 'gz';
  if (ascii(b, 0, 'BZh')) return 'bz2';
  if (bytes(b, 0, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (ascii(b, 257, 'ustar')) return 'tar';
  if (looksLikeSvg(b)) return 'svg';
  return undefined;
}
