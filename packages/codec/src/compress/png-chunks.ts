/**
 * Lossless PNG metadata stripping: drops the text and EXIF chunks (eXIf, tEXt, zTXt, iTXt, tIME)
 * and copies every other chunk byte for byte, so pixels and colour chunks (iCCP, sRGB, gAMA, cHRM)
 * are untouched. Used when re-encoding would not make the file smaller but metadata must still go.
 */
import { CodecError } from '../errors.ts';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const DROP = new Set(['eXIf', 'tEXt', 'zTXt', 'iTXt', 'tIME']);

export function stripPngMetadata(png: Buffer): { data: Buffer; hadMetadata: boolean } {
  if (png.length < 8 || !png.subarray(0, 8).equals(SIGNATURE)) {
    throw new CodecError('invalid_input', 'The file could not be read as a PNG: its signature is wrong.');
  }
  const out: Buffer[] = [SIGNATURE];
  let hadMetadata = false;
  let i = 8;
  while (i + 12 <= png.length) {
    const len = png.readUInt32BE(i);
    const type = png.toString('latin1', i + 4, i + 8);
    const end = i + 12 + len;
    if (end > png.length) throw new CodecError('invalid_input', 'The file could not be read as a PNG: a chunk runs past the end.');
    if (DROP.has(type)) hadMetadata = true;
    else out.push(png.subarray(i, end));
    i = end;
    if (type === 'IEND') {
      if (i < png.length) hadMetadata = true;
      return { data: Buffer.concat(out), hadMetadata };
    }
  }
  throw new CodecError('invalid_input', 'The file could not be read as a PNG: it has no IEND chunk.');
}
